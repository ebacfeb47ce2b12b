"""Agreement with BIG-bench's own code: prompts and per-example scores of every JSON task in the bigbench 1.0.0 sdist.

Usage: python benchmarks/bigbench_agreement.py CACHE_DIR [--shard I/K] [TASK ...]
       python benchmarks/bigbench_agreement.py CACHE_DIR --merge K
(not run in CI: it downloads two sdists with pip). Without --shard it checks every task (or the TASK folders named)
and writes the table; with --shard it checks every K-th task folder from the I-th, appending each folder's rows to
CACHE_DIR/rows_I_of_K.jsonl (a rerun resumes), and --merge K writes the table from the K shards' rows.
Writes benchmarks/results/bigbench_agreement.md.

How BIG-bench's code is run without its heavy dependencies: `pip download --no-deps --no-binary :all:
bigbench==1.0.0 t5==0.9.3` fetches the sources, unpacked into CACHE_DIR. `bigbench` is registered as a package whose
path is the unpacked folder, so `bigbench/api/json_task.py`, `task_metrics.py` and `models/model_utils.py` are
imported unchanged. Only what they import but never use on this path is stubbed: `tensorflow` (json_utils reads
files with `tf.io.gfile`, which maps to `os`/`glob`/`open`), `datasets` (BLEURT only) and `sklearn` (macro_f1 only).
`t5.evaluation.metrics` is the real t5 0.9.3 source of `bleu`, `rouge` and `sequence_accuracy` (its other functions
need more of t5), executed with sacrebleu, rouge-score and absl; its rouge bootstrap draws 10 resamples instead of
1000 (of one example every resample is that example, so the median is the same).

For each task: BIG-bench's `JsonTask(task.json, shot_list=[0, 2])` loads it (subtasks included); its prompts are
`task_prefix + sample["input"]` of `make_nshot_dataset(...)` exactly as `evaluate_fixed_shot` builds them. For
tasks over `FULL` examples the 2-shot walk stops after `QUERIES` queries (a `break` added to a copy of
make_nshot_dataset's source: the draws for the first queries do not depend on the later ones). Scores: a fake
model answers `evaluate_fixed_shot(score=False)` with synthetic outputs (three per example: the first target with a
leading space and a tail, the target cut into the task's stop string and followed by more text, and a wrong choice
or a perturbed target) passed through BIG-bench's `postprocess_output` (no length cut), and synthetic log-probs
(with ties); BIG-bench's metric functions then score each of the first `SCORED` examples alone and ours score the
same example's record. Values agree when within 1e-9.
"""

from __future__ import annotations

import ast
import glob
import json
import math
import os
import platform
import subprocess
import sys
import tarfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _machine import cpu_model

from emergentlab import metrics as M
from emergentlab.errors import UserError
from emergentlab.tasks.bigbench import BigBenchTask, load_bigbench

FULL, QUERIES, SCORED, TOL = 200, 50, 30, 1e-9


def fetch(cache: Path) -> tuple[Path, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    for spec in ("bigbench==1.0.0", "t5==0.9.3"):
        name = spec.replace("==", "-")
        if not (cache / name).is_dir():
            if not (cache / f"{name}.tar.gz").is_file():
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec,
                                "-d", str(cache)], check=True, capture_output=True)
            with tarfile.open(cache / f"{name}.tar.gz") as tf:
                tf.extractall(cache, filter="data")
    return cache / "bigbench-1.0.0", cache / "t5-0.9.3"


def _module(name: str, **attrs: Any) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def load_reference(bb: Path, t5: Path) -> tuple[Any, Any, Any, Callable[..., Any]]:
    """BIG-bench's json_task, task_metrics and model_utils modules, and make_nshot_dataset with an early stop."""
    def refuse(*a: Any, **k: Any) -> Any:
        raise RuntimeError("not available offline")

    gfile = types.SimpleNamespace(isdir=os.path.isdir, glob=glob.glob, GFile=open)
    tf = _module("tensorflow")
    tf.compat = _module("tensorflow.compat")
    tf.compat.v1 = _module("tensorflow.compat.v1", logging=types.SimpleNamespace(info=lambda *a: None))
    tf.compat.v2 = _module("tensorflow.compat.v2", io=types.SimpleNamespace(gfile=gfile))
    _module("datasets", load_metric=refuse)
    _module("sklearn").metrics = _module("sklearn.metrics", f1_score=refuse)
    src = (t5 / "t5/evaluation/metrics.py").read_text()
    keep = [n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)
            and n.name in ("bleu", "rouge", "sequence_accuracy")]
    import sacrebleu
    from absl import logging
    from rouge_score import rouge_scorer, scoring
    # t5's rouge takes the median of 1000 bootstrap resamples; of one example every resample is that example, so
    # 10 give the same value at a hundredth of the cost
    few = types.SimpleNamespace(BootstrapAggregator=lambda: scoring.BootstrapAggregator(n_samples=10))
    t5m = _module("t5.evaluation.metrics", sacrebleu=sacrebleu, rouge_scorer=rouge_scorer, scoring=few, np=np,
                  logging=logging)
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(t5 / "t5/evaluation/metrics.py"), "exec"), t5m.__dict__)
    _module("t5").evaluation = _module("t5.evaluation", metrics=t5m)
    for pkg in ("bigbench", "bigbench.api", "bigbench.models", "bigbench.benchmark_tasks"):
        _module(pkg, __path__=[str(bb / pkg.replace(".", "/"))])
    import bigbench.api.json_task as jt
    import bigbench.api.task_metrics as tm
    import bigbench.models.model_utils as mu

    fn_src = ast.get_source_segment(Path(jt.__file__).read_text(),
                                    next(n for n in ast.parse(Path(jt.__file__).read_text()).body
                                         if isinstance(n, ast.FunctionDef) and n.name == "make_nshot_dataset"))
    assert fn_src is not None
    stop_line = "        fewshot_samples.append(validation_example)\n"
    assert stop_line in fn_src
    patched = fn_src.replace(stop_line, stop_line + "        if len(fewshot_samples) >= _QUERIES:\n"
                                                    "            break\n")
    ns = {**jt.__dict__, "_QUERIES": QUERIES}
    exec(patched, ns)
    return jt, tm, mu, ns["make_nshot_dataset"]


def leaves(t: Any) -> list[Any]:
    return [x for s in t.subtasks for x in leaves(s)] if t.subtasks else [t]


class FakeModel:
    """Answers BIG-bench's calls with given outputs, passed through BIG-bench's own postprocessing.
    evaluate_fixed_shot asks for choice log-probs first (when the task has choice metrics), then target ones."""

    def __init__(self, mu: Any, outputs: list[str], choice_lp: list[list[float]], target_lp: list[list[float]],
                 has_choices: bool):
        self.mu, self.outputs, self.choice_lp, self.target_lp = mu, outputs, choice_lp, target_lp
        self.choices_next = has_choices

    def generate_text(self, inputs: list[str], stop_string: str | None = None, output_regex: str | None = None,
                      max_length: int = 0) -> list[str]:
        return [self.mu.postprocess_output(o, 0, stop_string, output_regex) for o in self.outputs[: len(inputs)]]

    def cond_log_prob(self, inputs: list[str], targets: list[list[str]], absolute_normalization: bool = True
                      ) -> list[list[float]]:
        out, self.choices_next = (self.choice_lp if self.choices_next else self.target_lp), False
        return out[: len(inputs)]


def synthetic(ex: Any, variant: int, stop: str | None, rng: np.random.RandomState) -> str:
    t = ex.targets[0]
    if variant == 0:
        return f" {t}\nQ: and so on."
    if variant == 1:
        return t + (stop or ".") + " more text"
    wrong = [c for c in ex.choices or () if c not in ex.targets]
    if wrong:
        return wrong[int(rng.randint(len(wrong)))]
    words = t.split(" ")
    return " ".join(words[::-1]) if len(words) > 1 else t[::-1] + "x"


def compare_task(ours: BigBenchTask, ref: Any, jt: Any, tm: Any, mu: Any, nshot: Callable[..., Any]
                 ) -> dict[str, Any]:
    row: dict[str, Any] = {"task": ref.name, "examples": len(ref._ds), "mismatches": []}
    if len(ours.examples) != len(ref._ds):
        row["mismatches"].append(f"{len(ours.examples)} examples here, {len(ref._ds)} in BIG-bench")
        return row
    # prompts
    for shots in (0, 2):
        if shots and len(ref._ds) < 3:
            continue
        make = jt.make_nshot_dataset if len(ref._ds) <= FULL or shots == 0 else nshot
        samples = make(ref._ds, shots, random_seed=42, separator=ref.few_shot_example_separator)
        bad = [i for i, s in enumerate(samples) if ref.task_prefix + s["input"] != ours.prompt(ours.examples[i], shots)]
        row[f"prompts_{shots}"] = (len(samples) - len(bad), len(samples))
        if bad:
            row["mismatches"].append(f"{shots}-shot prompt of example {bad[0]} (+{len(bad) - 1})")
    # scores
    n = min(SCORED, len(ref._ds))
    names = [m for m in ours.metrics if m in M.DECLARED_ONLY]
    agree = total = 0
    for variant in range(3):
        rng = np.random.RandomState(variant)
        outs = [synthetic(ex, variant, ours.stop_string, rng) for ex in ours.examples[:n]]
        choice_lp = []
        for ex in ours.examples[:n]:
            lp = list(-rng.gamma(1.0, 2.0, size=len(ex.choices or ())))
            if len(lp) > 1 and rng.random_sample() < 0.3:
                lp[1] = lp[0] = max(lp)  # a tie: BIG-bench breaks it by a hash
            choice_lp.append(lp)
        target_lp = [list(-rng.gamma(1.0, 5.0, size=len(ex.targets))) for ex in ours.examples[:n]]
        full = ref._ds
        ref._ds = full[:n]
        try:
            ref.evaluate_fixed_shot(FakeModel(mu, outs, choice_lp, target_lp, bool(ref.multiple_choice_metrics)), 0,
                                    score=False)
            samples = ref.shot_examples[0]
        finally:
            ref._ds = full
        for i, ex in enumerate(ours.examples[:n]):
            rec = {"kind": ours.kind, "generation": outs[i], "generated": True, "target": ex.target,
                   "targets": ex.targets,
                   "stop_string": ours.stop_string, "output_regex": ours.output_regex, "metrics": ours.metrics,
                   "target_logprobs": [float(target_lp[i][0])],
                   "targets_loglikelihood": [float(x) for x in target_lp[i]] if len(ex.targets) > 1 else [],
                   "choice_logprobs": choice_lp[i] if ex.choices else None, "choice_scores": ex.choice_scores,
                   "correct": ex.correct, "metadata": {}}
            for name in names:
                mine = M.METRICS[name].fn(rec)
                theirs = reference_score(name, samples[i], tm)
                if theirs is None:
                    continue
                total += 1
                if (math.isnan(mine) and math.isnan(theirs)) or abs(mine - theirs) <= TOL:
                    agree += 1
                elif len(row["mismatches"]) < 6:
                    row["mismatches"].append(f"{name} ex {i} v{variant}: ours {mine:.6g}, BIG-bench {theirs:.6g}")
    row["scores"] = (agree, total)
    return row


def reference_score(name: str, sample: dict[str, Any], tm: Any) -> float | None:
    """BIG-bench's metric function on one sample."""
    targets, resp = [sample["target"]], [sample.get("generative_response", "")]
    if name in ("rouge1", "rouge2", "rougeLsum"):
        if "_rouge" not in sample:  # one call gives all three
            sample["_rouge"] = tm.GENERATIVE_FN["rouge"](targets, resp)
        return float(sample["_rouge"][name])
    if name in tm.GENERATIVE_FN:
        if name == "numeric_match_with_0_1_relative_error" and len(sample["target"]) != 1:
            return None
        return float(tm.GENERATIVE_FN[name](targets, resp)[name])
    if name in tm.MULTIPLE_CHOICE_FN:
        return float(tm.MULTIPLE_CHOICE_FN[name]([sample])) if "log_prob" in sample else None
    if name == "log_likelihood":
        return float(tm.SCORING_FN[name]([sample["log_prob_gen"]], targets)[name])
    return None


def main(cache: Path, only: list[str], shard: tuple[int, int] = (0, 1)) -> list[dict[str, Any]]:
    bb, t5 = fetch(cache)
    jt, tm, mu, nshot = load_reference(bb, t5)
    tasks_dir = bb / "bigbench/benchmark_tasks"
    t0 = time.perf_counter()
    folders = [p for p in sorted(tasks_dir.iterdir()) if (p / "task.json").is_file() and (not only or p.name in only)]
    log = cache / f"rows_{shard[0]}_of_{shard[1]}.jsonl"
    done = {json.loads(x)["folder"] for x in log.read_text().splitlines()} if log.is_file() else set()
    for folder in folders[shard[0]::shard[1]]:
        if folder.name in done:
            continue
        got = check_folder(folder, jt, tm, mu, nshot)
        with log.open("a") as f:
            f.write(json.dumps({"folder": folder.name, "rows": got}) + "\n")
        print(f"{folder.name}: {len(got)} task(s), {time.perf_counter() - t0:.0f} s", flush=True)
    return [r for x in log.read_text().splitlines() for r in json.loads(x)["rows"]]


def check_folder(folder: Path, jt: Any, tm: Any, mu: Any, nshot: Callable[..., Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        ours = load_bigbench(folder)
    except UserError as e:
        return [{"task": folder.name, "examples": 0, "mismatches": [f"refused by our loader: {e}"]}]
    try:
        ref = jt.JsonTask(str(folder / "task.json"), shot_list=[0, 2])
    except ValueError:
        ref = jt.JsonTask(str(folder / "task.json"), shot_list=[0])
    refs = leaves(ref)
    if len(refs) != len(ours):
        return [{"task": folder.name, "examples": 0,
                 "mismatches": [f"{len(ours)} tasks here, {len(refs)} in BIG-bench"]}]
    for o, r in zip(ours, refs, strict=True):
        assert isinstance(o, BigBenchTask)
        rows.append(compare_task(o, r, jt, tm, mu, nshot))
    return rows


def write(rows: list[dict[str, Any]], unchecked: list[str]) -> None:
    def frac(r: dict[str, Any], k: str) -> str:
        v = r.get(k)
        return f"{v[0]}/{v[1]}" if v else "–"

    ok = [r for r in rows if not r["mismatches"]]
    p0 = sum(r.get("prompts_0", (0, 0))[0] for r in rows), sum(r.get("prompts_0", (0, 0))[1] for r in rows)
    p2 = sum(r.get("prompts_2", (0, 0))[0] for r in rows), sum(r.get("prompts_2", (0, 0))[1] for r in rows)
    sc = sum(r.get("scores", (0, 0))[0] for r in rows), sum(r.get("scores", (0, 0))[1] for r in rows)
    lines = [
        "# Agreement with BIG-bench's own prompt-building and scoring code (bigbench 1.0.0)", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {cpu_model()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}",
        f"- method: see the docstring of benchmarks/bigbench_agreement.py (FULL={FULL}, QUERIES={QUERIES}, "
        f"SCORED={SCORED})", "",
        f"**{len(ok)} of {len(rows)} JSON tasks (subtasks counted) agree in full.** Prompts equal: 0-shot "
        f"{p0[0]}/{p0[1]}, 2-shot {p2[0]}/{p2[1]}; per-example scores equal: {sc[0]}/{sc[1]}.", "",
        "| task | examples | 0-shot prompts equal | 2-shot prompts equal | scores equal | mismatches |",
        "|---|---|---|---|---|---|",
        *[f"| {r['task']} | {r['examples']} | {frac(r, 'prompts_0')} | {frac(r, 'prompts_2')} | {frac(r, 'scores')} | "
          f"{'; '.join(r['mismatches']).replace('|', '/') or ''} |" for r in rows], "",
    ]
    if unchecked:
        lines += [f"Not checked in this run (the shards ran out of time): {len(unchecked)} task folders: "
                  f"{', '.join(unchecked)}.", ""]
    out = Path(__file__).parent / "results" / "bigbench_agreement.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines[:8]))


if __name__ == "__main__":
    cache_dir, args = Path(sys.argv[1]), sys.argv[2:]
    if args[:1] == ["--merge"]:
        k = int(args[1])
        got = [json.loads(x) for i in range(k) if (cache_dir / f"rows_{i}_of_{k}.jsonl").is_file()
               for x in (cache_dir / f"rows_{i}_of_{k}.jsonl").read_text().splitlines()]
        tasks_dir = cache_dir / "bigbench-1.0.0/bigbench/benchmark_tasks"
        every = sorted(p.name for p in tasks_dir.iterdir() if (p / "task.json").is_file())
        write([r for g in got for r in g["rows"]], sorted(set(every) - {g["folder"] for g in got}))
    elif args[:1] == ["--shard"]:
        i, k = (int(x) for x in args[1].split("/"))
        main(cache_dir, args[2:], (i, k))
    else:
        write(main(cache_dir, args), [])

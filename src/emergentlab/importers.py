"""Records from other tools' logs, so existing runs get our metrics, curves and verdicts without re-running a model.

lm-evaluation-harness (`lm_eval ... --log_samples`) writes one `samples_<task>_<timestamp>.jsonl` per task, one line
per document (one per document and filter), and a `results_<timestamp>.json` beside them. Each line holds the
requests sent to the model (`arguments`: context, continuation or generation settings) and the raw responses
(`resps`), which become one `Record` per document:

| lm-eval output type | what a line holds | Record |
|---|---|---|
| `loglikelihood` | `[logprob, is_greedy]` for one continuation | `kind` generative/numeric, no generation |
| `multiple_choice` | `[logprob, is_greedy]` for each choice | `kind` multiple_choice, `choice_logprobs` |
| `generate_until` | the generated text | `kind` generative/numeric, `generation` |
| `loglikelihood_rolling` | `logprob` of the whole document | `kind` generative, empty prompt, no generation |

What lm-eval does not log is left empty, never guessed. It logs the *sum* of the continuation's token log-probs
(nats), not one value per token, and not the tokens: so `target_logprobs`, `target_tokens`, `target_greedy`,
`generation_tokens` and `choice_ntokens` stay empty, the sum is kept in the typed field `Record.target_loglikelihood`
(nats), and a record without a generation says so with `Record.generated = False`. The metrics read these two
fields: expected exact match is exp(sum); exact match, numeric match and token edit distance are NaN without a
generation or tokens; token accuracy and mean log-prob per token are NaN (no per-token values). Multiple-choice
metrics (grade, Brier, correct-choice probability) need only the per-choice sums and are exact.

`metadata` keeps provenance no metric reads: source, output type, doc id, line, lm-eval's own metric values, shots,
generation settings (`until`), filtered responses, and lm-eval's greedy flags (`target_is_greedy` for the whole
continuation, `choice_is_greedy` per choice).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emergentlab.errors import UserError, read_jsonl
from emergentlab.records import FACT_FIELDS, Record, ScaleFacts
from emergentlab.store import Store

_SAMPLES = re.compile(r"^samples_(?P<task>.+)_(?P<stamp>\d{4}-\d{2}-\d{2}T[\d.:-]+)\.jsonl$")
_NUMBER = re.compile(r"\s*[-+]?\d+(?:\.\d+)?\s*")


@dataclass(frozen=True)
class _Line:
    """One document's line, its requests as (context, continuation-or-settings) and one response per request."""

    line: int
    doc_id: int | str
    target: Any
    requests: list[tuple[str, Any]]
    resps: list[Any]
    filtered: dict[str, Any]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ImportSummary:
    written: int  # records added to the store
    skipped: int  # records whose key the store already held
    files: int


def _bad(path: Path, line: int, msg: str, fld: str | None = None) -> UserError:
    return UserError(msg, source=f"{path}:{line}", field=fld)


def _float(x: Any, path: Path, line: int) -> float:
    """lm-eval writes numbers as JSON numbers or, in recent versions, as strings."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise _bad(path, line, f"expected a log-probability, got {x!r}", "resps") from None
    if math.isnan(v) or v > 1e-6:
        raise _bad(path, line, f"a log-probability must be <= 0, got {v}", "resps")
    return v


def _bool(x: Any, path: Path, line: int) -> bool:
    if isinstance(x, bool):
        return x
    if x in ("True", "False", "true", "false", 0, 1):
        return x in ("True", "true", 1)
    raise _bad(path, line, f"expected is_greedy (True/False), got {x!r}", "resps")


def _requests(args: Any, path: Path, line: int) -> list[tuple[str, Any]]:
    """`arguments` as written by lm-eval ≥ 0.4.3 ({"gen_args_0": {"arg_0": ..., "arg_1": ...}}) or before ([[...]])."""
    if isinstance(args, dict):
        order = {k: re.search(r"_(\d+)$", k) for k in args}
        bad = next((k for k, m in order.items() if m is None), None)
        if bad is not None:
            raise _bad(path, line, f"request key {bad!r} is not lm-eval's gen_args_N", "arguments")
        rows = [args[k] for k in sorted(args, key=lambda k: int(order[k].group(1)))]  # type: ignore[union-attr]
        rows = [[r.get(f"arg_{i}") for i in range(len(r))] if isinstance(r, dict) else r for r in rows]
    elif isinstance(args, list):
        rows = args
    else:
        raise _bad(path, line, "expected an object or a list of requests", "arguments")
    out = []
    for r in rows:
        if not isinstance(r, list | tuple) or not r or not isinstance(r[0], str):
            raise _bad(path, line, "each request must start with its context string", "arguments")
        out.append((r[0], r[1] if len(r) > 1 else None))
    if not out:
        raise _bad(path, line, "no requests", "arguments")
    return out


def _read(path: Path) -> list[_Line]:
    """The lines of one samples file, one per document (extra lines of other filters fold into the first)."""
    by_doc: dict[int | str, _Line] = {}
    for n, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise _bad(path, n, f"expected a JSON object, got {type(row).__name__}")
        for key in ("doc_id", "arguments", "resps"):
            if key not in row:
                raise _bad(path, n, "missing (is this an lm-eval --log_samples file?)", key)
        doc_id = row["doc_id"]
        if not isinstance(doc_id, int | str) or isinstance(doc_id, bool):
            raise _bad(path, n, "must be an integer or a string", "doc_id")
        filt = str(row.get("filter", "none"))
        scores = {k: v for k, v in row.items() if k in row.get("metrics", ()) and isinstance(v, int | float)}
        if doc_id in by_doc:  # the same responses under another filter (e.g. strict-match / flexible-extract)
            by_doc[doc_id].filtered[filt] = row.get("filtered_resps")
            by_doc[doc_id].metrics.update({f"{filt}/{k}": v for k, v in scores.items()})
            continue
        reqs = _requests(row["arguments"], path, n)
        resps = row["resps"]
        if not isinstance(resps, list) or len(resps) != len(reqs):
            raise _bad(path, n, f"expected one response per request ({len(reqs)})", "resps")
        # resps[i] holds one entry per repeat; greedy requests have one, and the first is what was scored
        first = [r[0] if isinstance(r, list) and r else r for r in resps]
        by_doc[doc_id] = _Line(n, doc_id, row.get("target"), reqs, first, {filt: row.get("filtered_resps")},
                               {f"{filt}/{k}": v for k, v in scores.items()})
    if not by_doc:
        raise UserError("holds no samples", source=str(path))
    return list(by_doc.values())


def _output_type(ln: _Line, path: Path) -> str:
    if all(isinstance(r, str) for r in ln.resps):
        return "generate_until"
    if all(isinstance(r, list) and len(r) == 2 for r in ln.resps):
        return "loglikelihood" if len(ln.resps) == 1 else "multiple_choice"
    if len(ln.resps) == 1 and not isinstance(ln.resps[0], list | dict) and ln.requests[0][1] is None:
        return "loglikelihood_rolling"
    raise _bad(path, ln.line, f"responses of no lm-eval output type this reads: {str(ln.resps)[:80]}", "resps")


def _correct(target: Any, choices: Sequence[str], path: Path, line: int) -> tuple[int, tuple[float, ...] | None]:
    """The right choice's index, and 0/1 scores per choice when several are right (a list of targets)."""
    def index(t: Any) -> int:
        if isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(choices):
            return t
        if isinstance(t, str):
            if t.strip().isdigit() and int(t) < len(choices):
                return int(t)
            for i, c in enumerate(choices):
                if t in (c, c.strip()) or t.strip() == c.strip():
                    return i
        raise _bad(path, line, f"{t!r} is neither an index into the {len(choices)} choices nor one of them",
                   "target")

    if isinstance(target, list):
        right = {index(t) for t in target}
        if not right:
            raise _bad(path, line, "empty list of targets", "target")
        return min(right), tuple(1.0 if i in right else 0.0 for i in range(len(choices)))
    if isinstance(target, str) and target.startswith("[") and target.endswith("]"):
        try:
            parsed = json.loads(target)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return _correct(parsed, choices, path, line)
    return index(target), None


def _results_beside(path: Path, stamp: str | None) -> dict[str, Any]:
    if stamp is None:
        return {}
    f = path.with_name(f"results_{stamp}.json")
    try:
        data = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"not valid JSON ({e})", source=str(f)) from None
    return data if isinstance(data, dict) else {}


def _samples_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("samples_*.jsonl") if p.is_file())
        if not files:
            raise UserError("no lm-eval samples_*.jsonl files under this folder", source=str(path))
        return files
    return [path]


def load_lmeval_samples(path: str | Path, *, study: str = "lmeval", model: str | None = None,
                        task: str | None = None) -> list[Record]:
    """Records from one lm-eval `samples_<task>_<timestamp>.jsonl` (or every such file under a folder).

    `model` defaults to the model named in the `results_<timestamp>.json` beside the file, else the folder's name
    (lm-eval writes samples under a folder named after the model); `task` defaults to the name in the file name.
    The variant is `<n>shot` from the results file's `n-shot`, else `lmeval`. Log-probs are in nats. What is
    stored and what is left empty is in the module docstring. Raises UserError naming the file and line.
    """
    out: list[Record] = []
    for f in _samples_files(Path(path)):
        out += _load_file(f, study, model, task)
    return out


def _load_file(path: Path, study: str, model: str | None, task: str | None) -> list[Record]:
    m = _SAMPLES.match(path.name)
    results = _results_beside(path, m.group("stamp") if m else None)
    task_name = task or (m.group("task") if m else path.stem)
    model_name = model or str(results.get("model_name") or path.parent.name)
    shots = results.get("n-shot", {}).get(task_name) if isinstance(results.get("n-shot"), dict) else None
    variant = f"{shots}shot" if isinstance(shots, int) else "lmeval"
    lines = _read(path)
    otype = _output_type(lines[0], path)
    for ln in lines[1:]:
        if (other := _output_type(ln, path)) != otype:
            raise _bad(path, ln.line, f"a {other} response in a file of {otype} (line {lines[0].line}): one lm-eval "
                       "task per file")
    records: list[Record] = []
    for ln in lines:
        meta: dict[str, Any] = {"source": "lm-eval", "output_type": otype, "doc_id": ln.doc_id, "line": ln.line,
                                "lmeval_metrics": ln.metrics}
        if isinstance(shots, int):
            meta["shots"] = shots
        base: dict[str, Any] = dict(study=study, model=model_name, task=task_name, example_id=str(ln.doc_id),
                                    variant=variant, prompt=ln.requests[0][0])
        if otype == "multiple_choice":
            choices = tuple(str(c) for _, c in ln.requests)
            right, scores = _correct(ln.target, choices, path, ln.line)
            lps = tuple(_float(r[0], path, ln.line) for r in ln.resps)
            meta["choice_is_greedy"] = [_bool(r[1], path, ln.line) for r in ln.resps]
            records.append(Record(**base, kind="multiple_choice", target=choices[right], choices=choices,
                                  correct=right, choice_logprobs=lps, choice_scores=scores, metadata=meta))
        elif otype == "generate_until":
            settings = ln.requests[0][1]
            meta["until"] = settings.get("until") if isinstance(settings, dict) else None
            meta["filtered_resps"] = ln.filtered
            target = ln.target if isinstance(ln.target, str) else json.dumps(ln.target)
            records.append(Record(**base, kind="generative", target=target, generation=str(ln.resps[0]),
                                  metadata=meta))
        else:
            if otype == "loglikelihood":
                cont = ln.requests[0][1]
                if not isinstance(cont, str):
                    raise _bad(path, ln.line, "a loglikelihood request needs a continuation string", "arguments")
                lp, greedy = _float(ln.resps[0][0], path, ln.line), _bool(ln.resps[0][1], path, ln.line)
                meta["target_is_greedy"] = greedy
            else:  # rolling: the whole document is the "continuation" of nothing
                base["prompt"], cont = "", ln.requests[0][0]
                lp = _float(ln.resps[0], path, ln.line)
            records.append(Record(**base, kind="generative", target=cont, generated=False, target_loglikelihood=lp,
                                  metadata=meta))
    if otype != "multiple_choice" and all(_NUMBER.fullmatch(r.target) for r in records):
        records = [replace(r, kind="numeric") for r in records]
    return records


def lmeval_facts(path: str | Path) -> ScaleFacts:
    """Scale facts lm-eval logged beside a samples file (its parameter count), empty when it logged none."""
    p = Path(path)
    f = _samples_files(p)[0]
    m = _SAMPLES.match(f.name)
    results = _results_beside(f, m.group("stamp") if m else None)
    n = (results.get("config") or {}).get("model_num_parameters")
    return ScaleFacts(params=float(n) if isinstance(n, int | float) and n > 0 else None,
                      extra={"lmeval_model_args": (results.get("config") or {}).get("model_args")})


@dataclass
class LmevalSamples:
    """lm-eval samples read and checked, nothing written yet: the records and each model's (spec, facts)."""

    study: str
    records: list[Record]
    rungs: dict[str, tuple[str, ScaleFacts]]
    files: int


def read_lmeval(paths: Iterable[str | Path], *, study: str = "lmeval", model: str | None = None,
                facts: dict[str, Any] | None = None) -> LmevalSamples:
    """Read and check lm-eval samples files (or folders of them) before anything is written, one rung per model.

    Each model's rung gets the facts lm-eval logged (parameter count) under `facts` (e.g. tokens, loss from the
    user); `spec` is `lmeval:<first file>`."""
    for k, v in (facts or {}).items():
        if v is not None and (not isinstance(v, int | float) or not math.isfinite(v) or v <= 0):
            raise UserError(f"must be a positive finite number, got {v!r}", field=f"--{k}")
    records: list[Record] = []
    files = 0
    rungs: dict[str, tuple[str, ScaleFacts]] = {}
    for p in paths:
        for f in _samples_files(Path(p)):
            recs = _load_file(f, study, model, None)
            files += 1
            records += recs
            for name in {r.model for r in recs} - set(rungs):
                rungs[name] = (f"lmeval:{f}", lmeval_facts(f).merged(facts or {}))
    return LmevalSamples(study, records, rungs, files)


def write_lmeval(samples: LmevalSamples, store: Store) -> ImportSummary:
    """Write what `read_lmeval` read. Keys already stored are skipped, so importing twice adds nothing."""
    written = store.put_records(samples.records)
    stored = store.rungs(samples.study).set_index("model")
    for name, (spec, fc) in samples.rungs.items():
        if name in stored.index:  # a re-import keeps facts given before unless given again
            known = {k: v for k, v in stored.loc[name].items() if k in FACT_FIELDS and v is not None and v == v}
            fc = ScaleFacts(**known, extra=fc.extra).merged({k: getattr(fc, k) for k in FACT_FIELDS})
        store.put_rung(samples.study, name, spec, fc)
    return ImportSummary(written=written, skipped=len(samples.records) - written, files=samples.files)

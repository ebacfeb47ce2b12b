"""A ladder: model sizes × token budgets, each rung a tiny checkpoint trained on the same task lines.

A ladder spec is plain data (a TOML file or a dict); every error names the field it is about. Rungs whose
checkpoint already exists are loaded, not retrained, so an interrupted ladder resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from emergentlab.errors import UserError, read_toml
from emergentlab.models.tiny import GPTConfig, Tokenizer, make_tokenizer, tokenizer_vocab
from emergentlab.tasks import TASKS, train_lines
from emergentlab.train.loop import TrainConfig, train

# (rung name, step, total steps, info) after every optimizer step of the rung being trained.
LadderProgress = Callable[[str, int, int, dict[str, float]], None]

_SPEC_FIELDS = ("sizes", "budgets", "tasks", "lines", "seed", "traces", "group", "tokenizer", "model", "train",
                "weights")
# what the corpus and its reading depend on, with the value a rung trained before the field existed had
_CORPUS_DEFAULTS: dict[str, Any] = {"traces": 0.0, "group": 1, "tokenizer": {"kind": "char"}}

# The largest token budget a rung may ask for: a tiny GPT on a CPU trains at roughly 1e5-1e6 tokens/s, so 1e9
# tokens is already hours; a bigger number is almost surely a typo (an exponent too many).
MAX_BUDGET = 10**9


@dataclass
class LadderSpec:
    """Which rungs to train and on what.

    `sizes`: GPTConfig fields per model size (on top of `model`, the fields shared by all sizes);
    `budgets`: training tokens per rung; `tasks`: synthetic task names whose train-split lines make the corpus;
    `lines`: how many "input=target" items to draw; `traces`, `group`: the mixture (`tasks.train_lines`: the share
    of items written as worked traces, and how many consecutive items of one style make a document);
    `tokenizer`: `models.tiny.make_tokenizer`'s spec (characters by default); `train`: TrainConfig fields (not
    `tokens`, not `seed`); `weights`: each task's share of the lines, one per task (None: equal shares), e.g. a
    mixture in which the task under study is rare so that it emerges late. A model's vocab_size, unless given, is
    the tokenizer's.
    """

    sizes: list[dict[str, Any]]
    budgets: list[int]
    tasks: list[str]
    lines: int = 100_000
    seed: int = 0
    traces: float = 0.0
    group: int = 1
    tokenizer: dict[str, Any] = field(default_factory=lambda: {"kind": "char"})
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    weights: list[float] | None = None

    def make_tokenizer(self, corpus: list[str] | None = None) -> Tokenizer:
        """The tokenizer; a BPE given as a merge count is learned on `corpus` (the ladder's training lines)."""
        return make_tokenizer(self.tokenizer, corpus)

    def model_config(self, size: dict[str, Any]) -> GPTConfig:
        return GPTConfig(**{"vocab_size": tokenizer_vocab(self.tokenizer), **self.model, **size})

    def train_config(self, tokens: int) -> TrainConfig:
        return TrainConfig(**{**self.train, "tokens": tokens, "seed": self.seed})

    def rungs(self) -> list[tuple[str, GPTConfig, TrainConfig]]:
        """(name, model config, train config) for each size × budget, sizes outermost."""
        return [(rung_name(self.model_config(s), b), self.model_config(s), self.train_config(b))
                for s in self.sizes for b in self.budgets]


def _short(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def rung_name(cfg: GPTConfig, tokens: int) -> str:
    """E.g. `L2-d128-t2M`: layers, width, training tokens."""
    return f"L{cfg.n_layer}-d{cfg.n_embd}-t{_short(tokens)}"


def _check_fields(cls: type, d: dict[str, Any], where: str, source: str | None,
                  skip: tuple[str, ...] = ()) -> None:
    """Unknown names and wrongly typed values in `d` (meant for dataclass `cls`) → UserError naming the field."""
    known = {f.name: f for f in fields(cls) if f.name not in skip}
    for k, v in d.items():
        name = f"{where}.{k}" if where else k
        if k not in known:
            raise UserError(f"unknown field (known: {', '.join(known)})", source=source, field=name)
        default = known[k].default
        if default is MISSING or default is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(v, bool)
        elif isinstance(default, int):
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif isinstance(default, float):
            ok = isinstance(v, int | float) and not isinstance(v, bool)
        else:
            ok = isinstance(v, type(default))
        if not ok:
            raise UserError(f"expected {type(default).__name__}, got {v!r}", source=source, field=name)


def ladder_spec_from_dict(d: dict[str, Any], source: str | None = None) -> LadderSpec:
    """A validated `LadderSpec`; raises `UserError` naming the file (`source`) and the field."""
    for k in d:
        if k not in _SPEC_FIELDS:
            raise UserError(f"unknown field (known: {', '.join(_SPEC_FIELDS)})", source=source, field=k)
    for k in ("sizes", "budgets", "tasks"):
        if not isinstance(d.get(k), list) or not d[k]:
            raise UserError("must be a non-empty list", source=source, field=k)
    for k in ("model", "train"):
        if not isinstance(d.get(k, {}), dict):
            raise UserError("must be a table", source=source, field=k)
    for k, lo in (("lines", 2), ("seed", 0), ("group", 1)):  # 2 lines: one is held out for validation
        v = d.get(k, lo)
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise UserError(f"must be an integer >= {lo}, got {v!r}", source=source, field=k)
    tr = d.get("traces", 0.0)
    if not isinstance(tr, int | float) or isinstance(tr, bool) or not 0 <= tr <= 1:
        raise UserError(f"must be a share from 0 to 1, got {tr!r}", source=source, field="traces")
    if tr and (bad := [t for t in d["tasks"] if TASKS.get(t, ("", {}))[1].get("op") != "+"]):
        raise UserError(f"worked traces exist for addition tasks only, not {bad[0]!r}", source=source, field="traces")
    if not isinstance(d.get("tokenizer", {}), dict):
        raise UserError("must be a table (kind and its fields)", source=source, field="tokenizer")
    try:
        vocab_needed = tokenizer_vocab(d.get("tokenizer"))
    except ValueError as e:
        raise UserError(str(e), source=source, field=f"tokenizer.{str(e).split(':')[0]}") from None
    for i, t in enumerate(d["tasks"]):
        if not isinstance(t, str) or t not in TASKS:
            raise UserError(f"unknown task {t!r} (known: {', '.join(sorted(TASKS))})", source=source,
                            field=f"tasks[{i}]")
    if "weights" in d:
        w = d["weights"]
        if (not isinstance(w, list) or len(w) != len(d["tasks"])
                or not all(isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in w)
                or sum(w) <= 0):
            raise UserError(f"must be a list of {len(d['tasks'])} non-negative numbers (one per task) with a positive "
                            f"sum, got {w!r}", source=source, field="weights")
    for i, b in enumerate(d["budgets"]):
        if not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= MAX_BUDGET:
            raise UserError(f"token budget must be an integer from 1 to {MAX_BUDGET:.0e} (a tiny GPT on a CPU "
                            f"trains about 1e5-1e6 tokens/s), got {b!r}", source=source, field=f"budgets[{i}]")
    model = d.get("model", {})
    train_over = d.get("train", {})
    _check_fields(GPTConfig, model, "model", source)
    _check_fields(TrainConfig, train_over, "train", source, skip=("tokens", "seed"))
    spec = LadderSpec(**{**d, "traces": float(tr)})
    for i, size in enumerate(d["sizes"]):
        where = f"sizes[{i}]"
        if not isinstance(size, dict):
            raise UserError("must be a table of GPTConfig fields", source=source, field=where)
        _check_fields(GPTConfig, size, where, source)
        vocab = {**model, **size}.get("vocab_size", vocab_needed)
        if vocab < vocab_needed:
            raise UserError(f"must be at least {vocab_needed}, the tokenizer's vocabulary, got {vocab}",
                            source=source, field=f"{where}.vocab_size" if "vocab_size" in size else "model.vocab_size")
        try:
            spec.model_config(size)
        except ValueError as e:  # GPTConfig's messages start with the offending field's name
            first = str(e).split()[0]
            raise UserError(str(e), source=source,
                            field=f"{where}.{first}" if first in size or first in model else where) from None
    try:
        spec.train_config(spec.budgets[0])
    except ValueError as e:
        raise UserError(str(e), source=source, field="train") from None
    for i, s in enumerate(d["sizes"]):
        mc = spec.model_config(s)
        if spec.train_config(1).block_size > mc.block_size:
            raise UserError(f"train.block_size exceeds the model's block_size {mc.block_size}", source=source,
                            field=f"sizes[{i}].block_size")
    return spec


def load_ladder_spec(path: str | Path) -> LadderSpec:
    """Read a ladder spec from TOML; errors name the file and the field."""
    return ladder_spec_from_dict(read_toml(path), source=str(path))


def _differs(meta: dict[str, Any], spec: LadderSpec, mcfg: GPTConfig, tcfg: TrainConfig) -> str | None:
    """What differs between a stored rung's config.json and the rung `spec` asks for (None: it is the same rung).

    Compared: the model config, the training config (but `bf16` when left to auto-detection) and what the corpus
    is drawn from and read with (tasks, lines, seed, the mixture, the tokenizer)."""
    want_train = {k: v for k, v in asdict(tcfg).items() if not (k == "bf16" and v is None)}
    stored_train = {k: v for k, v in (meta.get("train") or {}).items() if k in want_train}
    ladder = meta.get("ladder") or {}
    # weights only when set, so rungs trained before weighted mixtures existed still match a spec without them
    drawn = ("tasks", "lines", "seed", *(("weights",) if spec.weights is not None else ()))
    corpus = {**{k: ladder.get(k) for k in drawn}, **{k: ladder.get(k, v) for k, v in _CORPUS_DEFAULTS.items()}}
    pairs = [("model", meta.get("model"), asdict(mcfg)), ("train", stored_train, want_train),
             ("corpus", corpus, {k: getattr(spec, k) for k in corpus})]
    for what, old, new in pairs:
        if old != new:
            if not isinstance(old, dict):
                return f"{what}: none recorded"
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            return ", ".join(f"{what}.{k} {old.get(k)!r} → {new.get(k)!r}" for k in keys[:3])
    return None


def train_ladder(spec: LadderSpec, out: Path, progress: LadderProgress | None = None) -> list[dict[str, Any]]:
    """Train every rung of `spec` into `out/<rung>/`, skipping rungs whose checkpoint is already there.

    A checkpoint that is there but was trained under another config (model, training or corpus) is never
    reused in silence: it is a UserError naming the folder and what differs, raised before anything trains.

    Returns one dict per rung: name, path, skipped (bool), and the checkpoint's facts (params, tokens, flops,
    val_loss in nats/token, wall_s, ...). Also writes them to `out/ladder.json`.
    """
    stored: dict[str, dict[str, Any]] = {}
    for name, mcfg, tcfg in spec.rungs():
        path = out / name
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            try:
                meta = json.loads((path / "config.json").read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UserError(f"not valid JSON ({e})", source=str(path / "config.json")) from None
            why = _differs(meta if isinstance(meta, dict) else {}, spec, mcfg, tcfg)
            if why is not None:
                raise UserError(f"a rung of this name was trained under another config ({why}); train into a new "
                                "--out folder or delete this rung", source=str(path / "config.json"))
            stored[name] = meta
    out.mkdir(parents=True, exist_ok=True)
    corpus: list[str] | None = None
    tokenizer: Tokenizer | None = None
    results: list[dict[str, Any]] = []
    for name, mcfg, tcfg in spec.rungs():
        path = out / name
        if name in stored:
            results.append({"name": name, "path": str(path), "skipped": True, **stored[name]})
            continue
        if corpus is None:  # drawn once, and only when some rung needs training
            corpus = train_lines(spec.tasks, spec.lines, spec.seed, spec.traces, spec.group, spec.weights)
            tokenizer = spec.make_tokenizer(corpus)  # one for every rung (a BPE is learned once, on this corpus)
        cb = (lambda s, t, i, _n=name: progress(_n, s, t, i)) if progress is not None else None
        meta = train(mcfg, tcfg, corpus, path, progress=cb,
                     extra_meta={"rung": name, "ladder": {**asdict(spec)}}, tokenizer=tokenizer)
        results.append({"name": name, "path": str(path), "skipped": False, "model": asdict(mcfg), **meta})
    (out / "ladder.json").write_text(json.dumps(results, indent=2))
    return results

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
from emergentlab.models.tiny import GPTConfig
from emergentlab.tasks import TASKS, train_lines
from emergentlab.train.loop import TrainConfig, train

# (rung name, step, total steps, info) after every optimizer step of the rung being trained.
LadderProgress = Callable[[str, int, int, dict[str, float]], None]

_SPEC_FIELDS = ("sizes", "budgets", "tasks", "lines", "seed", "model", "train")


@dataclass
class LadderSpec:
    """Which rungs to train and on what.

    `sizes`: GPTConfig fields per model size (on top of `model`, the fields shared by all sizes);
    `budgets`: training tokens per rung; `tasks`: synthetic task names whose train-split lines make the corpus;
    `lines`: how many "input=target" lines to draw; `train`: TrainConfig fields (not `tokens`, not `seed`).
    """

    sizes: list[dict[str, Any]]
    budgets: list[int]
    tasks: list[str]
    lines: int = 100_000
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def model_config(self, size: dict[str, Any]) -> GPTConfig:
        return GPTConfig(**{**self.model, **size})

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
    for k in ("lines", "seed"):
        v = d.get(k, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if k == "lines" else 0):
            raise UserError(f"must be a {'positive' if k == 'lines' else 'non-negative'} integer, got {v!r}",
                            source=source, field=k)
    for i, t in enumerate(d["tasks"]):
        if t not in TASKS:
            raise UserError(f"unknown task {t!r} (known: {', '.join(sorted(TASKS))})", source=source,
                            field=f"tasks[{i}]")
    for i, b in enumerate(d["budgets"]):
        if not isinstance(b, int) or isinstance(b, bool) or b < 1:
            raise UserError(f"token budget must be a positive integer, got {b!r}", source=source,
                            field=f"budgets[{i}]")
    model = d.get("model", {})
    train_over = d.get("train", {})
    _check_fields(GPTConfig, model, "model", source)
    _check_fields(TrainConfig, train_over, "train", source, skip=("tokens", "seed"))
    spec = LadderSpec(**d)
    for i, size in enumerate(d["sizes"]):
        where = f"sizes[{i}]"
        if not isinstance(size, dict):
            raise UserError("must be a table of GPTConfig fields", source=source, field=where)
        _check_fields(GPTConfig, size, where, source)
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


def train_ladder(spec: LadderSpec, out: Path, progress: LadderProgress | None = None) -> list[dict[str, Any]]:
    """Train every rung of `spec` into `out/<rung>/`, skipping rungs whose checkpoint is already there.

    Returns one dict per rung: name, path, skipped (bool), and the checkpoint's facts (params, tokens, flops,
    val_loss in nats/token, wall_s, ...). Also writes them to `out/ladder.json`.
    """
    out.mkdir(parents=True, exist_ok=True)
    corpus: list[str] | None = None
    results: list[dict[str, Any]] = []
    for name, mcfg, tcfg in spec.rungs():
        path = out / name
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            meta = json.loads((path / "config.json").read_text())
            results.append({"name": name, "path": str(path), "skipped": True, **meta})
            continue
        if corpus is None:  # drawn once, and only when some rung needs training
            corpus = train_lines(spec.tasks, spec.lines, spec.seed)
        cb = (lambda s, t, i, _n=name: progress(_n, s, t, i)) if progress is not None else None
        meta = train(mcfg, tcfg, corpus, path, progress=cb,
                     extra_meta={"rung": name, "ladder": {**asdict(spec)}})
        results.append({"name": name, "path": str(path), "skipped": False, "model": asdict(mcfg), **meta})
    (out / "ladder.json").write_text(json.dumps(results, indent=2))
    return results

"""Every import in src/emergentlab points down the layer table (DESIGN.md, "Layers, bottom to top").

Each module belongs to a unit (a top-level module such as `store`, or a package such as `tasks/`); each unit sits
on a layer and may import only the units its row of the table allows. Imports inside one unit are free. Every
import counts: at module level, inside functions (lazy), under `TYPE_CHECKING`, and `importlib.import_module` with
a literal name.

`importers.py` (lm-eval logs → Records → Store) sits on the runner's layer: like `runner`, it is a way for records
to reach the store, so it may use everything below it, and it and `runner` do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = "emergentlab"
ROOT = Path(__file__).resolve().parents[1] / "src" / PKG

# (layer, units), bottom to top: the table of DESIGN.md.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "records", "errors", "sections"),
    ("metrics",),
    ("tasks", "models"),
    ("store", "study"),
    ("train",),
    ("runner", "importers"),
    ("analysis",),
    ("experiments",),
    ("report",),
    ("pipeline",),
    ("cli",),
)
LAYER = {u: i for i, units in enumerate(LAYERS) for u in units}
BASE = set(LAYERS[0])  # the plain data every layer shares: any unit above layer 0 may import it

# Units whose row narrows "the layers below" (DESIGN.md's "may import" column); the rest may import any unit of
# a lower layer.
ALLOWED: dict[str, set[str]] = {
    **{u: set() for u in LAYERS[0]},
    "metrics": BASE,
    "tasks": BASE,
    "models": BASE,
    "train": BASE | {"models", "tasks"},
    "analysis": BASE | {"metrics"},
    "report": BASE,
    # the CLI prints through report's terminal renderer (inert text, folded tables): rendering, not logic
    "cli": BASE | {"pipeline", "report"},
}


def unit_of(module: str) -> str:
    """`emergentlab.tasks.base` → `tasks`; `emergentlab` → `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def allowed(importer: str, imported: str) -> bool:
    if importer == imported:
        return True
    if importer in ALLOWED:
        return imported in ALLOWED[importer]
    return LAYER[imported] < LAYER[importer]


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [PKG, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, root: Path) -> bool:
    rel = Path(*name.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, imported emergentlab module) for every import in `source`, lazy ones included."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:  # `from emergentlab import metrics` imports the module emergentlab.metrics
                sub = f"{base}.{a.name}"
                out.append((node.lineno, sub if sub.startswith(f"{PKG}.") and _is_module(sub, root) else base))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "import_module"))):
            out.append((node.lineno, node.args[0].value))
    return list(dict.fromkeys((line, m) for line, m in out if m == PKG or m.startswith(f"{PKG}.")))


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        unit = unit_of(module)
        if unit not in LAYER:
            out.append(f"{path.relative_to(root)}: unit {unit!r} has no layer in the table")
            continue
        for line, imported in imports_of(path.read_text(encoding="utf-8"), module, path.name == "__init__.py", root):
            target = unit_of(imported)
            if target not in LAYER:
                out.append(f"{path.relative_to(root)}:{line}: imports {imported}, which has no layer")
            elif not allowed(unit, target):
                how = "a higher layer" if LAYER[target] > LAYER[unit] else (
                    "a sibling on its own layer" if LAYER[target] == LAYER[unit] else "a layer its row does not list")
                out.append(f"{path.relative_to(root)}:{line}: {unit} (layer {LAYER[unit]}) imports {imported}: "
                           f"{how} (layer {LAYER[target]})")
    return out


def test_every_import_points_down_the_layer_table() -> None:
    found = violations()
    assert not found, f"{len(found)} import(s) against DESIGN.md's layer table:\n" + "\n".join(found)


def test_every_unit_of_the_table_has_a_row_and_every_row_names_layers_below() -> None:
    assert len(LAYER) == sum(len(u) for u in LAYERS)  # no unit on two layers
    for unit, ok in ALLOWED.items():
        assert all(LAYER[o] < LAYER[unit] for o in ok), unit


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A small fake package: the checker must find each kind of import in it."""
    root = tmp_path / PKG
    for rel in ("__init__.py", "records.py", "store.py", "runner.py", "tasks/__init__.py", "tasks/base.py",
                "models/__init__.py", "analysis/__init__.py", "analysis/curves.py", "report/__init__.py",
                "report/html.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    return root


def test_the_checker_catches_lazy_relative_sibling_and_narrowed_imports(tree: Path) -> None:
    (tree / "records.py").write_text("def f():\n    from emergentlab import store\n")  # lazy, upward
    (tree / "tasks/base.py").write_text("from .. import models\nfrom . import base\n")  # sibling; own package
    (tree / "report/html.py").write_text("import importlib\nimportlib.import_module('emergentlab.analysis.curves')\n")
    (tree / "runner.py").write_text("from emergentlab.store import Store\nfrom emergentlab.tasks import base\n")
    (tree / "analysis/curves.py").write_text("if TYPE_CHECKING:\n    from emergentlab.runner import x\n")
    found = violations(tree)
    assert len(found) == 4, found
    assert any(f.startswith("records.py:2: records (layer 0) imports emergentlab.store: a higher") for f in found)
    assert any(f.startswith("tasks/base.py:1: tasks (layer 2) imports emergentlab.models: a sibling") for f in found)
    assert any(f.startswith("report/html.py:2: report (layer 8) imports emergentlab.analysis.curves: a layer its")
               for f in found)
    assert any(f.startswith("analysis/curves.py:2: analysis (layer 6) imports emergentlab.runner") for f in found)
    (tree / "newthing.py").write_text("")
    assert any("'newthing' has no layer" in f for f in violations(tree))

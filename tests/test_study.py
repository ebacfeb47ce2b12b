from __future__ import annotations

from pathlib import Path

import pytest

from emergentlab.errors import UserError
from emergentlab.study import build_tasks, load_study


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(body)
    return p


def ladder(ckpt: Path) -> str:
    return f'[[ladder]]\nname = "a"\nmodel = "tiny:{ckpt}"\nparams = 1000\n'


def test_valid_study_resolves_paths_and_defaults(tmp_path: Path, tiny_ckpt: Path) -> None:
    p = write(tmp_path, f'seed = 3\nshots = [0, 2]\nout = "runs/x"\n{ladder(tiny_ckpt)}'
                        '[[tasks]]\ngenerator = "add2"\nn = 10\n'
                        '[[tasks]]\ngenerator = "add1"\nn = 10\nshots = [1]\nchoices = 3\n')
    s = load_study(p)
    assert s.name == "study" and s.seed == 3 and s.out == tmp_path / "runs/x"
    assert s.ladder[0].facts == {"params": 1000.0}
    assert [t.shots for t in s.tasks] == [(0, 2), (1,)]
    tasks = build_tasks(s.tasks[1], s.seed)
    assert tasks[0].kind == "multiple_choice" and tasks[0].name == "add1"


@pytest.mark.parametrize(("body", "field"), [
    ("seed = 0\nladder = [", "malformed TOML"),
    ("[[tasks]]\ngenerator='add2'\n", "ladder"),
    ("LADDER\n[[tasks]]\ngenerator='nope'\n", "tasks[0].generator"),
    ("LADDER\n[[tasks]]\ngenerator='add2'\nbigbench='x'\n", "tasks[0]"),
    ("metrics = ['exact_match', 'vibes']\nLADDER\n[[tasks]]\ngenerator='add2'\n", "metrics"),
    ("shots = [-1]\nLADDER\n[[tasks]]\ngenerator='add2'\n", "shots[0]"),
    ("LADDER\n[[tasks]]\ngenerator='add2'\nn = 0\n", "tasks[0].n"),
    ("colour = 'red'\nLADDER\n[[tasks]]\ngenerator='add2'\n", "colour"),
    ("[[ladder]]\nmodel = 'tiny:/no/such/checkpoint'\n[[tasks]]\ngenerator='add2'\n", "ladder[0].model"),
    ("[[ladder]]\nmodel = 'nocolon'\n[[tasks]]\ngenerator='add2'\n", "ladder[0].model"),
    ("LADDER\n[[tasks]]\njsonl='missing.jsonl'\n", "tasks[0].jsonl"),
    ("[[ladder]]\nmodel = 'hf:./no/such/dir'\n[[tasks]]\ngenerator='add2'\n", "ladder[0].model"),
    ("[[ladder]]\nmodel = 'gguf:missing.gguf'\n[[tasks]]\ngenerator='add2'\n", "ladder[0].model"),
    ("LADDER\ntrust_remote_code = 'yes'\n[[tasks]]\ngenerator='add2'\n", "ladder[0].trust_remote_code"),
])
def test_bad_study_names_file_and_field(tmp_path: Path, tiny_ckpt: Path, body: str, field: str) -> None:
    p = write(tmp_path, body.replace("LADDER", ladder(tiny_ckpt)))
    with pytest.raises(UserError) as e:
        load_study(p)
    assert str(p) in str(e.value) and field in str(e.value)


def test_trust_remote_code_is_off_unless_asked_and_hub_ids_pass_through(tmp_path: Path, tiny_ckpt: Path) -> None:
    p = write(tmp_path, f'{ladder(tiny_ckpt)}[[ladder]]\nname = "p"\nmodel = "hf:EleutherAI/pythia-70m@step143000"\n'
                        'trust_remote_code = true\ntokens_per_step = 2097152\n[[tasks]]\ngenerator = "add2"\n')
    s = load_study(p)
    assert [r.trust_remote_code for r in s.ladder] == [False, True]
    assert s.ladder[1].facts == {"tokens_per_step": 2097152.0}
    assert s.ladder[1].spec == "hf:EleutherAI/pythia-70m@step143000"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_study(tmp_path / "nope.toml")

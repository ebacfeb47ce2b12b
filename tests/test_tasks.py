from __future__ import annotations

import pytest

from emergentlab.tasks import TASKS, build_prompt, make_task, split_of, train_lines
from emergentlab.tasks.inverse import SPLIT_AS
from emergentlab.tasks.synthetic import _draw, near_misses


@pytest.mark.parametrize("name", sorted(TASKS))
def test_generators_are_deterministic_and_splits_disjoint(name: str) -> None:
    a, b = make_task(name, n=50, seed=3), make_task(name, n=50, seed=3)
    assert a == b
    test_keys = {it.key for it in _draw(name, "test", 200, seed=1, unique=True)}
    train_keys = {it.key for it in _draw(name, "train", 800, seed=2, unique=True)}
    assert test_keys and train_keys
    assert not test_keys & train_keys
    assert all(split_of(SPLIT_AS.get(name, name), k) == "test" for k in test_keys)  # split as its prior task


def test_arithmetic_targets_are_right() -> None:
    for ex in make_task("add3", n=30).examples:
        a, b = ex.input.split("+")
        assert int(ex.target) == int(a) + int(b)
        assert 100 <= int(a) <= 999
    for ex in make_task("mul2", n=30).examples:
        a, b = ex.input.split("*")
        assert int(ex.target) == int(a) * int(b)


def test_modular_division_inverts_multiplication() -> None:
    for ex in make_task("mod97_div", n=30).examples:
        a, b = ex.metadata["a"], ex.metadata["b"]
        assert (int(ex.target) * b) % 97 == a


def test_compose_chains_every_step() -> None:
    ex = make_task("compose4", n=5).examples[0]
    x = int(ex.input[0])
    ops = ex.input[1:]
    for op, d in zip(ops[::2], ops[1::2], strict=True):
        x = {"+": x + int(d), "-": x - int(d), "*": x * int(d)}[op] % 10
    assert str(x) == ex.target
    assert len(ops) == 8


def test_different_seeds_give_different_items() -> None:
    assert make_task("add3", n=20, seed=0).examples != make_task("add3", n=20, seed=1).examples


def test_multiple_choice_holds_the_target_once() -> None:
    task = make_task("add2", n=40, choices=4)
    assert task.kind == "multiple_choice"
    for ex in task.examples:
        assert ex.choices is not None and ex.correct is not None
        assert ex.choices[ex.correct] == ex.target
        assert len(set(ex.choices)) == 4
        for c in ex.choices:  # distractors are one-character slips, so only a fully right model can pick
            slips = sum(a != b for a, b in zip(c, ex.target, strict=False)) if len(c) == len(ex.target) else -1
            assert c == ex.target or slips == 1


def test_near_misses_change_one_character_within_its_class() -> None:
    assert near_misses("7") == ["0", "1", "2", "3", "4", "5", "6", "8", "9"]
    nm = near_misses("105")
    assert len(nm) == 8 + 9 + 9 and "005" not in nm and "115" in nm and "10x" not in nm
    assert all(c.isalpha() for c in "".join(near_misses("ab")))


def test_few_shot_prompt_never_contains_the_test_item() -> None:
    task = make_task("add1", n=20, shots_pool=64)
    for ex in task.examples:
        prompt = build_prompt(task, ex, shots=5, seed=0)
        demos = prompt.split("\n")
        assert len(demos) == 6 and demos[-1] == f"{ex.input}="
        assert all(not d.startswith(f"{ex.input}=") for d in demos[:-1])
    assert build_prompt(task, task.examples[0], 3, seed=0) == build_prompt(task, task.examples[0], 3, seed=0)
    assert build_prompt(task, task.examples[0], 3, seed=0) != build_prompt(task, task.examples[0], 3, seed=9)


def test_too_many_shots_is_an_error() -> None:
    task = make_task("add2", n=5, shots_pool=4)
    with pytest.raises(ValueError, match="pool holds 4"):
        build_prompt(task, task.examples[0], shots=10)


def test_train_lines_come_from_the_train_split_only() -> None:
    test_inputs = {ex.input for ex in make_task("add2", n=2000).examples}
    lines = train_lines(["add2"], 3000, seed=0)
    assert len(lines) == 3000
    assert not {ln.split("=")[0] for ln in lines} & test_inputs

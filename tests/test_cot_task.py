"""Addition traces are right, and the CoT task keeps the items and reads the stated answer."""

from __future__ import annotations

import random

import pytest

from emergentlab.tasks import make_task, train_lines
from emergentlab.tasks.answers import extract
from emergentlab.tasks.cot import addition_trace, cot_task


def test_trace_by_hand() -> None:
    assert addition_trace(457, 68) == "7+8+0=15;5+6+1=12;4+0+1=5 answer 525"
    assert addition_trace(999, 1) == "9+1+0=10;9+0+1=10;9+0+1=10 answer 1000"


def test_traces_are_consistent_arithmetic() -> None:
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.randint(0, 99999), rng.randint(0, 99999)
        steps, _, answer = addition_trace(a, b).partition(" answer ")
        assert int(answer) == a + b
        digits, carry = [], 0
        for st in steps.split(";"):
            lhs, s = st.split("=")
            x, y, c = map(int, lhs.split("+"))
            assert c == carry and x + y + c == int(s)
            digits.append(int(s) % 10)
            carry = int(s) // 10
        assert int((str(carry) if carry else "") + "".join(map(str, digits[::-1]))) == a + b


def test_cot_task_keeps_items_and_shows_traces() -> None:
    t = make_task("add3", n=5, seed=0)
    c = cot_task(t)
    assert c.examples == t.examples
    p = c.prompt(c.examples[0], 2, seed=0)
    assert p.count(" answer ") == 2 and p.endswith(c.format(c.examples[0]))
    ex = c.examples[0]
    assert extract(addition_trace(ex.metadata["a"], ex.metadata["b"]), c.output_regex or "") == ex.target
    with pytest.raises(ValueError, match="addition"):
        cot_task(make_task("mul2", n=3))


def test_mixture_has_the_configured_trace_share() -> None:
    docs = train_lines(["add3"], 1000, seed=1, traces=0.3, group=2)
    assert len(docs) == 500 and docs == train_lines(["add3"], 1000, seed=1, traces=0.3, group=2)
    styles = []
    for doc in docs:
        lines = doc.split("\n")
        assert len(lines) == 2
        kinds = {" answer " in ln for ln in lines}
        assert len(kinds) == 1  # a document keeps one style
        styles.append(kinds.pop())
        for ln in lines:
            q, _, rest = ln.partition("=")
            a, b = map(int, q.split("+"))
            assert rest == (addition_trace(a, b) if styles[-1] else str(a + b))
    assert sum(styles) == 150  # exactly round(0.3 · 500) documents are traces
    plain = train_lines(["add3"], 1000, seed=1)
    assert [ln.partition("=")[0] for d in docs for ln in d.split("\n")] == [ln.partition("=")[0] for ln in plain]
    assert train_lines(["add3"], 1000, seed=1, traces=0.0, group=1) == plain
    other = train_lines(["add3"], 1000, seed=2, traces=0.3, group=2)
    assert other != docs and sum(" answer " in d for d in other) == 150
    assert all(" answer " in d for d in train_lines(["add2"], 50, seed=0, traces=1.0))  # a scratchpad corpus


def test_mixture_refuses_traces_for_other_operations() -> None:
    with pytest.raises(ValueError, match="addition"):
        train_lines(["add2", "mul2"], 100, seed=0, traces=0.5)
    with pytest.raises(ValueError, match="traces"):
        train_lines(["add2"], 100, seed=0, traces=1.2)

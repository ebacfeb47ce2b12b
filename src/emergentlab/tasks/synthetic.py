"""Seeded generators of synthetic tasks with disjoint train / test splits.

Every item has a key (e.g. the operand pair). A keyed hash, independent of any seed, puts each key in the test
split or the train split for good, so a ladder trained on `train_examples(...)` never sees an item that
`make_task(...)` later tests on, whatever seeds and sizes either call uses.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emergentlab.tasks.base import Example, Task
from emergentlab.tasks.cot import addition_trace

TEST_FRACTION = 0.2

_WORDS = (  # noqa: SIM905 -- reads better as prose than as 400 quoted items
    "about above across action actor admit adult after again agent agree ahead album alarm alive allow alone "
    "along among anger angle angry apple apply arena argue arise armed array arrow aside asset audio avoid "
    "award aware badly baker basic basis beach begin being below bench birth black blade blame blank blind "
    "block blood board boost booth bound brain brand bread break breed brief bring broad brown build built "
    "buyer cable candy carry catch cause chain chair chart chase cheap check chest chief child china chose "
    "civil claim class clean clear click clock close coach coast could count court cover craft crash cream "
    "crime cross crowd crown curve cycle daily dance dated dealt death delay depth doubt dozen draft drama "
    "drawn dream dress drink drive eager early earth eight elite empty enemy enjoy enter entry equal error "
    "event every exact exist extra faith false fault fiber field fifth fifty fight final first flash fleet "
    "floor fluid focus force forth forty forum found frame fresh front fruit fully funny giant given glass "
    "globe going grace grade grand grant grass great green gross group grown guard guess guest guide happy "
    "heart heavy hence horse hotel house human ideal image index inner input issue joint judge known label "
    "large laser later laugh layer learn lease least leave legal level light limit local logic loose lucky "
    "lunch major maker march match maybe mayor meant media metal might minor minus mixed model money month "
    "moral motor mount mouse mouth movie music needs never newly night noise north noted novel nurse ocean "
    "offer often order other owner paint panel paper party peace phase phone photo piece pilot pitch place "
    "plain plane plant plate point pound power press price pride prime print prior prize proof proud prove "
    "queen quick quiet quite radio raise range rapid ratio reach ready refer relax reply right river rough "
    "round route royal rural scale scene scope score sense serve seven shall shape share sharp sheet shelf "
    "shell shift shirt shock shoot short sight since skill sleep slide small smart smile smoke solid solve "
    "sound south space spare speak speed spend spent split sport staff stage stake stand start state steam "
    "steel stick still stock stone stood store storm story strip stuck study stuff style sugar suite super "
    "sweet table taken taste teach thank theme there thick thing think third those three threw throw tight "
    "title today topic total touch tough tower track trade train treat trend trial tried truck truly trust "
    "truth twice under union unity until upper upset urban usage usual valid value video virus visit vital "
    "voice waste watch water wheel where which while white whole whose woman world worry worth would wound "
    "write wrong wrote yield young youth"
).split()

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def split_of(family: str, key: str) -> str:
    """'test' or 'train' for an item key, fixed forever by a hash (not by a seed)."""
    h = int.from_bytes(hashlib.blake2b(f"{family}:{key}".encode(), digest_size=8).digest(), "big")
    return "test" if (h % 10_000) < TEST_FRACTION * 10_000 else "train"


@dataclass(frozen=True)
class Item:
    key: str
    input: str
    target: str
    metadata: dict[str, Any]


def _arith(rng: random.Random, op: str = "+", digits: int = 2) -> Item:
    if not 1 <= digits <= 5:
        raise ValueError(f"digits must be in 1..5, got {digits}")
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    a, b = rng.randint(lo, 10**digits - 1), rng.randint(lo, 10**digits - 1)
    value = {"+": a + b, "*": a * b, "-": a - b}[op]
    return Item(f"{a}{op}{b}", f"{a}{op}{b}", str(value), {"digits": digits, "op": op, "a": a, "b": b})


def _modular(rng: random.Random, op: str = "+", p: int = 97) -> Item:
    a, b = rng.randrange(p), rng.randrange(p)
    if op == "/":
        b = rng.randrange(1, p)
        value = a * pow(b, -1, p) % p
    else:
        value = {"+": a + b, "-": a - b, "*": a * b}[op] % p
    return Item(f"{a}{op}{b}%{p}", f"{a}{op}{b}%{p}", str(value), {"op": op, "p": p, "a": a, "b": b})


def _unscramble(rng: random.Random) -> Item:
    word = rng.choice(_WORDS)
    middle = list(word[1:-1])
    for _ in range(10):  # a shuffle that happens to give the word back is no puzzle
        rng.shuffle(middle)
        scrambled = word[0] + "".join(middle) + word[-1]
        if scrambled != word:
            break
    return Item(f"{word}:{scrambled}", f"unscramble {scrambled}", word, {"length": len(word)})


def _sequence(rng: random.Random, mode: str = "copy", length: int = 5) -> Item:
    s = "".join(rng.choice(_LETTERS) for _ in range(length))
    target = s if mode == "copy" else s[::-1]
    return Item(f"{mode}:{s}", f"{mode} {s}", target, {"length": length, "mode": mode})


def _compose(rng: random.Random, steps: int = 3) -> Item:
    """x0 followed by `steps` operations mod 10; the answer is right only if every step is."""
    x = rng.randrange(10)
    text = str(x)
    for _ in range(steps):
        op, d = rng.choice("+-*"), rng.randrange(10)
        x = {"+": x + d, "-": x - d, "*": x * d}[op] % 10
        text += f"{op}{d}"
    return Item(text, text, str(x), {"steps": steps})


_FAMILIES: dict[str, tuple[Callable[..., Item], str]] = {
    "arithmetic": (_arith, "numeric"),
    "modular": (_modular, "numeric"),
    "unscramble": (_unscramble, "generative"),
    "sequence": (_sequence, "generative"),
    "compose": (_compose, "numeric"),
}

# Named tasks a study file can ask for, each a family with default parameters.
TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    **{f"add{k}": ("arithmetic", {"op": "+", "digits": k}) for k in range(1, 6)},
    **{f"mul{k}": ("arithmetic", {"op": "*", "digits": k}) for k in range(1, 6)},
    "mod97_add": ("modular", {"op": "+", "p": 97}),
    "mod97_sub": ("modular", {"op": "-", "p": 97}),
    "mod97_mul": ("modular", {"op": "*", "p": 97}),
    "mod97_div": ("modular", {"op": "/", "p": 97}),
    "unscramble": ("unscramble", {}),
    "copy": ("sequence", {"mode": "copy", "length": 5}),
    "reverse": ("sequence", {"mode": "reverse", "length": 5}),
    **{f"compose{k}": ("compose", {"steps": k}) for k in range(1, 6)},
}


def capacity(name: str, **overrides: Any) -> int:
    """How many distinct item keys the named task can produce, both splits together (an upper bound)."""
    family, params = TASKS[name]
    q = {**params, **overrides}
    if (c := inverse.capacity(family, q)) is not None:
        return c
    if family == "arithmetic":
        d = int(q.get("digits", 2))
        return (10 if d == 1 else 9 * 10 ** (d - 1)) ** 2
    if family == "modular":
        p = int(q.get("p", 97))
        return p * (p - 1) if q.get("op") == "/" else p * p
    if family == "unscramble":
        return 6 * len(_WORDS)  # a 5-letter word has at most 3! orderings of its middle
    if family == "sequence":
        return 26 ** int(q.get("length", 5))
    return 10 * 30 ** int(q.get("steps", 3))


def _task_family(name: str) -> tuple[Callable[..., Item], str, dict[str, Any]]:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    family, params = TASKS[name]
    fn, kind = _FAMILIES[family]
    return fn, kind, params


EXHAUSTIBLE = 100_000  # distinct items: a generator this small may be drawn until its split is exhausted


def _draw(name: str, split: str, n: int, seed: int, unique: bool, **overrides: Any) -> list[Item]:
    fn, _, params = _task_family(name)
    params = {**params, **overrides}
    rng = random.Random(f"{name}:{split}:{seed}")
    out: list[Item] = []
    seen: set[str] = set()
    attempts = misses = 0
    # as many draws in a row as there are keys without a new item: the split is (all but) exhausted, stop
    give_up = capacity(name, **overrides) + 1000 if unique else 200 * n + 1000
    while len(out) < n and attempts < 200 * n + 1000 and misses < give_up:
        attempts += 1
        item = fn(rng, **params)
        if split_of(inverse.SPLIT_AS.get(name, name), item.key) != split or (unique and item.key in seen):
            misses += 1
            continue
        misses = 0
        seen.add(item.key)
        out.append(item)
    return out


def make_task(
    name: str, n: int = 200, seed: int = 0, shots_pool: int = 64, choices: int = 0, **overrides: Any
) -> Task:
    """A test set of up to `n` distinct items from the test split, and a pool of demonstrations from train.

    `choices > 1` turns the task into multiple choice: the target plus `choices - 1` distinct near misses (the
    target with one character changed, as a slip in one digit or letter would), shuffled with the seed; an item
    with a ``prior_answer`` (`tasks.inverse`) has that answer as its first near miss. Near misses
    rather than other items' answers, because random answers differ in the leading digits and a model that has
    learnt only those would score full marks.
    """
    _, kind, _ = _task_family(name)
    most = capacity(name, **overrides)
    # Distinct items are drawn at random, so the last ones of a split cost a coupon collector's ~capacity·ln(...)
    # draws: cheap for a small generator (drawn until exhausted), minutes for add3 near its end (n = 170,000).
    # A large one gives at most half its test split (~0.7·capacity draws: seconds).
    share = 1.25 if most <= EXHAUSTIBLE else 0.5
    if n > max(share * TEST_FRACTION * most, 1000):
        raise ValueError(f"task {name!r} has at most {most:,} distinct items, about {most * TEST_FRACTION:,.0f} "
                         f"of them in the test split, of which at most {min(share, 1.0):.0%} are drawn: "
                         f"n = {n:,} is more")
    test = _draw(name, "test", n, seed, unique=True, **overrides)
    if not test:
        raise ValueError(f"task {name!r}: the test split is empty")
    pool = _draw(name, "train", shots_pool, seed, unique=True, **overrides)
    rng = random.Random(f"{name}:choices:{seed}")

    def to_example(it: Item, i: int, split: str) -> Example:
        meta = {**it.metadata, "split": split}
        if choices <= 1:
            return Example(f"{split}-{i:05d}", it.input, it.target, metadata=meta)
        # an inverse-scaling item's prior answer is always a choice: its 2-way form is the memo-trap
        # classification of McKenzie et al. (the right answer against the one the prior pulls towards)
        prior = it.metadata.get("prior_answer")
        first = [prior] if isinstance(prior, str) and prior != it.target else []
        misses = [m for m in near_misses(it.target) if m not in first]
        opts = [it.target, *first, *rng.sample(misses, min(choices - 1 - len(first), len(misses)))]
        rng.shuffle(opts)
        return Example(
            f"{split}-{i:05d}", it.input, it.target, tuple(opts), opts.index(it.target), metadata=meta
        )

    return Task(
        name=name,
        examples=tuple(to_example(it, i, "test") for i, it in enumerate(test)),
        shots_pool=tuple(to_example(it, i, "train") for i, it in enumerate(pool)),
        kind="multiple_choice" if choices > 1 else kind,
        output_prefix="=",
        max_new_tokens=max(len(it.target) for it in test) + 2,
        metadata={"generator": name, "seed": seed, **overrides},
    )


def near_misses(target: str) -> list[str]:
    """Every string that differs from `target` in one character, drawn from the same class (digit → digit,
    letter → letter); a leading digit never becomes 0. Sorted, so a seeded sample of it is reproducible."""
    out = set()
    for i, c in enumerate(target):
        pool = "0123456789" if c.isdigit() else _LETTERS if c.isalpha() else ""
        for r in pool:
            if r != c and not (r == "0" and i == 0 and len(target) > 1 and c.isdigit()):
                out.add(target[:i] + r + target[i + 1 :])
    return sorted(out)


def train_lines(names: list[str], n: int, seed: int, traces: float = 0.0, group: int = 1,
                weights: list[float] | None = None) -> list[str]:
    """`n` training lines ("input=target"), drawn from the train split of the named tasks: equal shares, or shares
    proportional to `weights` (one per name; a mixture in which a target task is rare, so that it emerges late).

    A mixture (`traces` > 0 or `group` > 1) returns documents instead: the same `n` items in the same order, cut
    into runs of `group` consecutive items joined by "\\n", and exactly round(`traces` · documents) documents
    (chosen with the seed) written as worked traces, "457+68=" + `cot.addition_trace(457, 68)`, the format of the
    chain-of-thought demonstrations. A document keeps one style, so a model trained on it learns to answer the way
    the line before did: the reason trace demonstrations in a prompt can make it write a trace (chain-of-thought
    prompting), which an item-by-item mixture would not teach (the style of the next line would be a coin flip
    whatever came before). `traces` = 1 is a scratchpad corpus: every item shows its work. Traces exist for
    addition only: a trace share with another task is a ValueError.
    """
    if not 0.0 <= traces <= 1.0 or group < 1:
        raise ValueError(f"need 0 ≤ traces ≤ 1 and group ≥ 1, got traces = {traces}, group = {group}")
    if weights is None:
        per = [-(-n // len(names))] * len(names)
    else:
        if len(weights) != len(names) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"need one non-negative weight per task and a positive sum, got {weights}")
        per = [math.ceil(n * w / sum(weights)) for w in weights]
    items = [it for name, k in zip(names, per, strict=True) for it in _draw(name, "train", k, seed, unique=False)]
    lines = [f"{it.input}={it.target}" for it in items]
    if traces == 0.0 and group == 1:  # the plain corpus, drawn exactly as before mixtures existed
        random.Random(seed).shuffle(lines)
        return lines[:n]
    if traces > 0 and (bad := {it.metadata.get("op") for it in items} - {"+"}):
        raise ValueError(f"worked traces exist for addition tasks only, not {sorted(map(str, bad))} of {names}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)  # the same permutation the plain corpus applies to its lines
    docs = [order[i:i + group] for i in range(0, min(n, len(order)), group)]
    traced = set(random.Random(f"{seed}:traces").sample(range(len(docs)), round(traces * len(docs))))
    return ["\n".join(f"{items[j].input}={addition_trace(items[j].metadata['a'], items[j].metadata['b'])}"
                      if d in traced else lines[j] for j in doc) for d, doc in enumerate(docs)]


from emergentlab.tasks import inverse  # noqa: E402 -- imports this module, so it registers after it is defined

_FAMILIES.update(inverse.FAMILIES)
TASKS.update(inverse.TASKS)

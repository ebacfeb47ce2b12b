"""Symbol-mapping episodes and Chan et al. (2022)'s bursty training sequences, over integer classes and labels.

A model can know a class's label in two ways: in its weights (the class always carries the same label, so many
sightings teach it), or from its context (an earlier (item, label) pair of the same class in the same sequence).
Chan et al. 2022 ("Data distributional properties drive emergent in-context learning in transformers") found the
second appears when training sequences are *bursty* (a class recurs within a sequence) and the classes follow a
Zipfian distribution with many rare classes; this module makes both kinds of data and the tests of each.

Layout (`SymbolSpace`): `n_classes` training classes and `n_holdout` held-out classes, one item each (Chan et
al.'s ``exemplars='single'`` setting), and `polysemy` labels per training class (their "ordered" labelling:
training class c carries label c; with polysemy X one of labels cX … cX + X − 1, drawn per sequence and kept for
every occurrence of the class in it — their ``ordered_polysemyX``, a "dynamic meaning"). An item is a string of
`item_len` tokens from an alphabet of `alphabet` tokens, distinct per class: every alphabet token is seen in
training, a held-out class is a string never seen there. (With one token per item each class would own an
embedding row — a free parameter that makes in-weights learning cheap and leaves a held-out item's embedding
untrained; strings make a class a conjunction the weights must store, as an image is for Chan et al.'s ResNet.)
Token ids of a tiny GPT: alphabet 0 … alphabet − 1, then the labels. A sequence is x₁ y₁ x₂ y₂ … x_C y_C x_q y_q:
C context pairs, then the query item and its label.

* `bursty_batch`: Chan et al.'s training sequences. With probability `p_bursty` a sequence is *bursty*: `ways`
  classes drawn from the Zipf distribution each appear `burstiness` times in the context, the query is one of
  them, and the remaining context pairs are drawn i.i.d. from the Zipf distribution; otherwise every class of the
  sequence, the query's included, is drawn i.i.d. Labels are the classes' own (`class_labels`), except in a share
  `p_symbols` of the bursty sequences, labelled with a symbol map drawn for that sequence alone (`symbol_labels`,
  Chan et al.'s "unfixed" labelling): the share of the data that only in-context learning can fit, against the
  in-weights share.
* `no_support_batch`: in-weights evaluation: the query's class never appears in the context, so only the weights
  can tell its label.
* `Episode` (`draw_episodes`): a W-way symbol-mapping episode. Its W classes get W distinct labels — *symbols* —
  drawn for this episode alone from its own random stream, independently of which classes were drawn; the only
  place the class → symbol map shows is the episode's shots (`Episode.context`). Distractor pairs (other classes,
  other symbols) fill the context to a fixed length, so a 0-shot context holds no symbol of the map at all, and a
  control context (`control=True`) gives every shot a symbol drawn at random from the W, which leaves the map
  untold (accuracy at chance, 1/W, for any reader of the context).
* `symbol_task`: the same episodes as text for any model (words as items, two-capital symbols), a `Task` whose
  n-shot prompt holds n demonstrations per way: `emergentlab icl --task symbols`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from emergentlab.tasks.base import Example, Task


@dataclass(frozen=True)
class SymbolSpace:
    """Classes, their item strings and labels, and their token ids (alphabet first, then labels)."""

    n_classes: int = 1024  # training classes: their items appear in training sequences with a fixed label
    n_holdout: int = 64  # held-out classes: their items never appear in training
    alphabet: int = 64  # tokens items are spelled with
    item_len: int = 2  # tokens per item
    polysemy: int = 1  # labels per training class (1: a fixed label)
    seed: int = 0  # draws the item strings

    def __post_init__(self) -> None:
        if self.n_classes < 2 or self.n_holdout < 0 or self.alphabet < 2 or self.item_len < 1 or self.polysemy < 1:
            raise ValueError("need n_classes ≥ 2, n_holdout ≥ 0, alphabet ≥ 2, item_len ≥ 1 and polysemy ≥ 1")
        if self.n_items > self.alphabet**self.item_len:
            raise ValueError(f"{self.n_items} classes need distinct items, but {self.item_len}-token strings over "
                             f"{self.alphabet} tokens give only {self.alphabet**self.item_len}")

    @property
    def n_items(self) -> int:
        return self.n_classes + self.n_holdout

    @property
    def n_labels(self) -> int:
        """`polysemy` labels per training class."""
        return self.n_classes * self.polysemy

    @property
    def vocab_size(self) -> int:
        return self.alphabet + self.n_labels

    @property
    def pair_len(self) -> int:
        """Tokens per (item, label) pair."""
        return self.item_len + 1

    @property
    def holdout(self) -> range:
        """The held-out classes."""
        return range(self.n_classes, self.n_items)

    @cached_property
    def strings(self) -> np.ndarray:
        """(n_items, item_len) the token string of every class: distinct, drawn from `seed`'s own stream."""
        codes = np.random.default_rng([self.seed, 7]).choice(self.alphabet**self.item_len, self.n_items,
                                                             replace=False)
        return (codes[:, None] // self.alphabet ** np.arange(self.item_len)[::-1]) % self.alphabet

    def label_token(self, label: np.ndarray) -> np.ndarray:
        """Token ids of label indices (0 … n_labels − 1)."""
        return label + self.alphabet


@dataclass(frozen=True)
class Burstiness:
    """How training sequences are drawn (Chan et al.'s ``seq_config``: 8 context pairs, bursty_shots 3, ways 2,
    p_bursty 0.9, Zipf exponent 1 over the training classes)."""

    context: int = 8  # (item, label) pairs before the query
    burstiness: int = 3  # times each of the `ways` classes of a bursty sequence appears in its context
    ways: int = 2  # classes that recur in a bursty sequence; the query is one of them
    p_bursty: float = 0.9  # share of sequences that are bursty (the rest: every class i.i.d. from the Zipf law)
    zipf: float = 1.0  # exponent α of the class distribution, p(rank r) ∝ r^−α (class c has rank c + 1)
    p_symbols: float = 0.0  # share of bursty sequences labelled with symbols drawn for that sequence alone

    def __post_init__(self) -> None:
        if self.context < 1 or self.burstiness < 1 or self.ways < 1:
            raise ValueError("context, burstiness and ways must be positive")
        if self.burstiness * self.ways > self.context:
            raise ValueError(f"burstiness × ways ({self.burstiness} × {self.ways}) exceeds the context "
                             f"({self.context} pairs)")
        if not 0 <= self.p_bursty <= 1 or not 0 <= self.p_symbols <= 1 or self.zipf < 0:
            raise ValueError(f"need 0 ≤ p_bursty, p_symbols ≤ 1 and zipf ≥ 0, got {self.p_bursty}, "
                             f"{self.p_symbols} and {self.zipf}")

    def seq_len(self, space: SymbolSpace) -> int:
        """Tokens in a sequence: the context pairs, the query item and its label."""
        return (self.context + 1) * space.pair_len


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    """p(class c) ∝ (c + 1)^−exponent over c = 0 … n − 1, summing to 1 (exponent 0: uniform)."""
    w = np.arange(1, n + 1, dtype=float) ** -exponent
    return w / w.sum()


def interleave(space: SymbolSpace, classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Token rows x₁ y₁ x₂ y₂ … (each x an item string), from (rows, pairs) class and label-index arrays."""
    rows, pairs = classes.shape
    out = np.empty((rows, pairs, space.pair_len), dtype=np.int64)
    out[:, :, :-1] = space.strings[classes]
    out[:, :, -1] = space.label_token(labels)
    return out.reshape(rows, pairs * space.pair_len)


def class_labels(space: SymbolSpace, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The label index of every (row, pair) class in `classes` (rows, pairs): the class's own label, or with
    polysemy one of its labels drawn per row and kept for every occurrence of the class in the row."""
    if space.polysemy == 1:
        return classes.copy()
    first = (classes[:, :, None] == classes[:, None, :]).argmax(2)  # each pair's first occurrence in its row
    pick = np.take_along_axis(rng.integers(space.polysemy, size=classes.shape), first, axis=1)
    return classes * space.polysemy + pick


def symbol_labels(space: SymbolSpace, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row, a symbol map drawn for that row alone: the distinct classes of the row get distinct labels drawn
    uniformly from every label, kept for every occurrence of the class in the row (`Episode`'s rule, for
    training sequences: only the row's own earlier pairs can tell a class's label)."""
    first = (classes[:, :, None] == classes[:, None, :]).argmax(2)
    perm = rng.random((classes.shape[0], space.n_labels)).argsort(1)[:, : classes.shape[1]]
    return np.take_along_axis(perm, first, axis=1)


def label_positions(space: SymbolSpace, pairs: int) -> np.ndarray:
    """Positions of the labels in a row of `pairs` pairs (the query's last); the model predicts each label from
    the position just before it, the item's last token."""
    return np.arange(1, pairs + 1) * space.pair_len - 1


def bursty_classes(space: SymbolSpace, b: Burstiness, batch: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(classes (batch, context + 1), bursty (batch,) bool): each row's context classes then its query class, as
    the module docstring describes; every class is a training class."""
    p = zipf_weights(space.n_classes, b.zipf)
    classes = rng.choice(space.n_classes, size=(batch, b.context + 1), p=p)
    bursty = rng.random(batch) < b.p_bursty
    nb = int(bursty.sum())
    if nb:
        ways = rng.choice(space.n_classes, size=(nb, b.ways), p=p)  # with replacement, as Chan et al. draw them
        shots = np.repeat(ways, b.burstiness, axis=1)
        rest = classes[bursty, : b.context - shots.shape[1]]  # i.i.d. Zipf draws already made
        classes[bursty, : b.context] = rng.permuted(np.concatenate([shots, rest], axis=1), axis=1)
        classes[bursty, b.context] = ways[np.arange(nb), rng.integers(b.ways, size=nb)]
    return classes, bursty


def bursty_batch(space: SymbolSpace, b: Burstiness, batch: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """(tokens (batch, seq_len) int64, bursty (batch,) bool): training sequences, labelled by `class_labels`."""
    classes, bursty = bursty_classes(space, b, batch, rng)
    labels = class_labels(space, classes, rng)
    mapped = bursty & (rng.random(batch) < b.p_symbols)
    if mapped.any():
        labels[mapped] = symbol_labels(space, classes[mapped], rng)
    return interleave(space, classes, labels), bursty


def no_support_batch(space: SymbolSpace, b: Burstiness, batch: int, rng: np.random.Generator) -> np.ndarray:
    """(batch, seq_len) token rows whose query class (Zipf-drawn) never appears in the context (context classes
    drawn from the Zipf law without it): only in-weights knowledge can give the query's label."""
    p = zipf_weights(space.n_classes, b.zipf)
    query = rng.choice(space.n_classes, size=batch, p=p)
    ctx = rng.choice(space.n_classes, size=(batch, b.context), p=p)
    clash = ctx == query[:, None]
    while clash.any():  # redraw the few clashes (the commonest class has p ≈ 0.15 at α = 1, 512 classes)
        ctx[clash] = rng.choice(space.n_classes, size=int(clash.sum()), p=p)
        clash = ctx == query[:, None]
    classes = np.concatenate([ctx, query[:, None]], axis=1)
    return interleave(space, classes, class_labels(space, classes, rng))


@dataclass(frozen=True)
class Episode:
    """A W-way classification episode whose labels are symbols drawn for it alone.

    `classes[i]` carries symbol `symbols[i]` (label indices) in this episode only; `query` is one of `classes`;
    `distractors` are (class, symbol) pairs of other classes with other symbols, used to fill a context;
    `order` seeds the order of the context's pairs."""

    id: str
    classes: tuple[int, ...]
    symbols: tuple[int, ...]
    query: int
    distractors: tuple[tuple[int, int], ...]
    order: int

    @property
    def ways(self) -> int:
        return len(self.classes)

    @property
    def target(self) -> int:
        """The query's symbol (a label index)."""
        return self.symbols[self.classes.index(self.query)]

    def context(self, shots: int, length: int = 0, control: bool = False) -> tuple[tuple[int, int], ...]:
        """(class, symbol) context pairs: `shots` per way, then distractors up to `length` pairs (0: no
        distractors), in an order drawn from `order`. `control`: each shot gets a symbol drawn uniformly from the
        episode's W symbols instead of its class's, so the context no longer tells the map."""
        if shots < 0:
            raise ValueError(f"shots must be ≥ 0, got {shots}")
        n_fill = max(0, length - shots * self.ways)
        if n_fill > len(self.distractors):
            raise ValueError(f"episode {self.id}: {length} context pairs need {n_fill} distractors, it has "
                             f"{len(self.distractors)}")
        rng = random.Random(f"{self.order}:{shots}:{length}:{control}")
        pairs = [(c, rng.choice(self.symbols) if control else s) for c, s in zip(self.classes, self.symbols,
                                                                                  strict=True) for _ in range(shots)]
        pairs += self.distractors[:n_fill]
        rng.shuffle(pairs)
        return tuple(pairs)


def draw_episodes(pool: Sequence[int], n_labels: int, n: int, ways: int = 2, distractors: int = 8,
                  seed: int | str = 0) -> tuple[Episode, ...]:
    """`n` episodes over the classes of `pool`, each from its own random stream ``symbols:{seed}:{index}``: W
    distinct classes and `distractors` other distinct classes, then (from the same stream, after the classes)
    W + `distractors` distinct symbols among `n_labels`, the first W the map's. Symbols are uniform over the
    labels whatever the classes, so no class carries its symbol from one episode to the next. For a
    `SymbolSpace`: ``pool=space.holdout`` (held-out classes) or ``range(space.n_classes)``, and its n_labels."""
    pool = list(pool)
    if ways < 2 or ways + distractors > len(pool) or ways + distractors > n_labels:
        raise ValueError(f"{ways}-way episodes with {distractors} distractors need ≥ {ways + distractors} classes "
                         f"and labels; the pool holds {len(pool)} classes, there are {n_labels} labels")
    out = []
    for i in range(n):
        rng = random.Random(f"symbols:{seed}:{i}")
        drawn = rng.sample(pool, ways + distractors)
        syms = rng.sample(range(n_labels), ways + distractors)
        out.append(Episode(id=f"ep-{i:05d}", classes=tuple(drawn[:ways]), symbols=tuple(syms[:ways]),
                           query=rng.choice(drawn[:ways]),
                           distractors=tuple(zip(drawn[ways:], syms[ways:], strict=True)),
                           order=rng.getrandbits(32)))
    return tuple(out)


def repeated_pairs(space: SymbolSpace, rows: int, pairs: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                               np.ndarray]:
    """Olsson et al.'s ``r r`` rows in this data's format: r is `pairs` (item, symbol) pairs of distinct held-out
    classes with distinct symbols drawn per row, so the token after an item's earlier occurrence is its label and
    only the context holds it. Returns (tokens (rows, 2 · pairs · pair_len), the positions in the second copy that
    end an item: where an induction head looks back for the label)."""
    classes = np.stack([rng.choice(np.asarray(space.holdout), pairs, replace=False) for _ in range(rows)])
    labels = rng.random((rows, space.n_labels)).argsort(1)[:, :pairs]
    r = interleave(space, classes, labels)
    ends = pairs * space.pair_len + label_positions(space, pairs) - 1
    return np.concatenate([r, r], axis=1), ends


def episode_tokens(space: SymbolSpace, episodes: tuple[Episode, ...], shots: int, length: int,
                   control: bool = False) -> np.ndarray:
    """(len(episodes), (length + 1) · pair_len − 1) token rows: each episode's context (`Episode.context`) then
    its query item; the model's prediction at the last position is its answer. Every row has `length` context
    pairs (shots plus distractors), so the query sits where it sat in training."""
    classes, labels = [], []
    for ep in episodes:
        pairs = ep.context(shots, length, control)
        if len(pairs) != length:
            raise ValueError(f"{shots} shots × {ep.ways} ways exceed the {length} context pairs")
        classes.append([c for c, _ in pairs] + [ep.query])
        labels.append([s for _, s in pairs] + [0])
    rows = interleave(space, np.asarray(classes, dtype=np.int64).reshape(len(episodes), length + 1),
                      np.asarray(labels, dtype=np.int64).reshape(len(episodes), length + 1))
    return rows[:, :-1]


# --- the same episodes as text, for any model: `emergentlab icl --task symbols` -----------------------------------

SYMBOL_TASK = "symbols"
_CAPITALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def symbol_text(label: int) -> str:
    """A symbol as text: two capitals, ``AA`` … ``ZZ`` for labels 0 … 675."""
    return _CAPITALS[label // 26] + _CAPITALS[label % 26]


@dataclass(frozen=True)
class SymbolTask(Task):
    """Symbol-mapping episodes as text: items are words, labels two-capital symbols drawn per episode; example i
    is episode i's query. `prompt(example, shots)` gives `shots` demonstrations *per way* (so the target symbol is
    among them for every shots ≥ 1) in the episode's order, then the query; 0 shots is the query alone, which
    holds no symbol."""

    episodes: tuple[Episode, ...] = ()
    words: tuple[str, ...] = ()

    def prompt(self, example: Example, shots: int, seed: int = 0) -> str:
        """The episode's own demonstrations (`seed` is unused: the episode fixes them and their order)."""
        ep = self.episodes[int(example.metadata["episode"])]
        demos = [f"{self.words[c]}{self.output_prefix}{symbol_text(s)}" for c, s in ep.context(shots)]
        return self.separator.join([*demos, self.format(example)])


def symbol_task(n: int = 100, seed: int = 0, ways: int = 2) -> SymbolTask:
    """`n` text episodes, `ways`-way, over the words of `tasks.synthetic` with symbols ``AA`` … ``ZZ``."""
    from emergentlab.tasks.synthetic import _WORDS

    words = tuple(_WORDS)
    episodes = draw_episodes(range(len(words)), len(_CAPITALS) ** 2, n, ways, distractors=0, seed=seed)
    examples = tuple(Example(id=ep.id, input=words[ep.query], target=symbol_text(ep.target),
                             metadata={"episode": i, "ways": ways}) for i, ep in enumerate(episodes))
    return SymbolTask(name=SYMBOL_TASK, examples=examples, output_prefix="=", max_new_tokens=4,
                      metadata={"generator": SYMBOL_TASK, "seed": seed, "ways": ways}, episodes=episodes,
                      words=words)

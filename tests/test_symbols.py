"""Symbol-mapping episodes leak nothing outside their shots; bursty sequences have the configured statistics."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from emergentlab.tasks.symbols import (
    Burstiness,
    Episode,
    SymbolSpace,
    bursty_batch,
    bursty_classes,
    draw_episodes,
    episode_tokens,
    label_positions,
    no_support_batch,
    repeated_pairs,
    symbol_task,
    symbol_text,
    zipf_weights,
)

SPACE = SymbolSpace(n_classes=64, n_holdout=32, alphabet=16, item_len=2)


def _holdout(n: int, ways: int = 2, distractors: int = 8, seed: int = 0) -> tuple[Episode, ...]:
    return draw_episodes(SPACE.holdout, SPACE.n_labels, n, ways, distractors, seed)


def _pairs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class of each item, label index of each label) of full token rows, read back from the tokens."""
    by_string = {tuple(s): c for c, s in enumerate(SPACE.strings.tolist())}
    n = rows.shape[1] // SPACE.pair_len
    cells = rows.reshape(len(rows), n, SPACE.pair_len)
    classes = np.array([[by_string[tuple(p[:-1])] for p in row] for row in cells.tolist()])
    return classes, cells[:, :, -1] - SPACE.alphabet


def _context_reader(ep: Episode, pairs: tuple[tuple[int, int], ...]) -> int:
    """The perfect in-context learner: the symbol most often shown with the query's item (ties: first seen)."""
    votes = Counter(s for c, s in pairs if c == ep.query)
    return votes.most_common(1)[0][0] if votes else -1


def test_items_are_distinct_strings_of_the_alphabet() -> None:
    strings = SPACE.strings
    assert strings.shape == (96, 2) and strings.max() < 16 and len({tuple(r) for r in strings.tolist()}) == 96
    assert (SymbolSpace(64, 32, 16, 2).strings == strings).all()
    with pytest.raises(ValueError, match="distinct items"):
        SymbolSpace(n_classes=300, n_holdout=0, alphabet=16, item_len=2)


def test_episodes_are_seeded_and_disjoint_from_training() -> None:
    a, b = _holdout(50, seed=3), _holdout(50, seed=3)
    assert a == b and a != _holdout(50, seed=4)
    for ep in a:
        assert set(ep.classes) <= set(SPACE.holdout) and ep.query in ep.classes
        assert len(set(ep.symbols) | {s for _, s in ep.distractors}) == ep.ways + len(ep.distractors)
    assert all(max(ep.classes) < SPACE.n_classes for ep in draw_episodes(range(SPACE.n_classes), SPACE.n_labels, 50))


def test_no_symbol_of_the_map_outside_the_shots() -> None:
    """The query alone, and a 0-shot context of distractors, hold no symbol of the episode's map; every shot count
    ≥ 1 holds the target, with the query's item."""
    for ep in _holdout(200, ways=3, distractors=9, seed=1):
        alone = episode_tokens(SPACE, (ep,), shots=0, length=0)
        assert alone.tolist() == [SPACE.strings[ep.query].tolist()]  # the query's letters, no label token at all
        zero_row = episode_tokens(SPACE, (ep,), shots=0, length=9)[0]
        assert not set(zero_row[zero_row >= SPACE.alphabet] - SPACE.alphabet) & set(ep.symbols)
        zero = ep.context(0, 9)
        assert len(zero) == 9 and not {s for _, s in zero} & set(ep.symbols)
        assert ep.query not in {c for c, _ in zero}
        for shots in (1, 2, 3):
            pairs = ep.context(shots, 9)
            assert (ep.query, ep.target) in pairs and len(pairs) == 9
            assert Counter(c for c, _ in pairs if c in ep.classes) == {c: shots for c in ep.classes}
            assert _context_reader(ep, pairs) == ep.target


def test_the_map_cannot_be_learned_across_episodes() -> None:
    """Symbols are drawn per episode: a learner that memorises each class's symbols over 4000 episodes (the
    best use of everything outside a new episode's shots) scores chance on 2000 new ones, 1/W among the
    episode's symbols and ~1/n_labels over all; and a class's symbols are uniform over the labels."""
    train, test = _holdout(4000, seed=10), _holdout(2000, seed=11)
    seen: dict[int, Counter[int]] = {}
    for ep in train:
        for c, s in zip(ep.classes, ep.symbols, strict=True):
            seen.setdefault(c, Counter())[s] += 1
    guess = [seen[ep.query].most_common(1)[0][0] for ep in test]
    exact = np.mean([g == ep.target for g, ep in zip(guess, test, strict=True)])
    assert exact < 0.02 + 3 * np.sqrt(1 / SPACE.n_labels / len(test))  # chance: 1/64 ≈ 0.016
    # restricted to the episode's own symbols the memoriser can only pick at random: 1/2
    way = np.mean([ep.target == (g if g in ep.symbols else ep.symbols[0]) for g, ep in zip(guess, test, strict=True)])
    assert abs(way - 0.5) < 3 * np.sqrt(0.25 / len(test))
    counts = np.bincount([s for ep in train for s in ep.symbols], minlength=SPACE.n_labels)
    expected = counts.sum() / SPACE.n_labels
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 63 + 4 * np.sqrt(2 * 63)  # χ² with 63 degrees of freedom, far from its tail


def test_shuffled_shots_control_reads_at_chance() -> None:
    """With every shot's symbol redrawn from the episode's W, the perfect context reader falls to 1/W."""
    eps = _holdout(3000, ways=2, distractors=8, seed=2)
    real = np.mean([_context_reader(ep, ep.context(4, 8)) == ep.target for ep in eps])
    control = np.mean([_context_reader(ep, ep.context(4, 8, control=True)) == ep.target for ep in eps])
    assert real == 1.0
    assert abs(control - 0.5) < 3 * np.sqrt(0.25 / len(eps))
    rows = episode_tokens(SPACE, eps[:5], 4, 8, control=True)
    assert rows.shape == (5, 9 * SPACE.pair_len - 1)
    at = label_positions(SPACE, 8)
    assert (rows[:, at] >= SPACE.alphabet).all() and (np.delete(rows, at, axis=1) < SPACE.alphabet).all()


def test_bursty_sequences_recur_with_the_configured_burstiness() -> None:
    b = Burstiness(context=8, burstiness=3, ways=2, p_bursty=0.7, zipf=1.0)
    classes, bursty = bursty_classes(SPACE, b, 20_000, np.random.default_rng(0))
    again, _ = bursty_classes(SPACE, b, 20_000, np.random.default_rng(0))
    assert (classes == again).all()
    assert abs(bursty.mean() - 0.7) < 3 * np.sqrt(0.21 / 20_000)
    in_context = (classes[:, :-1] == classes[:, -1:]).sum(1)
    assert (in_context[bursty] >= 3).all()
    # non-bursty: i.i.d. draws, so the query recurs context · Σ p² times on average
    assert in_context[~bursty].mean() == pytest.approx(8 * (zipf_weights(64, 1.0) ** 2).sum(), rel=0.1)
    tokens, flags = bursty_batch(SPACE, b, 100, np.random.default_rng(1))
    assert tokens.shape == (100, b.seq_len(SPACE)) and flags.shape == (100,)
    items, labels = _pairs(tokens)
    assert (labels == items).all()  # fixed labels: class c carries label c
    assert items.max() < SPACE.n_classes  # held-out items never appear in training


def test_a_share_of_bursty_sequences_carries_its_own_symbol_map() -> None:
    """p_symbols of the bursty rows are labelled by a map drawn for the row: one symbol per class within the row,
    distinct between classes, and (over rows) unrelated to the class's own label."""
    b = Burstiness(p_bursty=0.8, p_symbols=0.5)
    tokens, bursty = bursty_batch(SPACE, b, 4000, np.random.default_rng(4))
    items, labels = _pairs(tokens)
    mapped = (labels != items).any(1)
    assert not mapped[~bursty].any()
    assert abs(mapped.mean() - 0.4) < 0.03  # 0.8 · 0.5, less the rows whose draw happens to be the fixed labels
    same = items[:, :, None] == items[:, None, :]
    agree = labels[:, :, None] == labels[:, None, :]
    assert (agree == same)[mapped].all()  # same class ⇔ same symbol, within a row
    assert (labels[mapped] == items[mapped]).mean() < 0.05  # ~1/64 by chance


def test_polysemous_classes_keep_one_label_per_sequence() -> None:
    space = SymbolSpace(n_classes=64, n_holdout=32, alphabet=16, item_len=2, polysemy=3)
    tokens, _ = bursty_batch(space, Burstiness(), 3000, np.random.default_rng(2))
    cells = tokens.reshape(3000, 9, 3)
    by_string = {tuple(s): c for c, s in enumerate(space.strings.tolist())}
    items = np.array([[by_string[tuple(p[:2])] for p in row] for row in cells.tolist()])
    labels = cells[:, :, 2] - space.alphabet
    assert (labels // 3 == items).all() and space.n_labels == 192
    same = items[:, :, None] == items[:, None, :]
    assert (labels[:, :, None] == labels[:, None, :])[same].all()  # one label per class within a sequence
    assert np.bincount((labels % 3).ravel(), minlength=3).min() > 0.3 * labels.size  # each meaning is used


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0, 1.5])
def test_class_frequencies_follow_the_zipf_exponent(alpha: float) -> None:
    b = Burstiness(p_bursty=0.9, zipf=alpha)
    classes, _ = bursty_classes(SymbolSpace(n_classes=200, n_holdout=10), b, 40_000, np.random.default_rng(5))
    freq = np.bincount(classes.ravel(), minlength=200)
    ranks = np.arange(1, 41)
    slope = np.polyfit(np.log(ranks), np.log(freq[:40]), 1)[0]
    assert slope == pytest.approx(-alpha, abs=0.08)


def test_no_support_rows_hide_the_query_class() -> None:
    items, labels = _pairs(no_support_batch(SPACE, Burstiness(), 2000, np.random.default_rng(0)))
    assert not (items[:, :-1] == items[:, -1:]).any()
    assert (labels == items).all()


@pytest.mark.parametrize("kwargs", [dict(burstiness=5, ways=2, context=8), dict(p_bursty=1.5), dict(zipf=-1.0)])
def test_bad_burstiness_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Burstiness(**kwargs)  # type: ignore[arg-type]


def test_text_episodes_show_the_map_only_in_their_demonstrations() -> None:
    """`emergentlab icl --task symbols`: the 0-shot prompt is the query word alone; n shots give n
    demonstrations per way, the target among them; the episode fixes them, whatever the seed."""
    task = symbol_task(n=60, seed=5)
    assert task.examples == symbol_task(n=60, seed=5).examples and symbol_text(0) == "AA" and symbol_text(675) == "ZZ"
    for ex in task.examples:
        assert task.prompt(ex, 0) == f"{ex.input}=" and len(ex.target) == 2 and ex.target.isupper()
        for n in (1, 2, 4):
            lines = task.prompt(ex, n, seed=9).split("\n")
            assert lines[-1] == f"{ex.input}=" and len(lines) == 2 * n + 1
            assert lines.count(f"{ex.input}={ex.target}") == n
            assert task.prompt(ex, n, seed=1) == task.prompt(ex, n, seed=9)


def test_repeated_pairs_put_a_label_after_each_earlier_item() -> None:
    """The induction probe: r r of (held-out item, symbol) pairs; from each query (an item's last token in the
    second copy) the prefix-matching key, one past its earlier occurrence, is that item's label."""
    rows, queries = repeated_pairs(SPACE, 16, 4, np.random.default_rng(0))
    n = rows.shape[1] // 2
    assert rows.shape == (16, 24) and (rows[:, :n] == rows[:, n:]).all()
    keys = queries - n + 1
    assert (rows[:, keys] >= SPACE.alphabet).all()  # labels
    assert (rows[:, queries] == rows[:, queries - n]).all()  # the same item token earlier
    items, _ = _pairs(rows)
    assert items.min() >= SPACE.n_classes  # held-out classes only

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import pytest
import torch

from emergentlab.experiments import induction
from emergentlab.models.tiny import GPT, Block, GPTConfig
from emergentlab.store import Store
from emergentlab.train.induction import (
    InductionConfig,
    attention_patterns,
    head_scores,
    icl_positions,
    icl_score,
    induction_score,
    parse_score_key,
    repeated_random_tokens,
    score_key,
    segment_batch,
)

V, N, H, D = 16, 8, 4, 32  # vocabulary, length of the repeated block r, heads, head width
C = H * D
TOK, POS, PREV, OUT = 0, 16, 48, 64  # residual-stream subspaces: token, position, previous token, copied token
BIG = 40.0 * math.sqrt(D)  # attention logits of ±40 after the 1/√D scaling: a hard argmax


def hand_built_induction_model() -> GPT:
    """Olsson et al.'s two-head circuit written into the weights by hand.

    Layer 0, head 0 is a previous-token head: its query is position t, its key position s shifted by one, so it
    attends from t to t − 1 and writes that token into the PREV subspace. Layer 1, head 3 is an induction head by
    K-composition: its query is the current token, its key reads PREV, so from t it attends to the position whose
    previous token equals t's token, and its OV circuit copies that position's token to the logits. Every other
    head has zero weights.
    """
    model = GPT(GPTConfig(vocab_size=V, block_size=2 * N, n_layer=2, n_head=H, n_embd=C, attn_only=True,
                          layernorm=False, tie_weights=False))
    b0, b1 = cast(list[Block], list(model.blocks))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.wte.weight[:, TOK:TOK + V] = torch.eye(V)
        model.wpe.weight[:, POS:POS + 2 * N] = torch.eye(2 * N)
        q0, k0, v0 = (b0.attn.qkv.weight[i * C:(i + 1) * C] for i in range(3))  # (out, in) views
        for t in range(2 * N):
            q0[t, POS + t] = BIG  # head 0 query dim t ← position t
            if t + 1 < D:
                k0[t + 1, POS + t] = 1.0  # head 0 key dim t + 1 ← position t: q_t · k_s ≠ 0 iff s = t − 1
        v0[torch.arange(V), TOK + torch.arange(V)] = 1.0
        b0.attn.proj.weight[PREV + torch.arange(V), torch.arange(V)] = 1.0
        q1, k1, v1 = (b1.attn.qkv.weight[i * C:(i + 1) * C] for i in range(3))
        h3 = 3 * D + torch.arange(V)
        q1[h3, TOK + torch.arange(V)] = BIG
        k1[h3, PREV + torch.arange(V)] = 1.0
        # position 0 has no previous token (its head 0 attends to itself), so head 3 is kept off it: a query
        # component that is BIG for every token meets a key component of −1 at position 0 only
        q1[3 * D + V, TOK:TOK + V] = BIG
        k1[3 * D + V, POS] = -1.0
        v1[h3, TOK + torch.arange(V)] = 1.0
        b1.attn.proj.weight[OUT + torch.arange(V), h3] = 1.0
        model.lm_head.weight[torch.arange(V), OUT + torch.arange(V)] = 10.0
    return model.eval()


def test_hand_built_induction_head_scores_one() -> None:
    model = hand_built_induction_model()
    rows = repeated_random_tokens(32, N, V, seed=0)
    scores = head_scores(model, rows)
    assert scores["blocks.1.attn.head3.prefix_matching"] > 0.98
    assert scores["blocks.1.attn.head3.copying"] > 0.98
    assert scores["blocks.0.attn.head0.previous_token"] > 0.98
    # the heads with zero weights attend uniformly and copy nothing
    assert scores["blocks.1.attn.head0.prefix_matching"] < 0.3
    assert scores["blocks.1.attn.head0.copying"] == 0.0
    assert induction_score(scores, n_layer=2) == scores["blocks.1.attn.head3.prefix_matching"]
    # and it works: every token of the second copy but its first is predicted, so late loss ≪ early loss
    icl, _ = icl_score(model, rows)
    assert icl < -1.0


def test_prefix_matching_over_chosen_queries() -> None:
    """`queries` restricts the average to some positions of the second copy: the default is all but its last;
    the hand-built head scores one on any subset, and a position outside the second copy is refused."""
    model = hand_built_induction_model()
    rows = repeated_random_tokens(32, N, V, seed=0)
    key = "blocks.1.attn.head3.prefix_matching"
    assert head_scores(model, rows, torch.arange(N, 2 * N - 1)) == head_scores(model, rows)
    assert head_scores(model, rows, torch.tensor([N + 1, N + 4]))[key] > 0.98
    with pytest.raises(ValueError, match="second copy"):
        head_scores(model, rows, torch.tensor([N - 1]))


def test_head_names_and_attention_patterns() -> None:
    model = hand_built_induction_model()
    rows = repeated_random_tokens(3, N, V, seed=1)
    pats = attention_patterns(model, rows)
    assert len(pats) == 2
    pat = pats[1]
    assert pat.shape == (3, H, 2 * N, 2 * N)
    assert torch.allclose(pat.sum(-1), torch.ones(3, H, 2 * N))
    assert pat.triu(1).abs().max() == 0  # causal
    t = N + 2  # a query in the second copy attends to the token after its first occurrence
    assert int(pat[0, 3, t].argmax()) == t - N + 1
    assert score_key(1, 3, "copying") == "blocks.1.attn.head3.copying"
    assert parse_score_key("blocks.1.attn.head3.copying") == (1, 3, "copying")
    assert parse_score_key("icl_score") is None and parse_score_key("blocks.1.attn.hook_pattern") is None
    keys = {parse_score_key(k) for k in head_scores(model, rows)}
    assert keys == {(i, h, s) for i in range(2) for h in range(H)
                    for s in ("prefix_matching", "previous_token", "copying")}


def test_scoring_rows_repeat_distinct_tokens_and_training_rows_hold_copies() -> None:
    rows = repeated_random_tokens(5, 10, 64, seed=0)
    assert rows.shape == (5, 20) and torch.equal(rows[:, :10], rows[:, 10:])
    assert all(len(set(r[:10].tolist())) == 10 for r in rows)
    assert torch.equal(rows, repeated_random_tokens(5, 10, 64, seed=0))
    batch = segment_batch(64, 64, 64, torch.Generator().manual_seed(0))
    assert batch.shape == (64, 65) and int(batch.max()) < 64
    # a token whose bigram (previous, this) occurred earlier in the row is predictable by induction; in uniform
    # random rows of 64 tokens over 64 symbols only ~1.5 % are, here the copied segments make it far more
    seen = 0
    for r in batch.tolist():
        pairs: set[tuple[int, int]] = set()
        for a, b in zip(r, r[1:], strict=False):
            seen += (a, b) in pairs
            pairs.add((a, b))
    assert seen / (64 * 64) > 0.25


def test_icl_positions_scale_olsson_tokens() -> None:
    assert icl_positions(512) == (50, 500)
    assert icl_positions(64) == (6, 62)


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="seq_len"):
        InductionConfig(seq_len=8)
    with pytest.raises(ValueError, match="rep_len"):
        InductionConfig(rep_len=100)


@pytest.mark.slow
def test_brief_training_raises_prefix_matching_and_stores_series(tmp_path: Path) -> None:
    cfg = InductionConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=32, seq_len=32, batch_size=32, steps=500,
                          lr=3e-3, checkpoints=4, eval_rows=64)
    start = GPT(cfg.model_config(), torch.Generator().manual_seed(cfg.seed))  # the weights training starts from
    init = head_scores(start, repeated_random_tokens(64, cfg.rep_len, cfg.vocab_size, 2))
    with Store(tmp_path / "records.sqlite") as store:
        res = induction.run(cfg, store, study="ind", out_dir=tmp_path / "ckpt")
        back = store.series(study="ind", experiment="induction")
        assert store.runs("induction", "ind")[("ind", "L2-attn-only-seed0")]["n_layer"] == 2
        sections = induction.sections(store, "ind")
    final = res.history.iloc[-1]
    assert final["induction_score"] > induction_score(init, 2) + 0.2
    assert final["icl_score"] < -0.1  # late tokens are now easier than early ones
    assert set(back["run"]) == {"L2-attn-only-seed0"}
    assert "blocks.1.attn.head0.prefix_matching" in set(back["metric"])
    assert len(list((tmp_path / "ckpt").glob("step-*/model.safetensors"))) == len(res.history)
    [section] = sections
    heads = section.tables[1].frame
    assert heads["head"].iloc[0].startswith("blocks.1.attn.head")  # the best prefix matcher sits in layer 1
    assert len(heads) == 4 and heads["prefix_matching"].is_monotonic_decreasing


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ind") / "records.sqlite"
    with Store(path) as store:
        for n_layer in (1, 2):
            induction.run(InductionConfig(n_layer=n_layer, n_head=2, n_embd=16, vocab_size=16, seq_len=16,
                                          batch_size=8, steps=20, checkpoints=5, eval_rows=16), store, study="dyn")
    return path


def test_sections_name_heads_and_compare_depths(two_runs: Path) -> None:
    with Store(two_runs) as store:
        sections = induction.sections(store, "dyn")
        assert induction.sections(store, "other") == []
    titles = [s.title for s in sections]
    assert titles == ["Induction heads — L1-attn-only-seed0", "Induction heads — L2-attn-only-seed0",
                      "Induction heads — depth"]
    l2 = sections[1]
    prefix = l2.figures[0].panels[2]
    assert [ln.label for ln in prefix.lines] == [f"blocks.{i}.attn.head{h}" for i in range(2) for h in range(2)]
    assert all(0 <= y <= 1 for ln in prefix.lines for y in ln.y) and prefix.ylim == (0.0, 1.0)
    assert set(l2.tables[1].frame["layer"]) == {0, 1}
    depth = sections[2].tables[0].frame
    assert depth["layers"].tolist() == [1, 2]  # from each run's stored config
    for s in sections:
        assert all(t.caption for t in s.tables)
    assert all(len(s.summary) == 1 for s in sections[:2])

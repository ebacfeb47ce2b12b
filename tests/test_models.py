from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from emergentlab.models import load_backend
from emergentlab.models.base import Backend, cut_at_stop, pack_batches
from emergentlab.models.tiny import (
    GPT,
    PAD,
    CharTokenizer,
    GPTConfig,
    TinyBackend,
    act_name,
    head_name,
    parse_head_name,
)


def slow_reference(backend: TinyBackend, prompt: str, cont: str) -> list[float]:
    """One unpadded forward per continuation token, full-vocabulary log-softmax: the obviously right answer."""
    tok = CharTokenizer()
    ids = [PAD, *tok.encode(prompt)]
    out = []
    for t in tok.encode(cont):
        with torch.no_grad():
            logp = backend.model(torch.tensor([ids])).float().log_softmax(-1)[0, -1]
        out.append(float(logp[t]))
        ids.append(t)
    return out


PROMPTS = ["12+34=", "7*8=", "unscramble lpepa=", "1+1=\n2+2=\n3+3="]
CONTS = ["46", "56", "apple", "6"]


def test_score_matches_slow_reference_whatever_the_batch(tiny_ckpt: Path) -> None:
    backend = load_backend(f"tiny:{tiny_ckpt}")
    assert isinstance(backend, TinyBackend) and isinstance(backend, Backend)
    batched = backend.score(PROMPTS, CONTS)
    for p, c, s in zip(PROMPTS, CONTS, batched, strict=True):
        assert s.tokens == tuple(c)
        assert s.logprobs == pytest.approx(slow_reference(backend, p, c), abs=1e-5)
        assert backend.score([p], [c])[0].logprobs == pytest.approx(s.logprobs, abs=1e-5)


def test_greedy_flags_agree_with_generation(tiny_ckpt: Path) -> None:
    backend = load_backend(f"tiny:{tiny_ckpt}")
    gens = backend.generate(PROMPTS, max_new_tokens=4)
    # the greedy continuation, scored, is greedy at every token
    scored = backend.score(PROMPTS, [g.text for g in gens])
    assert all(all(s.greedy) for s in scored)
    one_by_one = [backend.generate([p], max_new_tokens=4)[0] for p in PROMPTS]
    assert gens == one_by_one


def test_stop_strings_cut_generation() -> None:
    assert cut_at_stop("12\n3", ["\n"]) == ("12", True)
    assert cut_at_stop("123", ["\n"]) == ("123", False)
    assert cut_at_stop("ab.cd\n", ["\n", "."]) == ("ab", True)


def test_facts_come_from_the_checkpoint(tiny_ckpt: Path) -> None:
    facts = load_backend(f"tiny:{tiny_ckpt}").facts()
    assert facts.params and facts.non_embedding_params and facts.params > facts.non_embedding_params
    assert facts.tokens == 1e5 and facts.loss == 4.0 and facts.step == 100


def test_pack_batches_caps_rows_and_padded_tokens() -> None:
    lengths = [3, 5, 2, 8, 8]
    batches = pack_batches([2, 0, 1, 3, 4], lengths, max_tokens=16)
    assert [i for b in batches for i in b] == [2, 0, 1, 3, 4]  # order kept, nothing lost
    assert all(len(b) * max(lengths[i] for i in b) <= 16 for b in batches)
    assert batches == [[2, 0, 1], [3, 4]]
    assert pack_batches([0, 1, 2], [1, 1, 1], max_tokens=100, max_rows=2) == [[0, 1], [2]]
    assert pack_batches([3], lengths, max_tokens=4) == [[3]]  # a row longer than the cap still gets a batch


def test_demo_ladder_loads_and_scores_as_before_the_one_gpt() -> None:
    from emergentlab.train import DEMO_LADDER_DIR

    want = json.loads((Path(__file__).parent / "data" / "demo_ladder_logprobs.json").read_text())
    assert len(want["logprobs"]) == 7
    for rung, logprobs in want["logprobs"].items():
        got = TinyBackend.from_path(DEMO_LADDER_DIR / rung).score(want["prompts"], want["continuations"])
        # fp32 kernels differ by CPU (AVX2 vs AVX-512 reduction order): a few float32 ulps, not a changed model
        for s, w in zip(got, logprobs, strict=True):
            assert s.logprobs == pytest.approx(w, rel=1e-6, abs=1e-5), rung


def test_head_names_round_trip_and_refuse_other_strings() -> None:
    assert head_name(1, 3) == "blocks.1.attn.head3" == act_name(1, "attn.head3")
    assert parse_head_name(head_name(12, 0)) == (12, 0)
    for other in ("blocks.1.attn.hook_pattern", "blocks.x.attn.head3", "blocks.1.mlp.head3", "blocks.1.attn.head",
                  "train_loss", "blocks.1.attn.head3.copying"):
        assert parse_head_name(other) is None


def test_cache_names_follow_transformer_lens() -> None:
    model = GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=16))
    logits, cache = model.run_with_cache(torch.randint(16, (3, 8), generator=torch.Generator().manual_seed(0)))
    assert set(cache) == {act_name(i, h) for i in range(2) for h in ("attn.hook_pattern", "hook_resid_post")}
    assert cache["blocks.1.attn.hook_pattern"].shape == (3, 2, 8, 8)
    assert torch.allclose(logits, model(torch.randint(16, (3, 8), generator=torch.Generator().manual_seed(0))),
                          atol=1e-5)


def test_weights_come_from_the_generator_not_the_global_seed() -> None:
    cfg = GPTConfig(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=16)
    torch.manual_seed(1)
    a = GPT(cfg, torch.Generator().manual_seed(5))
    state = torch.random.get_rng_state()
    b = GPT(cfg, torch.Generator().manual_seed(5))
    c = GPT(cfg, torch.Generator().manual_seed(6))
    assert torch.equal(torch.random.get_rng_state(), state)  # building a model leaves the global RNG alone
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.wte.weight, c.wte.weight)
    assert a.lm_head.weight is a.wte.weight  # tied
    assert (a.blocks[0].ln_1.weight == 1).all()  # type: ignore[union-attr]
    # GPT-2's init: std 0.02, residual projections 0.02 / √(2 · n_layer)
    assert float(a.wte.weight.detach().std()) == pytest.approx(0.02, rel=0.2)
    assert float(a.blocks[0].attn.proj.weight.detach().std()) == pytest.approx(0.01, rel=0.2)  # type: ignore[union-attr]


def test_nanda_init_scales_by_width_and_vocabulary() -> None:
    cfg = GPTConfig(vocab_size=98, block_size=3, n_layer=1, n_head=4, n_embd=128, d_mlp=512, layernorm=False,
                    tie_weights=False, init="nanda")
    m = GPT(cfg, torch.Generator().manual_seed(0))
    assert float(m.wte.weight.detach().std()) == pytest.approx(1 / 128**0.5, rel=0.05)
    assert float(m.lm_head.weight.detach().std()) == pytest.approx(1 / 98**0.5, rel=0.05)
    with pytest.raises(ValueError, match="init"):
        GPTConfig(init="xavier")  # type: ignore[arg-type]


@pytest.mark.parametrize(("layernorm", "attn_only"), [(False, False), (True, False), (False, True), (True, True)])
def test_last_logits_equal_the_full_forward(layernorm: bool, attn_only: bool) -> None:
    p = 23
    model = GPT(GPTConfig(vocab_size=p + 1, block_size=3, n_layer=1, n_head=4, n_embd=32, d_mlp=64,
                          layernorm=layernorm, attn_only=attn_only, tie_weights=False, init="nanda"),
                torch.Generator().manual_seed(3))
    torch.nn.init.normal_(model.wpe.weight, 0, 0.5)  # make positions matter, so a mix-up would show
    a, b = torch.arange(p).repeat_interleave(p), torch.arange(p).repeat(p)
    table = torch.stack([a, b, torch.full_like(a, p)], 1)  # one last token, as in grokking
    mixed = torch.randint(p + 1, (600, 3), generator=torch.Generator().manual_seed(0))  # last tokens vary
    for x in (table, mixed):
        assert len(x) >= (p + 1) * 3  # large enough to take the per-vocabulary path
        with torch.no_grad():
            assert torch.allclose(model.last_logits(x), model(x)[:, -1], atol=1e-5)

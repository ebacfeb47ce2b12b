from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emergentlab.models import load_backend
from emergentlab.models.base import Backend, cut_at_stop, pack_batches
from emergentlab.models.tiny import PAD, CharTokenizer, TinyBackend


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

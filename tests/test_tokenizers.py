"""Tokenizers of the tiny model: chunked numbers round-trip, a checkpoint reloads with its own tokenizer, old
(character) checkpoints still load, and bad tokenizer specs name their field."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from emergentlab.errors import UserError
from emergentlab.models import load_backend
from emergentlab.models.tiny import (
    BPETokenizer,
    CharTokenizer,
    ChunkTokenizer,
    GPTConfig,
    TinyBackend,
    make_tokenizer,
    tokenizer_vocab,
)
from emergentlab.tasks import train_lines
from emergentlab.train import DEMO_LADDER_DIR, TrainConfig, ladder_spec_from_dict, train


def test_chunks_cut_numbers_from_the_left() -> None:
    tok = ChunkTokenizer(3)
    ids = tok.encode("12345+6=7890\n")
    assert [tok.decode([i]) for i in ids] == ["123", "45", "+", "6", "=", "789", "0", "\n"]
    assert ids[3] == ord("6") and ids[-1] == 10  # a lone digit and the line break keep their ASCII ids
    assert tok.vocab_size == 128 + 100 + 1000 and max(tok.encode("999 00 01")) < tok.vocab_size
    assert tok.encode("007") != tok.encode("7")  # leading zeros are kept, not dropped into the same token


@pytest.mark.parametrize("k", [2, 3, 4])
def test_chunk_tokenizer_round_trips_any_ascii(k: int) -> None:
    rng = random.Random(k)
    tok = ChunkTokenizer(k)
    alphabet = "0123456789" * 4 + "+-*=;: answer\n"
    for _ in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        assert len(ids) <= len(s) and all(0 <= i < tok.vocab_size for i in ids)
    assert CharTokenizer().decode(CharTokenizer().encode("12+3=15")) == "12+3=15"


def test_spec_and_make_tokenizer_are_inverses() -> None:
    for tok in (CharTokenizer(), ChunkTokenizer(2), ChunkTokenizer(4), BPETokenizer([("1", "2"), ("12", "3")])):
        again = make_tokenizer(tok.spec())
        assert type(again) is type(tok) and again.spec() == tok.spec() and again.vocab_size == tok.vocab_size
    assert isinstance(make_tokenizer(None), CharTokenizer) and isinstance(make_tokenizer({}), CharTokenizer)
    bad_specs = [({"kind": "words"}, "kind"), ({"kind": "bpe"}, "merges"), ({"kind": "bpe", "merges": 0}, "merges"),
                 ({"kind": "bpe", "merges": 5}, "merges"),  # a count needs text to learn on
                 ({"kind": "bpe", "merges": [["1"]]}, "merges"), ({"kind": "chunk", "k": 9}, "k"),
                 ({"kind": "chunk", "k": "3"}, "k"), ({"kind": "chunk", "size": 3}, "size"),
                 ({"kind": "char", "k": 3}, "k")]
    for bad, field in bad_specs:
        with pytest.raises(ValueError, match=f"^{field}"):
            make_tokenizer(bad)


def _train_chunked(out: Path) -> Path:
    lines = train_lines(["add3"], 400, seed=0)
    tok = ChunkTokenizer(3)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)
    train(cfg, TrainConfig(tokens=4 * 8 * 32, batch_size=8, block_size=32, warmup_steps=1), lines, out,
          tokenizer=tok)
    return out


def test_checkpoint_reloads_with_its_own_tokenizer(tmp_path: Path) -> None:
    path = _train_chunked(tmp_path / "chunked")
    assert json.loads((path / "config.json").read_text())["tokenizer"] == {"kind": "chunk", "k": 3}
    b = load_backend(f"tiny:{path}")
    assert isinstance(b, TinyBackend) and b.tok.spec() == {"kind": "chunk", "k": 3}
    (s,) = b.score(["123+456="], ["579"])
    assert s.tokens == ("579",) and len(s.logprobs) == 1  # one chunk token, not three characters
    (g,) = b.generate(["123+456="], max_new_tokens=3, stop=("\n",))
    assert "".join(g.tokens).startswith(g.text) and len(g.tokens) <= 3
    assert b.dropped_tokens("1" * 300, 0) == 100 + 1 - 32  # prompt length counted in its tokens


def test_checkpoints_without_a_tokenizer_entry_load_as_characters(tiny_ckpt: Path) -> None:
    assert "tokenizer" not in json.loads((tiny_ckpt / "config.json").read_text())
    for path in (tiny_ckpt, DEMO_LADDER_DIR / "L1-d8-t4M"):
        b = load_backend(f"tiny:{path}")
        assert isinstance(b, TinyBackend) and isinstance(b.tok, CharTokenizer)
        assert b.score(["12+3="], ["15"])[0].tokens == ("1", "5")


@pytest.mark.parametrize(("entry", "field"), [({"kind": "words"}, "tokenizer.kind"),
                                              ({"kind": "chunk", "k": 1}, "tokenizer.k"),
                                              ("chunk", "tokenizer"),
                                              ({"kind": "chunk", "k": 3}, "tokenizer")])  # 1228 ids > vocab 128
def test_bad_tokenizer_entry_names_the_field(tmp_path: Path, tiny_ckpt: Path, entry: object, field: str) -> None:
    path = tmp_path / "bad"
    shutil.copytree(tiny_ckpt, path)
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "tokenizer": entry}))
    with pytest.raises(UserError) as e:
        load_backend(f"tiny:{path}")
    assert e.value.field == field and str(e.value.source).endswith("config.json")


def test_ladder_spec_sizes_the_vocabulary_from_its_tokenizer() -> None:
    base = {"sizes": [{"n_layer": 1, "n_embd": 16, "n_head": 2}], "budgets": [1000], "tasks": ["add2"]}
    assert ladder_spec_from_dict(base).rungs()[0][1].vocab_size == 128
    chunked = ladder_spec_from_dict({**base, "tokenizer": {"kind": "chunk", "k": 2}})
    assert chunked.rungs()[0][1].vocab_size == 228 and chunked.make_tokenizer().spec()["k"] == 2
    for over, field in (({"tokenizer": {"kind": "chunk", "k": 7}}, "tokenizer.k"),
                        ({"tokenizer": {"kind": "chunk"}, "model": {"vocab_size": 128}}, "model.vocab_size"),
                        ({"traces": 1.5}, "traces"), ({"traces": 0.5, "tasks": ["mul2"]}, "traces"),
                        ({"group": 0}, "group")):
        with pytest.raises(UserError) as e:
            ladder_spec_from_dict({**base, **over}, source="l.toml")
        assert e.value.field == field


def test_bpe_learns_the_most_frequent_pairs_inside_numbers_and_words() -> None:
    text = ["12+12=24", "12+5=17", "answer 12", "x=12\n"] * 10
    bpe = BPETokenizer.learn(text, 4)
    assert bpe.merges[0] == ("1", "2")  # 50 occurrences: the most frequent pair
    assert all(a.isdigit() == b.isdigit() and not set(a + b) & set("+= \n") for a, b in bpe.merges)
    assert BPETokenizer.learn(text, 4).merges == bpe.merges  # same text, same merges
    assert len(BPETokenizer.learn(["1+2"], 50).merges) == 0  # no pair inside a pre-token: nothing to merge
    ids = bpe.encode("12+12=")
    assert [bpe.decode([i]) for i in ids] == ["12", "+", "12", "="] and max(ids) < bpe.vocab_size
    assert bpe.encode("12+12=24") == ids + bpe.encode("24")  # no token spans the "=": prompts tokenize alike
    assert tokenizer_vocab({"kind": "bpe", "merges": 64}) == 192 and tokenizer_vocab(bpe.spec()) == bpe.vocab_size


def test_bpe_round_trips_and_survives_its_spec() -> None:
    from emergentlab.tasks import train_lines

    lines = train_lines(["add3"], 2000, seed=0, traces=0.5, group=2)
    bpe = BPETokenizer.learn(lines, 120)
    again = make_tokenizer(json.loads(json.dumps(bpe.spec())))
    rng = random.Random(0)
    for s in [*lines[:50], *("".join(rng.choice("0123456789+= answer;\n") for _ in range(30)) for _ in range(50))]:
        assert bpe.decode(bpe.encode(s)) == s and again.encode(s) == bpe.encode(s)
    assert len(bpe.encode(lines[0])) < len(lines[0])  # it does compress the text it learned on

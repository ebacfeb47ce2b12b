"""Weight quantization by per-group round-to-nearest (RTN), for any torch module (tiny and hf backends alike).

A `Quant` names one rung of the bit-width ladder: ``fp32`` (unchanged), ``bf16`` (each weight rounded to the nearest
bfloat16), or ``int{8,4,3,2}-g{G}[-asym]``: each row of a weight matrix is cut into groups of `G` consecutive input
weights (the whole row when it is shorter than `G`), and each group is rounded to 2^bits levels with its own scale —
symmetric around zero by default (levels −2^(b−1)·s … (2^(b−1)−1)·s, s = max|w| / (2^(b−1)−1)), or asymmetric with a
zero point (2^b levels spanning [min, max] of the group). This is the RTN baseline of Liu et al. 2023
("Do emergent abilities exist in quantized LLMs?"), without GPTQ's error correction.

The quantized weights are *dequantized back to float* in place (fake quantization): the forward pass runs in the
model's dtype, so what is measured is the information lost by rounding, not an integer kernel's speed. Only the
weights of `nn.Linear` and `nn.Embedding` modules are quantized; LayerNorm gains and biases stay in full precision
(as in GPTQ/AWQ), and a weight shared by two modules (tied embeddings) is rounded once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

_PATTERN = re.compile(r"int(?P<bits>[2-8])-g(?P<group>\d+)(?P<asym>-asym)?")
FLOATS = ("fp32", "bf16")


@dataclass(frozen=True)
class Quant:
    """One weight format. `bits` None: a float format (`name` fp32 or bf16); else RTN at `bits` bits per weight in
    groups of `group` weights, `symmetric` or with a zero point."""

    name: str
    bits: int | None = None
    group: int = 0
    symmetric: bool = True

    @property
    def bits_per_weight(self) -> float:
        """Storage cost in bits per weight, counting one fp16 scale per group (and an fp16 zero point if
        asymmetric): 32 for fp32, 16 for bf16."""
        if self.bits is None:
            return 32.0 if self.name == "fp32" else 16.0
        return self.bits + (16 if self.symmetric else 32) / self.group


def parse_quant(text: str) -> Quant:
    """``fp32``, ``bf16`` or ``int{2..8}-g{G}[-asym]`` (e.g. ``int4-g64``) as a `Quant`; ValueError otherwise."""
    if text in FLOATS:
        return Quant(text)
    m = _PATTERN.fullmatch(text)
    if m is None or int(m["group"]) < 1:
        raise ValueError(f"unknown weight format {text!r} (fp32, bf16, or int<bits>-g<group>[-asym], "
                         "e.g. int4-g64)")
    return Quant(text, int(m["bits"]), int(m["group"]), m["asym"] is None)


def rtn(w: torch.Tensor, bits: int, group: int, symmetric: bool = True) -> torch.Tensor:
    """`w` (any shape, last dim = input weights) rounded to the nearest of 2^bits levels per group of `group`
    consecutive weights along the last dim (one group per row if the row is shorter), returned dequantized in
    `w`'s dtype. A row not divisible by `group` has a shorter last group."""
    shape, dtype = w.shape, w.dtype
    rows = w.detach().to(torch.float32).reshape(-1, shape[-1])
    g = min(group, rows.shape[1])
    pad = -rows.shape[1] % g
    # pad by repeating each row's last weight: it cannot widen the last group's range
    x = torch.cat([rows, rows[:, -1:].expand(-1, pad)], 1) if pad else rows
    x = x.reshape(rows.shape[0], -1, g)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = x.abs().amax(-1, keepdim=True) / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.clamp(torch.round(x / scale), -qmax - 1, qmax) * scale
    else:
        lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
        scale = (hi - lo) / (2**bits - 1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.round(-lo / scale)
        q = (torch.clamp(torch.round(x / scale) + zero, 0, 2**bits - 1) - zero) * scale
    return q.reshape(rows.shape[0], -1)[:, : rows.shape[1]].reshape(shape).to(dtype)


def quantize_weight(w: torch.Tensor, quant: Quant) -> torch.Tensor:
    """`w` in `quant`'s format, dequantized back to `w`'s dtype (fp32: `w` unchanged)."""
    if quant.bits is not None:
        return rtn(w, quant.bits, quant.group, quant.symmetric)
    return w.to(torch.bfloat16).to(w.dtype) if quant.name == "bf16" else w


@torch.no_grad()
def quantize_module(module: nn.Module, quant: Quant) -> int:
    """Replace, in place, the weight of every `nn.Linear` and `nn.Embedding` in `module` by its `quant` rounding
    (dequantized; see the module docstring). Returns how many weights (elements) were rounded."""
    seen: set[int] = set()
    n = 0
    for sub in module.modules():
        if not isinstance(sub, nn.Linear | nn.Embedding):
            continue
        w = sub.weight
        if id(w) in seen:
            continue
        seen.add(id(w))
        w.copy_(quantize_weight(w, quant))
        n += w.numel()
    return n

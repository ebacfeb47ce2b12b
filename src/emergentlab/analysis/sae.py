"""A TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") on activation
vectors, its quality numbers, and the rule that matches features across two models.

`train_sae(acts, n_features, k, ...)`: each vector x (d values) is encoded as z = TopK(ReLU(W_enc (x − b_dec) +
b_enc)) — only the k largest of `n_features` activations kept — and decoded as x̂ = z W_dec + b_dec, with every
decoder row kept at unit norm, trained by Adam on the mean squared error.

Cross-model matching (two SAEs on two models of different widths cannot compare decoder directions): run both on
the *same tokens* and match each feature of one to the feature of the other whose activations correlate most
(Pearson over tokens). A feature of the larger model whose best correlation is below `threshold` is "absent" in the
smaller one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class TopKSAE(nn.Module):
    """`n_features` dictionary directions over `d`-dimensional inputs, `k` active per input."""

    def __init__(self, d: int, n_features: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        if not 1 <= k <= n_features:
            raise ValueError(f"k must be in 1..n_features ({n_features}), got {k}")
        self.k = k
        w = torch.randn(n_features, d, generator=generator)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(n_features))
        self.b_dec = nn.Parameter(torch.zeros(d))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, n_features) activations, all but each row's k largest set to 0."""
        pre = torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x) @ self.W_dec + self.b_dec


@dataclass
class SAEStats:
    """fvu: fraction of variance unexplained, Σ‖x − x̂‖² / Σ‖x − x̄‖² (0 perfect, 1 no better than the mean);
    dead_share: fraction of features active on no input of the set; l0: mean active features per input."""

    fvu: float
    dead_share: float
    l0: float


def train_sae(acts: torch.Tensor, n_features: int, k: int, generator: torch.Generator, steps: int = 2000,
              batch: int = 256, lr: float = 3e-3) -> TopKSAE:
    """A `TopKSAE` fitted to `acts` (n, d) by `steps` Adam steps on batches drawn with `generator`."""
    x = acts.detach().to(torch.float32)
    sae = TopKSAE(x.shape[1], n_features, k, generator)
    with torch.no_grad():
        sae.b_dec.copy_(x.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    for _ in range(steps):
        xb = x[torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=generator)]
        loss = ((sae(xb) - xb) ** 2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True))
    return sae.eval()


@torch.no_grad()
def sae_stats(sae: TopKSAE, acts: torch.Tensor) -> SAEStats:
    """Reconstruction and sparsity of `sae` on `acts` (n, d); see `SAEStats` for the units."""
    x = acts.to(torch.float32)
    z = sae.encode(x)
    err = ((z @ sae.W_dec + sae.b_dec - x) ** 2).sum()
    var = ((x - x.mean(0)) ** 2).sum()
    return SAEStats(float(err / var), float(((z > 0).sum(0) == 0).float().mean()), float((z > 0).sum(1).float().mean()))


def match_features(za: torch.Tensor, zb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each feature of `za` (n tokens, fa), the `zb` feature (n, fb) whose activations on the same n tokens
    correlate most, and that Pearson correlation (−1…1; 0 for a feature constant on these tokens)."""
    def unit(z: torch.Tensor) -> torch.Tensor:
        c = z.to(torch.float32) - z.to(torch.float32).mean(0)
        n = c.norm(dim=0)
        return c / torch.where(n > 0, n, torch.ones_like(n))

    corr = unit(za).T @ unit(zb)
    best = corr.max(dim=1)
    return best.indices, best.values


def top_examples(z: torch.Tensor, feature: int, n: int = 5) -> list[tuple[int, float]]:
    """(token index, activation) of the `n` tokens where `feature` is most active, largest first (active only)."""
    v = z[:, feature]
    top = v.topk(min(n, v.numel()))
    return [(int(i), float(a)) for i, a in zip(top.indices, top.values, strict=True) if a > 0]

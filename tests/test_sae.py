"""The TopK SAE recovers a planted sparse dictionary; stats and cross-model matching on known inputs."""

from __future__ import annotations

import torch

from emergentlab.analysis.sae import match_features, sae_stats, top_examples, train_sae
from emergentlab.experiments.base import torch_threads


def _planted(n: int, d: int, m: int, k: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n inputs, each a sum of k of m unit directions in d dims with positive weights; (inputs, directions)."""
    dirs = torch.randn(m, d, generator=g)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    idx = torch.rand(n, m, generator=g).argsort(dim=1)[:, :k]
    codes = torch.zeros(n, m).scatter(1, idx, 0.5 + torch.rand(n, k, generator=g))
    return codes @ dirs, dirs


def test_sae_recovers_a_planted_dictionary() -> None:
    g = torch.Generator().manual_seed(0)
    x, dirs = _planted(4000, 24, 32, 3, g)
    with torch_threads(1):  # matrices this small run fastest on one thread (and do not fight other processes)
        sae = train_sae(x, n_features=48, k=3, generator=g, steps=1000)
    cos = dirs @ sae.W_dec.detach().T  # (planted, learned), unit rows both
    recovered = (cos.max(dim=1).values > 0.9).float().mean()
    assert recovered >= 0.9, f"{recovered:.2f} of planted directions recovered"
    st = sae_stats(sae, x)
    assert st.fvu < 0.1 and st.l0 <= 3 and 0 <= st.dead_share < 0.5
    # a random dictionary of the same size explains far less
    blank = train_sae(x, n_features=48, k=3, generator=torch.Generator().manual_seed(1), steps=0)
    assert sae_stats(blank, x).fvu > 3 * st.fvu


def test_matching_pairs_features_by_activation_correlation() -> None:
    g = torch.Generator().manual_seed(0)
    za = torch.rand(200, 3, generator=g)
    zb = torch.stack([torch.rand(200, generator=g), 2 * za[:, 0], za[:, 2] + 0.01 * torch.rand(200, generator=g)], 1)
    idx, corr = match_features(za, zb)
    assert idx[0] == 1 and idx[2] == 2 and corr[0] > 0.999 and corr[2] > 0.99
    assert corr[1] < 0.5  # feature 1 of `za` has no partner: absent in the other model
    assert [i for i, _ in top_examples(za, 0, 3)] == za[:, 0].argsort(descending=True)[:3].tolist()

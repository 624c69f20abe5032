"""Building blocks shared by the net families: conditioning of G, heads of D, anti-collapse layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Maxout(nn.Module):
    """Linear layer to `out * pieces` units, max over each group of `pieces`: (n, d_in) -> (n, out)."""

    def __init__(self, d_in: int, out: int, pieces: int):
        super().__init__()
        self.out, self.pieces = out, pieces
        self.lin = nn.Linear(d_in, out * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).view(x.shape[0], self.out, self.pieces).amax(-1)


def _code(embedding: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Mode codes: y (n,) int64 picks rows; y (n, k) float weights mixes them (interpolation).

    Rows are picked by a one-hot product, not an index lookup: the lookup's backward adds repeated
    modes' gradients with atomics on CUDA, in a different order each run, which breaks bit-exact
    resume there."""
    w = F.one_hot(y, embedding.num_embeddings) if y.dim() == 1 else y
    return w.to(embedding.weight.dtype) @ embedding.weight


class ConcatEmbedding(nn.Module):
    """G's condition as in Self-Conditioned GAN: an L2-normalised embedding of the mode concatenated
    to z: (z (n, z_dim), y (n,) or mixing weights (n, k)) -> (n, z_dim + dim)."""

    def __init__(self, k: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(k, dim)
        self.dim = dim
        self.extra = dim  # what G's first layer takes beyond z

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, F.normalize(_code(self.embedding, y), dim=1)], 1)


class AddEmbedding(nn.Module):
    """G's condition as in MIC-GANs: a learned per-mode code added to z, so a convex combination of
    modes is the same combination of codes: (z (n, z_dim), y (n,) or weights (n, k)) -> (n, z_dim)."""

    def __init__(self, k: int, z_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(k, z_dim)
        self.extra = 0

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return z + _code(self.embedding, y)


def make_cond(kind: str, k: int, z_dim: int, embed_dim: int) -> nn.Module:
    """G's conditioning by name (model.g_cond): concat | add."""
    if kind == "add":
        return AddEmbedding(k, z_dim)
    return ConcatEmbedding(k, embed_dim)


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: each sample gets, per kernel b, sum_j exp(-||M_ib - M_jb||_1), a measure
    of how close it is to the rest of the batch, so D can see a collapsed batch.
    (n, d) -> (n, d + kernels)."""

    def __init__(self, d: int, kernels: int, dim: int):
        super().__init__()
        self.kernels, self.dim = kernels, dim
        self.T = nn.Parameter(torch.randn(d, kernels * dim) * 0.1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = (h @ self.T).view(-1, self.kernels, self.dim).transpose(0, 1)  # (B, n, C)
        l1 = torch.cdist(m, m, p=1)  # (B, n, n), without materialising (n, n, B, C)
        o = torch.exp(-l1).sum(2) - 1.0  # drop the sample's own exp(0) = 1
        return torch.cat([h, o.t()], 1)


class DHead(nn.Module):
    """D's output layers on its features h (n, d):

    - unconditional: one logit per sample (y is None);
    - conditional, `multi` (Self-Conditioned GAN's choice): one logit per mode, the y-th is used;
    - conditional, `projection` (Miyato & Koyama 2018): the unconditional logit + <embed(y), h>.
    Both the unconditional and a conditional head exist so that a method can switch between them
    (MIC-GANs' initialization stage).
    """

    def __init__(self, d: int, k: int, kind: str = "multi"):
        super().__init__()
        if kind not in ("multi", "projection"):
            raise ValueError(f"D head must be multi or projection, got {kind!r}")
        self.kind = kind
        self.uncond = nn.Linear(d, 1)
        self.cond = nn.Linear(d, k) if kind == "multi" else nn.Embedding(k, d)

    def forward(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            return self.uncond(h).squeeze(1)
        if self.kind == "projection":
            return self.uncond(h).squeeze(1) + (_code(self.cond, y) * h).sum(1)
        return self.cond(h).gather(1, y.view(-1, 1)).squeeze(1)

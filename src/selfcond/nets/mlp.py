"""The 2D nets of the Self-Conditioned GAN paper's code (2d_mix)."""

from __future__ import annotations

import torch
from torch import nn

from selfcond.nets.layers import DHead, Maxout, MinibatchDiscrimination, make_cond


class MLPGenerator(nn.Module):
    """z (n, z_dim) and mode y (n,) -> point (n, out_dim).

    [z, normalised embedding(y)] -> depth x [Linear(width), BatchNorm, ReLU] -> Linear(out_dim).
    """

    def __init__(self, k: int, z_dim: int = 2, embed_dim: int = 32, width: int = 400, depth: int = 4,
                 out_dim: int = 2, cond: str = "concat"):
        super().__init__()
        self.z_dim, self.k = z_dim, k
        self.cond = make_cond(cond, k, z_dim, embed_dim)
        layers, d = [], z_dim + self.cond.extra
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.BatchNorm1d(width), nn.ReLU(True)]
            d = width
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(self.cond(z, y))


class MLPDiscriminator(nn.Module):
    """Point x (n, in_dim) -> logit (n / pack,).

    3 maxout layers (width units, `pieces` pieces) give the features used for clustering; then
    optional minibatch discrimination, then the heads. With pack > 1 (PacGAN) consecutive samples are
    concatenated into one input, so D judges `pack` samples jointly.
    """

    def __init__(self, k: int, in_dim: int = 2, width: int = 200, pieces: int = 5, pack: int = 1,
                 mbd_kernels: int = 0, mbd_dim: int = 5):
        super().__init__()
        self.pack = pack
        self.trunk = nn.Sequential(
            Maxout(in_dim * pack, width, pieces), Maxout(width, width, pieces), Maxout(width, width, pieces))
        self.feature_dim = width
        self.mbd = MinibatchDiscrimination(width, mbd_kernels, mbd_dim) if mbd_kernels else None
        self.head = DHead(width + mbd_kernels, k)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (n / pack, width): what the kmeans partition clusters."""
        return self.trunk(x.reshape(x.shape[0] // self.pack, -1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        if self.mbd is not None:
            h = self.mbd(h)
        return self.head(h, y)


class MLPEncoder(nn.Module):
    """MIC-GANs' Q for points: (n, in_dim) -> 2 x [Linear(width), LeakyReLU(0.2)] -> (n, dim)."""

    def __init__(self, dim: int, width: int = 200, in_dim: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, width), nn.LeakyReLU(0.2, True),
                                 nn.Linear(width, width), nn.LeakyReLU(0.2, True), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

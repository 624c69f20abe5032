"""The 2D nets of the Self-Conditioned GAN paper's code (2d_mix): family `mlp`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from selfcond.nets.base import Discriminator, Encoder, Generator, NetFamily, NetOptions, register
from selfcond.nets.layers import DHead, Maxout, MinibatchDiscrimination, make_cond
from selfcond.options import opt


class MLPGenerator(Generator):
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


class MLPDiscriminator(Discriminator):
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


class MLPEncoder(Encoder):
    """MIC-GANs' Q for points: (n, in_dim) -> 2 x [Linear(width), LeakyReLU(0.2)] -> (n, dim)."""

    def __init__(self, dim: int, width: int = 200, in_dim: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, width), nn.LeakyReLU(0.2, True),
                                 nn.Linear(width, width), nn.LeakyReLU(0.2, True), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class MLPOptions(NetOptions):
    z_dim: int = opt(2, min=1, help="size of G's noise input")
    g_width: int = opt(400, min=1, help="units of G's hidden layers")
    d_width: int = opt(200, min=1, help="maxout units of D's layers (and Q's width)")
    g_depth: int = opt(4, min=1, help="hidden layers of G")
    maxout_pieces: int = opt(5, min=1, help="pieces of D's maxout units")


def _build(o: MLPOptions, shape: tuple, k: int, needs) -> tuple[MLPGenerator, MLPDiscriminator]:
    g = MLPGenerator(k, z_dim=o.z_dim, embed_dim=o.embed_dim, width=o.g_width, depth=o.g_depth,
                     out_dim=shape[0], cond=o.g_cond)
    d = MLPDiscriminator(k, in_dim=shape[0], width=o.d_width, pieces=o.maxout_pieces, pack=needs.pack,
                         mbd_kernels=needs.mbd_kernels, mbd_dim=needs.mbd_dim)
    return g, d


register(NetFamily("mlp", "points", MLPOptions, build=_build, default=True,
                   encoder=lambda o, shape, dim: MLPEncoder(dim, width=o.d_width, in_dim=shape[0])))

"""The "deep" DCGAN of the Self-Conditioned GAN paper's code (dcgan_deep), its CIFAR-10 net, for 28,
32 and 64 px: family `dcgan-deep`.

G = fc -> (8w, s, s), s = 4 (7 for 28 px) -> stride-2 transposed convs with BatchNorm and ReLU, halving
channels -> 3x3 conv -> tanh (at 32 px exactly the paper's G, w = ngf = 64). D = pairs of a 3x3
conv and a 4x4 stride-2 conv, LeakyReLU(0.1), no normalisation, channels w, 2w, 4w, then a 3x3 conv to
8w -> flattened features -> linear heads (at 32 px exactly the paper's D, w = ndf = 64).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from selfcond.nets.base import (Discriminator, Encoder, Generator, NetFamily, NetOptions,
                                activation_chunk, check_image_net, register)
from selfcond.nets.layers import DHead, make_cond
from selfcond.options import opt

RESOLUTIONS = {28: 7, 32: 4, 64: 4}  # resolution: G's coarsest side


def _downs(resolution: int) -> int:
    return (resolution // RESOLUTIONS[resolution]).bit_length() - 1


class DeepGenerator(Generator):
    """z (n, z_dim), y (n,) or weights (n, k) -> images (n, C, R, R) in [-1, 1]."""

    def __init__(self, k: int, z_dim: int, width: int, resolution: int, channels: int, embed_dim: int, cond: str):
        super().__init__()
        self.z_dim, self.k, self.start = z_dim, k, RESOLUTIONS[resolution]
        self.chunk = activation_chunk(2 * width * resolution ** 2)
        ch = [8 * width >> i for i in range(_downs(resolution) + 1)]
        self.cond = make_cond(cond, k, z_dim, embed_dim)
        self.fc = nn.Linear(z_dim + self.cond.extra, ch[0] * self.start ** 2)
        layers = []
        for a, b in zip(ch, ch[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU(True)]
        self.net = nn.Sequential(*layers, nn.Conv2d(ch[-1], channels, 3, 1, 1), nn.Tanh())

    def forward(self, z, y):
        return self.net(self.fc(self.cond(z, y)).view(z.shape[0], -1, self.start, self.start))


def deep_trunk(width: int, resolution: int, channels: int) -> tuple[nn.Sequential, int]:
    """The paper's D trunk: (n, C, R, R) -> flattened features (n, feature_dim)."""
    layers, c, side = [], channels, resolution
    for i in range(_downs(resolution)):
        w = width << min(i, 2)
        layers += [nn.Conv2d(c, w, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(w, w, 4, 2, 1), nn.LeakyReLU(0.1)]
        c, side = w, (side - 2) // 2 + 1
    layers += [nn.Conv2d(c, 8 * width, 3, 1, 1), nn.LeakyReLU(0.1), nn.Flatten()]
    return nn.Sequential(*layers), 8 * width * side * side


class DeepDiscriminator(Discriminator):
    def __init__(self, k: int, width: int, resolution: int, channels: int, head: str):
        super().__init__()
        self.trunk, self.feature_dim = deep_trunk(width, resolution, channels)
        self.head = DHead(self.feature_dim, k, head)
        self.chunk = activation_chunk(width * resolution ** 2)

    def features(self, x):
        return self.trunk(x)

    def forward(self, x, y=None):
        return self.head(self.features(x), y)


class DeepEncoder(Encoder):
    def __init__(self, dim: int, width: int, resolution: int, channels: int):
        super().__init__()
        self.trunk, f = deep_trunk(width, resolution, channels)
        self.out = nn.Linear(f, dim)
        self.chunk = activation_chunk(width * resolution ** 2)

    def forward(self, x):
        return self.out(self.trunk(x))


@dataclass
class DeepOptions(NetOptions):
    embed_dim: int = opt(256, min=1, help="size of G's mode embedding (g_cond concat)")
    d_head: str = opt("multi", choices=("multi", "projection"), help="D's conditional head")

    def check(self, cfg) -> None:
        check_image_net(cfg, "dcgan-deep", RESOLUTIONS)


register(NetFamily(
    "dcgan-deep", "images", DeepOptions,
    build=lambda o, shape, k, needs: (
        DeepGenerator(k, o.z_dim, o.g_width, shape[1], shape[0], o.embed_dim, o.g_cond),
        DeepDiscriminator(k, o.d_width, shape[1], shape[0], o.d_head)),
    encoder=lambda o, shape, dim: DeepEncoder(dim, o.d_width, shape[1], shape[0])))

"""The "shallow" DCGAN of the Self-Conditioned GAN paper's code (dcgan_shallow), for 28, 32 and 64 px.

Layout as in the paper: G = fc -> 4x4 (7x7 for 28 px) -> stride-2 transposed convs with BatchNorm and
ReLU -> 3x3 conv -> tanh; D = stride-2 4x4 convs with BatchNorm and LeakyReLU(0.2) -> flattened
features -> linear heads. Channels are 4 * width at the coarsest stage and halve at each doubling of
resolution, so `width` = 2 * the paper's ngf/ndf: width 128 at 32 px is the paper's net exactly; the
default width 64 costs about a third as much, which makes CPU runs practical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from selfcond.nets.base import Discriminator, Encoder, Generator, NetFamily, NetOptions, check_image_net, register
from selfcond.nets.layers import DHead, make_cond
from selfcond.options import opt

_START = {28: 7, 32: 4, 64: 4}  # coarsest side of G for each supported resolution


def _ups(resolution: int) -> int:
    """Number of 2x upsamplings from the coarsest stage to `resolution`."""
    if resolution not in _START:
        raise ValueError(f"dcgan supports resolutions {sorted(_START)}, got {resolution}")
    return (resolution // _START[resolution]).bit_length() - 1


class DCGANGenerator(Generator):
    """z (n, z_dim), y (n,) -> images (n, C, R, R) in [-1, 1].

    [z, normalised embedding(y)] -> fc -> (4w, s, s), s = 4 (7 for 28 px) -> ups x [ConvTranspose 4x4
    stride 2, BatchNorm, ReLU], halving channels -> Conv 3x3 -> tanh.
    """

    def __init__(self, k: int, z_dim: int = 128, width: int = 64, resolution: int = 32, channels: int = 1,
                 embed_dim: int = 256, cond: str = "concat"):
        super().__init__()
        ups = _ups(resolution)
        self.z_dim, self.k, self.resolution, self.channels = z_dim, k, resolution, channels
        self.start = _START[resolution]
        ch = [max(1, (4 * width) >> i) for i in range(ups + 1)]
        self.cond = make_cond(cond, k, z_dim, embed_dim)
        self.fc = nn.Linear(z_dim + self.cond.extra, ch[0] * self.start ** 2)
        layers = []
        for a, b in zip(ch, ch[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.Conv2d(ch[-1], channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(self.cond(z, y))
        return self.net(h.view(z.shape[0], -1, self.start, self.start))


def conv_trunk(width: int, resolution: int, channels: int, batchnorm: bool = True) -> tuple[nn.Sequential, int]:
    """(ups + 1) x [Conv 4x4 stride 2, (BatchNorm), LeakyReLU(0.2)], channels doubling up to 4 * width
    (R = 32: 16, 8, 4, 2 px), flattened: (n, C, R, R) -> (n, feature_dim). Returns (trunk, feature_dim)."""
    ups = _ups(resolution)
    ch = [max(1, (4 * width) >> i) for i in range(ups, -1, -1)]
    layers, c, side = [], channels, resolution
    for b in ch:
        layers += [nn.Conv2d(c, b, 4, 2, 1), *([nn.BatchNorm2d(b)] if batchnorm else []), nn.LeakyReLU(0.2, True)]
        c, side = b, (side - 2) // 2 + 1  # 4x4 kernel, stride 2, padding 1 (7 px -> 3)
    return nn.Sequential(*layers, nn.Flatten()), c * side * side


class DCGANDiscriminator(Discriminator):
    """images (n, C, R, R) -> logit (n,): `conv_trunk` -> flattened features (n, feature_dim) ->
    DHead (unconditional logit, or the y-th of k logits)."""

    def __init__(self, k: int, width: int = 64, resolution: int = 32, channels: int = 1, head: str = "multi"):
        super().__init__()
        self.trunk, self.feature_dim = conv_trunk(width, resolution, channels)
        self.head = DHead(self.feature_dim, k, head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened last conv layer (n, feature_dim): what the kmeans partition clusters."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), y)


class DCGANEncoder(Encoder):
    """MIC-GANs' Q: D's trunk without BatchNorm (an image's embedding must not depend on its batch)
    -> linear: images (n, C, R, R) -> embeddings (n, dim)."""

    def __init__(self, dim: int, width: int = 64, resolution: int = 32, channels: int = 1):
        super().__init__()
        self.trunk, feature_dim = conv_trunk(width, resolution, channels, batchnorm=False)
        self.out = nn.Linear(feature_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x))


@dataclass
class DCGANOptions(NetOptions):
    embed_dim: int = opt(256, min=1, help="size of G's mode embedding (g_cond concat)")
    d_head: str = opt("multi", choices=("multi", "projection"),
                      help="D's conditional head: one logit per mode, or a projection")

    def check(self, cfg) -> None:
        check_image_net(cfg, "dcgan", _START)


def _build(o: DCGANOptions, shape: tuple, k: int, needs) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    channels, res = shape[0], shape[1]
    g = DCGANGenerator(k, z_dim=o.z_dim, width=o.g_width, resolution=res, channels=channels,
                       embed_dim=o.embed_dim, cond=o.g_cond)
    d = DCGANDiscriminator(k, width=o.d_width, resolution=res, channels=channels, head=o.d_head)
    return g, d


register(NetFamily("dcgan", "images", DCGANOptions, build=_build, default=True,
                   encoder=lambda o, shape, dim: DCGANEncoder(dim, width=o.d_width, resolution=shape[1],
                                                              channels=shape[0])))

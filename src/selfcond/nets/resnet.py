"""ResNets: family `resnet`, in two variants (model.variant).

- `resnet2`: the Self-Conditioned GAN code's ImageNet/Places net (from Mescheder et al.'s GAN
  stability code), for 32 to 256 px: it keeps its 128 px shape and scales the first stage,
  s0 = R / 32. G = fc -> (16w, s0, s0) -> 6 stages of two residual blocks (nearest 2x upsampling
  between them; 16w, 16w, 8w, 4w, 2w, w channels) -> 3x3 conv -> tanh; D mirrors it with 3x3 average
  pools and ends in the flattened features (16w * s0 * s0) and linear heads. Residual blocks:
  x + 0.1 * conv(lrelu(conv(lrelu(x)))), no normalisation, a learned 1x1 shortcut when channels change.
  At 128 px with w = 64 it is the paper's net.
- `sngan`: the 32 px ResNet of SNGAN / BigGAN for CIFAR-size data (28 and 32 px): G = fc -> (4w, 4, 4)
  (7 x 7 at 28 px) -> up-blocks with BatchNorm and ReLU -> BN, ReLU, 3x3 conv -> tanh; D = an
  optimised first block and residual down-blocks with spectral norm on every layer, ReLU, a global
  sum pool (the features, 4w) and a spectrally normalised head (a projection head by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from selfcond.nets.base import (Discriminator, Encoder, Generator, NetFamily, NetOptions,
                                activation_chunk, check_image_net, register)
from selfcond.nets.layers import DHead, make_cond
from selfcond.options import opt

RESNET2 = (32, 64, 128, 256)
SNGAN = {28: 7, 32: 4}  # resolution: G's coarsest side


def _lrelu(x):
    return F.leaky_relu(x, 0.2)


class Resnet2Block(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        hidden = min(c_in, c_out)
        self.conv_0 = nn.Conv2d(c_in, hidden, 3, padding=1)
        self.conv_1 = nn.Conv2d(hidden, c_out, 3, padding=1)
        self.conv_s = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else None

    def forward(self, x):
        skip = x if self.conv_s is None else self.conv_s(x)
        return skip + 0.1 * self.conv_1(_lrelu(self.conv_0(_lrelu(x))))


G_CHANNELS = (16, 16, 8, 4, 2, 1)  # per stage, times the width


class Resnet2Generator(Generator):
    def __init__(self, k: int, z_dim: int, width: int, resolution: int, channels: int, embed_dim: int, cond: str):
        super().__init__()
        self.z_dim, self.k, self.s0, self.width = z_dim, k, resolution // 32, width
        self.chunk = activation_chunk(2 * width * resolution ** 2)
        self.cond = make_cond(cond, k, z_dim, embed_dim)
        self.fc = nn.Linear(z_dim + self.cond.extra, 16 * width * self.s0 ** 2)
        chans = [c * width for c in G_CHANNELS]
        self.stages = nn.ModuleList(
            nn.Sequential(Resnet2Block(a, b), Resnet2Block(b, b)) for a, b in zip([chans[0]] + chans[:-1], chans))
        self.conv_img = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, z, y):
        h = self.fc(self.cond(z, y)).view(z.shape[0], 16 * self.width, self.s0, self.s0)
        for i, stage in enumerate(self.stages):
            if i:
                h = F.interpolate(h, scale_factor=2)
            h = stage(h)
        return torch.tanh(self.conv_img(_lrelu(h)))


def resnet2_trunk(width: int, resolution: int, channels: int) -> tuple[nn.Module, int]:
    chans = [c * width for c in reversed(G_CHANNELS)]  # 1, 2, 4, 8, 16, 16 times the width
    outs = [2 * width, 4 * width, 8 * width, 16 * width, 16 * width, 16 * width]

    class Trunk(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_img = nn.Conv2d(channels, width, 3, padding=1)
            self.stages = nn.ModuleList(nn.Sequential(Resnet2Block(a, a), Resnet2Block(a, b)) for a, b in zip(chans, outs))

        def forward(self, x):
            h = self.conv_img(x)
            for i, stage in enumerate(self.stages):
                if i:
                    h = F.avg_pool2d(h, 3, stride=2, padding=1)
                h = stage(h)
            return _lrelu(h).flatten(1)

    return Trunk(), 16 * width * (resolution // 32) ** 2


class SNBlock(nn.Module):
    """SNGAN's residual block: G's (BatchNorm, ReLU, nearest 2x up) or D's (ReLU, avg-pool down, SN)."""

    def __init__(self, c_in: int, c_out: int, up: bool = False, down: bool = False, first: bool = False):
        super().__init__()
        sn = (lambda m: m) if up else spectral_norm
        self.up, self.down, self.first = up, down, first
        self.c1, self.c2 = sn(nn.Conv2d(c_in, c_out, 3, padding=1)), sn(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = sn(nn.Conv2d(c_in, c_out, 1)) if (c_in != c_out or up or down) else None
        self.b1, self.b2 = (nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)) if up else (None, None)

    def forward(self, x):
        h = x
        if self.up:
            h = F.interpolate(F.relu(self.b1(h)), scale_factor=2)
        elif not self.first:
            h = F.relu(h)
        h = self.c1(h)
        h = self.c2(F.relu(self.b2(h)) if self.up else F.relu(h))
        s = x
        if self.up:
            s = F.interpolate(s, scale_factor=2)
        if self.first:  # the optimised block pools before its shortcut conv
            s = F.avg_pool2d(s, 2)
        if self.skip is not None:
            s = self.skip(s)
        if self.down:
            h = F.avg_pool2d(h, 2)
            if not self.first:
                s = F.avg_pool2d(s, 2)
        return h + s


class SNGANGenerator(Generator):
    def __init__(self, k: int, z_dim: int, width: int, resolution: int, channels: int, embed_dim: int, cond: str):
        super().__init__()
        self.z_dim, self.k, self.start, c = z_dim, k, SNGAN[resolution], 4 * width
        self.chunk = activation_chunk(c * resolution ** 2)
        self.cond = make_cond(cond, k, z_dim, embed_dim)
        self.fc = nn.Linear(z_dim + self.cond.extra, c * self.start ** 2)
        ups = (resolution // self.start).bit_length() - 1
        self.blocks = nn.Sequential(*[SNBlock(c, c, up=True) for _ in range(ups)])
        self.out = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(True), nn.Conv2d(c, channels, 3, padding=1), nn.Tanh())

    def forward(self, z, y):
        return self.out(self.blocks(self.fc(self.cond(z, y)).view(z.shape[0], -1, self.start, self.start)))


def sngan_trunk(width: int, channels: int, sn: bool = True) -> tuple[nn.Module, int]:
    c = 4 * width
    blocks = [SNBlock(channels, c, down=True, first=True), SNBlock(c, c, down=True), SNBlock(c, c), SNBlock(c, c)]

    class Trunk(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(*blocks)

        def forward(self, x):
            return F.relu(self.blocks(x)).sum((2, 3))  # global sum pool, as SNGAN

    return Trunk(), c


class ResNetDiscriminator(Discriminator):
    def __init__(self, k: int, o, resolution: int, channels: int):
        super().__init__()
        if o.variant == "sngan":
            self.trunk, self.feature_dim = sngan_trunk(o.d_width, channels)
        else:
            self.trunk, self.feature_dim = resnet2_trunk(o.d_width, resolution, channels)
        self.head = DHead(self.feature_dim, k, o.d_head)
        self.chunk = activation_chunk((4 if o.variant == "sngan" else 2) * o.d_width * resolution ** 2)
        if o.variant == "sngan":  # SNGAN normalises its head too
            self.head.uncond = spectral_norm(self.head.uncond)
            if o.d_head == "multi":
                self.head.cond = spectral_norm(self.head.cond)

    def features(self, x):
        return self.trunk(x)

    def forward(self, x, y=None):
        return self.head(self.features(x), y)


class ResNetEncoder(Encoder):
    """MIC-GANs' Q: the variant's D trunk (SNGAN's without spectral norm's state mattering) -> linear."""

    def __init__(self, dim: int, o, resolution: int, channels: int):
        super().__init__()
        if o.variant == "sngan":
            self.trunk, f = sngan_trunk(o.d_width, channels)
        else:
            self.trunk, f = resnet2_trunk(o.d_width, resolution, channels)
        self.out = nn.Linear(f, dim)
        self.chunk = activation_chunk((4 if o.variant == "sngan" else 2) * o.d_width * resolution ** 2)

    def forward(self, x):
        return self.out(self.trunk(x))


@dataclass
class ResNetOptions(NetOptions):
    variant: str = opt("resnet2", choices=("resnet2", "sngan"),
                       help="resnet2 (Self-Conditioned GAN's ImageNet net, 32-256 px) or sngan (28-32 px)")
    z_dim: int = opt(256, min=1, help="size of G's noise input")
    embed_dim: int = opt(256, min=1, help="size of G's mode embedding (g_cond concat)")
    d_head: str = opt("multi", choices=("multi", "projection"), help="D's conditional head")

    def check(self, cfg) -> None:
        check_image_net(cfg, "resnet", RESNET2 if self.variant == "resnet2" else tuple(SNGAN),
                        f" (variant {self.variant})")


def _build(o: ResNetOptions, shape, k, needs):
    g_cls = SNGANGenerator if o.variant == "sngan" else Resnet2Generator
    return (g_cls(k, o.z_dim, o.g_width, shape[1], shape[0], o.embed_dim, o.g_cond),
            ResNetDiscriminator(k, o, shape[1], shape[0]))


register(NetFamily("resnet", "images", ResNetOptions, build=_build,
                   encoder=lambda o, shape, dim: ResNetEncoder(dim, o, shape[1], shape[0])))

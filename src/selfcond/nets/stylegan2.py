"""StyleGAN2 (Karras et al. 2020) in plain PyTorch, no custom CUDA ops, so it runs on the CPU and on
any GPU: family `stylegan2`, 32 to 256 px (and 28).

G: z (normalised) -> mapping network (equalised-lr MLP, lr x 0.01) -> w; a synthesis network from a
constant 4 x 4 input through modulated / demodulated 3x3 convolutions (two per resolution, the first
upsampling bilinearly), per-layer noise inputs (random while training, fixed in eval mode so a seed
gives one image) and a skip architecture of 1x1 toRGB layers. D: residual, fromRGB, two 3x3 convs and
an average-pool per resolution with a 1x1 shortcut, then minibatch standard deviation, a 3x3 conv, a
linear layer (the features) and the heads (a projection head, as StyleGAN2-ADA, or one logit per mode).
All weights use equalised learning rate. The conditionings of MIC-GANs (model.g_cond): `add` adds the
mode's code to z (its StyleGAN2-ADA form), `const` gives each mode a constant input of its own (its
StyleGAN2 form), `concat` appends a normalised embedding to z. Lazy R1 is `train.r1_every`; channels
are min(8w, 256w / resolution) (w = model.g_width / d_width; w = 64 is StyleGAN2's 512 at 4-32 px).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from selfcond.nets.base import (Discriminator, Encoder, Generator, NetFamily, NetOptions,
                                activation_chunk, check_image_net, register)
from selfcond.nets.layers import DHead, _code, make_cond
from selfcond.options import opt

RESOLUTIONS = (28, 32, 64, 128, 256)
GAIN = math.sqrt(2)


def channels(width: int, res: int) -> int:
    return min(8 * width, max(1, 256 * width // res))


def widest(width: int, resolution: int) -> int:
    """Values per image of the largest activation of a G or D of this width (for `activation_chunk`)."""
    sides = [resolution >> i for i in range(resolution.bit_length()) if resolution >> i >= 4]
    return max(channels(width, r) * r * r for r in sides)


def _act(x):
    return F.leaky_relu(x, 0.2) * GAIN


class EqLinear(nn.Module):
    def __init__(self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul = lr_mul / math.sqrt(c_in), lr_mul

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale, self.pad = 1 / math.sqrt(c_in * k * k), k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class ModConv(nn.Module):
    """A modulated convolution: the style of w scales the input channels of the weight, then (with
    `demod`) each output channel is renormalised; one grouped conv for the whole batch."""

    def __init__(self, c_in: int, c_out: int, k: int, w_dim: int, demod: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.scale, self.demod, self.up, self.pad = 1 / math.sqrt(c_in * k * k), demod, up, k // 2

    def forward(self, x, w):
        n, c, h, wd = x.shape
        wt = self.weight[None] * (self.scale * self.affine(w))[:, None, :, None, None]  # (n, out, in, k, k)
        if self.demod:
            wt = wt * torch.rsqrt(wt.pow(2).sum((2, 3, 4), keepdim=True) + 1e-8)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            h, wd = 2 * h, 2 * wd
        out = F.conv2d(x.reshape(1, n * c, h, wd), wt.reshape(-1, c, *wt.shape[3:]), padding=self.pad, groups=n)
        return out.view(n, -1, h, wd)


class SynthLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, w_dim: int, res: int, up: bool = False):
        super().__init__()
        self.conv = ModConv(c_in, c_out, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(res, res))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x, w):
        x = self.conv(x, w)
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device) if self.training else self.noise_const
        return _act(x + noise * self.noise_strength + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, c_in: int, channels_out: int, w_dim: int):
        super().__init__()
        self.conv = ModConv(c_in, channels_out, 1, w_dim, demod=False)
        self.bias = nn.Parameter(torch.zeros(channels_out))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[None, :, None, None]


class ConstInputs(nn.Module):
    """MIC-GANs' StyleGAN2 conditioning: one learnt 4 x 4 input per mode (mixing weights mix them)."""

    def __init__(self, k: int, c: int, side: int):
        super().__init__()
        self.embedding = nn.Embedding(k, c * side * side)
        nn.init.normal_(self.embedding.weight)
        self.shape = (c, side, side)

    def forward(self, y):
        return _code(self.embedding, y).view(-1, *self.shape)


class StyleGAN2Generator(Generator):
    """z (n, z_dim), y (n,) or weights (n, k) -> images (n, C, R, R) in [-1, 1]."""

    def __init__(self, k: int, o, resolution: int, channels_out: int):
        super().__init__()
        self.z_dim, self.k, self.kind = o.z_dim, k, o.g_cond
        self.chunk = activation_chunk(widest(o.g_width, resolution))
        w_dim, width = o.w_dim, o.g_width
        self.start = 7 if resolution == 28 else 4
        if o.g_cond == "const":
            self.cond = None
            self.const = ConstInputs(k, channels(width, self.start), self.start)
        else:
            self.cond = make_cond(o.g_cond, k, o.z_dim, o.embed_dim)
            self.const = nn.Parameter(torch.randn(channels(width, self.start), self.start, self.start))
        layers, d = [], o.z_dim + (0 if self.cond is None else self.cond.extra)
        for _ in range(o.mapping_layers):
            layers.append(EqLinear(d, w_dim, lr_mul=0.01))
            d = w_dim
        self.mapping = nn.ModuleList(layers)
        res, c = self.start, channels(width, self.start)
        self.blocks = nn.ModuleList([nn.ModuleList([SynthLayer(c, c, w_dim, res), ToRGB(c, channels_out, w_dim)])])
        while res < resolution:
            res *= 2
            c2 = channels(width, res)
            self.blocks.append(nn.ModuleList([SynthLayer(c, c2, w_dim, res, up=True), SynthLayer(c2, c2, w_dim, res),
                                              ToRGB(c2, channels_out, w_dim)]))
            c = c2

    def forward(self, z, y):
        h = z if self.cond is None else self.cond(z, y)
        w = h * torch.rsqrt(h.pow(2).mean(1, keepdim=True) + 1e-8)  # normalise the 2nd moment of z
        for layer in self.mapping:
            w = _act(layer(w))
        x = self.const(y) if self.kind == "const" else self.const[None].expand(z.shape[0], -1, -1, -1)
        img = None
        for block in self.blocks:
            *convs, to_rgb = block
            for conv in convs:
                x = conv(x, w)
            rgb = to_rgb(x, w)
            img = rgb if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + rgb
        return img


class DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0, self.conv1 = EqConv(c_in, c_in, 3), EqConv(c_in, c_out, 3)
        self.skip = EqConv(c_in, c_out, 1, bias=False)

    def forward(self, x):
        h = F.avg_pool2d(_act(self.conv1(_act(self.conv0(x)))), 2)
        return (h + self.skip(F.avg_pool2d(x, 2))) / GAIN


class Trunk(nn.Module):
    """fromRGB and the residual blocks down to 4 x 4 (7 x 7 at 28 px), then (with `mbstd`) minibatch
    standard deviation, a 3x3 conv and a linear layer: (n, C, R, R) -> (n, c4)."""

    def __init__(self, width: int, resolution: int, channels_in: int, mbstd: bool = True):
        super().__init__()
        self.mbstd = mbstd
        res = resolution
        self.from_rgb = EqConv(channels_in, channels(width, res), 1)
        blocks, end = [], 7 if resolution == 28 else 4
        while res > end:
            blocks.append(DBlock(channels(width, res), channels(width, res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        c = channels(width, res)
        self.conv = EqConv(c + (1 if mbstd else 0), c, 3)
        self.fc = EqLinear(c * res * res, c)
        self.out_dim = c

    def forward(self, x, per_image: bool = False):
        """per_image: minibatch std over groups of one image, so an image's output does not depend
        on its batch (what clustering and assigning need)."""
        h = self.blocks(_act(self.from_rgb(x)))
        if self.mbstd:  # the std of each feature over groups of up to 4 images, averaged, as one channel
            n = h.shape[0]
            g = 1 if per_image else max(d for d in range(1, min(4, n) + 1) if n % d == 0)
            s = h.view(g, -1, *h.shape[1:]).var(0, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))  # (n / g,)
            h = torch.cat([h, s.repeat(g)[:, None, None, None].expand(-1, 1, *h.shape[2:])], 1)
        return _act(self.fc(_act(self.conv(h)).flatten(1)))


class StyleGAN2Discriminator(Discriminator):
    def __init__(self, k: int, o, resolution: int, channels_in: int):
        super().__init__()
        self.trunk = Trunk(o.d_width, resolution, channels_in)
        self.feature_dim = self.trunk.out_dim
        self.chunk = activation_chunk(widest(o.d_width, resolution))
        self.head = DHead(self.feature_dim, k, o.d_head)

    def features(self, x):
        """What k-means clusters: the trunk with minibatch std per image, so that an image's
        features, and so its mode, do not depend on the images it is featurised with."""
        return self.trunk(x, per_image=True)

    def forward(self, x, y=None):
        return self.head(self.trunk(x), y)


class StyleGAN2Encoder(Encoder):
    """MIC-GANs' Q: D's trunk without minibatch std (an image's embedding must not depend on its batch)."""

    def __init__(self, dim: int, o, resolution: int, channels_in: int):
        super().__init__()
        self.trunk = Trunk(o.d_width, resolution, channels_in, mbstd=False)
        self.chunk = activation_chunk(widest(o.d_width, resolution))
        self.out = nn.Linear(self.trunk.out_dim, dim)

    def forward(self, x):
        return self.out(self.trunk(x))


@dataclass
class StyleGAN2Options(NetOptions):
    z_dim: int = opt(512, min=1, help="size of G's noise input")
    w_dim: int = opt(512, min=1, help="size of the mapping network's output w")
    mapping_layers: int = opt(8, min=1, help="layers of the mapping network (StyleGAN2-ADA's CIFAR config: 2)")
    g_cond: str = opt("add", choices=("add", "const", "concat"),
                      help="add: the mode's code added to z; const: one constant input per mode; concat")
    d_head: str = opt("projection", choices=("projection", "multi"), help="D's conditional head")

    def check(self, cfg) -> None:
        check_image_net(cfg, "stylegan2", RESOLUTIONS)


register(NetFamily(
    "stylegan2", "images", StyleGAN2Options,
    build=lambda o, shape, k, needs: (StyleGAN2Generator(k, o, shape[1], shape[0]),
                                      StyleGAN2Discriminator(k, o, shape[1], shape[0])),
    encoder=lambda o, shape, dim: StyleGAN2Encoder(dim, o, shape[1], shape[0])))

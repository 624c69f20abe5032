"""DiffAugment (Zhao et al. 2020): differentiable augmentations of D's inputs, real and fake alike,
for datasets of a few thousand images. Policies (train.augment, comma-separated): `color`
(brightness, saturation, contrast), `translation` (up to 1/8 of the side, zero padded), `cutout` (a
square of half the side set to zero). Every draw comes from the generator given, so a run with
augmentation still resumes bit for bit. Images (n, C, H, W) in [-1, 1]; batched, no per-image loop."""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def _rand(n: int, g: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=g, device=g.device).to(x.device, x.dtype)


def color(x, g):
    n = x.shape[0]
    x = x + (_rand(n, g, x) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (_rand(n, g, x) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, g, x) + 0.5) + mean


def translation(x, g, ratio: float = 0.125):
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=g, device=g.device).to(x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=g, device=g.device).to(x.device)
    yy, xx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    yy = (yy[None] + dy + 1).clamp(0, h + 1)  # in the padded image
    xx = (xx[None] + dx + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))  # zero border: shifted-in pixels are 0
    flat = padded.flatten(2)  # (n, C, (h + 2) * (w + 2))
    idx = (yy * (w + 2) + xx).flatten(1)[:, None].expand(-1, x.shape[1], -1)
    return flat.gather(2, idx).view_as(x)


def cutout(x, g, ratio: float = 0.5):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=g, device=g.device).to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=g, device=g.device).to(x.device)
    yy, xx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    top, left = oy - ch // 2, ox - cw // 2  # the square's corner; it may reach past the border
    inside = (yy[None] >= top) & (yy[None] < top + ch) & (xx[None] >= left) & (xx[None] < left + cw)
    return x * (~inside)[:, None].to(x.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}


def augment(x: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """x augmented by each policy of `policy` in turn ("" = x itself)."""
    for name in filter(None, (p.strip() for p in policy.split(","))):
        x = _OPS[name](x, generator)
    return x

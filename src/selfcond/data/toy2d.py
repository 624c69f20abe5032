"""Mixtures of 2D Gaussians, the benchmark where mode collapse is easiest to see.

Points are sampled fresh for every batch from the run's generator, so the data is infinite and the
true mode of every sample is known (for evaluation and for the class-conditional upper bound).
"""

from __future__ import annotations

import math

import torch

from selfcond.data.base import DataOptions, DatasetSpec, SampledDataset, register


class Toy2D(SampledDataset):
    """A mixture of equally weighted isotropic Gaussians in the plane.

    Attributes:
        name: dataset name ("ring" or "grid").
        means: (K, 2) float32 tensor of the mixture means.
        std: standard deviation of every component (per coordinate).
    """

    shape = (2,)

    def __init__(self, name: str, means: torch.Tensor, variance: float):
        self.name = name
        self.means = means.float()
        self.variance = float(variance)
        self.std = math.sqrt(variance)

    @property
    def num_classes(self) -> int:
        """The number of mixture components."""
        return self.means.shape[0]

    def sample(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu"):
        """Draw n points: (x (n, 2) float32, y (n,) int64 true mode), on `device`."""
        means = self.means.to(device)
        y = torch.randint(self.num_classes, (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, generator=generator, device=device)
        return means[y] + self.std * noise, y


def ring(variance: float = 1e-4, modes: int = 8) -> Toy2D:
    """8 Gaussians on the unit circle, means (cos 2πi/8, sin 2πi/8), variance 1e-4."""
    angles = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return Toy2D("ring", torch.stack([angles.cos(), angles.sin()], 1), variance)


def grid(variance: float = 0.0025, side: int = 5) -> Toy2D:
    """25 Gaussians with means (2i-4, 2j-4), i, j in 0..4, variance 0.0025."""
    ticks = 2.0 * torch.arange(side, dtype=torch.float64) - (side - 1)
    gi, gj = torch.meshgrid(ticks, ticks, indexing="ij")
    return Toy2D("grid", torch.stack([gi.reshape(-1), gj.reshape(-1)], 1), variance)


def _spec(make) -> DatasetSpec:
    def info(data_dir=None) -> dict:
        return {"kind": "2d", "available": True, "shape": [2], "classes": make().num_classes}

    return DatasetSpec(make.__name__, "points", DataOptions, load=lambda options: make(),
                       available=lambda data_dir=None: True, info=info)


register(_spec(ring))
register(_spec(grid))

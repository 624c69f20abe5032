"""What every dataset hands the train loop."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """A batch of real data.

    x: (n, *shape) float32 on the training device.
    y: (n,) int64 true labels/modes, or None when the data has none.
    index: (n,) int64 dataset indices, or None for data sampled fresh (2D mixtures).
    """

    x: torch.Tensor
    y: torch.Tensor | None
    index: torch.Tensor | None

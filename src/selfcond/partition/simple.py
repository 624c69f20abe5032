"""Partitions that need no clustering: the baselines and the upper bound."""

from __future__ import annotations

import torch

from selfcond.data.base import Batch
from selfcond.errors import UserError
from selfcond.partition.base import Partition


class NoPartition(Partition):
    """Unconditional GAN: one mode, D's unconditional head."""

    conditional = False

    def __init__(self, device="cpu"):
        super().__init__(1, device)


class LabelPartition(Partition):
    """Ground-truth modes: the class-conditional upper bound (needs true labels)."""

    def __init__(self, dataset, device="cpu"):
        k = getattr(dataset, "num_modes", None) or getattr(dataset, "num_classes", None)
        if not k:
            raise UserError(f"method cgan needs true labels, and dataset {dataset.name!r} has none")
        super().__init__(k, device)

    def labels(self, batch: Batch) -> torch.Tensor:
        return batch.y


class RandomPartition(Partition):
    """Random modes: each real sample gets a uniformly random label (a sanity baseline).
    Fresh samples get fresh labels; indexed data keeps one fixed label per index."""

    def __init__(self, k: int, device="cpu"):
        super().__init__(k, device)
        self.table: torch.Tensor | None = None

    def bind(self, trainer) -> None:
        self.generator = trainer.generator
        n = getattr(trainer.dataset, "__len__", None)
        if n is not None:
            g = torch.Generator(device=self.device).manual_seed(trainer.cfg.train.seed + 7)
            self.table = torch.randint(self.k, (len(trainer.dataset),), generator=g, device=self.device)

    def labels(self, batch: Batch) -> torch.Tensor:
        if batch.index is not None and self.table is not None:
            return self.table[batch.index]
        return torch.randint(self.k, (batch.x.shape[0],), generator=self.generator, device=batch.x.device)

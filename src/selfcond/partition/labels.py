"""`cgan`: the class-conditional GAN on the true labels, the upper bound of the unsupervised methods."""

from __future__ import annotations

import torch

from selfcond.data.base import Batch
from selfcond.errors import UserError
from selfcond.partition.base import MethodOptions, MethodSpec, Partition, register


class LabelPartition(Partition):
    """Ground-truth modes (needs true labels)."""

    def __init__(self, dataset, device="cpu"):
        if not dataset.num_classes:
            raise UserError(f"method cgan needs true labels, and dataset {dataset.name!r} has none")
        super().__init__(dataset.num_classes, device)

    def labels(self, batch: Batch) -> torch.Tensor:
        return batch.y


register(MethodSpec("cgan", MethodOptions, lambda o, dataset, device: LabelPartition(dataset, device),
                    "class-conditional GAN on the true labels (upper bound)"))

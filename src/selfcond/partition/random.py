"""`random`: each real sample gets a uniformly random mode (a sanity baseline). Fresh samples get
fresh modes; an indexed dataset keeps one fixed mode per item."""

from __future__ import annotations

import torch

from selfcond.data.base import Batch, IndexedDataset
from selfcond.partition.base import MethodSpec, ModesOptions, Partition, PartitionContext, register


class RandomPartition(Partition):
    def __init__(self, k: int, device="cpu"):
        super().__init__(k, device)

    def setup(self, ctx: PartitionContext) -> None:
        self.generator = ctx.generator
        if isinstance(ctx.dataset, IndexedDataset):
            g = torch.Generator(device=self.device).manual_seed(ctx.seed + 7)
            self.table = torch.randint(self.k, (len(ctx.dataset),), generator=g, device=self.device)

    def labels(self, batch: Batch) -> torch.Tensor:
        if batch.index is not None and self.table is not None:
            return self.table[batch.index]
        return torch.randint(self.k, (batch.x.shape[0],), generator=self.generator, device=batch.x.device)


register(MethodSpec("random", ModesOptions, lambda o, dataset, device: RandomPartition(o.k, device),
                    "random conditions (sanity baseline)"))

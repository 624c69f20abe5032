"""The unconditional baselines: `gan`, `pacgan` (PacGAN) and `mbd` (minibatch discrimination).
One mode, D's unconditional head; pacgan and mbd only change what D sees."""

from __future__ import annotations

from dataclasses import dataclass

from selfcond.nets.base import DiscriminatorNeeds
from selfcond.options import need, opt
from selfcond.partition.base import MethodOptions, MethodSpec, Partition, register


class NoPartition(Partition):
    """Unconditional GAN: one mode, D's unconditional head."""

    conditional = False

    def __init__(self, device="cpu"):
        super().__init__(1, device)


@dataclass
class PacGANOptions(MethodOptions):
    pack: int = opt(2, min=1, help="samples packed into one D input")

    def d_needs(self) -> DiscriminatorNeeds:
        return DiscriminatorNeeds(pack=self.pack)

    def check(self, cfg) -> None:
        need(cfg.train.batch % self.pack == 0,
             f"train.batch ({cfg.train.batch}) must be a multiple of method.pack ({self.pack})")


@dataclass
class MBDOptions(MethodOptions):
    mbd_kernels: int = opt(50, min=1, help="minibatch discrimination kernels B")
    mbd_dim: int = opt(5, min=1, help="kernel dimension C")

    def d_needs(self) -> DiscriminatorNeeds:
        return DiscriminatorNeeds(mbd_kernels=self.mbd_kernels, mbd_dim=self.mbd_dim)


def _none(options, dataset, device) -> NoPartition:
    return NoPartition(device)


register(MethodSpec("gan", MethodOptions, _none, "unconditional GAN (baseline)"))
register(MethodSpec("pacgan", PacGANOptions, _none, "PacGAN: D judges `pack` samples jointly (baseline)"))
register(MethodSpec("mbd", MBDOptions, _none, "minibatch discrimination in D (baseline)"))

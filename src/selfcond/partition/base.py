"""The partition contract, the context it sees of a run, and the method registry.

A method (gan, scgan, micgan, ...) is a partition plus its options: one module registers a
`MethodSpec` with `register`. The partition is the only thing that differs between methods: it
owns the mode of every real sample, the prior π over modes and a `refresh` that recomputes them
on its schedule. The train loop asks it for the modes of each real batch (`labels`), draws fake
conditions from π (`sample`), and calls `refresh` when `due(step)`. It never sees the Trainer, only
a `PartitionContext`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from torch import nn

from selfcond.data.base import Batch, Dataset
from selfcond.errors import UserError
from selfcond.nets.base import DiscriminatorNeeds
from selfcond.options import Options, need, opt
from selfcond.registry import Registry


class Assignment(NamedTuple):
    """Modes of new samples by what a partition learnt.

    modes: (n,) int64. fit: (n,) float64, higher is a better fit (MIC-GANs: the log-density of the
    embedding under the mixture; Self-Conditioned GAN: minus the squared distance to the nearest
    centre); it is what flags outliers. probability: (n,) float64 posterior of the mode (MIC-GANs),
    or None where the method has none."""

    modes: torch.Tensor
    fit: torch.Tensor
    probability: torch.Tensor | None


@dataclass
class PartitionContext:
    """What a partition may use of a run.

    dataset, device, generator (the run's training stream), batch (the training batch size),
    seed (the run's seed, for side streams of its own);
    copy_d(into): D's weights now, in a frozen eval-mode copy (`into`, or a new module);
    fake(y, generator): samples (n, *shape) of modes y (n,) from the generator that samples (G's
        moving average, in eval mode, no gradient), with z drawn from `generator` after y;
    make_encoder(dim): a new encoder (n, *shape) -> (n, dim) of the run's net family, on `device`.
    """

    dataset: Dataset
    device: torch.device
    generator: torch.Generator
    batch: int
    seed: int
    copy_d: Callable[[nn.Module | None], nn.Module]
    fake: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    make_encoder: Callable[[int], nn.Module]


class Partition:
    """Base class; subclasses set `conditional` and override what they change.

    k: number of conditions G and D's conditional head have.
    conditional: False while D uses its unconditional head (unconditional methods; MIC-GANs'
        initialization stage). Saved in the checkpoint.
    counts: (k,) float64 real samples per mode; π = counts / counts.sum().
    table: (N,) int64 mode of every item of an indexed dataset when the partition labels them all,
        else None; it drives reals.png, the mode x label table and the `clusters` metric.
    assigns: True when `assign` labels new samples (and then agrees with `table` on the data).
    """

    conditional = True
    assigns = False  # whether `assign` labels new samples
    table: torch.Tensor | None = None

    def __init__(self, k: int, device: torch.device | str = "cpu"):
        self.k = k
        self.device = torch.device(device)
        self.counts = torch.ones(k, dtype=torch.float64, device=self.device)

    @property
    def pi(self) -> torch.Tensor:
        return self.counts / self.counts.sum()

    @property
    def alive(self) -> torch.Tensor:
        """Modes with at least one real sample: (k,) bool."""
        return self.counts > 0

    def setup(self, ctx: PartitionContext) -> None:
        """Called once after the nets exist (fresh run and resume alike)."""

    def start(self, ctx: PartitionContext) -> None:
        """Called once before the first step of a fresh run (not on resume)."""

    def labels(self, batch: Batch) -> torch.Tensor | None:
        """Modes of a real batch: (n,) int64, or None while unconditional."""
        return None

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Conditions for n fakes, drawn from π: (n,) int64 on the partition's device (drawn on the
        generator's device)."""
        pi = self.pi.float().to(generator.device if generator is not None else self.device)
        return torch.multinomial(pi, n, replacement=True, generator=generator).to(self.device)

    def due(self, step: int) -> bool:
        return False

    def assign(self, x: torch.Tensor) -> Assignment:
        """The modes of new samples x (n, *shape) on the partition's device, by what it learnt."""
        raise UserError("this method learns no assignment of new images (scgan and micgan do)")

    def refresh(self, ctx: PartitionContext, step: int) -> dict:
        """Recompute modes and π; returns a small summary for the log."""
        return {}

    def state_dict(self) -> dict:
        return {"counts": self.counts, "conditional": self.conditional}

    def load_state_dict(self, state: dict) -> None:
        self.counts = state["counts"].to(self.device)

    def summary(self) -> dict:
        return {"modes_alive": int(self.alive.sum())}


@dataclass
class MethodOptions(Options):
    """Options every method has; a method's own dataclass adds its keys."""

    name: str = opt("scgan", help="training method")

    def d_needs(self) -> DiscriminatorNeeds:
        """What the method asks of D beyond its heads."""
        return DiscriminatorNeeds()

    def run_suffix(self) -> str:
        """Added to the run directory's name."""
        return ""


@dataclass
class ModesOptions(MethodOptions):
    """A method with a chosen number of modes."""

    k: int = opt(100, min=1, help="number of modes / clusters / conditions")

    def run_suffix(self) -> str:
        return f"-k{self.k}"


@dataclass
class ClusteredOptions(ModesOptions):
    """A method that clusters a fixed sample of the real data (2D data: all it clusters)."""

    cluster_samples: int = opt(25000, min=1, help="real samples clustered (a fixed subset)")

    def check(self, cfg) -> None:
        need(self.cluster_samples >= self.k,
             f"method.cluster_samples ({self.cluster_samples}) must be >= method.k ({self.k})")


@dataclass(frozen=True)
class MethodSpec:
    """A method as the registry knows it.

    partition(options, dataset, device) -> its Partition; preset: config values the method sets,
    applied over the data's presets (see config.py); summary: one line for docs and --help."""

    name: str
    options: type[MethodOptions]
    partition: Callable[[MethodOptions, Dataset, torch.device], Partition]
    summary: str
    preset: dict = field(default_factory=dict)


METHODS: Registry[MethodSpec] = Registry("method", "selfcond.partition")


def register(spec: MethodSpec) -> MethodSpec:
    return METHODS.register(spec.name, spec)

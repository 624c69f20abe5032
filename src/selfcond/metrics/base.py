"""The metric contract and registry: a metric group is one function registered by name with the
keys it produces (as stylegan2-ada's metric_main does), computed on an `EvalContext`, never on the
Trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from selfcond.data.base import Dataset, DataOptions
from selfcond.partition.base import Partition
from selfcond.registry import Registry


@dataclass
class EvalContext:
    """What a metric may use of a run.

    data: the run's data options (the evaluation classifier is found from them); method: its
    method's name (for messages); dataset; partition (k, π, and `table` when it labels every item);
    device; sample(n, generator, y=None) -> (x (n, *shape), modes (n,)) from the generator that
    samples, modes drawn from π unless given; generator(stream) -> a generator of its own for
    each evaluation stream, so evaluation never shifts training; memo: shared by the groups of one
    evaluation (features/fakes.py keeps the fakes' features there).
    """

    data: DataOptions
    method: str
    dataset: Dataset
    partition: Partition
    device: torch.device
    sample: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    generator: Callable[[int], torch.Generator]
    memo: dict = field(default_factory=dict)  # what metric groups of one evaluation share (fake features)


@dataclass(frozen=True)
class Metric:
    """name; keys: what `compute` returns; applies(ctx) -> bool; compute(ctx, n) -> {key: value};
    at_snapshot: computed at every snapshot by default (cheap), else only on demand."""

    name: str
    keys: tuple[str, ...]
    applies: Callable[[EvalContext], bool]
    compute: Callable[[EvalContext, int], dict]
    at_snapshot: bool = True


METRICS: Registry[Metric] = Registry("metric", "selfcond.metrics")


def metric(name: str, keys: tuple[str, ...], applies: Callable[[EvalContext], bool], at_snapshot: bool = True):
    """Register the decorated `compute(ctx, n) -> dict` as metric group `name`."""
    def add(compute):
        METRICS.register(name, Metric(name, tuple(keys), applies, compute, at_snapshot))
        return compute
    return add


def has_labels(ctx: EvalContext) -> bool:
    """Indexed data with true labels (the clustering and classifier metrics need them)."""
    from selfcond.data.base import IndexedDataset

    return isinstance(ctx.dataset, IndexedDataset) and ctx.dataset.labels is not None

"""The dataset contract, the dataset registry and the options every dataset shares.

A dataset is one of two kinds, asked one way (`isinstance`):
- `SampledDataset`: fresh samples every batch, no index (the 2D mixtures);
- `IndexedDataset`: a fixed set of N items by index, with optional true labels (images), so a
  partition can keep a mode per item.
A dataset module registers a `DatasetSpec` (its name, kind, options dataclass, loader and what
`selfcond datasets` shows) with `register`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

from selfcond.options import Options, opt
from selfcond.registry import Registry

KINDS = ("points", "images")


class Batch(NamedTuple):
    """A batch of real data.

    x: (n, *shape) float32 on the training device.
    y: (n,) int64 true labels/modes, or None when the data has none.
    index: (n,) int64 dataset indices, or None for data sampled fresh.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    index: torch.Tensor | None


class Dataset(ABC):
    """What the train loop draws from.

    name: the dataset's name. shape: one sample's shape, (2,) for points, (C, H, W) for images.
    num_classes: the number of true classes (mixture components), or None without labels.
    """

    name: str
    shape: tuple[int, ...]

    @property
    @abstractmethod
    def num_classes(self) -> int | None: ...

    @abstractmethod
    def batch(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Batch:
        """n samples drawn with `generator` (the run's training stream): a Batch on `device`."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the dataset's own sampling state (a stream's position); none here."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def shard(self, rank: int, world: int, seed: int) -> None:
        """Several ranks (train/dist.py): this rank's share of the data. Draws with replacement from
        each rank's own stream need none; a stream walks its rank's slice of each epoch."""


class SampledDataset(Dataset):
    """Infinite data: every call draws fresh samples. means: (K, *shape) the components' means
    when the data are a mixture (snapshots draw them under the samples), else None."""

    means: torch.Tensor | None = None

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(x (n, *shape) float32, true class (n,) int64) on `device`."""

    def batch(self, n, generator, device="cpu") -> Batch:
        x, y = self.sample(n, generator, device)
        return Batch(x, y, None)


class IndexedDataset(Dataset):
    """N items by index. labels: (N,) int64 true labels or None; files: where each item came from
    (a folder's relative paths), or None."""

    labels: torch.Tensor | None
    files: list[str] | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def images(self, index: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """Items at `index` (n,) as float32 in [-1, 1]: (n, *shape) on `device`."""

    def to(self, device: torch.device | str) -> "IndexedDataset":
        """Move what is held to the training device (a no-op for data read on demand)."""
        return self

    def subset(self, index: torch.Tensor) -> "IndexedDataset":
        """The items at `index` (n,) as a dataset of their own (a held-out share, data.holdout)."""
        from selfcond.errors import UserError

        raise UserError(f"dataset {self.name!r} cannot hold a share of its items out (data.holdout)")


class EpochBatches(torch.utils.data.Sampler):
    """Batch keys (epoch, pos, index (n,)) without end: epoch e walks randperm(N) seeded by (seed, e)
    in batches of n from `pos`; the last partial batch of an epoch is dropped. With several ranks,
    rank r walks items r, r + world, ... of each epoch's permutation: disjoint shards that change
    every epoch, as DistributedSampler's."""

    def __init__(self, n_items: int, batch: int, seed: int, epoch: int = 0, pos: int = 0,
                 rank: int = 0, world: int = 1):
        self.n_items, self.batch, self.seed, self.epoch, self.pos = n_items, batch, seed, epoch, pos
        self.rank, self.world = rank, world

    def __iter__(self):
        epoch, pos = self.epoch, self.pos
        per_epoch = (self.n_items // self.world) // self.batch
        while True:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n_items, generator=g)[self.rank::self.world]
            while pos < per_epoch:
                yield epoch, pos, perm[pos * self.batch:(pos + 1) * self.batch]
                pos += 1
            epoch, pos = epoch + 1, 0


@dataclass
class DataOptions(Options):
    """Options every dataset has: its name (or, for a folder of images, its path)."""

    name: str = opt("digits", help="dataset name, or a directory of images")


@dataclass
class ImageOptions(DataOptions):
    resolution: int = opt(32, min=1, help="images are resized to resolution x resolution")
    holdout: float = opt(0.0, min=0, lt=1, help="share of the images held out of training, for held-out "
                                               "evaluation (chosen by holdout_seed)")
    holdout_seed: int = opt(0, help="seed of the held-out share")


@dataclass
class FolderOptions(ImageOptions):
    """A directory or zip of images (data/folder.py), held in memory or read on demand (data/stream.py)."""

    stream: str = opt("auto", choices=("auto", "always", "never"),
                      help="read images on demand instead of holding them in memory (always, never, or auto: when they "
                           "would take more than data.memory_gb)")
    memory_gb: float = opt(4.0, gt=0, help="data.stream=auto streams a dataset whose uint8 pixels exceed this")
    workers: int = opt(2, min=0, help="processes decoding a streamed dataset's training batches (0: the "
                                      "training process)")


@dataclass
class FileImageOptions(ImageOptions):
    data_dir: str | None = opt(None, help="directory holding the dataset's files (else the usual search)")


@dataclass
class SplitOptions(FileImageOptions):
    """A dataset published with a training and a test split."""

    split: str = opt("train", choices=("train", "test"), help="the split trained on (or assigned)")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset as the registry knows it.

    load(options) -> Dataset; available(data_dir) -> bool, cheap, never downloads; info(data_dir)
    -> dict (what `selfcond datasets info` shows); preset: config values for this dataset, applied
    over the kind's (see config.py); evaluation(options) -> (train, test or None): the labelled
    splits its evaluation classifier learns from (default: the data itself, a share held out);
    test(options) -> the test split when it is on disk, else None (held-out evaluation)."""

    name: str
    kind: str
    options: type[DataOptions]
    load: Callable[[DataOptions], Dataset]
    available: Callable[[str | None], bool]
    info: Callable[[str | None], dict]
    preset: dict = field(default_factory=dict)
    evaluation: Callable[[DataOptions], tuple] | None = None
    test: Callable[[DataOptions], "Dataset | None"] | None = None


DATASETS: Registry[DatasetSpec] = Registry("dataset", "selfcond.data")


def register(spec: DatasetSpec) -> DatasetSpec:
    assert spec.kind in KINDS, spec.kind
    return DATASETS.register(spec.name, spec)

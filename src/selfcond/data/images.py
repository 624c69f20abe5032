"""Image datasets held in memory, and the embedded `digits` dataset.

Images are stored as uint8 (4x smaller than float) and converted to float in [-1, 1] per batch, on the
training device. Batches are drawn with replacement from the run's generator, so a resumed run draws
exactly the same batches: the generator is the only sampling state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selfcond.data.base import Batch, DatasetSpec, EpochBatches, ImageOptions, IndexedDataset, register


class ImageDataset(IndexedDataset):
    """Images held in memory as a uint8 tensor (N, C, H, W), with optional true labels.

    Attributes:
        name: dataset name.
        data: (N, C, H, W) uint8 tensor.
        labels: (N,) int64 true labels, or None.
        class_names: names of the true classes (index = label), or None.
    """

    def __init__(self, name: str, images_uint8: torch.Tensor, labels: torch.Tensor | None = None,
                 num_classes: int | None = None, class_names: list[str] | None = None,
                 files: list[str] | None = None):
        if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
            raise ValueError(f"images must be a uint8 (N, C, H, W) tensor, got {images_uint8.dtype} "
                             f"{tuple(images_uint8.shape)}")
        if labels is not None:
            labels = torch.as_tensor(labels).long()
            if labels.shape != (images_uint8.shape[0],):
                raise ValueError(f"labels must have shape ({images_uint8.shape[0]},), "
                                 f"got {tuple(labels.shape)}")
            if num_classes is None:
                num_classes = int(labels.max()) + 1 if len(labels) else 0
        self.name = name
        self.data = images_uint8
        self.labels = labels
        self._num_classes = num_classes if labels is not None else None
        self.class_names = list(class_names) if class_names is not None and labels is not None else None
        self.files = files  # where each image came from (a folder's relative paths), or None
        self.rank, self.world, self.seed = 0, 1, 0
        self.epoch, self.pos = 0, 0  # several ranks: the next training batch of the epochs' walk
        self._walk = None  # (batch size, iterator of EpochBatches)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.data.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """Number of true classes, None when the data has no labels."""
        return self._num_classes

    def __len__(self) -> int:
        return self.data.shape[0]

    def to(self, device: torch.device | str) -> "ImageDataset":
        """Move the images (and labels) once, so that batches are gathered on the training device."""
        self.data = self.data.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        return self

    def subset(self, index: torch.Tensor) -> "ImageDataset":
        """The items at `index` (n,), as a dataset of their own."""
        index = index.to(self.data.device)
        files = None if self.files is None else [self.files[i] for i in index.tolist()]
        labels = None if self.labels is None else self.labels[index.to(self.labels.device)]
        return ImageDataset(self.name, self.data[index], labels, self._num_classes, self.class_names, files)

    def images(self, index: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """Images at `index` (n,) as float32 in [-1, 1]: (n, C, H, W) on `device`."""
        x = self.data[index.to(self.data.device)].to(device)  # gather and move as uint8: 4x less traffic
        return x.float().div_(127.5).sub_(1.0)

    def batch(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Batch:
        """n images drawn uniformly with replacement (one process), or the next n of this rank's
        slice of the epoch's permutation (several ranks, `shard`); index and y on the generator's
        device."""
        if self.world == 1:
            index = torch.randint(len(self), (n,), generator=generator, device=generator.device)
        else:
            if n > len(self) // self.world:  # no whole batch in a rank's slice: the walk would never yield
                from selfcond.errors import UserError

                raise UserError(f"train.batch ({n * self.world}) is more than the {len(self)} images of {self.name!r}")
            if self._walk is None or self._walk[0] != n:
                keys = EpochBatches(len(self), n, self.seed, self.epoch, self.pos, self.rank, self.world)
                self._walk = (n, iter(keys))
            self.epoch, pos, index = next(self._walk[1])
            self.pos = pos + 1
            index = index.to(generator.device)
        y = None if self.labels is None else self.labels[index.to(self.labels.device)].to(index.device)
        return Batch(self.images(index, device), y, index)

    def shard(self, rank: int, world: int, seed: int) -> None:
        """Several ranks: rank r walks items r, r + world, ... of each epoch's permutation, seeded by
        the run's seed and the epoch (the same on every rank): disjoint shards that change every
        epoch, as a streamed dataset's and DistributedSampler's. One process keeps its draws."""
        from selfcond.errors import UserError

        if world > 1 and len(self) < world:
            raise UserError(f"{self.name!r} has {len(self)} images, fewer than the {world} ranks")
        self.rank, self.world, self.seed = rank, world, seed
        self._walk = None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "world": self.world} if self.world > 1 else {}

    def load_state_dict(self, state: dict) -> None:
        """Several ranks: the walk's position (the same on every rank); saved at another world size,
        or by one process, the next epoch starts afresh on this world's slices."""
        if self.world == 1:
            return
        self.epoch, self.pos = int(state.get("epoch", 0)), int(state.get("pos", 0))
        if state.get("world", 1) != self.world:
            self.epoch, self.pos = self.epoch + 1, 0
        self._walk = None


def resize_uint8(images_uint8: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize (N, C, H, W) uint8 -> (N, C, resolution, resolution) uint8.

    Antialiasing only when shrinking (upscaling has nothing to alias)."""
    if tuple(images_uint8.shape[-2:]) == (resolution, resolution):
        return images_uint8.clone()
    shrink = resolution < min(images_uint8.shape[-2:])
    out = torch.empty(*images_uint8.shape[:2], resolution, resolution, dtype=torch.uint8,
                      device=images_uint8.device)
    for i in range(0, len(images_uint8), 4096):  # in chunks: float copies of 50k images would be GBs
        x = F.interpolate(images_uint8[i:i + 4096].float(), size=(resolution, resolution), mode="bilinear",
                          align_corners=False, antialias=shrink)
        out[i:i + 4096] = x.round_().clamp_(0, 255)
    return out


def digits(resolution: int = 32) -> ImageDataset:
    """scikit-learn's 1797 8x8 handwritten digits (10 classes), upscaled to resolution x resolution,
    1 channel. Embedded in scikit-learn, so it works offline."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images).float().mul_(255.0 / 16.0).round_().to(torch.uint8)  # 0..16 -> 0..255
    labels = torch.from_numpy(d.target).long()
    return ImageDataset("digits", resize_uint8(x.unsqueeze(1), resolution), labels, 10)


def _digits_info(data_dir=None) -> dict:
    return {"available": True, "path": "embedded in scikit-learn", "splits": {"train": 1797},
            "shape": [1, 8, 8], "classes": 10}


# The offline demo that `selfcond train` runs with no arguments: 10 modes (one row per digit in
# the sample grid) and a budget that finishes in minutes on 2 CPU cores.
register(DatasetSpec("digits", "images", ImageOptions, load=lambda o: digits(o.resolution),
                     available=lambda data_dir=None: True, info=_digits_info,
                     preset={"model": {"g_width": 32, "d_width": 32},
                             "method": {"k": 10, "recluster_every": 1000},
                             "train": {"steps": 3000, "snapshot_every": 1000}}))

"""A folder or zip of images read on demand (`data.stream`), for datasets larger than memory.

What is held is O(N) small: the file names, the labels, and (in the partition) one int mode per
image. Pixels are decoded, center-cropped and resized when needed:
- training batches by DataLoader worker processes (`data.workers`), a few batches ahead;
- the partition's refreshes (D's features, Q's embeddings, labelling every image) chunk by chunk,
  by a pool of threads in the training process (PIL releases the GIL while decoding).

Training batches walk a fresh permutation of the images every epoch, seeded from the run's
generator (one draw, at the first batch) and the epoch number, so a run's batches depend only on
its seed; the checkpoint keeps (seed, epoch, position) and a resumed run reads the same batches.
In-memory datasets instead draw batches with replacement from the run's generator (data/images.py):
the two paths are not bit-identical to each other, each is bit-identical to itself.

The channel count is decided from the first `PROBE` files' headers (grayscale when they all are,
else RGB) and every image is converted to it. An image that turns out unreadable is replaced by
the next readable one (and named once on stderr): `selfcond datasets prepare` lists them up front.
"""

from __future__ import annotations

import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from selfcond.data.base import Batch, EpochBatches, IndexedDataset
from selfcond.data.folder import GRAY_MODES, Source, _decode
from selfcond.errors import UserError

PROBE = 256  # files whose headers decide grayscale or RGB


def probe_channels(source: Source, rels: list[str]) -> int:
    """1 when the first PROBE readable headers are all grayscale, else 3 (headers only: cheap)."""
    from PIL import Image

    modes = []
    for rel in rels[:PROBE]:
        try:
            with Image.open(io.BytesIO(source.read(rel))) as im:
                modes.append(im.mode)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            continue
    if not modes:
        some = f"the first {PROBE}" if len(rels) > PROBE else f"the {len(rels)}"
        raise UserError(f"none of {some} images under {source.root} is readable (e.g. {rels[0]})")
    return 1 if all(m in GRAY_MODES for m in modes) else 3


class Decoder(torch.utils.data.Dataset):
    """Items by index -> (C, R, R) uint8, and a batch key (epoch, pos, index (n,)) -> the batch's
    images (n, C, R, R) uint8 with the indices they came from. Picklable: DataLoader workers get a copy."""

    def __init__(self, source: Source, rels: list[str], resolution: int, channels: int):
        self.source, self.rels, self.resolution = source, rels, resolution
        self.mode = "L" if channels == 1 else "RGB"
        self.warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.rels)

    def item(self, i: int) -> tuple[np.ndarray, int]:
        """Image i as (C, R, R) uint8, or the next readable one: (pixels, the index they are of)."""
        n = len(self.rels)
        for j in range(i, i + n):
            a = _decode(self.source, self.rels[j % n], self.resolution, self.mode)
            if a is not None:
                return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)), j % n
            if j % n not in self.warned:
                self.warned.add(j % n)
                print(f"warning: unreadable image {self.rels[j % n]} under {self.source.root}: "
                      f"the next readable one is used instead", file=sys.stderr)
        raise UserError(f"no image under {self.source.root} is readable")

    def __getitem__(self, key):
        epoch, pos, index = key
        items = [self.item(int(i)) for i in index]
        x = torch.from_numpy(np.stack([a for a, _ in items]))
        return x, torch.tensor([j for _, j in items], dtype=torch.int64), epoch, pos


class StreamedImages(IndexedDataset):
    """The images of a folder or zip, decoded on demand: shape (C, R, R), labels (N,) int64 or None."""

    def __init__(self, name: str, source: Source, rels: list[str], resolution: int, channels: int,
                 labels: torch.Tensor | None, num_classes: int | None, class_names: list[str] | None,
                 workers: int = 2):
        self.name, self.files, self.labels = name, rels, labels
        self.class_names = class_names if labels is not None else None
        self._num_classes = num_classes if labels is not None else None
        self.decoder = Decoder(source, rels, resolution, channels)
        self.workers = workers
        self.seed: int | None = None  # drawn from the run's generator at the first batch
        self.rank, self.world = 0, 1
        self.epoch, self.pos = 0, 0  # the next training batch to be consumed
        self._loader, self._pool = None, None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1 if self.decoder.mode == "L" else 3, self.decoder.resolution, self.decoder.resolution)

    @property
    def num_classes(self) -> int | None:
        return self._num_classes

    def __len__(self) -> int:
        return len(self.files)

    def shard(self, rank: int, world: int, seed: int) -> None:
        """Rank `rank` of `world` walks its slice of every epoch's permutation, seeded by the run's seed
        (the same on every rank, so the slices are disjoint)."""
        self.rank, self.world, self.seed = rank, world, seed
        self._loader = None

    def fingerprint(self) -> str:
        """What identifies these images without reading them: the source's path, size and time, and the names."""
        import hashlib

        st = self.decoder.source.root.stat()
        h = hashlib.sha256(f"{self.decoder.source.root.resolve()} {st.st_size} {st.st_mtime_ns}".encode())
        h.update("\n".join(self.files).encode())
        return h.hexdigest()[:16]

    def subset(self, index: torch.Tensor) -> "StreamedImages":
        keep = index.tolist()
        labels = None if self.labels is None else self.labels[index.to(self.labels.device)]
        return StreamedImages(self.name, self.decoder.source, [self.files[i] for i in keep], self.decoder.resolution,
                              self.shape[0], labels, self._num_classes, self.class_names, self.workers)

    def images(self, index: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """Images at `index` (n,) as float32 in [-1, 1], decoded by a pool of threads: (n, C, R, R)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
        items = list(self._pool.map(self.decoder.item, index.tolist()))
        x = torch.from_numpy(np.stack([a for a, _ in items])).to(device)
        return x.float().div_(127.5).sub_(1.0)

    def batch(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Batch:
        """The next n images of this epoch's permutation, decoded ahead by the DataLoader's workers."""
        if n > len(self) // self.world:
            raise UserError(f"train.batch ({n * self.world}) is more than the {len(self)} images of {self.name!r}")
        if self.seed is None:
            self.seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))
        if self._loader is None or self._loader[0] != n:
            loader = torch.utils.data.DataLoader(
                self.decoder, sampler=EpochBatches(len(self), n, self.seed, self.epoch, self.pos, self.rank, self.world),
                batch_size=None,
                num_workers=self.workers, prefetch_factor=2 if self.workers else None,
                persistent_workers=False, pin_memory=False)
            self._loader = (n, iter(loader))
        x, index, epoch, pos = next(self._loader[1])
        self.epoch, self.pos = (epoch, pos + 1)
        index = index.to(generator.device)
        y = None if self.labels is None else self.labels[index.to(self.labels.device)].to(index.device)
        return Batch(x.to(device).float().div_(127.5).sub_(1.0), y, index)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "pos": self.pos, "world": self.world}

    def load_state_dict(self, state: dict) -> None:
        if self.world > 1:  # the position of this rank's walk (rank 0's saved): the same on every rank
            self.epoch, self.pos = int(state.get("epoch", 0)), int(state.get("pos", 0))
            if state.get("world", 1) != self.world:  # other slices: the next epoch starts afresh
                self.epoch, self.pos = self.epoch + 1, 0
            self._loader = None
            return
        self.seed, self.epoch, self.pos = state.get("seed"), int(state.get("epoch", 0)), int(state.get("pos", 0))
        self._loader = None  # restarted from the loaded position at the next batch

    def close(self) -> None:
        """Stop the decoding workers and threads (also done when the dataset is collected)."""
        self._loader = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

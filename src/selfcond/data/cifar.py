"""CIFAR-10 from the official python-pickle batches (https://www.cs.toronto.edu/~kriz/cifar.html).

The batches live in `cifar-10-batches-py/`; that directory or its parent may be given, and it is
searched for like every dataset (see `files`), else the official archive is downloaded into the cache
and the batches extracted from it. Each batch is a pickled dict: b"data" (N, 3072) uint8 (the R, G,
B planes of a 32x32 image, row-major) and b"labels" (N ints in 0..9).

Unpickling can run arbitrary code, so batches are read by an unpickler that only builds numpy arrays
and plain containers: a file asking for anything else is refused, never executed.
"""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from selfcond.data import files
from selfcond.data.base import DatasetSpec, SplitOptions, register
from selfcond.data.images import ImageDataset, resize_uint8
from selfcond.errors import UserError

NAME = "cifar10"
INNER = "cifar-10-batches-py"
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ARCHIVE = "cifar-10-python.tar.gz"
MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
SHA256 = {ARCHIVE: "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}

# What the official batches (numpy arrays pickled by Python 2) and Python 3 re-pickles need, no more.
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
    (m, f) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for f in ("_reconstruct", "scalar")
} | {(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, refused")
        return super().find_class(module, name)


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (images (N, 3, 32, 32) uint8, labels (N,) int64)."""
    try:
        with open(path, "rb") as f:
            d = _ArraysOnly(f, encoding="bytes").load()
    except Exception as e:  # a damaged pickle can fail in any of a dozen ways; all mean the same
        raise UserError(f"{path} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}); "
                        "delete it and fetch it again") from None
    data, labels = (d.get(b"data"), d.get(b"labels")) if isinstance(d, dict) else (None, None)
    try:
        labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.zeros(0, np.int64)  # not integers: fails the shape check below
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072):
        shape = getattr(data, "shape", None)
        raise UserError(f"{path}: b'data' must be an (N, 3072) uint8 array, got {shape}; "
                        "not an official CIFAR-10 batch")
    if labels.shape != (len(data),) or len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise UserError(f"{path}: b'labels' must be {len(data)} integers in 0..9; not an official "
                        "CIFAR-10 batch")
    return data.reshape(-1, 3, 32, 32), labels


def _extract(archive: Path, dest: Path) -> None:
    """Copy the batch files out of the official archive into `dest` (no other member is written)."""
    wanted = {f"{INNER}/{f}" for fs in SPLITS.values() for f in fs} | {f"{INNER}/batches.meta"}
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for m in tar:
                if m.isfile() and m.name in wanted:
                    tmp = dest / f".{Path(m.name).name}.part"
                    tmp.write_bytes(tar.extractfile(m).read())
                    os.replace(tmp, dest / Path(m.name).name)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UserError(f"cannot extract {archive}: {e}; delete it and fetch it again") from None


def locate(data_dir=None, split: str = "train", download: bool = True) -> Path:
    """The directory holding the batch files of `split`, downloading them if allowed and needed."""
    root = files.find(NAME, SPLITS[split], data_dir, inner=INNER)
    if root is None and download:
        cache = files.cache_root() / NAME
        files.download(NAME, [ARCHIVE], MIRRORS, SHA256, cache)
        _extract(cache / ARCHIVE, cache / INNER)
        (cache / ARCHIVE).unlink()  # 170 MB the batches now duplicate
        root = files.find(NAME, SPLITS[split], data_dir, inner=INNER)
    if root is None:
        raise files.not_found(NAME, SPLITS[split], data_dir)
    return root


def load_cifar(data_dir=None, split: str = "train", download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of a split, batches in their official order."""
    root = locate(data_dir, split, download)
    parts = [read_batch(root / f) for f in SPLITS[split]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def cifar10(resolution: int = 32, data_dir=None, split: str = "train", download: bool = True) -> ImageDataset:
    """A split as an ImageDataset: (N, 3, resolution, resolution) uint8, 10 named classes."""
    images, labels = load_cifar(data_dir, split, download)
    x = resize_uint8(torch.from_numpy(images), resolution)
    return ImageDataset(NAME, x, torch.from_numpy(labels), 10, CLASSES)


def _info(data_dir=None) -> dict:
    out = {"searched": [str(d) for d in files.search_dirs(NAME, data_dir)], "downloadable": True,
           "shape": [3, 32, 32], "classes": 10, "splits": {}}
    for split, batch_files in SPLITS.items():
        if (root := files.find(NAME, batch_files, data_dir, inner=INNER)) is not None:
            out["path"] = out.get("path") or str(root)
            out["splits"][split] = sum(len(read_batch(root / f)[1]) for f in batch_files)
    return out


def _test(options) -> ImageDataset | None:
    if files.find(NAME, SPLITS["test"], options.data_dir, inner=INNER) is None:
        return None
    return cifar10(options.resolution, options.data_dir, "test", download=False)


register(DatasetSpec(
    NAME, "images", SplitOptions, load=lambda o: cifar10(o.resolution, o.data_dir, o.split),
    available=lambda data_dir=None: files.find(NAME, SPLITS["train"], data_dir, inner=INNER) is not None,
    info=_info, test=_test))

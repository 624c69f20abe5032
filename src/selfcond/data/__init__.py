"""Datasets by name or path.

Every dataset module registers itself (data/base.py: `register`): the 2D mixtures `ring`, `grid`;
the images `digits` (embedded), `mnist`, `fashion-mnist`, `stacked-mnist`, `cifar10`. Any other name
that is a directory (or looks like a path) is a folder of images (`folder`), named after the
directory. A known name wins over a directory of the same name in the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from selfcond.data.base import (DATASETS, Batch, DataOptions, Dataset, DatasetSpec, ImageOptions, IndexedDataset,
                                SampledDataset, SplitOptions, register)
from selfcond.errors import UserError


def names() -> list[str]:
    return sorted(DATASETS.names())


def _is_path(name: str) -> bool:
    return (Path(name).expanduser().is_dir() or os.sep in name or name.startswith(("~", "."))
            or name.lower().endswith(".zip"))


def spec(name: str) -> DatasetSpec:
    """The registered dataset `name`, or the folder of images at path `name` (cheap: reads nothing)."""
    if name in DATASETS:
        return DATASETS.get(name)
    if _is_path(name):
        from selfcond.data.folder import spec_for

        return spec_for(name)
    raise UserError(f"unknown dataset {name!r}: give one of {', '.join(names())}, or a directory or zip of images")


def _held_index(n: int, options) -> torch.Tensor:
    """The indices of the held-out share of n items: a seeded permutation's first round(n * holdout)."""
    g = torch.Generator().manual_seed(options.holdout_seed)
    return torch.randperm(n, generator=g)[:round(n * options.holdout)]


def _load(options: DataOptions) -> Dataset:
    ds = spec(options.name).load(options)
    if isinstance(ds, IndexedDataset) and len(ds) == 0:
        raise UserError(f"dataset {options.name!r} holds no images: check its files")
    return ds


def load(options: DataOptions) -> Dataset:
    """The dataset a config's `data` section names, less its held-out share (data.holdout); one
    that holds nothing is a UserError."""
    ds = _load(options)
    if isinstance(options, ImageOptions) and options.holdout > 0:
        held = _held_index(len(ds), options)
        keep = torch.ones(len(ds), dtype=torch.bool)
        keep[held] = False
        ds = ds.subset(torch.nonzero(keep).flatten())
    return ds


def heldout(options: DataOptions) -> IndexedDataset | None:
    """Images a run with these data options never trained on: its held-out share (data.holdout),
    else the dataset's test split when the run trained on its training split and the test split is
    on disk, else None."""
    if isinstance(options, ImageOptions) and options.holdout > 0:
        ds = _load(options)
        return ds.subset(_held_index(len(ds), options))
    s = spec(options.name)
    if s.test is not None and isinstance(options, SplitOptions) and options.split == "train":
        return s.test(options)
    return None


def available(name: str, data_dir=None) -> bool:
    """Whether `name` can be loaded without downloading (a cheap check: file names only)."""
    return spec(name).available(data_dir)


def info(name: str, data_dir=None) -> dict:
    """What `selfcond datasets info NAME` shows; reads file names and headers, never downloads.

    Keys: name, kind ("2d", "images" or "folder"), available (loadable without a download), path
    (where the training split was found, or None), searched (where it is looked for, in order),
    downloadable, splits ({split: number of items} on disk), shape (native (C, H, W); (2,) for 2D),
    classes (number of true classes or modes, or None), and problem (a message, only when the files
    are there but unreadable). Stacked MNIST adds digits (MNIST training digits found)."""
    s = spec(name)
    out = {"name": name, "kind": "images", "available": False, "path": None, "searched": [],
           "downloadable": False, "splits": {}, "shape": None, "classes": None}
    try:
        out.update(s.info(data_dir))
        out["available"] = out["kind"] == "2d" or "train" in out["splits"]
    except UserError as e:
        out.update(available=False, problem=str(e))
    return out


__all__ = ["Batch", "Dataset", "DataOptions", "DatasetSpec", "IndexedDataset", "SampledDataset",
           "available", "heldout", "info", "load", "names", "register", "spec"]

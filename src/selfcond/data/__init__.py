"""Datasets by name or path: `load(cfg.data)` -> a dataset object the train loop draws batches from.

Names: the 2D mixtures `ring`, `grid`; the images `digits` (embedded), `mnist`, `fashion-mnist`,
`stacked-mnist`, `cifar10`. Any other name that is a directory (or looks like a path) is loaded as a
folder of images (see `folder`), named after the directory. A known name wins over a directory
of the same name in the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from selfcond.data.images import ImageDataset, digits
from selfcond.data.toy2d import TOY, Toy2D
from selfcond.errors import UserError


def _mnist(cfg):
    from selfcond.data.mnist import idx_dataset

    return idx_dataset("mnist", cfg.resolution, cfg.data_dir)


def _fashion(cfg):
    from selfcond.data.mnist import idx_dataset

    return idx_dataset("fashion-mnist", cfg.resolution, cfg.data_dir)


def _stacked(cfg):
    from selfcond.data.mnist import stacked_mnist

    return stacked_mnist(cfg.resolution, cfg.data_dir, cfg.stack_n, cfg.stack_seed)


def _cifar10(cfg):
    from selfcond.data.cifar import cifar10

    return cifar10(cfg.resolution, cfg.data_dir)


IMAGES = {"digits": lambda cfg: digits(cfg.resolution), "mnist": _mnist, "fashion-mnist": _fashion,
          "stacked-mnist": _stacked, "cifar10": _cifar10}


def names() -> list[str]:
    return sorted(TOY) + sorted(IMAGES)


def _is_path(name: str) -> bool:
    return Path(name).expanduser().is_dir() or os.sep in name or name.startswith(("~", "."))


def check_name(name: str) -> None:
    """A UserError unless `name` is a dataset name or a path to a directory (cheap: reads nothing)."""
    if name not in TOY and name not in IMAGES and not _is_path(name):
        raise UserError(f"unknown dataset {name!r}: give one of {', '.join(names())}, or a directory of images")


def load(data_cfg):
    """Build the dataset named by a `DataConfig` (its `name` may be a directory of images)."""
    name = data_cfg.name
    if name in TOY:
        return TOY[name]()
    if name in IMAGES:
        return IMAGES[name](data_cfg)
    if _is_path(name):
        from selfcond.data.folder import folder_dataset

        return folder_dataset(name, data_cfg.resolution)
    raise UserError(f"unknown dataset {name!r}: give one of {', '.join(names())}, or a directory of images")


def available(name: str, data_dir=None) -> bool:
    """Whether `name` can be loaded without downloading (a cheap check: file names only)."""
    from selfcond.data import cifar, files, mnist

    if name in TOY or name == "digits":
        return True
    if name in mnist.IDX_DATASETS or name == "stacked-mnist":
        return mnist.has_split("mnist" if name == "stacked-mnist" else name, data_dir, "train")
    if name == "cifar10":
        return files.find(cifar.NAME, cifar.SPLITS["train"], data_dir, inner=cifar.INNER) is not None
    return name not in IMAGES and Path(name).expanduser().is_dir()


def info(name: str, data_dir=None) -> dict:
    """What `selfcond datasets info NAME` shows; reads file names and headers, never downloads.

    Keys: name, kind ("2d", "images" or "folder"), available (loadable without a download), path
    (where the training split was found, or None), searched (where it is looked for, in order),
    downloadable, splits ({split: number of images} of the splits on disk), shape (native (C, H, W);
    (2,) for 2D), classes (number of true classes or modes, or None), and problem (a message, only
    when the files are there but unreadable). Stacked MNIST adds digits (MNIST training digits found)
    and counts its images as the default data.stack_n."""
    from selfcond.data import cifar, files, mnist
    from selfcond.data.idx import idx_shape

    check_name(name)
    out = {"name": name, "kind": "images", "available": False, "path": None, "searched": [],
           "downloadable": False, "splits": {}, "shape": None, "classes": None}

    def found(split: str, root, count) -> None:
        out["path"] = out["path"] or str(root)
        out["splits"][split] = count

    try:
        if name in TOY:
            out.update(kind="2d", available=True, shape=[2], classes=TOY[name]().num_modes)
        elif name == "digits":
            out.update(available=True, path="embedded in scikit-learn", splits={"train": 1797},
                       shape=[1, 8, 8], classes=10)
        elif name in mnist.IDX_DATASETS or name == "stacked-mnist":
            stacked = name == "stacked-mnist"
            source = "mnist" if stacked else name
            out.update(searched=[str(d) for d in files.search_dirs(source, data_dir)], downloadable=True,
                       shape=[3 if stacked else 1, 28, 28], classes=1000 if stacked else 10)
            for split, pair in mnist.SPLITS.items():
                if (root := files.find(source, list(pair), data_dir)) is not None:
                    found(split, root, idx_shape(root / pair[0])[0])
            if stacked:
                from selfcond.config import DataConfig

                digits_found = out["splits"].get("train")
                out.update(digits=digits_found, splits={"train": DataConfig().stack_n} if digits_found else {})
        elif name == "cifar10":
            out.update(searched=[str(d) for d in files.search_dirs(cifar.NAME, data_dir)], downloadable=True,
                       shape=[3, 32, 32], classes=10)
            for split, batch_files in cifar.SPLITS.items():
                if (root := files.find(cifar.NAME, batch_files, data_dir, inner=cifar.INNER)) is not None:
                    found(split, root, sum(len(cifar.read_batch(root / f)[1]) for f in batch_files))
        else:  # a directory of images: counted, not decoded
            from selfcond.data.folder import folder_labels, image_files

            root = Path(name).expanduser()
            out.update(kind="folder", searched=[str(root)])
            if root.is_dir() and (rels := image_files(root)):
                labels, classes = folder_labels(root, rels)
                found("train", root.resolve(), len(rels))
                out["classes"] = None if labels is None else (len(classes) if classes else max(labels) + 1)
        out["available"] = out["kind"] == "2d" or "train" in out["splits"]
    except UserError as e:
        out.update(available=False, problem=str(e))
    return out


__all__ = ["load", "names", "available", "info", "Toy2D", "ImageDataset"]

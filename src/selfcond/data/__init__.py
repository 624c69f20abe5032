"""Datasets by name: `load(cfg.data)` -> a dataset object the train loop draws batches from."""

from __future__ import annotations

from selfcond.data.images import ImageDataset, digits
from selfcond.data.toy2d import TOY, Toy2D
from selfcond.errors import UserError

IMAGES = {"digits": digits}


def names() -> list[str]:
    return sorted(TOY) + sorted(IMAGES)


def load(data_cfg):
    """Build the dataset named by a `DataConfig`."""
    if data_cfg.name in TOY:
        return TOY[data_cfg.name]()
    if data_cfg.name in IMAGES:
        return IMAGES[data_cfg.name](data_cfg.resolution)
    raise UserError(f"unknown dataset {data_cfg.name!r} (available: {', '.join(names())})")


__all__ = ["load", "names", "Toy2D", "ImageDataset"]

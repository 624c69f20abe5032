"""Datasets by name: `load(cfg.data)` -> a dataset object the train loop draws batches from."""

from __future__ import annotations

from selfcond.data.toy2d import TOY, Toy2D
from selfcond.errors import UserError


def names() -> list[str]:
    return sorted(TOY)


def load(data_cfg):
    """Build the dataset named by a `DataConfig`."""
    if data_cfg.name in TOY:
        return TOY[data_cfg.name]()
    raise UserError(f"unknown dataset {data_cfg.name!r} (available: {', '.join(names())})")


__all__ = ["load", "names", "Toy2D"]

"""The partition: who belongs to which mode. The only thing that differs between methods.

A partition owns the mode labels of real data, the prior π over modes and a `refresh()` that
recomputes them on its schedule. The train loop asks it for the labels of each real batch
(`labels`), draws fake conditions from π (`sample`), and calls `refresh` when `due(step)`.
"""

from __future__ import annotations

import torch

from selfcond.data.base import Batch


class Partition:
    """Base class; subclasses set `conditional` and override what they change.

    k: number of conditions G and D's conditional head have.
    conditional: False for unconditional methods (D uses its unconditional head).
    counts: (k,) float64 tensor of real samples per mode; π = counts / counts.sum().
    """

    conditional = True

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

    def bind(self, trainer) -> None:
        """Called once after the nets exist (fresh run and resume alike)."""

    def start(self, trainer) -> None:
        """Called once before the first step of a fresh run (not on resume)."""

    def labels(self, batch: Batch) -> torch.Tensor | None:
        """Modes of a real batch: (n,) int64, or None for unconditional methods."""
        return None

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Conditions for n fakes, drawn from π: (n,) int64 on the partition's device (drawn on the
        generator's device)."""
        pi = self.pi.float().to(generator.device if generator is not None else self.device)
        return torch.multinomial(pi, n, replacement=True, generator=generator).to(self.device)

    def due(self, step: int) -> bool:
        return False

    def refresh(self, trainer, step: int) -> dict:
        """Recompute labels and π; returns a small summary for the log."""
        return {}

    def state_dict(self) -> dict:
        return {"counts": self.counts}

    def load_state_dict(self, state: dict) -> None:
        self.counts = state["counts"].to(self.device)

    def summary(self) -> dict:
        return {"modes_alive": int(self.alive.sum())}

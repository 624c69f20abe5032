"""What keeps a run from losing work: signals that stop it at a step boundary, and the watch for
NaN/inf losses and weights."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import torch

from selfcond.errors import TrainingDiverged, UserError


class StopSignals:
    """Inside the block, SIGINT and SIGTERM only record themselves (`received`): the loop stops at
    the next step boundary and saves a checkpoint there, so the saved state is never half a step.
    Outside the main thread, signals are left alone."""

    def __init__(self):
        self.received: list[int] = []
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, lambda signum, frame: self.received.append(signum))
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return bool(self.received)


class LossWatch:
    """The first step whose losses were not finite, kept on the device: reading losses every step
    would make the CPU wait for the GPU each step, so the loop asks `check()` only when it looks
    anyway (log lines, and before anything is refreshed or saved)."""

    def __init__(self, device: torch.device):
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def add(self, losses: dict, step: int) -> None:
        finite = torch.stack([v.isfinite() for v in losses.values()]).all()
        self.first_bad = torch.where(finite | (self.first_bad >= 0), self.first_bad, step)

    def check(self) -> None:
        bad = int(self.first_bad)
        if bad >= 0:
            raise TrainingDiverged(f"the loss is NaN/inf at step {bad}", bad)


def check_weights(nets: dict, step: int) -> None:
    """A TrainingDiverged if any of the named nets has a NaN/inf weight."""
    for name, net in nets.items():
        if net is not None and not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
            raise TrainingDiverged(f"weights of {name} are NaN/inf at step {step}", step)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for tensors on `device` (CUDA: free memory; CPU: MemAvailable), None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_batch_fits(batch: int, shape: tuple, device: torch.device) -> None:
    """A UserError when one float32 batch of real data alone cannot fit in `device`'s memory."""
    need, free = batch * math.prod(shape) * 4, available_memory(device)
    if free is not None and need > free:
        raise UserError(f"train.batch ({batch}) needs {need / 2**30:.1f} GiB for one batch of real data alone, "
                        f"and {device.type} has {free / 2**30:.1f} GiB free: lower --batch")


def out_of_memory(e: BaseException) -> bool:
    """Whether `e` is an allocation failure (CUDA's OutOfMemoryError, or the CPU allocator's)."""
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("can't allocate memory" in str(e) or "out of memory" in str(e)))

"""The files of a run directory: numbered directories, JSON lines, the log, TensorBoard events.

Files a reader depends on are written atomically (selfcond.atomic); JSON lines are appended whole,
one record per line, and readers skip a last line cut short.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from selfcond.errors import UserError

RUN_RE = re.compile(r"^(\d{5})-")


def append_jsonl(path: str | Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def new_run_dir(root: str | Path, desc: str) -> Path:
    """Create `root/NNNNN-desc/` with the next free number; never reuses an existing directory."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"--out {root}: a file is in the way of the runs directory; give a directory") from None
    while True:
        taken = [int(m.group(1)) for p in root.iterdir() if (m := RUN_RE.match(p.name))]
        path = root / f"{max(taken, default=-1) + 1:05d}-{desc}"
        try:
            path.mkdir()  # fails if another process took the number first: try the next one
            return path
        except FileExistsError:
            continue


def find_run(run: str | Path, out: str | Path = "runs") -> Path:
    """A run directory; 'latest' is the highest-numbered run under `out` that has a checkpoint."""
    if str(run) != "latest":
        return Path(run)
    root = Path(out)
    runs = sorted(p for p in root.iterdir() if RUN_RE.match(p.name) and (p / "latest").is_file()) \
        if root.is_dir() else []
    if not runs:
        raise UserError(f"no run with a checkpoint under {root}/ to resume")
    return runs[-1]


class RunLog:
    """stats.jsonl (and TensorBoard scalars when tensorboard is installed) and log.txt of a run."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._tb = None  # None = not tried yet, False = tensorboard missing

    def stats(self, record: dict) -> None:
        append_jsonl(self.run_dir / "stats.jsonl", record)
        self.scalars("train", record)

    def scalars(self, group: str, record: dict) -> None:
        if self._tb is None:
            self._tb = _tensorboard(self.run_dir)
        if self._tb:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{group}/{key}", value, record["step"])
            self._tb.flush()

    def event(self, step: int, record: dict) -> None:
        line = f"step {step}: " + ", ".join(f"{k}={v}" for k, v in record.items())
        with open(self.run_dir / "log.txt", "a") as f:
            f.write(line + "\n")


def _tensorboard(run_dir: Path):
    """A SummaryWriter into the run directory when tensorboard is installed, else False."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        return False
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir))

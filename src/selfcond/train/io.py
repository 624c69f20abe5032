"""Files of a run: numbered run directories, atomic writes, JSON lines, checkpoints.

Every file a run depends on is written atomically (selfcond.atomic): a crash leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import torch

from selfcond.atomic import atomic_write  # noqa: F401 - re-exported: io.atomic_write
from selfcond.errors import UserError

RUN_RE = re.compile(r"^(\d{5})-")


def append_jsonl(path: str | Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def new_run_dir(root: str | Path, desc: str) -> Path:
    """Create `root/NNNNN-desc/` with the next free number; never reuses an existing directory."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        taken = [int(m.group(1)) for p in root.iterdir() if (m := RUN_RE.match(p.name))]
        path = root / f"{max(taken, default=-1) + 1:05d}-{desc}"
        try:
            path.mkdir()  # fails if another process took the number first: try the next one
            return path
        except FileExistsError:
            continue


def save_checkpoint(run_dir: Path, state: dict, step: int, keep: int = 3) -> Path:
    """Write `checkpoint-<step>.pt` atomically, point `latest` at it, keep the newest `keep`."""
    buf = io.BytesIO()
    torch.save(state, buf)
    path = run_dir / f"checkpoint-{step:08d}.pt"
    atomic_write(path, buf.getvalue())
    atomic_write(run_dir / "latest", path.name + "\n")
    for old in sorted(run_dir.glob("checkpoint-*.pt"))[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"no run directory or checkpoint at {path}")
    if path.is_dir():
        pointer = path / "latest"
        if not pointer.is_file():
            raise UserError(f"no checkpoint in run directory {path} (no 'latest' file)")
        path = path / pointer.read_text().strip()
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated or corrupt file: say which, never a traceback
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__})") from None

"""Atomic file writes, for every file a reader may depend on (run files, caches, reports, bench
records): a temporary name in the same directory, fsynced, then renamed over the target, so a crash
leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_write(path: str | Path, data: bytes | str) -> None:
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, value) -> None:
    """`value` as indented JSON, atomically."""
    atomic_write(path, json.dumps(value, indent=1) + "\n")

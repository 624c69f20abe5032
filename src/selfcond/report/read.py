"""Reading a run directory for its report: every input may be missing or partial (a run that has
just started, an unconditional method without modes files, a JSON line cut short while being
written); what does not parse is left out, nothing else is caught."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAKES_RE = re.compile(r"^fakes_(\d+)\.png$")


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; lines that do not parse (e.g. the last one, cut short
    while being written) and lines that are not objects are skipped."""
    records = []
    for line in (read_bytes(path) or b"").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_json(path: Path) -> dict | None:
    data = read_bytes(path)
    try:
        record = json.loads(data) if data else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def number(value) -> float | None:
    """A finite float, or None for anything else (strings, bools, NaN, missing)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def step_of(record: dict) -> int | None:
    step = record.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def by_step(records: list[dict]) -> list[dict]:
    """Records with an integer step, one per step (the last one written wins, as after a resume),
    sorted by step."""
    out = {}
    for record in records:
        if (step := step_of(record)) is not None:
            out[step] = record
    return [out[s] for s in sorted(out)]


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for record in records:
        if (y := number(record.get(key))) is not None:
            xs.append(record["step"])
            ys.append(y)
    return xs, ys


def png(path: Path) -> bytes | None:
    data = read_bytes(path)
    return data if data and data.startswith(PNG_MAGIC) else None


def latest_fakes(run_dir: Path) -> tuple[int, Path] | None:
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := FAKES_RE.match(p.name))]
    return max(found) if found else None


def pi_rows(history: list[dict]) -> tuple[list[int], list[list[float]]]:
    steps, rows = [], []
    for record in history:
        pi = record.get("pi")
        if isinstance(pi, list) and pi and all(number(p) is not None for p in pi):
            steps.append(record["step"])
            rows.append([float(p) for p in pi])
    return steps, rows


def mode_x_label(latest: dict | None) -> list[list[int]] | None:
    """The mode x true-label count table of a modes record, rows padded to one width; None if absent."""
    table = (latest or {}).get("mode_x_label")
    if (isinstance(table, list) and table and all(isinstance(r, list) and r for r in table)
            and all(number(v) is not None for r in table for v in r)):
        width = max(len(r) for r in table)
        return [[int(v) for v in r] + [0] * (width - len(r)) for r in table]
    return None


def live_rows(latest: dict, table: list[list[int]]) -> list[int]:
    """Modes to show: those with any real images, sorted by π (largest first)."""
    pi = latest.get("pi") if isinstance(latest.get("pi"), list) else []

    def weight(m):
        return (number(pi[m]) or 0.0) if m < len(pi) else 0.0

    rows = [m for m, row in enumerate(table) if sum(row) > 0]
    return sorted(rows, key=lambda m: (-weight(m), m))


@dataclass
class RunFiles:
    """What a run directory holds now, read leniently."""

    config_text: str
    config: dict
    stats: list[dict]
    metrics: list[dict]
    history: list[dict]  # modes records by step, modes.json's appended if modes.jsonl lost it
    fakes: tuple[int, Path] | None
    fakes_png: bytes | None
    reals_png: bytes | None
    log_lines: list[str]

    def option(self, section: str, key: str):
        part = self.config.get(section)
        return part.get(key) if isinstance(part, dict) else None


def read_run(run_dir: Path) -> RunFiles:
    config_text = (read_bytes(run_dir / "config.yaml") or b"").decode("utf-8", "replace")
    try:
        config = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:
        config = None
    history = by_step(read_jsonl(run_dir / "modes.jsonl"))
    saved = read_json(run_dir / "modes.json")
    if saved is not None and step_of(saved) is not None and (not history or saved["step"] > history[-1]["step"]):
        history.append(saved)  # modes.jsonl lost its last line (cut short): modes.json has it
    fakes = latest_fakes(run_dir)
    return RunFiles(
        config_text=config_text, config=config if isinstance(config, dict) else {},
        stats=by_step(read_jsonl(run_dir / "stats.jsonl")), metrics=read_jsonl(run_dir / "metrics.jsonl"),
        history=history, fakes=fakes, fakes_png=png(fakes[1]) if fakes else None,
        reals_png=png(run_dir / "reals.png"),
        log_lines=(read_bytes(run_dir / "log.txt") or b"").decode("utf-8", "replace").splitlines()[-30:])

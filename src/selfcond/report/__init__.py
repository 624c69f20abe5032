"""report.html: one static page per run, rewritten at each snapshot.

The page shows what the run directory holds so far: a header (run, method, data, step, date), the
resolved config, the metrics table, plots (losses, modes alive, π over time, metrics, the mode x
label table when true labels exist) and the latest sample grid beside reals.png. Reading the run's
files is report/read.py, the HTML report/render.py, the plots viz/plots.py.
"""

from __future__ import annotations

from pathlib import Path

from selfcond.atomic import atomic_write
from selfcond.report.read import mode_x_label
from selfcond.report.render import mode_label_heatmap, render_report


def mode_label_png(info: dict) -> bytes | None:
    """The mode x true-label heatmap of a modes.json record, as PNG bytes; None without labels or with
    more than 50 classes (Stacked MNIST's 1000 labels do not make a readable picture)."""
    table = mode_x_label(info)
    if table is None or len(table[0]) > 50:
        return None
    return mode_label_heatmap(info, table)


def write_report(run_dir: str | Path, mode_label: bytes | None = None) -> Path:
    """Write `run_dir/report.html` from what the run directory holds now and return its path.

    Reads config.yaml, stats.jsonl, metrics.jsonl, modes.jsonl / modes.json, the newest
    fakes_<step>.png and reals.png; any of them may be missing or partial. The page is one static
    file, written atomically (temp file, fsync, rename), so a browser or a crash never sees half a
    report. Costs about a second of CPU (matplotlib)."""
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    atomic_write(path, render_report(run_dir, mode_label))
    return path


__all__ = ["mode_label_png", "render_report", "write_report"]

"""Snapshots of a run: metrics, sample pictures, the modes files, a checkpoint and the report, all
written atomically into the run directory.

- fakes_<step>.png: one row per live mode, modes sorted by π, the same noise at every snapshot
  (2D data: a scatter plot over the true means); reals.png: real images of the same modes;
- modes.json (the partition now) and modes.jsonl (its history: after every refresh and snapshot),
  with the mode x label table when the data have true labels, drawn as modes_x_labels.png;
- report.html, a view of the files above, rewritten at each snapshot (its failure is logged, never
  fatal).
"""

from __future__ import annotations

import json
import sys

import torch

from selfcond.atomic import atomic_write
from selfcond.data.base import IndexedDataset
from selfcond.metrics.clusters import contingency
from selfcond.train.rundir import append_jsonl
from selfcond.viz.grid import mode_grid_png


class ModesRecord:
    """modes.json and modes.jsonl of a trainer's run.

    A snapshot at step s comes before the refresh due at s, so that step can hold two records: the
    partition G trained with, then the refreshed one."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.step, self.info = -1, None  # the last record and its step

    def now(self) -> dict:
        """π, counts and (with true labels) the mode x label table of the partition now."""
        t = self.trainer
        p, ds = t.partition, t.dataset
        info = {"step": t.step, "pi": p.pi.tolist(), "counts": p.counts.tolist(),
                "modes_alive": int(p.alive.sum())}
        if p.table is not None and isinstance(ds, IndexedDataset) and ds.labels is not None:
            info["mode_x_label"] = contingency(p.table.cpu(), ds.labels.cpu(), p.k, ds.num_classes).tolist()
        return info

    def record(self, refreshed: bool = False) -> dict | None:
        t = self.trainer
        if t.run_dir is None or not t.world.main or not t.partition.conditional:
            return None
        if self.step == t.step and not refreshed:
            return None
        info = self.now()
        atomic_write(t.run_dir / "modes.json", json.dumps(info) + "\n")
        append_jsonl(t.run_dir / "modes.jsonl", info)
        self.step, self.info = t.step, info
        return info


def take(trainer) -> None:
    """Metrics, sample images, the modes files and a checkpoint, all written atomically, then the
    report. A net with NaN/inf weights is never checkpointed: the last good checkpoint stays the
    latest. Called by every rank: the metrics' samples are shared out between them (dist.gathered);
    rank 0 alone writes."""
    t = trainer
    t.check_weights()
    metrics = {"step": t.step, **t.evaluate(snapshot=True, every_rank=True)}
    t.last_metrics = metrics
    if not t.world.main:
        return
    t.log.scalars("metrics", metrics)
    append_jsonl(t.run_dir / "metrics.jsonl", metrics)
    if t.cfg.kind == "points":
        from selfcond.viz.plots import scatter_png

        x, y = t.sample(2500, t.eval_generator(2))
        title = f"{t.cfg.method.name} step {t.step}: " + ", ".join(
            f"{k}={v:.3g}" for k, v in metrics.items() if k != "step")
        atomic_write(t.run_dir / f"fakes_{t.step:08d}.png", scatter_png(x.cpu(), y.cpu(), t.dataset.means, title))
    else:
        _image_grids(t)
    t.modes.record()
    info = t.modes.info if t.partition.conditional and t.modes.info else {}
    png = None
    if "mode_x_label" in info:  # modes_x_labels.png: which true labels each mode holds
        from selfcond.report import mode_label_png

        png = mode_label_png(info)
        if png:
            atomic_write(t.run_dir / "modes_x_labels.png", png)
    t.save_checkpoint()
    try:  # the report is a view of the files above: its failure must not stop training
        from selfcond.report import write_report

        write_report(t.run_dir, mode_label=png)  # the heatmap of the newest modes record
    except Exception as e:  # noqa: BLE001 - logged, visible, and the run goes on
        t.event({"event": "report_failed", "error": f"{type(e).__name__}: {e}"})
        print(f"warning: report.html not written at step {t.step}: {type(e).__name__}: {e}", file=sys.stderr)


def _image_grids(t, rows: int = 20, cols: int = 10) -> None:
    """fakes_<step>.png: one row per live mode, modes sorted by π (fixed noise across snapshots);
    reals.png: real images of the same modes."""
    pi = t.partition.pi
    order = torch.argsort(pi, descending=True, stable=True)
    order = order[pi[order] > 0][:rows]
    names = [f"{int(m)}: {float(pi[m]):.2f}" for m in order]
    x, _ = t.sample(len(order) * cols, t.eval_generator(2), order.repeat_interleave(cols))
    grid = x.view(len(order), cols, *x.shape[1:]).cpu()
    atomic_write(t.run_dir / f"fakes_{t.step:08d}.png", mode_grid_png(grid, names))
    table = t.partition.table
    if table is not None:
        reals = torch.full_like(grid, -1.0)  # empty cells stay black
        for r, m in enumerate(order):  # one gather per shown mode, not per image
            idx = torch.nonzero(table == m).flatten()[:cols]
            reals[r, :len(idx)] = t.dataset.images(idx, "cpu")
        atomic_write(t.run_dir / "reals.png", mode_grid_png(reals, names))

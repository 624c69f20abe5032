"""Using what a run learnt: the mode of every image of a dataset, as a CSV (and a sheet of each
mode's images), with the images that fit no mode well flagged. `selfcond assign` calls
`assign_data`; `Model.assign` (api.py) does the labelling."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

import torch

from selfcond import data as datasets
from selfcond.atomic import atomic_write
from selfcond.data.base import DataOptions, IndexedDataset
from selfcond.errors import UserError
from selfcond.options import build


def assign_options(run_data: DataOptions, name: str | None, split: str | None = None,
                   data_dir: str | None = None) -> DataOptions:
    """The data options to assign: the named dataset (default: the run's own) at the run's
    resolution, every item (no held-out share), with `split` and `data_dir` where it has them."""
    name = name or run_data.name
    cls = datasets.spec(name).options
    tree = {k: v for k, v in asdict(run_data).items() if k in cls.keys()} if name == run_data.name else {}
    tree["name"] = name
    if "resolution" in cls.keys() and "resolution" in asdict(run_data):
        tree["resolution"] = run_data.resolution
    if "holdout" in cls.keys():
        tree["holdout"] = 0.0
    for key, value in (("split", split), ("data_dir", data_dir)):
        if value is not None:
            if key not in cls.keys():
                raise UserError(f"dataset {name!r} has no {key.replace('_', '-')}")
            tree[key] = value
    return build(cls, tree, "data", f"dataset {name}")


def mode_sheet(x: torch.Tensor, assigned, k: int, rows: int = 20, cols: int = 10) -> tuple[torch.Tensor, list[str]]:
    """(rows, cols, C, H, W) images of the most populated modes (outliers left out), one row each,
    and a last row of outliers when there are any; and the rows' names."""
    keep = ~assigned.outlier
    counts = torch.bincount(assigned.modes[keep], minlength=k)
    order = [m for m in torch.argsort(counts, descending=True, stable=True).tolist() if counts[m] > 0][:rows]
    groups = [torch.nonzero((assigned.modes == m) & keep).flatten()[:cols] for m in order]
    names = [f"{m}: {int(counts[m])}" for m in order]
    if bool(assigned.outlier.any()):
        groups.append(torch.nonzero(assigned.outlier).flatten()[:cols])
        names.append(f"outliers: {int(assigned.outlier.sum())}")
    sheet = torch.full((len(groups), cols, *x.shape[1:]), -1.0)  # empty cells stay black
    for r, idx in enumerate(groups):
        sheet[r, :len(idx)] = x[idx]
    return sheet, names


def to_csv(ds: IndexedDataset, assigned) -> str:
    """index, file, label, mode, fit, probability, outlier: one row per image."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "file", "label", "mode", "fit", "probability", "outlier"])
    n = len(ds)
    labels = ds.labels.tolist() if ds.labels is not None else [""] * n
    files = ds.files if ds.files is not None else [""] * n
    prob = [f"{p:.4f}" for p in assigned.probability.tolist()] if assigned.probability is not None else [""] * n
    for i, row in enumerate(zip(files, labels, assigned.modes.tolist(), assigned.fit.tolist(), prob,
                                assigned.outlier.tolist())):
        f, lab, m, fit, p, o = row
        w.writerow([i, f, lab, m, f"{fit:.6g}", p, int(o)])
    return buf.getvalue()


def assign_data(model, name: str | None = None, split: str | None = None, data_dir: str | None = None,
                out: str | Path | None = None, grid: bool = False, quantile: float = 0.01,
                threshold: float | None = None) -> dict:
    """Label every image of dataset `name` (default: the run's own) with `model`'s modes: writes
    the CSV (default RUN/assign-NAME.csv) and, with `grid`, a PNG beside it; returns a summary
    (n, modes used, outliers, threshold, files, and purity/NMI/ARI when the data have labels)."""
    from selfcond.metrics.clusters import cluster_scores

    options = assign_options(model.cfg.data, name, split, data_dir)
    ds = datasets.load(options)
    if not isinstance(ds, IndexedDataset):
        raise UserError(f"assign labels images; dataset {options.name!r} is sampled fresh (2D points)")
    path = Path(out) if out else model.run_dir / f"assign-{ds.name}{'-' + split if split else ''}.csv"
    if path.is_dir():
        raise UserError(f"--out {path} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.cat([ds.images(torch.arange(i, min(i + 5000, len(ds))), "cpu") for i in range(0, len(ds), 5000)])
    a = model.assign(x, quantile=quantile, threshold=threshold)
    atomic_write(path, to_csv(ds, a))
    result = {"run": str(model.run_dir), "data": options.name, "n": len(ds), "modes": int(a.modes.unique().numel()),
              "outliers": int(a.outlier.sum()), "threshold": a.threshold, "csv": str(path)}
    if ds.labels is not None:
        result.update(cluster_scores(a.modes, ds.labels, model.k, ds.num_classes))
    if grid:
        from selfcond.viz.grid import mode_grid_png

        sheet, names = mode_sheet(x, a, model.k)
        atomic_write(path.with_suffix(".png"), mode_grid_png(sheet, names))
        result["grid"] = str(path.with_suffix(".png"))
    return result

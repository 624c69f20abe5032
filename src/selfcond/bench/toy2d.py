"""The 2D mode-collapse benchmark (Self-Conditioned GAN paper, Table 1).

Every (dataset, method, trial) trains from scratch with seed = seed0 + trial, then draws 50,000
samples (conditions from π) and scores them with `modes2d`. Trials run in parallel processes, one
torch thread each: the 2D nets are too small to gain from more threads per run.
"""

from __future__ import annotations

import statistics
import sys

import click

from selfcond.bench import runner
from selfcond.bench.runner import bench_command, groups, mean_std, names, saver, trial_options
from selfcond.errors import UserError

METRICS = ("modes", "hq", "rkl")


def trial(job: dict) -> dict:
    """Train one configuration and score it on 50,000 samples."""
    rec, _, m = runner.run_trial(job, metrics=["modes2d"], n=50_000)
    return {"bench": "2d", **rec, **{key: m[key] for key in METRICS}}


def run(datasets, methods, trials: int, steps: int, seed: int = 0, jobs: int = 1,
        overrides: dict | None = None, out: str | None = None, progress: bool = True,
        on_record=None) -> list[dict]:
    """All trials of the table, in `jobs` worker processes; records in a stable order.
    `on_record(records_so_far)` is called after each trial (e.g. to save partial results)."""
    todo = [{"data": d, "method": m, "trial": t, "seed": seed + t, "steps": steps, "set": overrides or {},
             "out": out} for d in datasets for m in methods for t in range(trials)]
    runner.check_jobs(todo)
    return runner.run_jobs(todo, trial, jobs, on_record,
                           report=lambda done, total, rec: _progress(progress, done, total, rec))


def _progress(on: bool, done: int, total: int, rec: dict) -> None:
    if on:
        print(f"[{done}/{total}] {rec['dataset']} {rec['method']} trial {rec['trial']}: "
              f"modes={rec['modes']} hq={rec['hq']:.3f} rkl={rec['rkl']:.4f} ({rec['seconds']:.0f}s)",
              file=sys.stderr, flush=True)


def markdown(records: list[dict]) -> str:
    """One row per (dataset, method): mean ± std over trials, and seconds per trial."""
    lines = ["| data | method | trials | modes | high quality (%) | reverse KL | s / trial |",
             "|---|---|---|---|---|---|---|"]
    for (data, method), rs in groups(records, "dataset", "method"):
        modes = mean_std(r["modes"] for r in rs)
        hq = mean_std(100 * r["hq"] for r in rs)
        rkl = mean_std(r["rkl"] for r in rs)
        secs = statistics.fmean(r["seconds"] for r in rs)
        lines.append(f"| {data} | {method} | {len(rs)} | {modes[0]:.1f} ± {modes[1]:.1f} | "
                     f"{hq[0]:.1f} ± {hq[1]:.1f} | {rkl[0]:.4f} ± {rkl[1]:.4f} | {secs:.0f} |")
    return "\n".join(lines)


@bench_command("2d")
@click.option("--data", "datasets", default="ring,grid", show_default=True, help="comma-separated: ring, grid")
@click.option("--methods", default="gan,pacgan,mbd,scgan,cgan", show_default=True)
@trial_options(trials=5, steps=20000)
def command(datasets, methods, trials, steps, seed, jobs, sets, out, json_path):
    """Table 1 of Self-Conditioned GAN: modes, high-quality share and reverse KL on 2D mixtures."""
    from selfcond import data
    from selfcond.config import parse_sets

    ds = names(datasets)
    for d in ds:
        if d not in data.names() or data.spec(d).kind != "points":
            raise UserError(f"bench 2d: unknown dataset {d!r} (use ring, grid)")
    records = run(ds, names(methods), trials, steps, seed=seed, jobs=jobs, overrides=parse_sets(sets), out=out,
                  on_record=saver(json_path))
    click.echo(markdown(records))

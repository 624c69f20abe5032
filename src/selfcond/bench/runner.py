"""What every benchmark shares: the bench registry, the options of trial tables, trials in
worker processes, records saved as they come, mean ± std.

A bench is one module that registers its click command with `@bench_command(verb)`; `selfcond
bench` lists them. Trial tables (2d, stacked-mnist, clusters) share `trial_options` and `run_jobs`.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import statistics
import time
from typing import Callable

import click

from selfcond.registry import Registry

BENCHES: Registry[click.Command] = Registry("bench", "selfcond.bench")


def bench_command(verb: str, **kwargs):
    """Register the decorated function as `selfcond bench VERB`."""
    def add(fn):
        cmd = click.command(verb, **kwargs)(fn)
        BENCHES.register(verb, cmd)
        return cmd
    return add


def trial_options(trials: int, steps: int):
    """--trials, --steps, --seed, --jobs, --set, --out, --json: the options of every trial table."""
    def add(fn):
        for option in reversed([
            click.option("--trials", type=click.IntRange(min=1), default=trials, show_default=True),
            click.option("--steps", type=click.IntRange(min=1), default=steps, show_default=True,
                         help="training steps of every trial"),
            click.option("--seed", type=int, default=0, show_default=True, help="trial t uses seed + t"),
            click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                         help="trials run side by side, one process of one torch thread each"),
            click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="config override for every trial"),
            click.option("--out", help="keep each trial's run directory under this folder"),
            click.option("--json", "json_path", help="write the records here (rewritten after every trial)"),
        ]):
            fn = option(fn)
        return fn
    return add


def names(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']."""
    return [t.strip() for t in text.split(",") if t.strip()]


def saver(json_path: str | None) -> Callable[[list[dict]], None]:
    """on_record for run_jobs: the records so far, written atomically to `json_path` (if given,
    checked now: a table must not be lost to a bad path after hours of trials)."""
    from pathlib import Path

    from selfcond.atomic import write_json
    from selfcond.errors import UserError

    if json_path:
        path = Path(json_path)
        if path.is_dir():
            raise UserError(f"--json {path} is a directory; give a file name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UserError(f"--json {path}: {path.parent} is not a directory") from None
    return lambda records: write_json(json_path, records) if json_path else None


def method_sets(method: str, sets: dict) -> dict:
    """The bench's --set overrides that apply to `method`: all but the method.* keys it lacks, so
    one table can set MIC-GANs' schedule beside Self-Conditioned GAN."""
    from selfcond.partition.base import METHODS

    keys = METHODS.get(method).options.keys()
    return {k: v for k, v in sets.items() if not k.startswith("method.") or k.split(".", 1)[1] in keys}


def trial_overrides(job: dict) -> dict:
    """The config of one trial: its data, method, seed and steps (k and data_dir when the job has
    them), one torch thread unless the job says otherwise, then the bench's --set overrides that
    apply to its method."""
    o = {"data.name": job["data"], "method.name": job["method"], "train.steps": job["steps"],
         "train.seed": job["seed"], "train.threads": job.get("threads", 1)}
    if "k" in job:
        o["method.k"] = job["k"]
    if job.get("data_dir"):
        o["data.data_dir"] = job["data_dir"]
    return {**o, **method_sets(job["method"], job.get("set", {}))}


def run_trial(job: dict, metrics: list[str], n: int | None = None, classifier: bool = False,
              watch: Callable | None = None) -> tuple:
    """Train one trial from scratch and score it: (record, trainer, metrics).

    The run directory is kept under job["out"] when given. `classifier`: load (or train) the
    dataset's evaluation classifier before the clock starts. `watch(trainer)` is called before
    training starts (a bench that records what happens during training). The record holds what
    every bench reports; each bench adds its metrics."""
    from selfcond.config import resolve
    from selfcond.train import Trainer, start_run

    cfg = resolve(overrides=trial_overrides(job))
    if classifier:
        from selfcond.metrics.classifier import for_dataset

        for_dataset(cfg.data, progress=False)  # cached: trained once by the bench's `run`
    trainer = start_run(cfg, job["out"]) if job.get("out") else Trainer(cfg)
    if watch is not None:
        watch(trainer)
    start = time.perf_counter()
    trainer.train(progress=False)
    seconds = time.perf_counter() - start
    m = trainer.evaluate(n, metrics=metrics)
    record = {"dataset": job["data"], "method": job["method"], "trial": job["trial"], "seed": job["seed"],
              "steps": job["steps"], "seconds": round(seconds, 1),
              "modes_alive": trainer.partition.summary()["modes_alive"],
              "run": str(trainer.run_dir) if trainer.run_dir else None,
              "set": method_sets(job["method"], job.get("set", {}))}  # the record says how it ran
    return record, trainer, m


def synchronize(dev) -> None:
    """Wait for the device's queued work, so a timer stopped after it measures the work itself."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def check_jobs(todo: list[dict]) -> None:
    """Every job's options resolve, and every --set key applies to some trial: a bad one fails
    here, before any process starts."""
    from pathlib import Path

    from selfcond.config import resolve
    from selfcond.errors import UserError

    out = next((job["out"] for job in todo if job.get("out")), None)
    if out and Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file; give a directory for the trials' runs")
    for job in todo:
        resolve(overrides=trial_overrides(job))
    for key in {k for job in todo for k in job.get("set", {})}:
        if not any(key in method_sets(job["method"], job["set"]) for job in todo):
            methods = sorted({job["method"] for job in todo})
            raise UserError(f"--set {key}: none of the methods {', '.join(methods)} has that option")


def run_jobs(todo: list[dict], run_trial: Callable[[dict], dict], jobs: int = 1,
             on_record: Callable[[list[dict]], None] | None = None,
             report: Callable[[int, int, dict], None] | None = None) -> list[dict]:
    """Run `run_trial(job)` for every job, in `jobs` spawned processes (each trial sets its own torch
    threads). Records come back in job order; `on_record(records_so_far)` after each, so a long
    table interrupted half-way keeps what it measured."""
    records: list[dict] = []

    def done(rec: dict) -> None:
        records.append(rec)
        if report:
            report(len(records), len(todo), rec)
        if on_record:
            on_record(records)

    if jobs <= 1:
        for job in todo:
            done(run_trial(job))
    else:
        # SIGTERM must take the workers down too: leaving `with` terminates the pool.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            with mp.get_context("spawn").Pool(jobs) as pool:
                for rec in pool.imap(run_trial, todo):
                    done(rec)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return records


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def mean_std(values) -> tuple[float, float]:
    values = list(values)
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def groups(records: list[dict], *keys: str) -> list[tuple[tuple, list[dict]]]:
    """Records grouped by the values of `keys`, groups in order of first appearance."""
    out: dict[tuple, list[dict]] = {}
    for r in records:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return list(out.items())


def device_option(default: str = "cpu"):
    return click.option("--device", default=default, show_default=True, help="where ours runs (cpu, cuda, cuda:N)")


def bench_device(name: str):
    """The torch device of --device ("cuda" without CUDA: one clear line, not a traceback)."""
    from selfcond.train.loop import resolve_device

    return resolve_device(name)

"""What every benchmark shares: trials in worker processes, records saved as they come, mean ± std."""

from __future__ import annotations

import multiprocessing as mp
import signal
import statistics
import time
from typing import Callable

import torch

from selfcond.config import resolve


def trial_overrides(job: dict) -> dict:
    """The config of one trial: its data, method, seed and steps (k and data_dir when the job has
    them), one torch thread unless the job says otherwise, then the bench's --set overrides."""
    o = {"data.name": job["data"], "method.name": job["method"], "train.steps": job["steps"],
         "train.seed": job["seed"], "train.threads": job.get("threads", 1)}
    if "k" in job:
        o["method.k"] = job["k"]
    if job.get("data_dir"):
        o["data.data_dir"] = job["data_dir"]
    return {**o, **job.get("set", {})}


def run_trial(job: dict, metrics: list[str], n: int | None = None, classifier: bool = False) -> tuple:
    """Train one trial from scratch and score it: (record, trainer, metrics).

    The run directory is kept under job["out"] when given. `classifier`: load (or train) the
    dataset's evaluation classifier before the clock starts. The record holds what every bench
    reports; each bench adds its metrics."""
    from selfcond.train.loop import Trainer, start_run

    cfg = resolve(overrides=trial_overrides(job))
    if classifier:
        from selfcond.metrics.classifier import for_dataset

        for_dataset(cfg.data, progress=False)  # cached: trained once by the bench's `run`
    trainer = start_run(cfg, job["out"]) if job.get("out") else Trainer(cfg)
    start = time.perf_counter()
    trainer.train(progress=False)
    seconds = time.perf_counter() - start
    m = trainer.evaluate(n, metrics=metrics)
    record = {"dataset": job["data"], "method": job["method"], "trial": job["trial"], "seed": job["seed"],
              "steps": job["steps"], "seconds": round(seconds, 1),
              "modes_alive": trainer.partition.summary()["modes_alive"],
              "run": str(trainer.run_dir) if trainer.run_dir else None,
              "set": dict(job.get("set", {}))}  # the bench's --set overrides: the record says how it ran
    return record, trainer, m


def synchronize(dev: torch.device) -> None:
    """Wait for the device's queued work, so a timer stopped after it measures the work itself."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def check_jobs(todo: list[dict]) -> None:
    """Every job's options resolve: a bad one fails here, before any process starts."""
    for job in todo:
        resolve(overrides=trial_overrides(job))


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

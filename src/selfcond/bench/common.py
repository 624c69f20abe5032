"""What every benchmark shares: trials in worker processes, records saved as they come, mean ± std."""

from __future__ import annotations

import multiprocessing as mp
import signal
import statistics
from typing import Callable


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

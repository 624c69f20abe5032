"""Starting a run and resuming one: what `selfcond train` and `selfcond train --resume` call."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from selfcond import config as cfgmod
from selfcond.atomic import atomic_write
from selfcond.config import Config, to_yaml
from selfcond.errors import UserError
from selfcond.train import checkpoint, dist
from selfcond.train.loop import Trainer
from selfcond.train.rundir import find_run, new_run_dir

# Keys that may differ when resuming a run: they do not change what has been trained so far.
RESUMABLE_KEYS = {"train.steps", "train.device", "train.threads", "train.snapshot_every",
                  "train.log_every", "train.eval_samples", "train.metrics", "train.nan_retry",
                  "train.keep_checkpoints", "train.ema", "train.minutes", "train.amp", "train.channels_last",
                  "train.sync_bn"}


def start_run(cfg: Config, out: str | Path = "runs") -> Trainer:
    """A trainer writing to a new numbered run directory with the resolved config saved in it.

    The data, the nets, the partition's first clustering and the metrics named in train.metrics are
    checked before anything is written, so a mistake leaves no run directory behind."""
    from selfcond.metrics import check_names

    trainer = Trainer(cfg)
    began = time.perf_counter()
    trainer.start()  # the first clustering, timed for the log as each refresh is
    seconds = round(time.perf_counter() - began, 3)
    check_names(cfg.train.metrics)
    desc = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{trainer.dataset.name}-{cfg.method.name}{cfg.method.run_suffix()}")
    # Rank 0 numbers and makes the directory; the other ranks learn its name and write nothing.
    run_dir = dist.broadcast_object(str(new_run_dir(out, desc)) if trainer.world.main else None)
    trainer.attach(run_dir)
    trainer.new_dir = True
    if trainer.world.main:
        atomic_write(trainer.run_dir / "config.yaml", to_yaml(cfg))
    trainer.event({"event": "start", **trainer.partition.summary(), "seconds": seconds})
    return trainer


@dataclass
class Resumption:
    """What resuming a run will do: its directory, checkpoint, the config it continues under, and
    notes for the user (keys the checkpoint predates, filled with today's defaults)."""

    run_dir: Path
    state: dict
    cfg: Config
    notes: list[str] = field(default_factory=list)


def plan_resume(run: str | Path, overrides: dict | None = None, out: str | Path = "runs") -> Resumption:
    """The checked plan of resuming `run` (a run directory, one of its checkpoint files, or
    'latest' under `out`) with `overrides`; nothing is written. Keys outside RESUMABLE_KEYS may
    not change."""
    run = find_run(run, out)
    if run.is_file():  # a checkpoint file: its run directory is the one beside it
        path, run_dir = run, run.parent
    else:
        path, run_dir = run, run
    overrides = overrides or {}
    state, saved_cfg = checkpoint.load(path)  # checked against the config it was written with
    try:
        cfg = cfgmod.resolve(state["config"], overrides)
    except UserError as e:
        raise UserError(f"resuming {run_dir}: {e}") from None
    before = cfgmod.flat_of(saved_cfg.to_dict())
    saved, _ = cfgmod.upgrade(state["config"])
    notes = []
    # A checkpoint from an older version lacks the keys added since: they take today's defaults,
    # which is not a change the user asked for.
    added = sorted(set(before) - set(cfgmod.flat_of(saved)) - set(overrides) - {"version"})
    if added:
        notes.append(f"note: the checkpoint predates {', '.join(added)}; "
                     f"using {', '.join(f'{k}={before[k]}' for k in added)}")
    changed = {k for k, v in cfgmod.flat_of(cfg.to_dict()).items() if before.get(k) != v} - RESUMABLE_KEYS
    if changed:
        raise UserError(f"cannot change {', '.join(sorted(changed))} when resuming "
                        f"(only {', '.join(sorted(RESUMABLE_KEYS))} may change)")
    return Resumption(run_dir, state, cfg, notes)


def resume(plan: Resumption) -> Trainer:
    """A trainer continuing the planned run exactly where its checkpoint stopped; its
    config.yaml is rewritten with the overrides applied."""
    trainer = Trainer(plan.cfg, plan.run_dir)
    trainer.load_state_dict(plan.state)
    if trainer.world.main:
        atomic_write(plan.run_dir / "config.yaml", to_yaml(plan.cfg))
    return trainer

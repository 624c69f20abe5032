"""What snapshots cost: seconds per snapshot (checkpoint alone, and everything a snapshot writes) and
their share of training time at the default snapshot interval, for an image configuration; and the
training throughput (images/s) of that configuration, measured on the same run."""

from __future__ import annotations

import statistics
import tempfile
import time

import click

from selfcond.bench.runner import bench_command, saver


def run(data: str = "digits", steps: int = 200, snapshots: int = 5, threads: int = 1,
                 overrides: dict | None = None) -> dict:
    import torch

    from selfcond.config import resolve
    from selfcond.train import snapshot, start_run

    cfg = resolve(overrides={"data.name": data, "train.threads": threads, "train.steps": 10 ** 9,
                             "model.g_width": 64, "model.d_width": 64, **(overrides or {})})
    with tempfile.TemporaryDirectory() as tmp:
        t = start_run(cfg, tmp)
        t.start()
        for _ in range(20):  # warm-up
            t.train_step()
        start = time.perf_counter()
        for _ in range(steps):
            t.train_step()
        step_s = (time.perf_counter() - start) / steps
        ckpt, full = [], []
        for _ in range(snapshots):
            a = time.perf_counter()
            t.save_checkpoint()
            ckpt.append(time.perf_counter() - a)
            a = time.perf_counter()
            snapshot.take(t)
            full.append(time.perf_counter() - a)
            t.step += 1  # a new step number: new file names, as in a run
        size = max(p.stat().st_size for p in t.run_dir.glob("checkpoint-*.pt"))
    every = cfg.train.snapshot_every
    ck, fu = statistics.median(ckpt), statistics.median(full)
    train_s = every * step_s
    return {"bench": "snapshot", "dataset": data, "resolution": cfg.data.resolution, "g_width": cfg.model.g_width,
            "d_width": cfg.model.d_width, "batch": cfg.train.batch, "threads": threads,
            "torch_threads": torch.get_num_threads(), "step_ms": round(1000 * step_s, 2),
            "images_per_s": round(cfg.train.batch / step_s, 1),
            "checkpoint_s": round(ck, 3), "checkpoint_mb": round(size / 2 ** 20, 2), "snapshot_s": round(fu, 3),
            "snapshot_every": every, "checkpoint_share": round(ck / (train_s + fu), 4),
            "snapshot_share": round(fu / (train_s + fu), 4)}


def markdown(rec: dict) -> str:
    return "\n".join([
        "| config | step (ms) | images/s | checkpoint (s) | checkpoint size (MB) | whole snapshot (s) | "
        f"share at every {rec['snapshot_every']} steps: checkpoint / snapshot |",
        "|---|---|---|---|---|---|---|",
        f"| {rec['dataset']} {rec['resolution']} px, G/D width {rec['g_width']}/{rec['d_width']}, batch {rec['batch']}, "
        f"{rec['threads']} thread(s) | {rec['step_ms']} | {rec['images_per_s']} | {rec['checkpoint_s']} | {rec['checkpoint_mb']} | "
        f"{rec['snapshot_s']} | {100 * rec['checkpoint_share']:.2f}% / {100 * rec['snapshot_share']:.2f}% |"])


@bench_command("snapshot")
@click.option("--data", default="digits", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True, help="training steps timed")
@click.option("--snapshots", type=click.IntRange(min=1), default=5, show_default=True, help="snapshots timed (median)")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--json", "json_path", help="write the record here")
def command(data, steps, snapshots, threads, sets, json_path):
    """Seconds per checkpoint and per snapshot, and their share of training time."""
    save = saver(json_path)  # a bad --json fails now, not after the work
    from selfcond.config import parse_sets

    rec = run(data, steps, snapshots, threads, parse_sets(sets))
    save([rec])
    click.echo(markdown(rec))

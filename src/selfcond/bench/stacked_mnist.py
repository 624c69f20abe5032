"""Stacked MNIST (Self-Conditioned GAN paper, Table 2): modes covered of 1000, and reverse KL.

Every (method, trial) trains from scratch on the same stacked images (data.stack_seed fixed, seed of
the run = seed0 + trial), then draws train.eval_samples (26,000) samples with conditions from π;
each channel is read by the cached MNIST classifier (its held-out accuracy is in every record).
"""

from __future__ import annotations

import sys

import click

from selfcond.bench import runner
from selfcond.bench.runner import bench_command, groups, mean_std, names, saver, trial_options
from selfcond.config import parse_sets, resolve


def trial(job: dict) -> dict:
    rec, trainer, m = runner.run_trial(job, metrics=["stacked"], classifier=True)
    return {"bench": "stacked-mnist", **rec,
            "images_per_s": round(job["steps"] * trainer.cfg.train.batch / trainer.seconds, 1)
            if trainer.seconds else None,
            "modes": m["modes"], "rkl": m["rkl"], "rkl_log10": m["rkl_log10"], "rkl_digits": m["rkl_digits"],
            "classifier_accuracy": m["classifier_accuracy"], "samples": trainer.cfg.train.eval_samples}


def run(methods, trials: int, steps: int, data_dir=None, seed: int = 0, jobs: int = 1,
        overrides: dict | None = None, out: str | None = None, on_record=None) -> list[dict]:
    todo = [{"data": "stacked-mnist", "method": m, "trial": t, "seed": seed + t, "steps": steps,
             "data_dir": data_dir, "set": overrides or {}, "out": out} for m in methods for t in range(trials)]
    runner.check_jobs(todo)
    from selfcond.metrics.classifier import for_dataset

    # Train the classifier once, before the workers need it.
    _, info = for_dataset(resolve(overrides=runner.trial_overrides(todo[0])).data)
    print(f"MNIST classifier: held-out accuracy {info['accuracy']:.4f}", file=sys.stderr)
    return runner.run_jobs(todo, trial, jobs, on_record, report=_progress)


def _progress(done: int, total: int, rec: dict) -> None:
    print(f"[{done}/{total}] {rec['method']} trial {rec['trial']}: modes={rec['modes']} "
          f"rkl={rec['rkl']:.4f} ({rec['seconds']:.0f}s)", file=sys.stderr, flush=True)


def markdown(records: list[dict]) -> str:
    lines = ["| method | trials | steps | modes (of 1000) | reverse KL (nats) | reverse KL (log10) | s / trial |",
             "|---|---|---|---|---|---|---|"]
    for (method, steps), rs in groups(records, "method", "steps"):
        modes, rkl, rkl10 = (mean_std(r[k] for r in rs) for k in ("modes", "rkl", "rkl_log10"))
        secs = mean_std(r["seconds"] for r in rs)[0]
        lines.append(f"| {method} | {len(rs)} | {steps} | {modes[0]:.1f} ± {modes[1]:.1f} | "
                     f"{rkl[0]:.3f} ± {rkl[1]:.3f} | {rkl10[0]:.3f} ± {rkl10[1]:.3f} | {secs:.0f} |")
    acc = {r["classifier_accuracy"] for r in records}
    lines.append(f"\nMNIST classifier held-out accuracy: {', '.join(f'{a:.4f}' for a in sorted(acc))}")
    return "\n".join(lines)


@bench_command("stacked-mnist")
@click.option("--methods", default="gan,scgan", show_default=True)
@click.option("--data-dir", help="directory with MNIST's IDX files (else the usual search order)")
@trial_options(trials=3, steps=20000)
def command(methods, data_dir, trials, steps, seed, jobs, sets, out, json_path):
    """Table 2 of Self-Conditioned GAN: Stacked MNIST modes (of 1000) and reverse KL."""
    records = run(names(methods), trials, steps, data_dir, seed=seed, jobs=jobs, overrides=parse_sets(sets),
                  out=out, on_record=saver(json_path))
    click.echo(markdown(records))

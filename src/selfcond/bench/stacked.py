"""Stacked MNIST (Self-Conditioned GAN paper, Table 2): modes covered of 1000, and reverse KL.

Every (method, trial) trains from scratch on the same stacked images (data.stack_seed fixed, seed of
the run = seed0 + trial), then draws train.eval_samples (26,000) samples with conditions from π;
each channel is read by the cached MNIST classifier (its held-out accuracy is in every record).
"""

from __future__ import annotations

import sys
import time

from selfcond.bench.common import groups, mean_std, run_jobs
from selfcond.config import resolve


def _overrides(job: dict) -> dict:
    o = {"data.name": "stacked-mnist", "method.name": job["method"], "train.steps": job["steps"],
         "train.seed": job["seed"], "train.threads": job.get("threads", 1), **job.get("set", {})}
    if job.get("data_dir"):
        o["data.data_dir"] = job["data_dir"]
    return o


def run_trial(job: dict) -> dict:
    from selfcond.metrics.classifier import for_dataset
    from selfcond.train.loop import Trainer, start_run

    cfg = resolve(overrides=_overrides(job))
    for_dataset(cfg.data, progress=False)  # train or load the classifier outside the timed part
    trainer = start_run(cfg, job["out"]) if job.get("out") else Trainer(cfg)
    start = time.perf_counter()
    trainer.train(progress=False)
    seconds = time.perf_counter() - start
    m = trainer.evaluate(metrics=["stacked"])
    return {"bench": "stacked-mnist", "method": job["method"], "trial": job["trial"], "seed": job["seed"],
            "steps": job["steps"], "seconds": round(seconds, 1),
            "images_per_s": round(job["steps"] * cfg.train.batch / trainer.seconds, 1) if trainer.seconds else None,
            "modes": m["modes"], "rkl": m["rkl"], "rkl_log10": m["rkl_log10"],
            "classifier_accuracy": m["classifier_accuracy"], "samples": cfg.train.eval_samples,
            "modes_alive": trainer.partition.summary()["modes_alive"],
            "run": str(trainer.run_dir) if trainer.run_dir else None}


def run(methods, trials: int, steps: int, data_dir=None, seed: int = 0, jobs: int = 1,
        overrides: dict | None = None, out: str | None = None, on_record=None) -> list[dict]:
    todo = [{"method": m, "trial": t, "seed": seed + t, "steps": steps, "data_dir": data_dir,
             "set": overrides or {}, "out": out} for m in methods for t in range(trials)]
    for job in todo:  # bad options fail here, before any process starts
        resolve(overrides=_overrides(job))
    cfg = resolve(overrides=_overrides(todo[0]))
    from selfcond.metrics.classifier import for_dataset

    _, info = for_dataset(cfg.data)  # train the classifier once, before the workers need it
    print(f"MNIST classifier: held-out accuracy {info['accuracy']:.4f}", file=sys.stderr)
    return run_jobs(todo, run_trial, jobs, on_record, report=_progress)


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

"""Clustering benchmark (MIC-GANs paper, Table 1): how well the discovered modes match the classes.

Every (dataset, method, trial) trains from scratch (seed = seed0 + trial) and is scored on all real
images: purity over all modes and over the top-C modes by π (C = number of classes), NMI, ARI,
k_found (modes with π > 1%), and fid_cls on the dataset's own cached classifier.
"""

from __future__ import annotations

import sys

from selfcond.bench import common
from selfcond.bench.common import groups, mean_std
from selfcond.config import resolve

KEYS = ("purity", "purity_top", "nmi", "ari", "k_found", "fid_cls")


def trial(job: dict) -> dict:
    rec, _, m = common.run_trial(job, metrics=["clusters", "fid_cls"], n=10000, classifier=True)
    return {"bench": "clusters", **rec, "k": job["k"], **{key: m.get(key) for key in KEYS}}


def run(datasets, methods, k: int, trials: int, steps: int, data_dir=None, seed: int = 0, jobs: int = 1,
        overrides: dict | None = None, out: str | None = None, on_record=None) -> list[dict]:
    from selfcond.metrics.classifier import for_dataset

    # One directory for all datasets, or {name: dir} (key None: the rest): a directory of MNIST files
    # must never be read as Fashion-MNIST, whose files have the same names.
    dirs = data_dir if isinstance(data_dir, dict) else {None: data_dir}
    # Trial-major order: a table cut short still has every (dataset, method) pair.
    todo = [{"data": d, "method": m, "k": k, "trial": t, "seed": seed + t, "steps": steps,
             "data_dir": dirs.get(d, dirs.get(None)), "set": overrides or {}, "out": out}
            for t in range(trials) for d in datasets for m in methods]
    common.check_jobs(todo)
    for job in todo[:len(datasets) * len(methods):len(methods)]:  # each dataset's classifier, once
        _, info = for_dataset(resolve(overrides=common.trial_overrides(job)).data)
        d = job["data"]
        print(f"{d} classifier: held-out accuracy {info['accuracy']:.4f}", file=sys.stderr)
    return common.run_jobs(todo, trial, jobs, on_record, report=_progress)


def _progress(done: int, total: int, rec: dict) -> None:
    print(f"[{done}/{total}] {rec['dataset']} {rec['method']} trial {rec['trial']}: purity={rec['purity']:.3f} "
          f"nmi={rec['nmi']:.3f} k_found={rec['k_found']} fid_cls={rec['fid_cls']:.1f} ({rec['seconds']:.0f}s)",
          file=sys.stderr, flush=True)


def markdown(records: list[dict]) -> str:
    lines = ["| data | method | K | trials | steps | purity | purity top-C | NMI | ARI | k_found | fid_cls | s / trial |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (data, method, k, steps), rs in groups(records, "dataset", "method", "k", "steps"):
        cells = []
        for key in ("purity", "purity_top", "nmi", "ari", "k_found", "fid_cls"):
            mean, std = mean_std(r[key] for r in rs)
            cells.append(f"{mean:.1f} ± {std:.1f}" if key in ("k_found", "fid_cls") else f"{mean:.3f} ± {std:.3f}")
        secs = mean_std(r["seconds"] for r in rs)[0]
        lines.append(f"| {data} | {method} | {k} | {len(rs)} | {steps} | " + " | ".join(cells) + f" | {secs:.0f} |")
    return "\n".join(lines)

"""Clustering benchmark (MIC-GANs paper, Table 1): how well the discovered modes match the classes.

Every (dataset, method, trial) trains from scratch (seed = seed0 + trial) and is scored on all real
images: purity over all modes and over the top-C modes by π (C = number of classes), NMI, ARI,
k_found (modes with π > 1%), and fid_cls on the dataset's own cached classifier.
"""

from __future__ import annotations

import sys

import click

from selfcond.bench import runner
from selfcond.bench.runner import bench_command, groups, mean_std, names, saver, trial_options
from selfcond.config import parse_sets, resolve
from selfcond.errors import UserError
from selfcond.partition.base import METHODS

KEYS = ("purity", "purity_top", "nmi", "ari", "k_found", "fid_cls")


def trial(job: dict) -> dict:
    rounds: list[dict] = []
    rec, _, m = runner.run_trial(job, metrics=["clusters", "fid_cls"], n=10000, classifier=True,
                                 watch=lambda trainer: record_rounds(trainer, rounds))
    return {"bench": "clusters", **rec, "k": job["k"], **{key: m.get(key) for key in KEYS}, "rounds": rounds}


def record_rounds(trainer, rounds: list[dict]) -> None:
    """Append to `rounds`, after every refresh of the trainer's partition, the chain's state: the
    step, modes alive, modes with π > 1% and the purity and NMI of the table (and what the refresh
    merged, when it says), so a record shows how the modes came and went."""
    from selfcond.metrics.clusters import cluster_scores

    p, ds = trainer.partition, trainer.dataset
    labels = getattr(ds, "labels", None)
    if labels is None:
        return
    refresh = p.refresh

    def recorded(ctx, step):
        info = refresh(ctx, step)
        if p.table is not None:
            s = cluster_scores(p.table, labels, p.k, ds.num_classes, pi=p.pi)
            rounds.append({"step": step, "modes_alive": int(p.alive.sum()), "k_found": s["k_found"],
                           "purity": round(s["purity"], 4), "nmi": round(s["nmi"], 4),
                           **{key: info[key] for key in ("merged",) if key in info}})
        return info

    p.refresh = recorded


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
    runner.check_jobs(todo)
    for job in todo[:len(datasets) * len(methods):len(methods)]:  # each dataset's classifier, once
        _, info = for_dataset(resolve(overrides=runner.trial_overrides(job)).data)
        d = job["data"]
        print(f"{d} classifier: held-out accuracy {info['accuracy']:.4f}", file=sys.stderr)
    return runner.run_jobs(todo, trial, jobs, on_record, report=_progress)


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


@bench_command("clusters")
@click.option("--data", "datasets", default="mnist,fashion-mnist", show_default=True)
@click.option("--methods", default="scgan,micgan", show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--data-dir", "data_dirs", multiple=True, metavar="[NAME=]DIR",
              help="where a dataset's files are, e.g. mnist=/data/mnist (repeatable; a bare DIR applies to all)")
@trial_options(trials=3, steps=METHODS.get("micgan").preset["train"]["steps"])
def command(datasets, methods, k, data_dirs, trials, steps, seed, jobs, sets, out, json_path):
    """Table 1 of MIC-GANs: purity, NMI, ARI, modes found and fid_cls of the discovered modes.
    The default budget is MIC-GANs' whole default schedule, for every method."""
    ds = names(datasets)
    data_dir = {}
    for item in data_dirs:
        name, sep, path = item.rpartition("=")
        data_dir[name if sep else None] = path
    unknown = sorted(set(data_dir) - set(ds) - {None})
    if unknown:
        raise UserError(f"--data-dir names {', '.join(unknown)}, which --data does not list")
    records = run(ds, names(methods), k, trials, steps, data_dir, seed=seed, jobs=jobs, overrides=parse_sets(sets),
                  out=out, on_record=saver(json_path))
    click.echo(markdown(records))

"""The metric registry: metric groups keyed by name, each computing one or more keys of DESIGN.md.

    modes2d   modes, hq, rkl                          2D mixtures (50,000 samples)
    stacked   modes, rkl, rkl_log10, rkl_digits       Stacked MNIST (MNIST classifier per channel)
    clusters  purity, nmi, ari, k_found, purity_top   modes of real images vs true labels
    fid_cls   fid_cls                                 Fréchet distance on the data's own classifier
    fid       fid                                     standard FID, when $SELFCOND_INCEPTION names
                                                      a local Inception extractor (metrics/inception.py)

Users may name a group or any key it produces (`--metrics purity,fid_cls`). `evaluate(trainer)`
computes the groups that apply to the run's data; the cheap ones run at every snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from selfcond.errors import UserError


@dataclass(frozen=True)
class Metric:
    name: str
    keys: tuple[str, ...]
    applies: Callable  # (trainer) -> bool
    compute: Callable  # (trainer, n) -> dict
    at_snapshot: bool = True  # computed at every snapshot by default


def _is_toy(t) -> bool:
    return getattr(t.dataset, "is_toy", False)


def _has_labels(t) -> bool:
    return not _is_toy(t) and getattr(t.dataset, "labels", None) is not None


def _modes2d(t, n):
    from selfcond.metrics.modes2d import modes2d

    x, _ = t.sample(n, t.eval_generator())
    return modes2d(x, t.dataset.means, t.dataset.std)


def _stacked(t, n):
    from selfcond.metrics.classifier import for_dataset
    from selfcond.metrics.stacked import mode_stats, stacked_labels

    model, info = for_dataset(t.cfg.data, t.device)
    x, _ = t.sample(n, t.eval_generator())
    return {**mode_stats(stacked_labels(model, x)), "classifier_accuracy": info["accuracy"]}


def _clusters(t, n):
    from selfcond.metrics.clusters import cluster_scores

    table = getattr(t.partition, "table", None)
    if table is None:
        return {}
    classes = t.dataset.num_classes
    return cluster_scores(table, t.dataset.labels, t.partition.k, classes, pi=t.partition.pi, top=classes)


def _fakes_and_reals(t, n):
    """Up to 10,000 samples (conditions from π) and as many random real images, from generators of
    their own: the two sets every Fréchet distance compares."""
    n = min(n, 10000)
    fake, _ = t.sample(n, t.eval_generator(3))
    idx = torch.randperm(len(t.dataset), generator=t.eval_generator(4), device=t.device)[:n]
    return fake, t.dataset.images(idx, t.device)


def _fid_cls(t, n):
    from selfcond.metrics.classifier import for_dataset, predict
    from selfcond.metrics.fid import fid_from_features

    model, _ = for_dataset(t.cfg.data, t.device)
    fake, real = _fakes_and_reals(t, n)
    return {"fid_cls": fid_from_features(predict(model, fake, features=True), predict(model, real, features=True))}


def _fid_inception(t, n):
    from selfcond.metrics import inception
    from selfcond.metrics.fid import fid_from_features

    model = inception.load(inception.configured(), t.device)
    fake, real = _fakes_and_reals(t, n)
    return {"fid": fid_from_features(inception.features(model, fake), inception.features(model, real))}


def _has_inception(t) -> bool:
    from selfcond.metrics import inception

    return not _is_toy(t) and inception.configured() is not None


METRICS = {m.name: m for m in (
    Metric("modes2d", ("modes", "hq", "rkl"), _is_toy, _modes2d),
    Metric("stacked", ("modes", "rkl", "rkl_log10", "rkl_digits"), lambda t: t.cfg.data.name == "stacked-mnist", _stacked),
    Metric("clusters", ("purity", "nmi", "ari", "k_found", "purity_top"),
           lambda t: _has_labels(t) and getattr(t.partition, "table", None) is not None, _clusters),
    Metric("fid_cls", ("fid_cls",), lambda t: _has_labels(t) and t.cfg.data.name != "stacked-mnist",
           _fid_cls, at_snapshot=False),
    Metric("fid", ("fid",), _has_inception, _fid_inception, at_snapshot=False),
)}


def applicable(trainer) -> list[str]:
    return [name for name, m in METRICS.items() if m.applies(trainer)]


def select(trainer, names: list[str] | None = None, snapshot: bool = False) -> list[str]:
    """Groups to compute: the named ones (group names or keys), else every applicable group
    (only the cheap ones when `snapshot`). An unknown or inapplicable name is a UserError."""
    usable = applicable(trainer)
    if not names:
        return [g for g in usable if METRICS[g].at_snapshot or not snapshot]
    groups: list[str] = []
    for name in names:
        matches = [g for g in usable if name == g or name in METRICS[g].keys]
        if not matches:
            known = sorted({k for m in METRICS.values() for k in (m.name, *m.keys)})
            if name in known:
                raise UserError(f"metric {name!r} does not apply to dataset {trainer.cfg.data.name!r} "
                                f"with method {trainer.cfg.method.name!r} (available: {', '.join(usable) or 'none'})")
            raise UserError(f"unknown metric {name!r} (known: {', '.join(known)})")
        groups += [g for g in matches[:1] if g not in groups]
    return groups


def evaluate(trainer, names: list[str] | None = None, n: int | None = None, snapshot: bool = False,
             progress: bool = False) -> dict:
    """{key: value} of the selected metric groups on n samples (default train.eval_samples)."""
    import sys

    from tqdm import tqdm

    n = n or trainer.cfg.train.eval_samples
    out: dict = {}
    groups = select(trainer, names, snapshot)
    for g in tqdm(groups, desc="evaluate", file=sys.stderr, disable=not progress, leave=False):
        out.update(METRICS[g].compute(trainer, n))
    return out

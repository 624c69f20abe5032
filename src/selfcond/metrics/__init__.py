"""The metric registry (metrics/base.py): metric groups keyed by name, each computing one or more
keys of DESIGN.md. Each group is registered by its own module:

    modes2d   modes, hq, rkl                          2D mixtures (50,000 samples)
    stacked   modes, rkl, rkl_log10, rkl_digits       Stacked MNIST (MNIST classifier per channel)
    clusters  purity, nmi, ari, k_found, purity_top   modes of real images vs true labels
    heldout   purity_heldout, nmi_heldout, ...        the same on images never trained on (heldout.py)
    fid_cls   fid_cls                                 Fréchet distance on the data's own classifier
    prdc_cls  kid_cls, precision_cls, recall_cls,     KID, precision/recall (k = 3), density/coverage
              density_cls, coverage_cls               on the same features (prdc.py)
    fid       fid, fid_protocol                       standard FID, when $SELFCOND_INCEPTION names a
                                                      local Inception file (metrics/inception.py)
    prdc      kid, precision, recall, density,        the same four on Inception
              coverage

Users may name a group or any key it produces (`--metrics purity,fid_cls`). `evaluate(ctx)`
computes the groups that apply to the run's data; the cheap ones run at every snapshot.
"""

from __future__ import annotations

import sys

from selfcond.errors import UserError
from selfcond.metrics.base import METRICS, EvalContext, Metric, metric


def applicable(ctx: EvalContext) -> list[str]:
    return [m.name for m in METRICS if m.applies(ctx)]


def known_names() -> list[str]:
    return sorted({k for m in METRICS for k in (m.name, *m.keys)})


def check_names(names: list[str] | None) -> None:
    """A UserError for a name that is no metric group and no key of one."""
    known = known_names()
    for name in names or []:
        if name not in known:
            raise UserError(f"unknown metric {name!r} (known: {', '.join(known)})")


def select(ctx: EvalContext, names: list[str] | None = None, snapshot: bool = False) -> list[str]:
    """Groups to compute: the named ones (group names or keys), else every applicable group
    (only the cheap ones when `snapshot`). An unknown name is a UserError; so is a named one that
    does not apply, except at a snapshot (train.metrics), where it is left out until it applies
    (MIC-GANs' modes exist after its first round)."""
    usable = applicable(ctx)
    if not names:
        return [g for g in usable if METRICS.get(g).at_snapshot or not snapshot]
    check_names(names)
    groups: list[str] = []
    for name in names:
        matches = [g for g in usable if name == g or name in METRICS.get(g).keys]
        if not matches and snapshot:
            continue
        if not matches:
            known = known_names()
            if name in known:
                raise UserError(f"metric {name!r} does not apply to dataset {ctx.data.name!r} with method "
                                f"{ctx.method!r} (available: {', '.join(usable) or 'none'})")
            raise UserError(f"unknown metric {name!r} (known: {', '.join(known)})")
        groups += [g for g in matches[:1] if g not in groups]
    return groups


def evaluate(ctx: EvalContext, names: list[str] | None, n: int, snapshot: bool = False,
             progress: bool = False) -> dict:
    """{key: value} of the selected metric groups on n samples."""
    from tqdm import tqdm

    out: dict = {}
    groups = select(ctx, names, snapshot)
    for g in tqdm(groups, desc="evaluate", file=sys.stderr, disable=not progress, leave=False):
        out.update(METRICS.get(g).compute(ctx, n))
    return out


__all__ = ["METRICS", "EvalContext", "Metric", "applicable", "evaluate", "metric", "select"]

"""Held-out clustering: how a run's modes label images it never trained on (its data.holdout share,
or the dataset's test split), beside the `clusters` figures of the images it trained on. The gap
says whether the clustering generalises."""

from __future__ import annotations

import torch

from selfcond.metrics.base import EvalContext, metric
from selfcond.metrics.clusters import cluster_scores


def _applies(ctx: EvalContext) -> bool:
    from selfcond.data import spec
    from selfcond.data.base import ImageOptions, SplitOptions

    p, o = ctx.partition, ctx.data
    if not (p.assigns and p.table is not None and isinstance(o, ImageOptions)):
        return False
    return o.holdout > 0 or (isinstance(o, SplitOptions) and o.split == "train" and spec(o.name).test is not None)


@metric("heldout", ("purity_heldout", "nmi_heldout", "ari_heldout", "n_heldout"), _applies, at_snapshot=False)
def _heldout(ctx: EvalContext, n: int) -> dict:
    from selfcond.data import heldout

    held = heldout(ctx.data)
    if held is None or held.labels is None or len(held) == 0:
        return {}
    modes = torch.cat([ctx.partition.assign(held.images(torch.arange(i, min(i + 5000, len(held))), ctx.device)).modes
                       for i in range(0, len(held), 5000)])
    s = cluster_scores(modes, held.labels, ctx.partition.k, held.num_classes)
    return {"purity_heldout": s["purity"], "nmi_heldout": s["nmi"], "ari_heldout": s["ari"], "n_heldout": len(held)}

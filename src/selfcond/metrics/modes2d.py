"""Mode coverage on the 2D mixtures, exactly as the Self-Conditioned GAN paper's code defines it.

- hq: share of samples within 3 standard deviations of some mean in *every* coordinate;
- modes: number of means with at least one high-quality sample;
- rkl: reverse KL sum_k p_k ln(p_k K), p = share of all samples whose nearest mean is k.
"""

from __future__ import annotations

import torch

from selfcond.metrics.base import metric


@torch.no_grad()
def modes2d(x: torch.Tensor, means: torch.Tensor, std: float, chunk: int = 100_000) -> dict:
    """x: (n, 2) samples; means: (K, 2); std: per-coordinate std of each component.

    Returns {"modes": int, "hq": float in [0, 1], "rkl": float (nats)}. Vectorised over samples.
    """
    x = x.to(torch.float64)
    means = means.to(x.device, torch.float64)
    k = means.shape[0]
    hq_hits = torch.zeros(k, dtype=torch.bool, device=x.device)
    nearest_counts = torch.zeros(k, dtype=torch.float64, device=x.device)
    hq_total = 0
    for i in range(0, x.shape[0], chunk):
        xc = x[i:i + chunk]
        diff = (xc[:, None, :] - means[None]).abs()  # (n, K, 2)
        close = (diff < 3 * std).all(-1)  # (n, K): within 3 std in every coordinate
        hq_total += int(close.any(1).sum())
        hq_hits |= close.any(0)
        nearest = (diff ** 2).sum(-1).argmin(1)
        nearest_counts += torch.bincount(nearest, minlength=k).to(torch.float64)
    p = nearest_counts / x.shape[0]
    nz = p > 0
    rkl = float((p[nz] * torch.log(p[nz] * k)).sum())
    return {"modes": int(hq_hits.sum()), "hq": hq_total / x.shape[0], "rkl": rkl}



def _applies(ctx) -> bool:
    from selfcond.data.toy2d import Toy2D

    return isinstance(ctx.dataset, Toy2D)


@metric("modes2d", ("modes", "hq", "rkl"), _applies)
def _modes2d(ctx, n: int) -> dict:
    x, _ = ctx.sample(n, ctx.generator(1))
    return modes2d(x, ctx.dataset.means, ctx.dataset.std)

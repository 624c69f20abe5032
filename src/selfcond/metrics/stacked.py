"""Stacked MNIST modes and reverse KL (DESIGN.md): each channel of a sample is classified by the
MNIST classifier; the mode is the 3-digit label; modes = distinct labels among the samples; reverse KL
= sum_m p_m ln(p_m / (1/1000)) over the sample label distribution p."""

from __future__ import annotations

import math

import torch

from selfcond.metrics.base import metric
from selfcond.metrics.classifier import predict


def stacked_labels(classifier, x: torch.Tensor) -> torch.Tensor:
    """x (n, 3, R, R) -> (n,) labels 100 * R digit + 10 * G digit + B digit."""
    n, c = x.shape[:2]
    digits = predict(classifier, x.reshape(n * c, 1, *x.shape[2:])).view(n, c)
    weights = torch.tensor([100, 10, 1], device=digits.device)[:c]
    return (digits * weights).sum(1)


def _rkl(counts: torch.Tensor) -> float:
    p = counts.double() / counts.sum()
    nz = p[p > 0]
    return float((nz * (nz * len(p)).log()).sum())


def mode_stats(labels: torch.Tensor, num_modes: int = 1000) -> dict:
    """labels (n,) -> modes covered and reverse KL to the uniform distribution (nats and log10).

    rkl_digits: the sum over the three channels of the reverse KL of that channel's digit shares
    to uniform. It is the whole reverse KL when the channels are independent, so it says how much
    of the KL is digits drawn too often or too rarely in one channel, and the rest is how they are
    combined."""
    labels = labels.long().cpu()
    counts = torch.bincount(labels, minlength=num_modes)
    rkl = _rkl(counts)
    out = {"modes": int((counts > 0).sum()), "rkl": rkl, "rkl_log10": rkl / math.log(10)}
    if num_modes == 1000:
        out["rkl_digits"] = sum(_rkl(torch.bincount(labels // 10 ** c % 10, minlength=10)) for c in range(3))
    return out


@metric("stacked", ("modes", "rkl", "rkl_log10", "rkl_digits"), lambda ctx: ctx.data.name == "stacked-mnist")
def _stacked(ctx, n: int) -> dict:
    from selfcond.metrics.classifier import for_dataset

    model, info = for_dataset(ctx.data, ctx.device)
    labels, _ = ctx.sample(n, ctx.generator(1), apply=lambda x: stacked_labels(model, x))
    return {**mode_stats(labels), "classifier_accuracy": info["accuracy"]}

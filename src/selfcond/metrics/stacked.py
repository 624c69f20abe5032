"""Stacked MNIST modes and reverse KL (DESIGN.md): each channel of a sample is classified by the
MNIST classifier; the mode is the 3-digit label; modes = distinct labels among the samples; reverse KL
= sum_m p_m ln(p_m / (1/1000)) over the sample label distribution p."""

from __future__ import annotations

import math

import torch

from selfcond.metrics.classifier import predict


def stacked_labels(classifier, x: torch.Tensor) -> torch.Tensor:
    """x (n, 3, R, R) -> (n,) labels 100 * R digit + 10 * G digit + B digit."""
    n, c = x.shape[:2]
    digits = predict(classifier, x.reshape(n * c, 1, *x.shape[2:])).view(n, c)
    weights = torch.tensor([100, 10, 1], device=digits.device)[:c]
    return (digits * weights).sum(1)


def mode_stats(labels: torch.Tensor, num_modes: int = 1000) -> dict:
    """labels (n,) -> modes covered and reverse KL to the uniform distribution (nats and log10)."""
    p = torch.bincount(labels.long().cpu(), minlength=num_modes).double()
    p = p / p.sum()
    nz = p[p > 0]
    rkl = float((nz * (nz * num_modes).log()).sum())
    return {"modes": int((p > 0).sum()), "rkl": rkl, "rkl_log10": rkl / math.log(10)}

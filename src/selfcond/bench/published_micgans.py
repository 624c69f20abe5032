"""The Gibbs step of the published MIC-GANs code, re-implemented faithfully for `bench gibbs`:
yinghdb/MICGANs, ``clusterers/crp_clusterer.py`` (``CRPClusterer.crp`` computes the likelihoods in
batches of 128 and calls ``crp_sample``) with the densities of
``gan_training/models/multi_gaussian.py`` (``MultiGaussian.compute_embed_probs``). Its Gaussians
are fixed during the sweeps (not collapsed), its likelihoods are linear-space densities divided by
their row maximum, the chain starts at the argmax, and each image is drawn in a Python loop with
count weights n_k and no alpha. Reference code for the benchmark only: training never calls it.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def published_loop(x: torch.Tensor, means: torch.Tensor, covs: torch.Tensor, sweeps: int,
                   seed: int = 0) -> torch.Tensor:
    """The published Gibbs step, re-implemented faithfully (see module docstring).

    x (N, D) embeddings; means (K, D), covs (K, D, D) of its fixed Gaussians. Returns (N,) int64.
    Randomness from Python's ``random`` and NumPy's global RNG, as in the original (seeded here).
    """
    random.seed(seed)
    np.random.seed(seed)
    x, means, covs = x.float(), means.float(), covs.float()
    n, d = x.shape
    k = means.shape[0]
    # MultiGaussian: 1/sqrt(det), inverse, and a determinant "scalor" (0 until its update rescales)
    det_recip = 1.0 / torch.sqrt(torch.det(covs))
    inv = torch.inverse(covs)
    scalor = torch.zeros(k)
    lik = torch.zeros(n, k)
    for a in range(0, n, 128):  # compute_embed_probs on batches of 128, linear space
        diff = x[a : a + 128, None, :] - means[None]
        p1 = 1.0 / np.power(2 * np.pi, 0.5 * d) * det_recip
        quad = -0.5 * torch.matmul(torch.matmul(diff.unsqueeze(2), inv), diff.unsqueeze(3))
        lik[a : a + 128] = p1 * torch.exp(quad.squeeze(3).squeeze(2) + scalor)
    # crp_sample: rescale by the row max, start at the argmax, count-weighted draws per image
    lik = lik / lik.max(dim=1)[0].unsqueeze(1)
    picked = torch.argmax(lik, dim=1)
    counts = torch.zeros(k)
    for j in range(k):
        counts[j] = (picked == j).sum()
    for _ in range(sweeps):
        order = list(range(n))
        random.shuffle(order)
        for im in order:
            counts[picked[im]] -= 1
            post = (counts * lik[im]).numpy()
            picked[im] = torch.tensor(_choice_sample(post)[0])
            counts[picked[im]] += 1
    return picked


def _choice_sample(prob: np.ndarray, batch: int = 1) -> np.ndarray:
    # The published choice_sample: running sum in a Python loop, then a comparison count.
    if prob.sum() == 0:
        return np.random.randint(low=0, high=len(prob), size=batch)
    prob = prob.copy()
    for i in range(1, len(prob)):
        prob[i] = prob[i - 1] + prob[i]
    r = np.random.rand(batch) * prob[-1]
    return (prob[None, :] < r[:, None]).sum(axis=1)

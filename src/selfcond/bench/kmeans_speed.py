"""Speed figure: our torch k-means against scikit-learn's KMeans(n_init=10).

The paper's code re-clusters discriminator features with
``sklearn.cluster.KMeans(n_clusters=k, n_init=10)`` (default init ``k-means++``, default
algorithm ``lloyd``). This bench times that call and our ``kmeans(x, k, init="k-means++")``
on the same float32 array in the same process, and compares both time and inertia.

Our configuration (``OURS_N_INIT``, ``OURS_SEED_DIMS``): 3 k-means++ restarts, each
seeded in the top-64 principal subspace (``kmeans(..., seed_dims=64)``), then exact
Lloyd in the full 2048-d space with the same ``tol``/``max_iter`` as sklearn. Why: on
these features a single exact k-means++ run (what sklearn does per restart) ends on
average ~1.5-2% above sklearn's best-of-10 inertia (runs spread over ~3%), so one run
misses the 1% target about half the time; PCA seeding lowers the inertia per run (the
full-space d^2 sampling is dominated by isotropic noise) and 3 restarts land below
sklearn's best-of-10 in our trials. ``--n-init 10 --seed-dims 0`` gives the exact
sklearn recipe (same seeding, same restarts), which is still faster but by a smaller
factor, because greedy k-means++ in 2048-d costs about as much as 6 Lloyd E steps.

Features (``make_features``): a stand-in for penultimate-layer discriminator features,
``n x d`` float32 (default 25,000 x 2,048), deterministic from ``seed``:

* 100 clusters with unequal sizes (Dirichlet(2) proportions);
* cluster means drawn in a random 32-dimensional latent space, each cluster with its own
  anisotropic within-cluster spread, tuned so neighbouring clusters overlap
  (k-means on it does not find a trivially separated solution);
* lifted to ``d`` dimensions by a random linear map plus a random bias, with isotropic
  Gaussian noise added in all ``d`` dimensions;
* passed through a ReLU, so the features are non-negative and sparse-ish like post-ReLU
  activations.

Run: ``selfcond bench kmeans [--n 25000 --d 2048 --k 100 --seed 0] [--threads T]
[--device cpu|cuda] [--json out.json]``.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch

from selfcond.bench.common import synchronize
from selfcond.cluster.kmeans import kmeans

__all__ = ["make_features", "run_kmeans_speed", "format_markdown"]

# Data knobs (see module docstring); kept as constants so the figure is reproducible.
_N_TRUE_CLUSTERS = 100
_LATENT_DIM = 32
_CENTER_SCALE = 1.0  # std of the latent cluster means
_WITHIN_SCALE = 0.45  # typical within-cluster latent std (per cluster, x U(0.6, 1.4) per axis)
_NOISE_STD = 0.35  # isotropic noise in the d-dim feature space (before the ReLU)
_MAX_ITER = 300  # the same cap sklearn's KMeans uses, so neither side is cut short
OURS_N_INIT = 3  # k-means++ restarts for ours (sklearn: n_init=10); see module docstring
OURS_SEED_DIMS = 64  # k-means++ seeding in the top-64 PCA subspace (None: exact sklearn-style)


def make_features(n: int = 25000, d: int = 2048, seed: int = 0) -> torch.Tensor:
    """Deterministic synthetic "discriminator features": (n, d) float32, non-negative, CPU."""
    g = torch.Generator().manual_seed(int(seed))
    c = _N_TRUE_CLUSTERS
    r = _LATENT_DIM
    # Dirichlet(2) proportions from g (torch.distributions would use the global RNG).
    gam = -torch.log(torch.rand(c, 2, generator=g)).sum(1)  # Gamma(2, 1) as sum of 2 Exp(1)
    props = gam / gam.sum()
    labels = torch.multinomial(props, n, replacement=True, generator=g)
    means = _CENTER_SCALE * torch.randn(c, r, generator=g)
    scales = _WITHIN_SCALE * (0.6 + 0.8 * torch.rand(c, r, generator=g))  # anisotropic spread
    z = means[labels] + scales[labels] * torch.randn(n, r, generator=g)
    w = torch.randn(r, d, generator=g) / r**0.5
    b = 0.3 * torch.randn(d, generator=g)
    h = z @ w + b + _NOISE_STD * torch.randn(n, d, generator=g)
    return torch.relu_(h).contiguous()


def run_kmeans_speed(
    n: int = 25000,
    d: int = 2048,
    k: int = 100,
    seed: int = 0,
    device: str = "cpu",
    threads: Optional[int] = None,
    n_init: int = OURS_N_INIT,
    seed_dims: Optional[int] = OURS_SEED_DIMS,
) -> dict:
    """Time ours vs sklearn KMeans(n_clusters=k, n_init=10) on the same features."""
    import sklearn
    from sklearn.cluster import KMeans

    if threads is not None:
        torch.set_num_threads(int(threads))
    x_cpu = make_features(n, d, seed)
    x_np = x_cpu.numpy()  # shares memory; sklearn gets exactly the same float32 array
    dev = torch.device(device)
    x = x_cpu.to(dev)

    # Tiny warm-up: first BLAS / allocator calls are slow and not what we measure.
    warm_gen = torch.Generator(device=dev).manual_seed(seed)
    kmeans(x[:512], 4, generator=warm_gen, seed_dims=seed_dims)
    synchronize(dev)

    gen = torch.Generator(device=dev).manual_seed(seed)
    t0 = time.perf_counter()
    ours = kmeans(
        x, k, init="k-means++", max_iter=_MAX_ITER, generator=gen, n_init=n_init,
        seed_dims=seed_dims,
    )
    synchronize(dev)
    ours_s = time.perf_counter() - t0

    def _fit_sklearn():
        km = KMeans(n_clusters=k, n_init=10, random_state=seed)
        t = time.perf_counter()
        km.fit(x_np)
        return km, time.perf_counter() - t

    if threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(threads)):
            km, sk_s = _fit_sklearn()
    else:
        km, sk_s = _fit_sklearn()

    sk_inertia = float(km.inertia_)
    return {
        "n": int(n),
        "d": int(d),
        "k": int(k),
        "ours_seconds": round(ours_s, 3),
        "sklearn_seconds": round(sk_s, 3),
        "speedup": round(sk_s / ours_s, 2),
        "ours_inertia": ours.inertia,
        "sklearn_inertia": sk_inertia,
        "inertia_ratio": round(ours.inertia / sk_inertia, 5),
        "ours_iters": int(ours.n_iter),
        "ours_n_init": int(n_init),
        "ours_seed_dims": seed_dims,
        "sklearn_iters": int(km.n_iter_),
        "threads": int(threads) if threads is not None else torch.get_num_threads(),
        "torch_version": torch.__version__,
        "sklearn_version": sklearn.__version__,
    }


def format_markdown(rec: dict) -> str:
    """A small markdown table of one ``run_kmeans_speed`` record."""
    sd = rec.get("ours_seed_dims")
    seeding = f" in top-{sd} PCA dims" if sd else ""
    lines = [
        f"k-means on {rec['n']} x {rec['d']} float32 features, k={rec['k']}, "
        f"{rec['threads']} CPU threads (torch {rec['torch_version']}, "
        f"scikit-learn {rec['sklearn_version']})",
        "",
        "| method | seconds | inertia | iterations |",
        "|---|---:|---:|---:|",
        f"| selfcond kmeans (k-means++{seeding}, n_init={rec['ours_n_init']}) | "
        f"{rec['ours_seconds']:.2f} | {rec['ours_inertia']:.6g} | "
        f"{rec['ours_iters']} (best init) |",
        f"| sklearn KMeans(n_init=10) | {rec['sklearn_seconds']:.2f} | "
        f"{rec['sklearn_inertia']:.6g} | {rec['sklearn_iters']} (best init) |",
        "",
        f"speedup: **{rec['speedup']:.2f}x**; inertia ratio ours/sklearn: "
        f"**{rec['inertia_ratio']:.4f}**",
    ]
    return "\n".join(lines)


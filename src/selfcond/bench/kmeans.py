"""Speed figure: the k-means call Self-Conditioned GAN's partition makes, beside scikit-learn's
KMeans(n_init=10), the call of the paper's code.

The paper's code re-clusters discriminator features with
``sklearn.cluster.KMeans(n_clusters=k, n_init=10)`` (default init ``k-means++``, default
algorithm ``lloyd``, ``max_iter=300``). Ours is exactly what ``partition/kmeans.py`` calls at the
start of a run: ``kmeans(x, k, init="k-means++", max_iter=method.kmeans_iters, generator=...)``
(one greedy k-means++ seeding, as scikit-learn seeds each of its 10 restarts, then Lloyd with
the same ``tol``); later refreshes warm-start from the previous labels and cost a few iterations.
Both run in one process on the same float32 array; time and inertia are compared.

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

import click
import torch

from selfcond.bench.runner import bench_command, bench_device, device_option, synchronize
from selfcond.cluster.kmeans import kmeans
from selfcond.partition.kmeans import SCGANOptions

__all__ = ["make_features", "run", "markdown"]

# Data knobs (see module docstring); kept as constants so the figure is reproducible.
_N_TRUE_CLUSTERS = 100
_LATENT_DIM = 32
_CENTER_SCALE = 1.0  # std of the latent cluster means
_WITHIN_SCALE = 0.45  # typical within-cluster latent std (per cluster, x U(0.6, 1.4) per axis)
_NOISE_STD = 0.35  # isotropic noise in the d-dim feature space (before the ReLU)


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


def run(n: int = 25000, d: int = 2048, k: int = 100, seed: int = 0, device: str = "cpu",
        threads: Optional[int] = None) -> dict:
    """Time the partition's k-means call and sklearn KMeans(n_clusters=k, n_init=10) on the same features."""
    import sklearn
    from sklearn.cluster import KMeans

    if threads is not None:
        torch.set_num_threads(int(threads))
    max_iter = SCGANOptions().kmeans_iters  # what the partition passes
    x_cpu = make_features(n, d, seed)
    x_np = x_cpu.numpy()  # shares memory; sklearn gets exactly the same float32 array
    dev = torch.device(device)
    x = x_cpu.to(dev)

    # Tiny warm-up: first BLAS / allocator calls are slow and not what we measure.
    kmeans(x[:512], 4, generator=torch.Generator(device=dev).manual_seed(seed))
    synchronize(dev)

    gen = torch.Generator(device=dev).manual_seed(seed)
    t0 = time.perf_counter()
    ours = kmeans(x, k, init="k-means++", max_iter=max_iter, generator=gen)
    synchronize(dev)
    ours_s = time.perf_counter() - t0

    def _fit_sklearn(n_init):
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
        t = time.perf_counter()
        km.fit(x_np)
        return km, time.perf_counter() - t

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads) if threads is not None else None):
        km, sk_s = _fit_sklearn(10)  # the paper's call
        km1, sk1_s = _fit_sklearn(1)  # one seeding, as ours

    sk_inertia = float(km.inertia_)
    return {
        "bench": "kmeans", "n": int(n), "d": int(d), "k": int(k), "device": str(dev),
        "ours_seconds": round(ours_s, 3), "sklearn_seconds": round(sk_s, 3),
        "speedup": round(sk_s / ours_s, 2), "ours_inertia": ours.inertia, "sklearn_inertia": sk_inertia,
        "inertia_ratio": round(ours.inertia / sk_inertia, 5), "ours_iters": int(ours.n_iter),
        "ours_max_iter": max_iter, "sklearn_iters": int(km.n_iter_),
        "sklearn1_seconds": round(sk1_s, 3), "sklearn1_inertia": float(km1.inertia_),
        "inertia_ratio_sklearn1": round(ours.inertia / float(km1.inertia_), 5),
        "threads": int(threads) if threads is not None else torch.get_num_threads(),
        "torch_version": torch.__version__, "sklearn_version": sklearn.__version__,
    }


def markdown(rec: dict) -> str:
    """A small markdown table of one `run` record."""
    return "\n".join([
        f"k-means on {rec['n']} x {rec['d']} float32 features, k={rec['k']}, {rec['threads']} CPU threads "
        f"(torch {rec['torch_version']}, scikit-learn {rec['sklearn_version']})",
        "",
        "| method | seconds | inertia | iterations |",
        "|---|---:|---:|---:|",
        f"| selfcond kmeans as the partition calls it (k-means++, max_iter={rec['ours_max_iter']}) | "
        f"{rec['ours_seconds']:.2f} | {rec['ours_inertia']:.6g} | {rec['ours_iters']} |",
        f"| sklearn KMeans(n_init=10), the paper's call | {rec['sklearn_seconds']:.2f} | "
        f"{rec['sklearn_inertia']:.6g} | {rec['sklearn_iters']} (best init) |",
        f"| sklearn KMeans(n_init=1), one seeding as ours | {rec['sklearn1_seconds']:.2f} | "
        f"{rec['sklearn1_inertia']:.6g} | |",
        "",
        f"speedup over the paper's call: **{rec['speedup']:.2f}x**; inertia ratio ours/sklearn(n_init=10): "
        f"**{rec['inertia_ratio']:.4f}**, ours/sklearn(n_init=1): {rec['inertia_ratio_sklearn1']:.4f}",
    ])


@bench_command("kmeans")
@click.option("--n", type=click.IntRange(min=1), default=25000, show_default=True)
@click.option("--d", type=click.IntRange(min=1), default=2048, show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="torch and scikit-learn threads (default: all cores)")
@device_option()
@click.option("--json", "json_path", help="write the record here")
def command(n, d, k, seed, threads, device, json_path):
    """The k-means call of Self-Conditioned GAN's partition beside scikit-learn's KMeans(n_init=10)."""
    from selfcond.bench.runner import saver
    from selfcond.errors import UserError

    save = saver(json_path)  # a bad --json fails now, not after the work
    if k > n:
        raise UserError(f"--k ({k}) must be at most --n ({n})")
    rec = run(n=n, d=d, k=k, seed=seed, device=str(bench_device(device)), threads=threads)
    save([rec])
    click.echo(markdown(rec))

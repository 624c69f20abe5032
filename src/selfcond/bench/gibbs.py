"""`bench gibbs`: the MIC-GANs Gibbs step, ours beside the published per-image loop; `bench
gibbs-blocks`: what the fast sweep's blocks cost in accuracy.

The Gibbs step on ``n`` embeddings of dimension ``d`` with ``k`` slots, ``sweeps`` sweeps, timed in
one process on the same embeddings:

* ours, fast sweep: :func:`selfcond.cluster.crp.gibbs` in blocks of ``block`` points (0 = the
  library default, n / 16), the median of ``repeats`` timed runs;
* ours, exact: :func:`selfcond.cluster.crp_exact.gibbs_exact` (sequential, point by point);
* published: :func:`selfcond.bench.published_micgans.published_loop`, a faithful re-implementation
  of the published MIC-GANs per-image loop (see that module).

All three start from the same assignment, the argmax under the simplex-initialised mixture (one-hot
means, covariance 0.1 I), which is what the published code starts from. If the published loop would
take more than ``_LOOP_BUDGET_S`` on all points, it runs on the first ``loop_points`` points and its
time is extrapolated linearly in the number of points (both figures are recorded).

Embeddings (:func:`make_embeddings`): a ``k``-component mixture around the one-hot vectors of a
``d``-dim space (k <= d), isotropic standard deviation ``std`` = 0.1, equal proportions; the true
component of each point is kept to score agreement (purity, NMI, ARI).

Our samplers run on ``device`` (the embeddings already there, as in training, where Q embeds on
the training device); the published loop runs on the CPU, as the original does (NumPy draws).

Run: ``selfcond bench gibbs [--n 60000 --d 15 --k 15 --sweeps 3 --threads 1 --block 0
--device cpu --repeats 5] [--json out.json]``.
"""

from __future__ import annotations

import time
from typing import Optional

import click
import torch

from selfcond.bench.published_micgans import published_loop
from selfcond.bench.runner import bench_command, bench_device, device_option, saver, synchronize
from selfcond.cluster.crp import block_size, gibbs
from selfcond.cluster.crp_exact import gibbs_exact, log_joint
from selfcond.cluster.gmm import GaussianMixture
from selfcond.cluster.niw import NIWPrior
from selfcond.errors import UserError
from selfcond.metrics.clusters import cluster_scores

__all__ = ["make_embeddings", "run", "markdown", "run_blocks", "markdown_blocks"]

_LOOP_BUDGET_S = 180.0  # above this (estimated), time the published loop on a subset
_PILOT_POINTS = 2000


def make_embeddings(n: int = 60000, d: int = 15, k: int = 15, std: float = 0.1, seed: int = 0):
    """(x (n, d) float32, true component (n,) int64), deterministic from seed, CPU."""
    if k > d:
        raise ValueError(f"one-hot means need k <= d, got k={k}, d={d}")
    g = torch.Generator().manual_seed(int(seed))
    y = torch.randint(k, (n,), generator=g)
    x = torch.eye(k, d)[y] + std * torch.randn(n, d, generator=g)
    return x, y


def _timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def _synced(fn, dev: torch.device):
    """fn, waiting for the GPU's queued work before it returns (so timing it is honest)."""
    def call(*args):
        out = fn(*args)
        synchronize(dev)
        return out
    return call


def _scores(z: torch.Tensor, y: torch.Tensor, k: int) -> dict:
    s = cluster_scores(z, y, k, int(y.max()) + 1)
    s = {key: round(v, 4) for key, v in s.items()}
    s["live"] = int((torch.bincount(z, minlength=k) > 0).sum())
    return s


def run(
    n: int = 60000,
    d: int = 15,
    k: int = 15,
    sweeps: int = 3,
    seed: int = 0,
    threads: Optional[int] = 1,
    alpha: float = 1.0,
    loop_points: Optional[int] = None,
    block: int = 0,
    device: str = "cpu",
    repeats: int = 5,
) -> dict:
    """Time our fast sweep, our exact sampler and the published loop on the same embeddings.

    Our fast sweep takes a tenth of a second, where one scheduler hiccup is a large share, so
    it is timed ``repeats`` times (same seed, same result) and the median is kept; the exact
    sampler and the published loop take seconds and are timed once."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if threads is not None:
        torch.set_num_threads(int(threads))
    x, y = make_embeddings(n, d, k, seed=seed)
    gmm = GaussianMixture.simplex_init(k, d)
    z0 = gmm.assign(x)
    prior = NIWPrior.isotropic(d)
    dev = torch.device(device)
    x_dev, z0_dev = x.to(dev), z0.to(dev)

    def ours(exact: bool, pts: int = n):
        gen = torch.Generator(dev).manual_seed(seed)
        if exact:
            z, wall, cpu = _timed(gibbs_exact, x_dev[:pts], z0_dev[:pts], k, alpha, prior, sweeps, gen)
        else:
            z, wall, cpu = _timed(_synced(gibbs, dev), x_dev[:pts], z0_dev[:pts], k, alpha, prior, sweeps,
                                  gen, block)
        return z.cpu(), wall, cpu

    ours(False, min(n, 2048))  # warm-up: first calls into BLAS / LAPACK are slow
    ours(True, min(n, 256))
    runs = [ours(False) for _ in range(int(repeats))]
    fast_walls = [r[1] for r in runs]
    _, fast_s, fast_cpu = sorted(runs, key=lambda r: r[1])[len(runs) // 2]  # the median run
    z_fast = runs[0][0]
    z_exact, exact_s, exact_cpu = ours(True)

    if loop_points is None:  # pilot: is the full published loop within budget?
        p = min(n, _PILOT_POINTS)
        pilot_s = _timed(published_loop, x[:p], gmm.means, gmm.covs, 1, seed)[1]
        est = pilot_s * (n / p) * sweeps
        loop_points = n if est <= _LOOP_BUDGET_S else max(p, int(n * _LOOP_BUDGET_S / 3 / est))
    loop_points = min(int(loop_points), n)
    z_pub, pub_measured, pub_cpu = _timed(
        published_loop, x[:loop_points], gmm.means, gmm.covs, sweeps, seed)
    scale = n / loop_points
    pub_s, pub_cpu = pub_measured * scale, pub_cpu * scale

    return {
        "bench": "gibbs_speed",
        "n": int(n), "d": int(d), "k": int(k), "sweeps": int(sweeps), "seed": int(seed),
        "alpha": float(alpha), "block": block_size(n, d, block), "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "prior": {"var": 0.1, "kappa0": prior.kappa0, "nu0": prior.nu0},
        "fast_seconds": round(fast_s, 4),
        "fast_seconds_all": [round(w, 4) for w in fast_walls],
        "exact_seconds": round(exact_s, 3),
        "published_points": loop_points,
        "published_measured_seconds": round(pub_measured, 3),
        "published_seconds": round(pub_s, 3),
        "published_extrapolated": loop_points < n,
        "speedup_fast": round(pub_s / fast_s, 1),
        "speedup_exact": round(pub_s / exact_s, 2),
        # CPU seconds of this process: steadier than wall time on a shared machine
        "cpu_seconds": {"fast": round(fast_cpu, 4), "exact": round(exact_cpu, 3),
                        "published": round(pub_cpu, 3)},
        "speedup_fast_cpu": round(pub_cpu / fast_cpu, 1),
        "scores": {
            "start": _scores(z0, y, k),
            "fast": _scores(z_fast, y, k),
            "exact": _scores(z_exact, y, k),
            "published": _scores(z_pub, y[:loop_points], k),
        },
        "threads": int(threads) if threads is not None else torch.get_num_threads(),
        "torch_version": torch.__version__,
    }


def markdown(rec: dict) -> str:
    """A small markdown table of one `run` record."""
    sc = rec["scores"]
    pub = "published per-image loop"
    if rec["published_extrapolated"]:
        pub += (f" (measured {rec['published_measured_seconds']:.1f} s on "
                f"{rec['published_points']} points, extrapolated)")

    def row(name, secs, ratio, s):
        return (f"| {name} | {secs:.3f} | {ratio} | {s['live']} | {s['purity']:.4f} | "
                f"{s['nmi']:.4f} | {s['ari']:.4f} |")

    return "\n".join([
        f"Gibbs step on {rec['n']} embeddings, D={rec['d']}, K={rec['k']}, {rec['sweeps']} sweeps, "
        f"alpha={rec['alpha']}, ours on {rec.get('device_name', 'cpu')}, {rec['threads']} CPU thread(s) "
        f"(torch {rec['torch_version']})",
        "",
        "| sampler | seconds | speedup | live slots | purity | NMI | ARI |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row(f"selfcond fast sweep (block {rec['block']}, median of {len(rec['fast_seconds_all'])})",
            rec["fast_seconds"],
            f"**{rec['speedup_fast']:.1f}x**", sc["fast"]),
        row("selfcond exact (sequential)", rec["exact_seconds"], f"{rec['speedup_exact']:.2f}x",
            sc["exact"]),
        row(pub, rec["published_seconds"], "1x", sc["published"]),
        "",
        f"CPU seconds (this process): fast {rec['cpu_seconds']['fast']:.3f}, exact "
        f"{rec['cpu_seconds']['exact']:.3f}, published {rec['cpu_seconds']['published']:.3f} "
        f"(fast sweep speedup {rec['speedup_fast_cpu']:.1f}x). Start (argmax under the simplex "
        f"init): ARI {sc['start']['ari']:.4f}, {sc['start']['live']} live slots.",
    ])



def run_blocks(
    n: int = 4000,
    d: int = 5,
    k_true: int = 5,
    k: int = 10,
    std: float = 0.35,
    blocks: tuple[int, ...] = (1, 64, 256, 512),
    sweeps: int = 100,
    burn: int = 50,
    chains: int = 4,
    alpha: float = 1.0,
    seed: int = 0,
    threads: Optional[int] = 1,
) -> dict:
    """What the fast sweep's blocks cost in accuracy: ``chains`` chains per block size (1 = the
    exact sequential sampler, the reference) on an overlapping mixture (``k_true`` components
    around one-hot means, std ``std``), one sweep at a time, chain c starting from the same
    random assignment and generator seed for every block size. After ``burn`` sweeps, the
    target's log density (:func:`log_joint`) and the number of live slots are averaged over the
    chain; the table gives the mean and spread of those chain averages. A block sampler that
    targeted the same distribution would match the exact rows within their spread."""
    if not 0 <= burn < sweeps:
        raise ValueError(f"need 0 <= burn < sweeps, got burn={burn}, sweeps={sweeps}")
    if chains < 1:
        raise ValueError(f"chains must be >= 1, got {chains}")
    if threads is not None:
        torch.set_num_threads(int(threads))
    x, y = make_embeddings(n, d, k_true, std=std, seed=seed)
    prior = NIWPrior.isotropic(d)
    rows = []
    for b in blocks:
        lj_chain, live_chain, ari_chain, secs = [], [], [], 0.0
        for c in range(chains):
            gen = torch.Generator().manual_seed(seed + 1000 * c)
            z = torch.randint(k, (n,), generator=gen)
            lj, live = [], []
            for s in range(sweeps):
                t0 = time.perf_counter()
                z = gibbs_exact(x, z, k, alpha, prior, 1, gen) if b <= 1 else gibbs(x, z, k, alpha, prior, 1, gen, b)
                secs += time.perf_counter() - t0
                if s >= burn:
                    lj.append(log_joint(x, z, k, alpha, prior))
                    live.append(int((torch.bincount(z, minlength=k) > 0).sum()))
            lj_chain.append(sum(lj) / len(lj))
            live_chain.append(sum(live) / len(live))
            ari_chain.append(_scores(z, y, k)["ari"])
        lj_t = torch.tensor(lj_chain, dtype=torch.float64)
        sd = float(lj_t.std()) if chains > 1 else 0.0
        rows.append({"block": int(b), "exact": b <= 1, "log_joint_mean": round(float(lj_t.mean()), 1),
                     "log_joint_sd_chains": round(sd, 1), "log_joint_chains": [round(v, 1) for v in lj_chain],
                     "live_mean": round(sum(live_chain) / chains, 2),
                     "ari_last": round(sum(ari_chain) / chains, 4),
                     "seconds_per_sweep": round(secs / (sweeps * chains), 4)})
    return {"bench": "gibbs_blocks", "n": n, "d": d, "k_true": k_true, "k": k, "std": std, "sweeps": sweeps,
            "burn": burn, "chains": chains, "alpha": alpha, "seed": seed, "rows": rows,
            "torch_version": torch.__version__}


def markdown_blocks(rec: dict) -> str:
    """Markdown table of one `run_blocks` record."""
    lines = [
        f"{rec['n']} points, D={rec['d']}, {rec['k_true']} overlapping components (std {rec['std']}), "
        f"K={rec['k']}, alpha={rec['alpha']}; {rec['chains']} chains per sampler, each averaged over "
        f"sweeps {rec['burn'] + 1}-{rec['sweeps']} (± = spread of the chain averages)",
        "",
        "| sampler | block / N | log joint | live slots | ARI (last sweep) | s / sweep |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rec["rows"]:
        name = "exact sequential" if r["exact"] else f"fast sweep, block {r['block']}"
        frac = "-" if r["exact"] else f"1/{rec['n'] / r['block']:.0f}"
        lines.append(f"| {name} | {frac} | {r['log_joint_mean']:.1f} ± {r['log_joint_sd_chains']:.1f} | "
                     f"{r['live_mean']:.2f} | {r['ari_last']:.4f} | {r['seconds_per_sweep']:.4f} |")
    return "\n".join(lines)


@bench_command("gibbs")
@click.option("--n", type=click.IntRange(min=1), default=60000, show_default=True)
@click.option("--d", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--sweeps", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--block", type=click.IntRange(min=0), default=0, show_default=True,
              help="points per block of our fast sweep; 0 = the library default, n / 16")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@device_option()
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="timed runs of our fast sweep (the median is reported)")
@click.option("--json", "json_path", help="write the record here")
def command(n, d, k, sweeps, block, seed, threads, device, repeats, json_path):
    """Our Gibbs sweeps beside the published MIC-GANs per-image loop, on the same embeddings
    (the published loop runs on the CPU)."""
    save = saver(json_path)  # a bad --json fails now, not after the work
    if k > d:
        raise UserError(f"--k ({k}) must be at most --d ({d}): the embeddings sit around one-hot means")
    rec = run(n=n, d=d, k=k, sweeps=sweeps, seed=seed, threads=threads, block=block,
              device=str(bench_device(device)), repeats=repeats)
    save([rec])
    click.echo(markdown(rec))


@bench_command("gibbs-blocks")
@click.option("--n", type=click.IntRange(min=1), default=4000, show_default=True)
@click.option("--blocks", default="1,64,256,512", show_default=True,
              help="block sizes of the fast sweep; 1 runs the exact sequential sampler")
@click.option("--sweeps", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--burn", type=click.IntRange(min=0), default=50, show_default=True, help="sweeps before scoring starts")
@click.option("--chains", type=click.IntRange(min=1), default=4, show_default=True, help="chains per block size")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", help="write the record here")
def blocks_command(n, blocks, sweeps, burn, chains, seed, json_path):
    """What the fast sweep's blocks cost in accuracy, beside the exact sampler."""
    save = saver(json_path)  # a bad --json fails now, not after the work
    try:
        sizes = [int(b) for b in blocks.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"--blocks expects numbers like 1,64,256, got {blocks!r}") from None
    try:
        rec = run_blocks(n=n, blocks=sizes, sweeps=sweeps, burn=burn, chains=chains, seed=seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    save([rec])
    click.echo(markdown_blocks(rec))

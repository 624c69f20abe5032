"""k-means over points split between ranks equals k-means on all the points in one process: the
same labels, centres within float tolerance, the same k-means++ seeding and the same re-seeding of
an empty cluster. One process (the one shard is everything) and 2 gloo ranks started by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from selfcond.cluster.kmeans import centers_from_labels, kmeans
from selfcond.cluster.sharded import block, centers_from_labels_sharded, kmeans_sharded

SRC = str(Path(__file__).resolve().parents[2] / "src")


def blobs(n: int = 2001, k: int = 7, d: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 6
    return centres[torch.randint(k, (n,), generator=g)] + torch.randn(n, d, generator=g)


def noise() -> torch.Tensor:
    return torch.rand(2001, 3, generator=torch.Generator().manual_seed(1))


def reference(x: torch.Tensor, k: int, seed: int):
    """What one process computes: seeding, k-means from it, a warm start with an emptied cluster."""
    # One Lloyd step from the seeding, on points with no clusters (where every draw shows).
    one = kmeans(noise(), k, max_iter=1, generator=torch.Generator().manual_seed(seed))
    full = kmeans(x, k, generator=torch.Generator().manual_seed(seed))
    labels = full.labels.clone()
    labels[labels == k - 1] = 0  # cluster k - 1 emptied: re-seeded by a d^2 draw
    warm = centers_from_labels(x, labels, k, torch.Generator().manual_seed(seed + 1))
    return one, full, warm, labels


def test_one_shard_is_one_process_kmeans():
    x, k = blobs(), 7
    one, full, warm, labels = reference(x, k, 3)
    assert torch.allclose(kmeans_sharded(noise(), k, max_iter=1, generator=torch.Generator().manual_seed(3)).centers,
                          one.centers, atol=1e-4)  # the same k-means++ draws
    ours = kmeans_sharded(x, k, generator=torch.Generator().manual_seed(3))
    assert torch.equal(ours.labels, full.labels)
    assert torch.allclose(ours.centers, full.centers, atol=1e-4)
    assert abs(ours.inertia - full.inertia) <= 1e-4 * full.inertia
    assert torch.allclose(centers_from_labels_sharded(x, labels, k, torch.Generator().manual_seed(4)), warm,
                          atol=1e-5)
    again = kmeans_sharded(x, k, init=warm, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again.labels, full.labels)  # the warm start recovers the same clusters


def test_blocks_cover_the_items_once():
    assert block(10) == slice(0, 10)  # one process: everything


def test_two_ranks_cluster_as_one_process(tmp_path):
    x, k = blobs(), 7
    torch.save(x, tmp_path / "x.pt")
    script = tmp_path / "shard.py"
    script.write_text(textwrap.dedent(f"""
        import torch, torch.distributed as td
        from selfcond.cluster import sharded
        from selfcond.cluster.kmeans import centers_from_labels
        td.init_process_group("gloo")
        x = torch.load({str(tmp_path / "x.pt")!r})
        part = sharded.block(x.shape[0])
        mine = x[part]
        noise = torch.rand(2001, 3, generator=torch.Generator().manual_seed(1))[part]
        one = sharded.kmeans_sharded(noise, {k}, max_iter=1, generator=torch.Generator().manual_seed(3))
        full = sharded.kmeans_sharded(mine, {k}, generator=torch.Generator().manual_seed(3))
        labels = sharded.gather_rows(full.labels)
        emptied = labels.clone()
        emptied[emptied == {k} - 1] = 0
        warm = sharded.centers_from_labels_sharded(mine, emptied[part], {k}, torch.Generator().manual_seed(4))
        torch.save({{"part": (part.start, part.stop), "labels": labels, "centers": full.centers,
                    "inertia": full.inertia, "warm": warm,
                    "one": one.centers}}, {str(tmp_path)!r} + f"/rank{{td.get_rank()}}.pt")
        td.destroy_process_group()
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script)], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    one, full, _, labels = reference(x, k, 3)
    warm = centers_from_labels(x, labels, k, torch.Generator().manual_seed(4))
    ranks = [torch.load(tmp_path / f"rank{i}.pt") for i in (0, 1)]
    assert ranks[0]["part"] == (0, 1001) and ranks[1]["part"] == (1001, 2001)  # uneven shards
    for got in ranks:
        assert torch.allclose(got["one"], one.centers, atol=1e-4)  # the same k-means++ draws over the ranks
        assert torch.equal(got["labels"], full.labels)  # every point, gathered, on every rank
        assert torch.allclose(got["centers"], full.centers, atol=1e-4)
        assert abs(got["inertia"] - full.inertia) <= 1e-4 * full.inertia
        assert torch.allclose(got["warm"], warm, atol=1e-4)  # the same re-seeded point
    assert torch.equal(ranks[0]["centers"], ranks[1]["centers"])  # bit for bit between ranks


GIBBS = """
import itertools, torch, torch.distributed as td
from selfcond.cluster import sharded
from selfcond.cluster.crp import gibbs
from selfcond.cluster.gmm import GaussianMixture
from selfcond.cluster.niw import NIWPrior
td.init_process_group("gloo")
rank, out = td.get_rank(), {}
# The enumerable problem of tests/cluster/test_crp.py: 4 points in 1-D, K = 3; each rank holds two.
x = torch.tensor([[-1.0], [-0.7], [0.8], [1.2]])
k, alpha, p = 3, 1.0, NIWPrior.isotropic(1, var=0.3, kappa0=0.1)
mine = x[sharded.block(4)]
g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
z1, z2 = torch.zeros(4, dtype=torch.long), torch.zeros(2, dtype=torch.long)
same = True
for _ in range(50):  # block 1: the one-process sequential chain, draw for draw
    z1 = gibbs(x, z1, k, alpha, p, generator=g1, block=1)
    z2 = sharded.gibbs_sharded(mine, z2, k, alpha, p, generator=g2, block=1)
    same &= torch.equal(sharded.gather_rows(z2), z1)
out["same_chain"] = bool(same)
g, z, freq = torch.Generator().manual_seed(7), torch.zeros(2, dtype=torch.long), {}
for _ in range(SWEEPS):
    z = sharded.gibbs_sharded(mine, z, k, alpha, p, generator=g, block=1)
    s = tuple(sharded.gather_rows(z).tolist())
    freq[s] = freq.get(s, 0) + 1
out["freq"] = freq
# A real-sized problem at the default block, occupied slots on fixed fitted Gaussians.
gx = torch.Generator().manual_seed(0)
means = torch.randn(5, 8, generator=gx) * 3
big = means[torch.randint(5, (3001,), generator=gx)] + torch.randn(3001, 8, generator=gx)
z0 = torch.randint(6, (3001,), generator=gx)
prior = NIWPrior.isotropic(8, var=1.0)
gmm = GaussianMixture.simplex_init(8, 8, 1.0).refit(big, z0, prior)
ref = gibbs(big, z0, 8, 1.0, prior, sweeps=3, generator=torch.Generator().manual_seed(5),
            fixed_loglik=gmm.log_prob(big))
part = sharded.block(3001)
got = sharded.gibbs_sharded(big[part], z0[part], 8, 1.0, prior, sweeps=3,
                            generator=torch.Generator().manual_seed(5), fixed_loglik=gmm.log_prob(big[part]))
out["big_agree"] = float((sharded.gather_rows(got) == ref).float().mean())
mixed = GaussianMixture.simplex_init(8, 8, 1.0)
sharded.refit_sharded(mixed, big[part], z0[part], prior)
out["refit"] = max(float((a - b).abs().max()) for a, b in zip(mixed.state_dict().values(), gmm.state_dict().values()))
# Merges (MIC-GANs): a sample of the rows fetched from their ranks, then the one-process merge.
from selfcond.cluster.merge import merge_slots
pick = torch.randperm(3001, generator=torch.Generator().manual_seed(9))[:1000].sort().values
rows = sharded.rows_of(big[part], pick)
out["rows"] = torch.equal(rows, big[pick])
out["merge"] = merge_slots(rows, sharded.rows_of(z0[part][:, None], pick)[:, 0], 8).slot
torch.save(out, OUT + f"/gibbs{rank}.pt")
td.destroy_process_group()
"""


def test_two_ranks_sample_the_exact_posterior(tmp_path):
    """The sharded sampler at block 1 is the one-process sequential chain, draw for draw, so its
    visits match the posterior enumerated over all 81 assignments (as the one-process test asks);
    at the default block with fitted Gaussians it makes the one-process sampler's draws too."""
    import itertools

    import numpy as np

    from selfcond.cluster.crp_exact import log_joint
    from selfcond.cluster.niw import NIWPrior

    sweeps = 2500  # as the one-process test of block 1
    script = tmp_path / "gibbs.py"
    script.write_text(GIBBS.replace("SWEEPS", str(sweeps)).replace("OUT", repr(str(tmp_path))))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = [torch.load(tmp_path / f"gibbs{i}.pt") for i in (0, 1)]
    assert out[0]["same_chain"] and out[1]["same_chain"]
    assert out[0]["freq"] == out[1]["freq"]  # every rank holds the same chain
    assert out[0]["big_agree"] == 1.0
    assert out[0]["refit"] < 1e-9  # all-reduced sufficient statistics: the one-process mixture
    from selfcond.cluster.merge import merge_slots

    gx = torch.Generator().manual_seed(0)  # the script's big problem, to merge its sample in one process
    means = torch.randn(5, 8, generator=gx) * 3
    big = means[torch.randint(5, (3001,), generator=gx)] + torch.randn(3001, 8, generator=gx)
    z0 = torch.randint(6, (3001,), generator=gx)
    pick = torch.randperm(3001, generator=torch.Generator().manual_seed(9))[:1000].sort().values
    assert out[0]["rows"] and out[1]["rows"]
    assert torch.equal(out[0]["merge"], merge_slots(big[pick], z0[pick], 8).slot) and torch.equal(out[1]["merge"],
                                                                                                  out[0]["merge"])
    x = torch.tensor([[-1.0], [-0.7], [0.8], [1.2]])
    k, alpha, p = 3, 1.0, NIWPrior.isotropic(1, var=0.3, kappa0=0.1)
    states = list(itertools.product(range(k), repeat=4))
    lj = np.array([log_joint(x, torch.tensor(s), k, alpha, p) for s in states])
    post = np.exp(lj - lj.max())
    post /= post.sum()
    emp = np.array([out[0]["freq"].get(s, 0) for s in states]) / sweeps

    def canon(s):
        first = {}
        return tuple(first.setdefault(v, len(first)) for v in s)

    parts = sorted({canon(s) for s in states})
    member = np.array([[canon(s) == q for s in states] for q in parts], dtype=float)
    assert 0.5 * np.abs(member @ emp - member @ post).sum() < 0.04  # the one-process test's bound

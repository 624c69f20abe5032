import math

import pytest
import torch

from selfcond.cluster import crp as crp_cluster
from selfcond.cluster.gmm import GaussianMixture
from selfcond.cluster.niw import NIWPrior
from selfcond.config import resolve
from selfcond.partition.crp import random_shift
from selfcond.train import Trainer


def micgan_trainer(**over):
    cfg = resolve(overrides={"data.name": "ring", "method.name": "micgan", "method.k": 8,
                             "method.cluster_samples": 500, "method.q_steps": 5, "train.threads": 1,
                             "model.g_width": 32, "model.d_width": 32, **over})
    t = Trainer(cfg)
    t.start()
    return t


def poison(net: torch.nn.Module) -> None:
    """Every output of `net` becomes NaN."""
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))


@pytest.mark.parametrize("ema", [0.999, 0.0])
def test_encoder_learns_from_the_generator_that_samples(ema):
    """Q trains on the images users get: G's moving average when there is one, else G. A NaN in the
    other generator must not reach Q."""
    t = micgan_trainer(**{"train.ema": ema})
    sampler = t.g_eval
    assert (sampler is t.G) == (ema == 0)
    if ema:
        poison(t.G)  # the live G is not what Q learns from
        assert math.isfinite(t.partition.train_q(t.context))
        assert all(torch.isfinite(p).all() for p in t.partition.Q.parameters())
    poison(sampler)
    assert math.isnan(t.partition.train_q(t.context))


def test_a_round_labels_every_clustered_point_and_sets_pi_from_the_counts():
    t = micgan_trainer()
    p = t.partition
    out = p.refresh(t.context, step=p.m.init_steps)
    assert out["epoch"] == 1 and p.conditional
    assert p.z.shape == (500,) and int(p.counts.sum()) == 500
    torch.testing.assert_close(p.pi, torch.bincount(p.z, minlength=8).double() / 500)


def classification_loglik(p, emb, z):
    counts = torch.bincount(z, minlength=p.k).double()
    lp = p.gmm.log_prob(emb) + (counts / counts.sum()).log()
    return float(lp.gather(1, z[:, None]).sum())


def test_settle_reaches_the_modes_assign_gives_and_raises_the_likelihood():
    """Three overlapping Gaussians in 2D and a noisy labelling (a third of the points relabelled at
    random, as a Gibbs sample of split posteriors is): settling ends where argmax log π + log N
    reproduces every label, with a higher classification likelihood than the labelling it began from."""
    t = micgan_trainer(**{"method.k": 3})
    p = t.partition
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]], dtype=torch.float64)
    truth = torch.randint(0, 3, (3000,), generator=g)
    emb = centres[truth] + 0.6 * torch.randn(3000, 2, generator=g, dtype=torch.float64)
    noisy = torch.where(torch.rand(3000, generator=g) < 0.33, torch.randint(0, 3, (3000,), generator=g), truth)
    p.prior = NIWPrior.isotropic(2, var=0.1, mu0=torch.zeros(2, dtype=torch.float64))
    p.gmm = GaussianMixture(centres, 0.36 * torch.eye(2, dtype=torch.float64).expand(3, 2, 2).clone())
    p.gmm.refit(emb, noisy, p.prior)
    before = classification_loglik(p, emb, noisy)
    z, log = p.settle(emb, noisy)
    counts = torch.bincount(z, minlength=3).double()
    assert torch.equal(p.gmm.assign(emb, (counts / counts.sum()).log()), z)
    assert 0.15 < log["settled"] < 0.4 and 1 < log["settle_iters"] < 50
    assert classification_loglik(p, emb, z) > before
    assert float((z == truth).float().mean()) > float((noisy == truth).float().mean())


def shrunken_embeddings(classes=9, per_class=300, dim=40, seed=0):
    """Embeddings at the scale Q's reach after a few rounds (MNIST at K = 40: within-mode variance
    ~1e-4, most of it along one direction): `classes` clusters 0.05 apart in a 40-dim space, each
    stretched along its own direction (variance 2e-3) plus isotropic noise (1e-5). Returns x (N, dim)
    float64 and the class of each point (N,)."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.arange(classes).repeat_interleave(per_class)
    dirs = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    dirs[:, classes:] = 0
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    x = (0.05 * torch.eye(classes, dim, dtype=torch.float64)[truth]
         + 2e-3 ** 0.5 * torch.randn(len(truth), 1, generator=g, dtype=torch.float64) * dirs[truth]
         + 1e-5 ** 0.5 * torch.randn(len(truth), dim, generator=g, dtype=torch.float64))
    return x, truth


def test_the_scaled_prior_is_the_mean_variance_within_a_mode():
    t = micgan_trainer(**{"method.k": 4})
    p = t.partition
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0, 0.5], dtype=torch.float64)
    z = torch.randint(0, 3, (200,), generator=g)  # slot 3 empty
    within = sum(float((x[z == k] - x[z == k].mean(0)).square().sum()) for k in range(3)) / x.numel()
    prior = p.scaled_prior(x, z)
    torch.testing.assert_close(prior.psi0 / (prior.nu0 - 4 - 1), within * torch.eye(4, dtype=torch.float64))
    same = torch.ones(10, 4, dtype=torch.float64)  # no spread at all: embed_var, not a zero covariance
    assert float(p.scaled_prior(same, torch.zeros(10, dtype=torch.long)).psi0[0, 0]) == pytest.approx(p.m.embed_var)


def test_a_prior_at_the_embeddings_scale_leaves_a_clean_table_where_it_is():
    """Nine tight classes at Q's late-round scale, one mode holding two of them (8 modes). With the
    fixed prior E[Sigma] = 0.1 I, the prior is most of every mode's covariance and shrinks as 1/n, so
    the larger mode is the sharper one in the dimensions no mode uses: the table's own Gaussians
    then move most images to another mode. Scaled to the embeddings, the Gaussians keep the table
    as it is."""
    t = micgan_trainer(**{"method.k": 40})
    p = t.partition
    x, truth = shrunken_embeddings()
    table = torch.where(truth == 1, 0, truth)
    moved = {}
    for scaled in (False, True):
        p.prior = p.scaled_prior(x, table) if scaled else NIWPrior.isotropic(40, var=0.1, mu0=torch.full((40,), 1 / 40, dtype=torch.float64))
        p.gmm = GaussianMixture.simplex_init(40, 40, 0.1).refit(x, table, p.prior)
        z, log = p.settle(x, table)
        moved[scaled] = log["settled"]
        if scaled:
            assert torch.equal(z, table)
    assert moved[True] == 0.0 and moved[False] > 0.5, moved


@pytest.mark.parametrize("scale", [True, False])
def test_a_round_scales_the_prior_to_the_embeddings_unless_told_not_to(scale):
    t = micgan_trainer(**{"method.scale_prior": scale})
    p = t.partition
    p.refresh(t.context, step=p.m.init_steps)
    var = float(p.prior.psi0[0, 0] / (p.prior.nu0 - 8 - 1))
    spread = float(p.embed(p.x_fixed).var(0).mean())  # the embeddings' variance, modes and all
    if scale:
        assert 0 < var < spread < p.m.embed_var
    else:
        assert var == pytest.approx(p.m.embed_var)


@pytest.mark.parametrize("settle", [True, False])
def test_the_last_round_settles_the_table_unless_told_not_to(settle):
    t = micgan_trainer(**{"method.sample_epochs": 1, "method.settle": settle})
    p = t.partition
    out = p.refresh(t.context, step=p.m.init_steps)
    assert ("settled" in out) == settle
    at_map = torch.equal(p.gmm.assign(p.embed(p.x_fixed), p.pi.log()), p.z)
    assert at_map or not settle
    torch.testing.assert_close(p.pi, torch.bincount(p.z, minlength=8).double() / 500)


def windows(x: torch.Tensor, p: int) -> torch.Tensor:
    """Every (2p+1)^2 shift of images x (B, C, H, W) with edges replicated: (B, 2p+1, 2p+1, C, H, W)."""
    b, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (p,) * 4, mode="replicate")
    return torch.stack([torch.stack([xp[:, :, i:i + h, j:j + w] for j in range(2 * p + 1)], 1)
                        for i in range(2 * p + 1)], 1)


def test_random_shift_moves_each_image_by_its_own_offset():
    x = torch.randn(200, 2, 7, 9)
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    hit = (windows(x, 2) == y[:, None, None]).flatten(3).all(3)  # (B, 5, 5): which shift is y
    assert (hit.flatten(1).sum(1) == 1).all()  # exactly one offset in [-2, 2]^2 per image
    offsets = hit.flatten(1).float().argmax(1)
    assert len(offsets.unique()) == 25 and (offsets != 12).any()  # each image drew its own


@pytest.mark.parametrize("shift", [0, 2])
def test_encoder_learns_from_shifted_generated_images(shift):
    """Q's inputs are G's images moved by up to method.q_shift pixels (unmoved at 0)."""
    cfg = resolve(overrides={"data.name": "digits", "data.resolution": 28, "method.name": "micgan",
                             "method.k": 4, "method.q_steps": 2, "method.q_shift": shift,
                             "model.g_width": 8, "model.d_width": 8, "train.threads": 1})
    t = Trainer(cfg)
    t.start()
    drawn, seen = [], []
    t.g_eval.register_forward_hook(lambda m, i, out: drawn.append(out.clone()))
    t.partition.Q.register_forward_pre_hook(lambda m, i: seen.append(i[0].clone()))
    t.partition.train_q(t.context)
    assert len(drawn) == len(seen) == 2
    for g, q in zip(drawn, seen):
        hit = (windows(g, shift) == q[:, None, None]).flatten(3).all(3).flatten(1)
        assert hit.any(1).all()  # every image Q saw is one of G's, moved within the range
        if shift:
            assert (~hit[:, (2 * shift + 1) ** 2 // 2]).float().mean() > 0.5  # most were moved


def twins(n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings (n, k) of k // 2 classes, class c a Gaussian blob halfway between the simplex
    vertices 2c and 2c + 1, so that the mixture's Gaussians there split each class in two (the
    twins G keeps for a class); and each point's class."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, k // 2, (n,), generator=g)
    eye = torch.eye(k)
    return 0.5 * (eye[2 * c] + eye[2 * c + 1]) + 0.1 * torch.randn(n, k, generator=g), c


def purity(z: torch.Tensor, truth: torch.Tensor) -> float:
    table = torch.zeros(int(z.max()) + 1, int(truth.max()) + 1)
    table.index_put_((z, truth), torch.ones(len(z)), accumulate=True)
    return float(table.max(1).values.sum() / len(z))


def test_a_round_merges_the_twins_of_a_class_into_one_mode(monkeypatch):
    """Four classes, each between two of the eight Gaussians: the Gibbs chain keeps eight modes
    (each class split in two, as the mixture's likelihood wants); merging leaves one per class,
    at the same purity, with the merged slots empty. Without merging the eight stay."""
    emb, truth = twins(500, 8)
    rounds = {}
    for merge_from in (1, 0):
        t = micgan_trainer(**{"method.merge_from": merge_from, "method.smooth_sweeps": 0})
        p = t.partition
        monkeypatch.setattr(p, "embed", lambda data, part=None: emb)
        rounds[merge_from] = (p.refresh(t.context, step=p.m.init_steps), p.z.clone(), p)
    out, z, p = rounds[1]
    out0, z0, _ = rounds[0]
    assert "merged" not in out0 and len(z0.unique()) == 8
    assert out["merged"] == 4 and len(z.unique()) == 4 and int(p.alive.sum()) == 4
    assert purity(z, truth) == purity(z0, truth) > 0.9
    assert int(torch.isinf(p.gmm.log_weights).sum()) == 4  # refitted: the merged slots are empty


def test_the_merge_resolution_sets_how_much_contact_a_merge_needs(monkeypatch):
    """gamma scales the null model: the twins touch more than chance (gamma = 1 merges all four
    pairs) but not 100 times more."""
    emb, _ = twins(500, 8)
    merged = {}
    for gamma in (1.0, 100.0):
        t = micgan_trainer(**{"method.merge_from": 1, "method.smooth_sweeps": 0, "method.merge_resolution": gamma})
        p = t.partition
        monkeypatch.setattr(p, "embed", lambda data, part=None: emb)
        merged[gamma] = p.refresh(t.context, step=p.m.init_steps)["merged"]
    assert merged == {1.0: 4, 100.0: 0}


@pytest.mark.parametrize("merge_on", ["chain", "smoothed"])
def test_merges_read_the_table_merge_on_names(monkeypatch, merge_on):
    """merge_on chain: the twins' contact is counted on the Gibbs sample, before smoothing hides it
    (cluster/merge.py): all four pairs merge. Here smoothing first absorbs most twins itself (they
    touch all along their border), and its merges finish the rest."""
    from selfcond.cluster import merge
    emb, truth = twins(500, 8)
    t = micgan_trainer(**{"method.merge_from": 1, "method.merge_on": merge_on})
    p = t.partition
    monkeypatch.setattr(p, "embed", lambda data, part=None: emb)
    seen = []
    real = merge.mend_table
    monkeypatch.setattr(merge, "mend_table", lambda *a, **k: seen.append(k["merge_first"]) or real(*a, **k))
    out = p.refresh(t.context, step=p.m.init_steps)
    assert seen == [merge_on == "chain"]
    assert (out["merged"] == 4) == (merge_on == "chain")
    assert len(p.z.unique()) == 4 and purity(p.z, truth) > 0.9
    assert (out["smoothed"] < 0.2) == (merge_on == "chain")  # after the merges there is little left to move


def test_merging_waits_for_its_round(monkeypatch):
    t = micgan_trainer(**{"method.merge_from": 2, "method.sample_epochs": 3, "method.smooth_sweeps": 0})
    p = t.partition
    emb, _ = twins(500, 8)
    monkeypatch.setattr(p, "embed", lambda data, part=None: emb)
    assert "merged" not in p.refresh(t.context, step=p.m.init_steps)
    assert p.refresh(t.context, step=p.m.init_steps + p.epoch_steps)["merged"] == 4


def test_a_merge_samples_at_most_merge_points_images(monkeypatch):
    """The graph holds merge_points images; the others take their nearest sampled images' mode."""
    from selfcond.cluster import merge

    seen = []
    real = merge.knn
    monkeypatch.setattr(merge, "knn", lambda x, k, ref=None: seen.append((x.shape[0], ref is None)) or real(x, k, ref))
    t = micgan_trainer(**{"method.merge_from": 1, "method.merge_points": 300})
    p = t.partition
    emb, truth = twins(500, 8)
    z, log = p.mend(emb, p.gmm.assign(emb), None, merging=True)
    assert seen == [(300, True), (500, False)]  # the sample's graph, then every image against it
    assert log["merged"] > 0 and len(z.unique()) == 4 and purity(z, truth) > 0.95


def test_smoothing_repairs_a_table_cut_through_its_classes(monkeypatch):
    """A round whose Gibbs table has a quarter of every class's images in a wrong mode (as a
    Gaussian placed across a class leaves them): smoothing on Q's neighbours gives them back, in
    the round itself and before any merge; without it the round keeps them."""
    emb, truth = twins(500, 8)
    g = torch.Generator().manual_seed(1)
    noisy = torch.where(torch.rand(500, generator=g) < 0.25, torch.randint(0, 8, (500,), generator=g), 2 * truth)
    scores = {}
    for sweeps in (10, 0):
        t = micgan_trainer(**{"method.merge_from": 0, "method.smooth_sweeps": sweeps, "method.gibbs_sweeps": 1})
        p = t.partition
        monkeypatch.setattr(p, "embed", lambda data, part=None: emb)
        monkeypatch.setattr(crp_cluster, "gibbs", lambda *a, **kw: noisy.clone())
        out = p.refresh(t.context, step=p.m.init_steps)
        scores[sweeps] = (purity(p.z, truth), out)
    assert scores[0][0] < 0.85 and "smoothed" not in scores[0][1]
    assert scores[10][0] > 0.99 and scores[10][1]["smoothed"] > 0.15

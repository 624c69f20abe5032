"""`micgan`, MIC-GANs (Ying et al., ICCV 2021): a Dirichlet-process mixture of conditional GANs,
trained by the Adversarial Chinese Restaurant Process (Algorithm 1, with the supplement's initialization stage).

- Initialization stage (`init_steps`): D uses its unconditional head; G's conditions are uniform over
  the K slots (π starts uniform), so every mode code learns to generate something.
- Then, every `epoch_steps` steps for `sample_epochs` epochs (one ACRP round = `refresh`):
  (b) train the encoder Q on generated images of mode k (from G's moving average, the generator
      that samples) to land on mode k's Gaussian mean;
  (c) embed every real image with Q and run collapsed Gibbs sweeps over their modes under a truncated
      DP (cluster/crp.py: α opens new modes, the chain warm-starts from the previous assignment),
      its NIW base measure scaled to the embeddings' within-mode variance (`scale_prior`);
  (d) refit the Gaussians from the assignment (cluster/gmm.py) and set π = counts / N;
  (e) mend the table with the k-nearest-neighbour graph of the embeddings (cluster/merge.py):
      from round `merge_from` on merge the modes whose real images are one cluster (greedy
      modularity on the chain's sample, `merge_on`), which lets the twins G keeps for one class
      die out where the mixture's likelihood would keep them; then smooth it (every image takes
      its neighbours' most common mode, `smooth_sweeps`), which repairs the Gaussians' cuts
      through a class; then refit.
  After the last round (`settle`), the table is moved from the chain's last sample to every image's
  most probable mode under the mixture (hard EM on π and the means to a fixed point, the
  covariances kept), so the modes training keeps are the ones `assign` gives.
  Between rounds, (a) GAN training uses the real images' current modes and fake conditions from π,
  with D's conditional heads. After `sample_epochs` the modes stay fixed and training goes on.
- Modes whose count is zero have π = 0 and are never drawn for generation.

2D data have no index: a fixed sample of `cluster_samples` points is clustered, and each fresh batch
is labelled by its most probable mode under the Gaussians (log π + log N(Q(x))).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from selfcond.cluster import crp, merge, sharded
from selfcond.cluster.gmm import GaussianMixture
from selfcond.cluster.niw import NIWPrior, suff_stats
from selfcond.data.base import Batch, IndexedDataset
from selfcond.errors import UserError
from selfcond.options import need, opt
from selfcond.partition.base import Assignment, ClusteredOptions, MethodSpec, Partition, PartitionContext, register

TOY_EPOCH_STEPS = 500  # 2D data are sampled fresh: an "epoch" is this many steps


@dataclass
class MICGANOptions(ClusteredOptions):
    """The schedule's defaults are the ones measured in docs/RESULTS.md (MIC-GANs clustering): a
    long initialization, so that G draws well before Q learns to tell its modes apart, then rounds
    that first purify the modes and then merge the twins G keeps per class; each round's table is
    mended on the kNN graph of Q's embeddings (smoothed, and from `merge_from` on merged)."""

    alpha: float = opt(1.0, gt=0, help="DP concentration: the total weight of opening a new mode")
    init_steps: int = opt(7000, min=0, help="initialization stage: D unconditional, G's conditions uniform")
    epoch_steps: int = opt(1000, min=0, help="steps between ACRP rounds (0 = one pass over the data)")
    sample_epochs: int = opt(7, min=0, help="ACRP rounds with Gibbs sampling; training goes on after them")
    q_steps: int = opt(500, min=1, help="encoder steps per round")
    q_lr: float = opt(2e-4, gt=0, help="encoder learning rate")
    q_shift: int = opt(2, min=0, help="images: Q learns from G's images moved by up to this many pixels")
    gibbs_sweeps: int = opt(3, min=1, help="Gibbs sweeps per round")
    gibbs_block: int = opt(0, min=0, note="0 = N / 16",
                           help="points sampled together (cluster.crp.block_size); 1 = exact Gibbs")
    embed_var: float = opt(0.1, gt=0, help="initial covariance of every mode's Gaussian, and the NIW prior's "
                                           "until the first round scales it (scale_prior)")
    scale_prior: bool = opt(True, help="in every round, scale the NIW prior to the embeddings: E[Sigma] = their mean "
                                       "variance within a mode, per dimension, instead of embed_var")
    settle: bool = opt(True, help="after the last round, give every image its most probable mode (as "
                                  "`assign` does) instead of the last Gibbs sample")
    merge_from: int = opt(2, min=0, note="0 = never",
                          help="the first ACRP round that merges modes whose real images are one cluster "
                               "(kNN-graph modularity of Q's embeddings, cluster/merge.py)")
    merge_neighbours: int = opt(10, min=1,
                                help="neighbours per image in the graph that smooths the table and decides merges")
    merge_points: int = opt(10000, min=2, help="images in that graph (a seeded sample when there are more)")
    merge_on: str = opt("chain", choices=("chain", "smoothed"),
                        help="the table the merges read: the Gibbs chain's sample (then smoothed), or the smoothed table")
    merge_resolution: float = opt(0.5, gt=0, help="modularity resolution gamma: two modes merge when the edges "
                                                  "between them exceed gamma times the null model's count "
                                                  "(1 = plain modularity, which keeps twins with a clean border)")
    smooth_sweeps: int = opt(10, min=0, note="0 = never",
                             help="label propagation sweeps on that graph in every round, before merging: "
                                  "each image takes the mode most of its neighbours hold (cluster/merge.py)")

    def check(self, cfg) -> None:
        super().check(cfg)
        need(self.init_steps < cfg.train.steps,
             f"method.init_steps ({self.init_steps}) must be below train.steps ({cfg.train.steps}): MIC-GANs "
             f"would never leave its initialization stage (about 70% of the steps works)")
        need(self.merge_neighbours < self.merge_points,
             f"method.merge_neighbours ({self.merge_neighbours}) must be below method.merge_points "
             f"({self.merge_points}): each image needs that many others to link to")


class CRPPartition(Partition):
    assigns = True

    def __init__(self, options: MICGANOptions, device="cpu"):
        super().__init__(options.k, device)
        self.m = options
        self.conditional = False  # until the first ACRP round
        self.epoch = 0  # ACRP rounds done
        self.x_fixed: torch.Tensor | None = None  # 2D: the clustered sample
        self.z: torch.Tensor | None = None  # 2D: modes of x_fixed

    def setup(self, ctx: PartitionContext) -> None:
        self.dataset, self.generator = ctx.dataset, ctx.generator
        k = self.k
        self.Q = ctx.make_encoder(k)
        self.opt_q = torch.optim.Adam(self.Q.parameters(), lr=self.m.q_lr, betas=(0.5, 0.999))
        self.gmm = GaussianMixture.simplex_init(k, k, self.m.embed_var).to(self.device)
        # The base measure: centred on the simplex's centroid, expected covariance embed_var * I.
        self.prior = NIWPrior.isotropic(k, var=self.m.embed_var,
                                        mu0=torch.full((k,), 1.0 / k, dtype=torch.float64))
        if self.m.epoch_steps:
            self.epoch_steps = self.m.epoch_steps
        elif isinstance(self.dataset, IndexedDataset):
            self.epoch_steps = max(1, math.ceil(len(self.dataset) / ctx.batch))
        else:
            self.epoch_steps = TOY_EPOCH_STEPS

    def start(self, ctx: PartitionContext) -> None:
        if not isinstance(self.dataset, IndexedDataset):
            self.x_fixed = self.dataset.sample(self.m.cluster_samples, self.generator, self.device)[0]

    def due(self, step: int) -> bool:
        s = step - self.m.init_steps
        return s >= 0 and s % self.epoch_steps == 0 and self.epoch < self.m.sample_epochs

    # --- one ACRP round ---------------------------------------------------------------------------

    def refresh(self, ctx: PartitionContext, step: int) -> dict:
        """One ACRP round. On several ranks (torchrun) each embeds and samples its block of the data:
        the Gibbs chain and the refits exchange the slots' statistics (cluster/sharded.py), the
        table is gathered (ints), and π and the table are the same on every rank."""
        q_loss = self.train_q(ctx)
        many = sharded.sharded()
        data = self._clustered()
        part = sharded.block(data.shape[0] if isinstance(data, torch.Tensor) else len(data)) if many else None
        emb = self.embed(data, part)
        if self.epoch == 0:  # start the chain from the Gaussians the encoder was trained towards
            z0 = self.gmm.assign(emb, self.pi.log())
        else:
            z0 = self.table if self.table is not None else self.z
            z0 = z0 if part is None else z0[part]
        if self.m.scale_prior:
            self.prior = self.scaled_prior(emb, z0)
        if self.epoch > 0:
            # Q has moved since the last round: the Gaussians of the current modes are refitted to
            # the new embeddings first, or every point would look like an outlier of every mode
            # and flee to a new slot.
            self._refit(emb, z0)
        # Occupied modes score points with their fitted Gaussians (MIC-GANs); empty slots with the
        # NIW prior predictive, so a new mode can open.
        z = (sharded.gibbs_sharded if many else crp.gibbs)(
            emb, z0, self.k, self.m.alpha, self.prior, sweeps=self.m.gibbs_sweeps, generator=self.generator,
            block=self.m.gibbs_block, fixed_loglik=self.gmm.log_prob(emb))
        self._refit(emb, z)
        merging = bool(self.m.merge_from) and self.epoch + 1 >= self.m.merge_from
        mended = {}
        if merging or self.m.smooth_sweeps:
            z, mended = self.mend(emb, z, part, merging)
        changed = self._share(z != z0)
        settled = {}
        if self.m.settle and self.epoch + 1 == self.m.sample_epochs:
            z, settled = self.settle(emb, z)
        if many:
            z = sharded.gather_rows(z)
        if isinstance(self.dataset, IndexedDataset):
            self.table = z
        else:
            self.z = z
        self.counts = torch.bincount(z, minlength=self.k).to(torch.float64)
        self.conditional = True
        self.epoch += 1
        return {"epoch": self.epoch, "q_loss": q_loss, "relabelled": changed, **mended, **settled, **self.summary()}

    def _refit(self, emb: torch.Tensor, z: torch.Tensor) -> None:
        if sharded.sharded():  # from every rank's statistics
            sharded.refit_sharded(self.gmm, emb, z, self.prior)
        else:
            self.gmm.refit(emb, z, self.prior)

    def scaled_prior(self, emb: torch.Tensor, z: torch.Tensor) -> NIWPrior:
        """The base measure at the embeddings' scale: E[Sigma] = v I with v the mean variance of
        emb (N, K) around its mode's mean under z (N,), per dimension (over every rank's points).
        Q's embeddings shrink round by round (mode variances ~1e-5 on MNIST by round 6, against
        embed_var 0.1), and a prior that large becomes most of every mode's covariance, shrinking
        as 1/n: in the dimensions no mode uses, the larger mode is then the sharper one and takes
        its neighbours' images, the more so the larger K (docs/RESULTS.md, MIC-GANs' mode count)."""
        n, s, S = suff_stats(emb, z, self.k)
        packed = self._total(torch.cat([n, s.flatten(), torch.diagonal(S, dim1=1, dim2=2).sum(1)]))
        k, d = self.k, emb.shape[1]
        n, s, tr = packed[:k], packed[k:k + k * d].view(k, d), packed[k + k * d:]
        within = float((tr - s.square().sum(1) / n.clamp(min=1.0)).sum() / (n.sum() * d))
        var = within if math.isfinite(within) and within > 0 else self.m.embed_var
        return NIWPrior.isotropic(k, var=var, mu0=torch.full((k,), 1.0 / k, dtype=torch.float64))

    @staticmethod
    def _share(mask: torch.Tensor) -> float:
        """The share of all points where `mask` (this rank's points) holds."""
        if not sharded.sharded():
            return float(mask.float().mean())
        both = sharded.total(torch.tensor([float(mask.sum()), float(mask.numel())], dtype=torch.float64))
        return float(both[0] / both[1])

    @staticmethod
    def _total(t: torch.Tensor) -> torch.Tensor:
        """Counts over this rank's points -> over all points (themselves in one process)."""
        return sharded.total(t) if sharded.sharded() else t

    def mend(self, emb: torch.Tensor, z: torch.Tensor, part, merging: bool) -> tuple[torch.Tensor, dict]:
        """The table mended with the k-nearest-neighbour graph of the embeddings (cluster/merge.py)
        of at most `merge_points` images (a sample seeded by the run's generator, the same on every
        rank): label propagation, then, when `merging`, greedy modularity merges, each merged
        mode's images moved to the larger of the pair; the Gaussians are refitted. The mixture's
        likelihood cannot make these decisions: it keeps a class split in two by thousands of nats
        (docs/RESULTS.md, MIC-GANs' mode count). Images outside the sample take the most common
        mode of their nearest sampled images. emb, z: this rank's points (rows `part` of all).
        Returns z and the log: the share of images smoothing moved, the modes merged."""
        n_all = self._total(torch.tensor([float(z.shape[0])], dtype=torch.float64, device=z.device))
        n_all = int(n_all)
        pick = None
        if n_all > self.m.merge_points:
            pick = torch.randperm(n_all, generator=self.generator, device=self.generator.device)
            pick = pick[:self.m.merge_points].sort().values.to(z.device)
        if sharded.sharded():
            everyone = torch.arange(n_all, device=z.device) if pick is None else pick
            x, zs = sharded.rows_of(emb, everyone), sharded.rows_of(z[:, None], everyone)[:, 0]
        else:
            x, zs = (emb, z) if pick is None else (emb[pick], z[pick])
        smoothed, merges = merge.mend_table(x, zs, self.k, self.m.merge_neighbours, self.m.smooth_sweeps, merging,
                                            self.m.merge_resolution, merge_first=self.m.merge_on == "chain")
        log, slot = {}, merges.slot.to(z.device)
        if self.m.smooth_sweeps:  # the share smoothing moved (merge_on chain: after the merges)
            before = slot[zs] if merging and self.m.merge_on == "chain" else zs
            log["smoothed"] = float((smoothed != before).float().mean())
        if merging:
            log["merged"] = len(merges.gains)
        if not self.m.smooth_sweeps:
            z_new = slot[z]
        elif pick is None:
            z_new = slot[smoothed if part is None else smoothed[part]]
        else:  # an image outside the sample takes the most common mode of its nearest sampled ones
            z_new = slot[merge.vote(merge.knn(emb, self.m.merge_neighbours, ref=x), smoothed, self.k)]
        if self._share(z_new != z) > 0:
            self._refit(emb, z_new)
        return z_new, log

    def settle(self, emb: torch.Tensor, z: torch.Tensor, max_iters: int = 50) -> tuple[torch.Tensor, dict]:
        """The chain's sample z (N,) → each point's most probable mode, argmax_k log π_k + log N(emb | k),
        with π and the Gaussians' means refitted to the result until nothing moves (hard EM, which
        only raises the classification likelihood and so stops). The covariances stay the ones
        fitted to the chain's sample: the settle decides between modes, it does not reshape them.
        Refitted to each hard assignment under a prior far wider than the embeddings (before
        `scale_prior`), the covariance of the mode that took points shrank in the dimensions no
        mode uses, so it took more, until it held most images (MNIST at K = 40: 9 modes → 4,
        purity 0.87 → 0.41, docs/RESULTS.md). At the fixed point `assign` reproduces the table:
        the Gibbs sample alone disagrees with it wherever a posterior is split (7% of
        Fashion-MNIST). Returns z and what was moved, for the log. On several ranks emb and z are
        this rank's points; the counts and the refits are over all."""
        z_chain, iters, covs = z, 0, self.gmm.covs
        for iters in range(1, max_iters + 1):
            counts = self._total(torch.bincount(z, minlength=self.k).to(torch.float64))
            z_new = self.gmm.assign(emb, (counts / counts.sum()).log())
            if self._share(z_new != z) == 0.0:  # nothing moved on any rank
                break
            z = z_new
            self._refit(emb, z)
            self.gmm.covs = covs
        return z, {"settled": self._share(z != z_chain), "settle_iters": iters}

    def _clustered(self):
        if self.x_fixed is not None:
            return self.x_fixed
        return self.dataset  # embedded in chunks by `embed`

    def train_q(self, ctx: PartitionContext) -> float:
        """q_steps of Q on generated images: ||Q(G(z, k)) - mean_k||^2 with k drawn from π.

        The images come from the generator that samples (G's moving average): its modes are cleaner
        than the live G's, and an encoder trained on them labels real images more purely. Each image
        is moved by up to `q_shift` pixels: Q then labels a real image by its shape, not by where G
        would have drawn it (docs/RESULTS.md, MIC-GANs clustering)."""
        b, gen, total = ctx.batch, self.generator, 0.0
        means = self.gmm.means.to(torch.float32)
        for _ in range(self.m.q_steps):
            y = self.sample(b, gen)
            with torch.no_grad():
                x = ctx.fake(y, gen)
                if x.dim() == 4 and self.m.q_shift:
                    x = random_shift(x, self.m.q_shift, gen)
            loss = (self.Q(x) - means[y]).pow(2).sum(1).mean()
            self.opt_q.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_q.step()
            total += float(loss.detach())
        return total / self.m.q_steps

    @torch.no_grad()
    def embed(self, data, part: slice | None = None) -> torch.Tensor:
        """Q's embeddings (n, K) of a tensor of samples or of every item of an indexed dataset (or of
        the items in `part`), in Q's chunks."""
        chunk = self.Q.chunk
        if isinstance(data, torch.Tensor):
            data = data if part is None else data[part]
            return torch.cat([self.Q(data[i:i + chunk]) for i in range(0, data.shape[0], chunk)])
        lo, hi = (0, len(data)) if part is None else (part.start, part.stop)
        return torch.cat([self.Q(data.images(torch.arange(i, min(i + chunk, hi), device=self.device),
                                             self.device)) for i in range(lo, hi, chunk)])

    # --- labels for the train loop ----------------------------------------------------------------

    @torch.no_grad()
    def labels(self, batch: Batch) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if self.table is not None and batch.index is not None:
            return self.table[batch.index]
        return self.gmm.assign(self.Q(batch.x), self.pi.log())

    @torch.no_grad()
    def assign(self, x: torch.Tensor) -> Assignment:
        """The most probable mode of Q's embedding under the Gaussians and π: log π_k + log N(Q(x))."""
        if not self.conditional:
            raise UserError("MIC-GANs has no modes before its first ACRP round (method.init_steps)")
        lp = self.gmm.log_prob(self.embed(x.to(self.device))) + self.pi.log()[None]  # (n, K)
        fit = torch.logsumexp(lp, 1)
        best, modes = lp.max(1)
        return Assignment(modes, fit, (best - fit).exp())

    def summary(self) -> dict:
        return {"modes_alive": int(self.alive.sum()), "epoch": self.epoch}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "epoch": self.epoch, "table": self.table, "x_fixed": self.x_fixed,
                "z": self.z, "Q": self.Q.state_dict(), "opt_q": self.opt_q.state_dict(),
                "gmm": self.gmm.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        def dev(t):
            return None if t is None else t.to(self.device)

        super().load_state_dict(state)
        self.conditional, self.epoch = bool(state["conditional"]), int(state["epoch"])
        self.table, self.x_fixed, self.z = dev(state["table"]), dev(state["x_fixed"]), dev(state["z"])
        self.Q.load_state_dict(state["Q"])
        self.opt_q.load_state_dict(state["opt_q"])
        self.gmm.load_state_dict(state["gmm"])


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Images x (B, C, H, W), each translated by its own integer offset in [-pixels, pixels] along
    each axis (edges replicated): the same shape, one gather per axis, no per-image loop."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pixels,) * 4, mode="replicate")  # (B, C, H + 2p, W + 2p)
    off = torch.randint(0, 2 * pixels + 1, (2, b, 1), generator=generator, device=x.device)
    rows = off[0] + torch.arange(h, device=x.device)  # (B, H): source row of each output row
    cols = off[1] + torch.arange(w, device=x.device)
    xp = xp.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * pixels))
    return xp.gather(3, cols[:, None, None, :].expand(b, c, h, w))


register(MethodSpec("micgan", MICGANOptions, lambda o, dataset, device: CRPPartition(o, device),
                    "MIC-GANs: a Dirichlet-process mixture of conditional GANs (ACRP)",
                    preset={"model": {"g_cond": "add"}, "method": {"k": 20},
                            "train": {"r1": 10.0, "steps": 14000}}))

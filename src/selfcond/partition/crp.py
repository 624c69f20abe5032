"""MIC-GANs (Ying et al., ICCV 2021): a Dirichlet-process mixture of conditional GANs, trained by the
Adversarial Chinese Restaurant Process (Algorithm 1, with the supplement's initialization stage).

- Initialization stage (`init_steps`): D uses its unconditional head; G's conditions are uniform over
  the K slots (π starts uniform), so every mode code learns to generate something.
- Then, every `epoch_steps` steps for `sample_epochs` epochs (one ACRP round = `refresh`):
  (b) train the encoder Q on generated images of mode k (from G's moving average, the generator
      that samples) to land on mode k's Gaussian mean;
  (c) embed every real image with Q and run collapsed Gibbs sweeps over their modes under a truncated
      DP (cluster/crp.py: α opens new modes, the chain warm-starts from the previous assignment);
  (d) refit the Gaussians from the assignment (cluster/gmm.py) and set π = counts / N.
  Between rounds, (a) GAN training uses the real images' current modes and fake conditions from π,
  with D's conditional heads. After `sample_epochs` the modes stay fixed and training goes on.
- Modes whose count is zero have π = 0 and are never drawn for generation.

2D data have no index: a fixed sample of `cluster_samples` points is clustered, and each fresh batch
is labelled by its most probable mode under the Gaussians (log π + log N(Q(x))).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from selfcond import nets
from selfcond.cluster import crp
from selfcond.cluster.gmm import GaussianMixture
from selfcond.data.base import Batch
from selfcond.partition.base import Partition

TOY_EPOCH_STEPS = 500  # 2D data are sampled fresh: an "epoch" is this many steps


class CRPPartition(Partition):
    def __init__(self, method_cfg, device="cpu"):
        super().__init__(method_cfg.k, device)
        self.m = method_cfg
        self.conditional = False  # until the first ACRP round
        self.epoch = 0  # ACRP rounds done
        self.table: torch.Tensor | None = None  # images: (N,) mode of every image
        self.x_fixed: torch.Tensor | None = None  # 2D: the clustered sample
        self.z: torch.Tensor | None = None  # 2D: modes of x_fixed

    def bind(self, trainer) -> None:
        self.trainer = trainer
        self.dataset, self.generator = trainer.dataset, trainer.generator
        k = self.k
        self.Q = nets.build_encoder(trainer.cfg, trainer.dataset, k).to(self.device)
        self.opt_q = torch.optim.Adam(self.Q.parameters(), lr=self.m.q_lr, betas=(0.5, 0.999))
        self.gmm = GaussianMixture.simplex_init(k, k, self.m.embed_var).to(self.device)
        # The base measure: centred on the simplex's centroid, expected covariance embed_var * I.
        self.prior = crp.NIWPrior.isotropic(k, var=self.m.embed_var,
                                            mu0=torch.full((k,), 1.0 / k, dtype=torch.float64))
        if self.m.epoch_steps:
            self.epoch_steps = self.m.epoch_steps
        elif hasattr(self.dataset, "__len__"):
            self.epoch_steps = max(1, math.ceil(len(self.dataset) / trainer.cfg.train.batch))
        else:
            self.epoch_steps = TOY_EPOCH_STEPS

    def start(self, trainer) -> None:
        if not hasattr(self.dataset, "__len__"):
            self.x_fixed = self.dataset.sample(self.m.cluster_samples, self.generator, self.device)[0]

    def due(self, step: int) -> bool:
        s = step - self.m.init_steps
        return s >= 0 and s % self.epoch_steps == 0 and self.epoch < self.m.sample_epochs

    # --- one ACRP round ---------------------------------------------------------------------------

    def refresh(self, trainer, step: int) -> dict:
        q_loss = self._train_q(trainer)
        emb = self.embed(self._clustered())
        if self.epoch == 0:  # start the chain from the Gaussians the encoder was trained towards
            z0 = self.gmm.assign(emb, self.pi.log())
        else:
            # Q has moved since the last round: the Gaussians of the current modes are refitted to
            # the new embeddings first, or every point would look like an outlier of every mode
            # and flee to a new slot.
            z0 = self.table if self.table is not None else self.z
            self.gmm.refit(emb, z0, self.prior)
        # Occupied modes score points with their fitted Gaussians (MIC-GANs); empty slots with the
        # NIW prior predictive, so a new mode can open.
        z = crp.gibbs(emb, z0, self.k, self.m.alpha, self.prior, sweeps=self.m.gibbs_sweeps,
                      generator=self.generator, block=self.m.gibbs_block,
                      fixed_loglik=self.gmm.log_prob(emb))
        self.gmm.refit(emb, z, self.prior)
        changed = float((z != z0).float().mean())
        if hasattr(self.dataset, "__len__"):
            self.table = z
        else:
            self.z = z
        self.counts = torch.bincount(z, minlength=self.k).to(torch.float64)
        self.conditional = True
        self.epoch += 1
        return {"epoch": self.epoch, "q_loss": q_loss, "relabelled": changed, **self.summary()}

    def _clustered(self) -> torch.Tensor:
        if self.x_fixed is not None:
            return self.x_fixed
        return self.dataset  # embedded in chunks by `embed`

    def _train_q(self, trainer) -> float:
        """q_steps of Q on generated images: ||Q(G(z, k)) - mean_k||^2 with k drawn from π.

        The images come from the generator that samples (G's moving average when train.ema > 0,
        in eval mode): its modes are cleaner than the live G's, and an encoder trained on them
        labels real images more purely (MNIST, docs/RESULTS.md session 9). Each image is moved by
        up to `q_shift` pixels: Q then labels a real image by its shape, not by where G would have
        drawn it, and real images that G's modes do not reproduce exactly land in the right mode
        (MNIST, session 10)."""
        b, gen, total = trainer.cfg.train.batch, self.generator, 0.0
        means = self.gmm.means.to(torch.float32)
        with nets.eval_mode(trainer.g_eval) as g:
            for _ in range(self.m.q_steps):
                y = self.sample(b, gen)
                z = torch.randn(b, trainer.cfg.model.z_dim, generator=gen, device=self.device)
                with torch.no_grad():
                    x = g(z, y)
                    if x.dim() == 4 and self.m.q_shift:
                        x = random_shift(x, self.m.q_shift, gen)
                loss = (self.Q(x) - means[y]).pow(2).sum(1).mean()
                self.opt_q.zero_grad(set_to_none=True)
                loss.backward()
                self.opt_q.step()
                total += float(loss.detach())
        return total / self.m.q_steps

    @torch.no_grad()
    def embed(self, data, chunk: int = 5000) -> torch.Tensor:
        """Q's embeddings (n, K) of a tensor of samples or of every image of a dataset."""
        if isinstance(data, torch.Tensor):
            return torch.cat([self.Q(data[i:i + chunk]) for i in range(0, data.shape[0], chunk)])
        n = len(data)
        return torch.cat([self.Q(data.images(torch.arange(i, min(i + chunk, n), device=self.device),
                                             self.device)) for i in range(0, n, chunk)])

    # --- labels for the train loop ----------------------------------------------------------------

    @torch.no_grad()
    def labels(self, batch: Batch) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if self.table is not None and batch.index is not None:
            return self.table[batch.index]
        return self.gmm.assign(self.Q(batch.x), self.pi.log())

    def summary(self) -> dict:
        return {"modes_alive": int(self.alive.sum()), "epoch": self.epoch}

    def state_dict(self) -> dict:
        return {"counts": self.counts, "conditional": self.conditional, "epoch": self.epoch,
                "table": self.table, "x_fixed": self.x_fixed, "z": self.z, "Q": self.Q.state_dict(),
                "opt_q": self.opt_q.state_dict(), "gmm": self.gmm.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        def dev(t):
            return None if t is None else t.to(self.device)

        self.counts = state["counts"].to(self.device)
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

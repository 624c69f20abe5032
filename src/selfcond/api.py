"""The Python API of a trained run: the verbs of the command line, as methods.

    >>> m = selfcond.load("runs/00003-digits-scgan-k10")        # doctest: +SKIP
    >>> x, modes = m.generate(16, mode=3)   # (16, C, H, W) in [-1, 1]
    >>> m.evaluate(["purity", "fid_cls"])   # {"purity": ..., "fid_cls": ...}

Generating and interpolating need the checkpoint alone: the training data may be elsewhere or
gone. Evaluating loads the data (and rebuilds the run's partition) on first use.

Per-seed generation draws z (and, with no mode given, the mode from π) from a CPU generator seeded
with the seed alone, so image `seed0007.png` is the same on any device and in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from selfcond.errors import UserError
from selfcond.nets.base import FAMILIES, eval_mode
from selfcond.train import checkpoint
from selfcond.train.loop import resolve_device
from selfcond.train.rundir import append_jsonl


OUTLIER_QUANTILE = 0.01  # an image fitting worse than 99% of the images the run trained on is an outlier


@dataclass
class Assigned:
    """What `Model.assign` returns, per image: modes (n,), fit (n,) (higher fits better: MIC-GANs'
    log-density of the embedding, Self-Conditioned GAN's minus squared distance to the centre),
    probability (n,) of the mode (MIC-GANs) or None, outlier (n,) bool: fit below `threshold`."""

    modes: torch.Tensor
    fit: torch.Tensor
    probability: torch.Tensor | None
    outlier: torch.Tensor
    threshold: float


class Model:
    """A trained run restored from a checkpoint: the generator that samples, π and the config."""

    def __init__(self, state: dict, cfg, run_dir: Path | None, device: torch.device):
        self.state, self.cfg, self.run_dir, self.device = state, cfg, run_dir, device
        self.step = state["step"]
        part = state["partition"]
        self.counts = part["counts"].double().cpu()
        self.k = self.counts.shape[0]
        self.conditional = bool(part["conditional"])
        family = FAMILIES.get(cfg.model.arch)
        g, _ = family.build(cfg.model, tuple(state["data_shape"]), self.k, cfg.method.d_needs())
        g.load_state_dict(state["G_ema"] if state.get("G_ema") is not None else state["G"])
        self.G = g.to(device).eval().requires_grad_(False)  # G's moving average, as sampling in training
        self._trainer = None
        self._reference = None  # fits of the training images (outlier threshold)

    @property
    def pi(self) -> torch.Tensor:
        """(k,) mode weights π (float64)."""
        return self.counts / self.counts.sum()

    @property
    def live_modes(self) -> list[int]:
        return torch.nonzero(self.counts > 0).flatten().tolist() if self.conditional else []

    def check_mode(self, mode: int) -> int:
        """`mode` if G can generate it; a UserError naming the live modes otherwise."""
        if not self.conditional:
            raise UserError(f"run {self.run_dir} is unconditional ({self.cfg.method.name}): it has no modes")
        if not 0 <= mode < self.k:
            raise UserError(f"mode {mode} does not exist: this run has modes 0..{self.k - 1}")
        if mode not in self.live_modes:
            raise UserError(f"mode {mode} is dead (π = 0); live modes: {_ranges(self.live_modes)}")
        return mode

    @torch.no_grad()
    def generate(self, n: int | None = None, mode: int | None = None, seeds: list[int] | None = None,
                 weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images for `seeds` (default 0..n-1): (images (n, C, H, W) in [-1, 1] on the CPU, modes (n,)).

        mode: None draws each image's mode from π (with its seed); an int fixes it. weights (n, k)
        gives each image a convex combination of modes instead (interpolation)."""
        seeds = list(range(n)) if seeds is None else list(seeds)
        if not seeds:
            raise UserError("nothing to generate: give n >= 1 or some seeds")
        z = torch.stack([torch.randn(self.cfg.model.z_dim, generator=torch.Generator().manual_seed(s))
                         for s in seeds])
        if mode is not None:
            y = torch.full((len(seeds),), self.check_mode(mode), dtype=torch.long)
        elif self.conditional:
            pi = self.pi.float()
            y = torch.stack([torch.multinomial(pi, 1, generator=torch.Generator().manual_seed(s))[0]
                             for s in seeds])
        else:
            y = torch.zeros(len(seeds), dtype=torch.long)
        cond = y if weights is None else weights.to(torch.float32)
        with eval_mode(self.G) as g:
            x = g(z.to(self.device), cond.to(self.device)).cpu()
        return x, y

    def interpolate(self, modes: list[int], steps: int = 8, seed: int = 0, rows: int = 4) -> torch.Tensor:
        """Convex combinations of mode codes with the same noise.

        2 modes: (rows, steps, C, H, W), row r uses seed + r, columns go from mode A to mode B.
        4 modes: (steps, steps, C, H, W) bilinear sheet, corners A (top left), B (top right),
        C (bottom left), D (bottom right)."""
        if len(modes) not in (2, 4):
            raise UserError(f"interpolate needs 2 or 4 modes, got {len(modes)}")
        if steps < 2:
            raise UserError(f"interpolate needs steps >= 2, got {steps}")
        modes = [self.check_mode(m) for m in modes]
        eye = torch.eye(self.k)[modes]  # (len(modes), k)
        t = torch.linspace(0, 1, steps)
        if len(modes) == 2:
            w = ((1 - t)[:, None] * eye[0] + t[:, None] * eye[1]).repeat(rows, 1)  # (rows * steps, k)
            seeds = [seed + r for r in range(rows) for _ in range(steps)]
            shape = (rows, steps)
        else:
            u, v = t[None, :, None], t[:, None, None]  # columns: u, rows: v
            w = ((1 - u) * (1 - v) * eye[0] + u * (1 - v) * eye[1] + (1 - u) * v * eye[2] + u * v * eye[3])
            w = w.reshape(steps * steps, self.k)
            seeds = [seed] * (steps * steps)
            shape = (steps, steps)
        x, _ = self.generate(seeds=seeds, weights=w)
        return x.view(*shape, *x.shape[1:])

    @property
    def trainer(self):
        """The run's full training state, data included (built on first use: it loads the data)."""
        if self._trainer is None:
            from selfcond.train.loop import Trainer

            self._trainer = Trainer(self.cfg, self.run_dir)
            self._trainer.load_state_dict(self.state)
        return self._trainer

    @torch.no_grad()
    def _assign(self, x: torch.Tensor, chunk: int = 5000):
        p = self.trainer.partition
        parts = [p.assign(x[i:i + chunk].to(self.trainer.device)) for i in range(0, x.shape[0], chunk)]
        prob = None if parts[0].probability is None else torch.cat([a.probability for a in parts]).cpu()
        return torch.cat([a.modes for a in parts]).cpu(), torch.cat([a.fit for a in parts]).cpu(), prob

    def reference_fit(self) -> torch.Tensor:
        """The fit of the images the run trained on (2D data: 10,000 fresh samples): (N,) float64."""
        if self._reference is None:
            from selfcond.data.base import IndexedDataset

            t = self.trainer
            if isinstance(t.dataset, IndexedDataset):
                x = torch.cat([t.dataset.images(torch.arange(i, min(i + 5000, len(t.dataset))), "cpu")
                               for i in range(0, len(t.dataset), 5000)])
            else:
                x = t.dataset.sample(10000, t.eval_generator(5), t.device)[0]
            self._reference = self._assign(x)[1]
        return self._reference

    def assign(self, x: torch.Tensor, quantile: float = OUTLIER_QUANTILE, threshold: float | None = None) -> Assigned:
        """The modes of samples x (n, *shape) (images in [-1, 1]) by what the run learnt: MIC-GANs'
        most probable mode of Q's embedding, Self-Conditioned GAN's nearest centre in D's features.
        An image is an outlier when its fit is below `threshold`, by default the `quantile` of the
        fits of the images the run trained on (so 1% of those are outliers themselves)."""
        if not self.conditional:
            raise UserError(f"run {self.run_dir} is unconditional ({self.cfg.method.name}): it has no modes")
        if tuple(x.shape[1:]) != tuple(self.state["data_shape"]):
            raise UserError(f"images of shape {tuple(x.shape[1:])} given; this run's are "
                            f"{tuple(self.state['data_shape'])}")
        modes, fit, prob = self._assign(x)
        if threshold is None:
            if not 0 <= quantile < 1:
                raise UserError(f"the outlier quantile must be in [0, 1), got {quantile}")
            threshold = float(torch.quantile(self.reference_fit(), quantile)) if quantile > 0 else -float("inf")
        return Assigned(modes, fit, prob, fit < threshold, float(threshold))

    def evaluate(self, metrics: list[str] | None = None, n: int | None = None, record: bool = True,
                 progress: bool = False) -> dict:
        """Metrics by name (see selfcond.metrics); appended to the run's metrics.jsonl when `record`."""
        values = self.trainer.evaluate(n, metrics, progress=progress)
        result = {"step": self.step, "source": "evaluate", **values}
        if record and self.run_dir is not None:
            append_jsonl(self.run_dir / "metrics.jsonl", result)
        return result


def load(run: str | Path, device: str = "auto", checkpoint_file: str | Path | None = None) -> Model:
    """A run directory (its latest checkpoint, or `checkpoint_file`), or a checkpoint file,
    restored for sampling and evaluation."""
    run_dir = Path(run)
    if not run_dir.exists():
        raise UserError(f"run not found: {run}")
    state, cfg = checkpoint.load(checkpoint_file or run_dir, {"train.device": device})
    return Model(state, cfg, run_dir.parent if run_dir.is_file() else run_dir, resolve_device(device))


def _ranges(values: list[int]) -> str:
    return ",".join(map(str, values)) if len(values) <= 30 else f"{len(values)} modes"

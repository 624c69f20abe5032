"""The Python API of a trained run: the verbs of the command line, as methods.

    >>> m = selfcond.load("runs/00003-digits-scgan-k10")        # doctest: +SKIP
    >>> x = m.generate(16, mode=3)          # (16, C, H, W) in [-1, 1]
    >>> m.evaluate(["purity", "fid_cls"])   # {"purity": ..., "fid_cls": ...}

Per-seed generation draws z (and, with no mode given, the mode from π) from a CPU generator seeded
with the seed alone, so image `seed0007.png` is the same on any device and in any batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from selfcond import config as cfgmod
from selfcond import nets
from selfcond.errors import UserError
from selfcond.train import io


def find_run(run: str | Path, out: str | Path = "runs") -> Path:
    """A run directory; 'latest' is the highest-numbered run under `out` that has a checkpoint."""
    if str(run) != "latest":
        return Path(run)
    root = Path(out)
    runs = sorted(p for p in root.iterdir() if io.RUN_RE.match(p.name) and (p / "latest").is_file()) \
        if root.is_dir() else []
    if not runs:
        raise UserError(f"no run with a checkpoint under {root}/ to resume")
    return runs[-1]


class Model:
    """A trained run: its trainer (nets, partition, data) restored from a checkpoint."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.cfg = trainer.cfg
        self.run_dir = trainer.run_dir

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def conditional(self) -> bool:
        return self.trainer.partition.conditional

    @property
    def pi(self) -> torch.Tensor:
        """(k,) mode weights π (float64)."""
        return self.trainer.partition.pi.cpu()

    @property
    def live_modes(self) -> list[int]:
        return torch.nonzero(self.trainer.partition.alive).flatten().tolist() if self.conditional else []

    def check_mode(self, mode: int) -> int:
        """`mode` if G can generate it; a UserError naming the live modes otherwise."""
        if not self.conditional:
            raise UserError(f"run {self.run_dir} is unconditional ({self.cfg.method.name}): it has no modes")
        k = self.trainer.partition.k
        if not 0 <= mode < k:
            raise UserError(f"mode {mode} does not exist: this run has modes 0..{k - 1}")
        if mode not in self.live_modes:
            raise UserError(f"mode {mode} is dead (π = 0); live modes: {_ranges(self.live_modes)}")
        return mode

    @torch.no_grad()
    def generate(self, n: int | None = None, mode: int | None = None, seeds: list[int] | None = None,
                 weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images for `seeds` (default 0..n-1): (images (n, C, H, W) in [-1, 1] on the CPU, modes (n,)).

        mode: None draws each image's mode from π (with its seed); an int fixes it. weights (n, k)
        gives each image a convex combination of modes instead (interpolation)."""
        t = self.trainer
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
        with nets.eval_mode(t.g_eval) as g:  # G's moving average, as sampling in training uses
            x = g(z.to(t.device), cond.to(t.device)).cpu()
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
        k = self.trainer.partition.k
        eye = torch.eye(k)[modes]  # (len(modes), k)
        t = torch.linspace(0, 1, steps)
        if len(modes) == 2:
            w = (1 - t)[:, None] * eye[0] + t[:, None] * eye[1]  # (steps, k)
            w = w.repeat(rows, 1)
            seeds = [seed + r for r in range(rows) for _ in range(steps)]
            shape = (rows, steps)
        else:
            u, v = t[None, :, None], t[:, None, None]  # columns: u, rows: v
            w = ((1 - u) * (1 - v) * eye[0] + u * (1 - v) * eye[1] + (1 - u) * v * eye[2] + u * v * eye[3])
            w = w.reshape(steps * steps, k)
            seeds = [seed] * (steps * steps)
            shape = (steps, steps)
        x, _ = self.generate(seeds=seeds, weights=w)
        return x.view(*shape, *x.shape[1:])

    def evaluate(self, metrics: list[str] | None = None, n: int | None = None, record: bool = True,
                 progress: bool = False) -> dict:
        """Metrics by name (see selfcond.metrics); appended to the run's metrics.jsonl when `record`."""
        values = self.trainer.evaluate(n, metrics, progress=progress)
        result = {"step": self.step, "source": "evaluate", **values}
        if record and self.run_dir is not None:
            io.append_jsonl(self.run_dir / "metrics.jsonl", result)
        return result


def load(run: str | Path, device: str = "auto", checkpoint: str | Path | None = None) -> Model:
    """A run directory (its latest checkpoint, or `checkpoint`) restored for sampling and evaluation."""
    from selfcond.train.loop import Trainer

    run_dir = Path(run)
    state = io.load_checkpoint(checkpoint or run_dir)
    if run_dir.is_file():  # a checkpoint file was given as the run
        run_dir = run_dir.parent
    cfg = cfgmod.resolve(cfgmod.merge(state["config"], {"train": {"device": device}}))
    trainer = Trainer(cfg, run_dir)
    trainer.load_state_dict(state)
    return Model(trainer)


def _ranges(values: list[int]) -> str:
    return ",".join(map(str, values)) if len(values) <= 30 else f"{len(values)} modes"


def write_json(path: str | Path, record: dict) -> None:
    io.atomic_write(path, json.dumps(record, indent=1) + "\n")

"""The training loop: one loop for every method; the partition is what differs.

config -> dataset -> nets -> partition -> this loop -> run directory. The loop draws a real batch,
asks the partition for its modes, draws fake conditions from π, takes one D step and one G step with
the non-saturating loss, keeps G's moving average, and refreshes the partition when it is due. All
randomness comes from one seed: the global torch RNG initialises the nets, `self.generator` (on the
training device) draws data, noise and conditions; evaluation uses generators of its own. Snapshots,
checkpoints, guards and several ranks are their own modules (snapshot, checkpoint, guards, dist).
"""

from __future__ import annotations

import copy
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from selfcond import data as datasets
from selfcond.config import Config
from selfcond.data.base import IndexedDataset
from selfcond.errors import Interrupted, TrainingDiverged, UserError
from selfcond.nets.base import FAMILIES, eval_mode
from selfcond.partition.base import METHODS, PartitionContext
from selfcond.train import checkpoint, dist, snapshot
from selfcond.train.augment import augment
from selfcond.train.guards import LossWatch, StopSignals, check_batch_fits, check_weights, out_of_memory
from selfcond.train.losses import d_loss, g_loss
from selfcond.train.rundir import RunLog

MOVED = 1 << 40  # streams of a run moved between devices: never one of the evaluation offsets
RANKS = 1 << 41  # each rank's own stream (several processes): RANKS + rank, reseeded RANKS + world * step + rank


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
    return torch.device(name)


def stream_seed(seed: int, stream: int) -> int:
    """The seed of one of a run's side streams: evaluation (streams 1-4), or the training stream
    of a run moved to another kind of device (MOVED + step). Distinct streams, distinct seeds."""
    return seed * 1_000_003 + stream


class Trainer:
    """The nets, optimisers, partition and RNG of one run, and the loop that trains them.

    >>> t = Trainer(resolve(overrides={"data.name": "grid", "train.steps": 10}))  # doctest: +SKIP
    >>> t.train(); t.evaluate()                                                      # doctest: +SKIP
    """

    def __init__(self, cfg: Config, run_dir: str | Path | None = None):
        self.cfg = cfg
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.world, self.device, self.local_batch = dist.place(resolve_device(t.device), t.batch)
        if self.device.type == "cuda":  # CPU kernels are deterministic already
            torch.backends.cudnn.deterministic = t.deterministic
            torch.backends.cudnn.benchmark = not t.deterministic
        torch.manual_seed(t.seed)
        # The shared stream: the partition's and, in one process, everything's. With several ranks
        # each draws its batches, z and augmentation from its own (rank_gen); refreshes stay shared.
        self.generator = torch.Generator(self.device).manual_seed(t.seed)
        self.rank_gen = self.generator if self.world.size == 1 else torch.Generator(self.device).manual_seed(
            stream_seed(t.seed, RANKS + self.world.rank))
        self._rank_states: tuple[int, list] | None = None  # (step, every rank's stream) for checkpoints
        self.dataset = datasets.load(cfg.data)
        if self.world.size > 1:
            self.dataset.shard(self.world.rank, self.world.size, t.seed)
        check_batch_fits(self.local_batch, self.dataset.shape, self.device)
        if isinstance(self.dataset, IndexedDataset):  # held on the training device
            self.dataset.to(self.device)
        self.partition = METHODS.get(cfg.method.name).partition(cfg.method, self.dataset, self.device)
        self.family = FAMILIES.get(cfg.model.arch)
        nets = self.family.build(cfg.model, self.dataset.shape, self.partition.k, cfg.method.d_needs())
        fmt = torch.channels_last if t.channels_last and len(self.dataset.shape) == 3 else torch.contiguous_format
        self.G, self.D = (dist.sync_batchnorm(m, t.sync_bn).to(self.device, memory_format=fmt) for m in nets)
        # The fused Adam kernel: the 2D nets spend much of a CPU step in the optimiser.
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr, betas=tuple(t.betas), fused=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr, betas=tuple(t.betas), fused=True)
        # With train.ema > 0, G's exponential moving average samples, snapshots and is scored;
        # training uses G (docs/RESULTS.md, 2D mixtures).
        self.G_ema = None if t.ema == 0 else copy.deepcopy(self.G).eval().requires_grad_(False)
        if self.G_ema is not None:  # loading a state copies into these same tensors
            self._ema_pairs = ([list(n.parameters()) for n in (self.G_ema, self.G)],
                               [list(n.buffers()) for n in (self.G_ema, self.G)])
        self.context = PartitionContext(
            dataset=self.dataset, device=self.device, generator=self.generator, batch=t.batch, seed=t.seed,
            copy_d=self._copy_d, fake=self._fake,
            make_encoder=lambda dim: self.family.encoder(cfg.model, self.dataset.shape, dim).to(self.device))
        self.partition.setup(self.context)
        self.step = 0
        self.last_refresh = 0  # step of the partition's last refresh (0: its start)
        self.started = False
        self.seconds = 0.0  # training time so far, across resumes
        self.last_metrics: dict | None = None  # of the last snapshot
        self.run_dir: Path | None = None
        self.new_dir = False  # the run directory was created for this trainer (start_run)
        self.log: RunLog | None = None
        self.modes = snapshot.ModesRecord(self)
        if run_dir is not None:
            self.attach(run_dir)

    def attach(self, run_dir: str | Path) -> None:
        """Write the run's files (logs, snapshots, checkpoints) into `run_dir` from now on."""
        self.run_dir = Path(run_dir)
        self.log = RunLog(self.run_dir) if self.world.main else None  # rank 0 alone writes

    # --- what partitions and metrics see ----------------------------------------------------------

    def _copy_d(self, into: torch.nn.Module | None) -> torch.nn.Module:
        if into is None:
            return copy.deepcopy(self.D).eval().requires_grad_(False)
        into.load_state_dict(self.D.state_dict())
        return into

    @torch.no_grad()
    def _fake(self, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(y.shape[0], self.cfg.model.z_dim, generator=generator, device=self.device)
        with eval_mode(self.g_eval) as g:
            return g(z, y)

    @property
    def g_eval(self) -> torch.nn.Module:
        """The generator that samples: G's moving average when train.ema > 0, else G."""
        return self.G if self.G_ema is None else self.G_ema

    # --- one step ---------------------------------------------------------------------------------

    def _cond(self, y: torch.Tensor | None) -> torch.Tensor | None:
        return y if self.partition.conditional else None

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        """D's view of a batch: DiffAugment when train.augment names a policy."""
        t = self.cfg.train
        return augment(x, t.augment, self.rank_gen) if t.augment else x

    def train_step(self) -> dict:
        """One D step and one G step on a fresh batch; returns the losses (on the device)."""
        t, gen = self.cfg.train, self.rank_gen
        b = self.local_batch
        batch = self.dataset.batch(b, gen, self.device)
        y_real = self.partition.labels(batch)
        y_fake = self.partition.sample(b, gen)
        z = torch.randn(b, self.cfg.model.z_dim, generator=gen, device=self.device)
        with self._autocast():
            x_fake = self.G(z, y_fake)

        # R1: r1 * E||grad_x D(x)||^2 on real images, as the MIC-GANs code (reg_param 10); lazily
        # (every r1_every steps, weighted r1_every times) as StyleGAN2.
        r1 = t.r1 if t.r1 and self.step % t.r1_every == 0 else 0.0
        x_real = self._memory(batch.x)
        x_real = x_real.requires_grad_(True) if r1 else x_real
        with self._autocast():
            d_real = self.D(self._aug(x_real), self._cond(y_real)).float()
            loss_d = d_loss(d_real, self.D(self._aug(x_fake.detach()), self._cond(y_fake)).float())
        if r1:
            grad, = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
            loss_d = loss_d + r1 * t.r1_every * grad.float().pow(2).flatten(1).sum(1).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        dist.average_grads(self.D)
        self.opt_d.step()

        # G step on the same fakes: G has not changed since they were drawn. D's weights need no
        # gradient here, which saves their backward pass.
        self.D.requires_grad_(False)
        with self._autocast():
            loss_g = g_loss(self.D(self._aug(x_fake), self._cond(y_fake)).float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        dist.average_grads(self.G)
        self.opt_g.step()
        self.D.requires_grad_(True)
        dist.broadcast_buffers(self.G, self.D)
        if self.G_ema is not None:
            self._update_ema()

        self.step += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    def _autocast(self):
        """bf16 autocast of the forward passes when train.amp (a no-op context otherwise)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.amp)

    def _memory(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.train.channels_last and x.dim() == 4 else x

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Ramp-up: the average spans about the last ninth of the steps since the partition last
        # changed (up to 1 / (1 - ema)). It restarts at each refresh because a refresh re-labels
        # the data and G moves to the new labels: an average across that change lands between
        # modes (2D ring, docs/RESULTS.md). BatchNorm statistics are G's own.
        s = self.step - self.last_refresh
        beta = min(self.cfg.train.ema, (1 + s) / (10 + s))
        (avg, live), (avg_buf, live_buf) = self._ema_pairs
        torch._foreach_lerp_(avg, live, 1.0 - beta)
        if avg_buf:  # a G without BatchNorm has no buffers
            torch._foreach_copy_(avg_buf, live_buf)

    # --- the loop ---------------------------------------------------------------------------------

    def start(self) -> bool:
        """The partition's first clustering (before any step), once: True if it ran now. `train`
        calls it; so can callers that drive `train_step` themselves."""
        if self.started:
            return False
        self.partition.start(self.context)
        self.started = True
        return True

    def event(self, record: dict) -> None:
        if self.log is not None:
            self.log.event(self.step, record)

    def train(self, progress: bool = True) -> None:
        """Train up to cfg.train.steps, logging, refreshing and snapshotting on schedule; on a
        NaN/inf, roll back to the last checkpoint with half the learning rates, up to
        train.nan_retry times."""
        began = time.perf_counter()
        if self.start():  # the first clustering's wall time, as each refresh's below
            self.event({"event": "start", **self.partition.summary(),
                        "seconds": round(time.perf_counter() - began, 3)})
        retries = self.cfg.train.nan_retry
        with StopSignals() as stop:
            while True:
                try:
                    self._loop(progress, stop)
                    break
                except (RuntimeError, MemoryError) as e:
                    if dist.lost_peer(e):
                        raise dist.lost_peer_error(e, self.step, self.run_dir) from None
                    if not out_of_memory(e) and not isinstance(e, MemoryError):
                        raise
                    self._discard_if_unsaved()
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise UserError(f"train.batch ({self.cfg.train.batch}) does not fit in {self.device.type} "
                                    f"memory at step {self.step} ({first[:120]}): lower --batch") from None
                except TrainingDiverged as e:
                    latest = self.run_dir / "latest" if self.run_dir is not None else None
                    if latest is None or not latest.is_file():
                        raise TrainingDiverged(f"{e}; no checkpoint yet: lower train.lr", e.step) from None
                    if retries <= 0:
                        raise TrainingDiverged(f"{e}; the last good checkpoint is kept: "
                                               f"{self.run_dir / latest.read_text().strip()} "
                                               "(lower train.lr, or pass --nan-retry N)", e.step) from None
                    retries -= 1
                    self._rollback(str(e), e.step)
        if stop:
            where = ""
            if self.run_dir is not None and self.world.main:
                self.save_checkpoint()
                launch = "torchrun ... -m selfcond" if self.world.size > 1 else "selfcond"
                where = f"; checkpoint saved, continue with: {launch} train --resume {self.run_dir}"
            self.event({"event": "interrupted", "signal": int(stop.received[0])})
            raise Interrupted(f"interrupted at step {self.step}{where}")

    def _discard_if_unsaved(self) -> None:
        """Remove a run directory this process created when it holds no checkpoint yet: a run that
        failed before its first snapshot leaves nothing half-written behind."""
        if self.world.main and self.run_dir is not None and self.new_dir and not any(self.run_dir.glob("checkpoint-*.pt")):
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _rollback(self, why: str, step: int | None) -> None:
        """Back to the last checkpoint with half the learning rates (--nan-retry)."""
        step = self.step if step is None else step
        self.load_state_dict(checkpoint.read(self.run_dir))
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] *= 0.5
        lr = self.opt_g.param_groups[0]["lr"]
        self.event({"event": "nan_rollback", "diverged_at": step, "lr": lr})
        print(f"warning: {why}; rolled back to step {self.step} with lr {lr:g}", file=sys.stderr)

    def check_weights(self) -> None:
        check_weights({"G": self.G, "D": self.D, "G_ema": self.G_ema}, self.step)

    def _loop(self, progress: bool, stop: StopSignals) -> None:
        t = self.cfg.train
        bar = tqdm(total=t.steps, initial=self.step, disable=not progress, file=sys.stderr,
                   desc=self.dataset.name, dynamic_ncols=True, leave=False)
        tick, tick_step = time.perf_counter(), self.step
        sums = {"loss_d": 0.0, "loss_g": 0.0}
        watch = LossWatch(self.device)
        budget = 60 * t.minutes if t.minutes else float("inf")

        def check() -> None:
            try:
                watch.check()
            except TrainingDiverged:
                bar.close()
                raise

        while self.step < t.steps and not stop:
            # A refresh due at step s runs just before step s + 1, so none follows the last step:
            # the final snapshot scores G under the partition it trained with. (`last_refresh` keeps
            # a checkpoint written after a refresh, by older versions, from refreshing twice.)
            if self.step > 0 and self.last_refresh != self.step and self.partition.due(self.step):
                check()
                began = time.perf_counter()
                info = self.partition.refresh(self.context, self.step)
                self.last_refresh = self.step
                self.event({"event": "refresh", **info, "seconds": round(time.perf_counter() - began, 3)})
                self.modes.record(refreshed=True)
            losses = self.train_step()
            watch.add(losses, self.step)
            for key, value in losses.items():
                sums[key] = sums[key] + value
            bar.update(1)
            # train.minutes: the budget ends the run like its last step (a log line and a snapshot).
            over = self.seconds + time.perf_counter() - tick >= budget
            if t.minutes:  # every rank must agree on the last step
                over = dist.any_rank(over, self.device)
            last = self.step == t.steps or over
            if self.step % t.log_every == 0 or last:
                check()
                now = time.perf_counter()
                n = self.step - tick_step
                self.seconds += now - tick
                record = {"step": self.step, **{k: float(v) / n for k, v in sums.items()},
                          "steps_per_s": n / max(now - tick, 1e-9), **self.partition.summary(),
                          "last_refresh": self.last_refresh}
                if self.log is not None:
                    self.log.stats(record)
                bar.set_postfix(d=f"{record['loss_d']:.3f}", g=f"{record['loss_g']:.3f}",
                                modes=record["modes_alive"])
                tick, tick_step, sums = time.perf_counter(), self.step, dict.fromkeys(sums, 0.0)
            if self.run_dir is not None and (self.step % t.snapshot_every == 0 or last):
                check()
                if self.world.size > 1:  # every rank's stream goes into rank 0's checkpoint
                    p = self.partition
                    dist.check_agree(self.step, G=self.G, D=self.D, G_ema=self.G_ema, pi=p.counts, table=p.table)
                    self._rank_states = (self.step, dist.gather_states(self.rank_gen.get_state()))
                pause = time.perf_counter()
                snapshot.take(self)  # every rank evaluates; rank 0 writes
                tick += time.perf_counter() - pause  # snapshots do not count as training time
            if over:
                self.event({"event": "time_budget", "minutes": t.minutes})
                break
        check()
        bar.close()

    # --- sampling and evaluation ------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, y: torch.Tensor | None = None,
               rows: slice | None = None, apply=None) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples from the generator that samples, in eval mode: (x (n, *shape), conditions (n,)),
        conditions from π unless given as `y` (n,). With `rows`, only those rows of x (the same draws:
        dist.gathered shares a sample out). `apply(x)` (a metric's features) replaces x when given."""
        y = (self.partition.sample(n, generator) if y is None else y).to(self.device)
        z = torch.randn(n, self.cfg.model.z_dim, generator=generator, device=self.device)
        zr, yr = (z, y) if rows is None else (z[rows], y[rows])
        with eval_mode(self.g_eval) as g:
            x = torch.cat([g(zr[i:i + g.chunk], yr[i:i + g.chunk]) for i in range(0, zr.shape[0], g.chunk)])
        return (x if apply is None else apply(x)), y

    def eval_generator(self, offset: int = 1) -> torch.Generator:
        """A generator independent of training: evaluation never shifts the training RNG."""
        return torch.Generator(self.device).manual_seed(stream_seed(self.cfg.train.seed, offset))

    def evaluate(self, n: int | None = None, metrics: list[str] | None = None, snapshot: bool = False,
                 progress: bool = False, every_rank: bool = False) -> dict:
        """The metrics named (registry names or keys, see selfcond.metrics), else those that apply to
        the data (only the cheap ones when `snapshot`), on n samples (default train.eval_samples)."""
        from selfcond.metrics import evaluate

        return evaluate(self.eval_context(every_rank), metrics or self.cfg.train.metrics or None,
                        n or self.cfg.train.eval_samples, snapshot, progress)

    def eval_context(self, every_rank: bool = False):
        """What metrics see of this run (selfcond.metrics.EvalContext); `every_rank`: every rank
        evaluates alike, and G's samples are shared out between them (dist.gathered)."""
        from selfcond.metrics import EvalContext

        return EvalContext(data=self.cfg.data, method=self.cfg.method.name, dataset=self.dataset,
                           partition=self.partition, device=self.device, generator=self.eval_generator,
                           sample=dist.gathered(self.sample) if every_rank else self.sample)

    # --- state ------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        return checkpoint.save(self.run_dir, self.state_dict(), self.step, keep=self.cfg.train.keep_checkpoints)

    def state_dict(self) -> dict:
        """Everything needed to continue exactly (checkpoint.py: the layout)."""
        return checkpoint.state_of(self)

    def load_state_dict(self, state: dict) -> None:
        """A checkpoint's state (checked and migrated by checkpoint.load or checkpoint.read)."""
        checkpoint.restore(self, state)

"""The training loop: one loop for every method; the partition is what differs.

config -> dataset -> nets -> partition -> this loop -> run directory. The loop draws a real batch,
asks the partition for its modes, draws fake conditions from π, takes one D step and one G step with
the non-saturating loss, and refreshes the partition when it is due. All randomness comes from one
seed: the global torch RNG initialises the nets, `self.generator` (on the training device) draws
data, noise and conditions; evaluation uses its own generator so it never perturbs training.
"""

from __future__ import annotations

import copy
import json
import re
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from selfcond import data as datasets
from selfcond import nets, partition
from selfcond.config import Config, to_yaml
from selfcond.errors import UserError
from selfcond.metrics.clusters import contingency
from selfcond.train import io
from selfcond.train.losses import d_loss, g_loss
from selfcond.viz.grid import mode_grid_png
from selfcond.viz.scatter import scatter_png

CHECKPOINT_VERSION = 1


class TrainingDiverged(UserError):
    """A loss or weight became NaN/inf (at `step`)."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


class Interrupted(UserError):
    """SIGINT/SIGTERM arrived; the run was checkpointed at a step boundary."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
    return torch.device(name)


class Trainer:
    """Owns the nets, optimisers, partition and RNG of one run.

    >>> t = Trainer(resolve(overrides={"data.name": "grid", "train.steps": 10}))  # doctest: +SKIP
    >>> t.train(); t.evaluate()                                                      # doctest: +SKIP
    """

    def __init__(self, cfg: Config, run_dir: str | Path | None = None):
        self.cfg = cfg
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = resolve_device(t.device)
        if self.device.type == "cuda":  # CPU kernels are deterministic already
            torch.backends.cudnn.deterministic = t.deterministic
            torch.backends.cudnn.benchmark = not t.deterministic
        torch.manual_seed(t.seed)
        self.generator = torch.Generator(self.device).manual_seed(t.seed)
        self.dataset = datasets.load(cfg.data)
        if hasattr(self.dataset, "to"):  # images live on the training device, as uint8
            self.dataset.to(self.device)
        self.partition = partition.make(cfg, self.dataset, self.device)
        self.G, self.D = (m.to(self.device) for m in nets.build(cfg, self.dataset, self.partition.k))
        # The fused Adam kernel is 2-3x faster than the per-tensor loop on CPU, where the 2D nets
        # spend a sixth of each step in the optimiser.
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr, betas=tuple(t.betas), fused=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr, betas=tuple(t.betas), fused=True)
        # With train.ema > 0 (the default), G's exponential moving average samples, snapshots and
        # is scored; training still uses G (docs/RESULTS.md: 2D grid 61% -> 95% high quality).
        self.G_ema = None if t.ema == 0 else copy.deepcopy(self.G).eval().requires_grad_(False)
        if self.G_ema is not None:  # loading a state copies into these same tensors
            self._ema_pairs = ([list(n.parameters()) for n in (self.G_ema, self.G)],
                               [list(n.buffers()) for n in (self.G_ema, self.G)])
        self.partition.bind(self)
        self.step = 0
        self.last_refresh = 0  # step of the partition's last refresh (0: its start)
        self.started = False
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seconds = 0.0  # training time so far, across resumes
        self._modes_step, self._modes_info = -1, None  # the last modes.jsonl record and its step
        self.last_metrics: dict | None = None  # of the last snapshot
        self._tb = None  # TensorBoard writer: None = not tried yet, False = tensorboard missing

    # --- one step ---------------------------------------------------------------------------------

    def _cond(self, y: torch.Tensor | None) -> torch.Tensor | None:
        return y if self.partition.conditional else None

    def train_step(self) -> dict:
        """One D step and one G step on a fresh batch; returns the losses."""
        b, gen = self.cfg.train.batch, self.generator
        batch = self.dataset.batch(b, gen, self.device)
        y_real = self.partition.labels(batch)
        y_fake = self.partition.sample(b, gen)
        z = torch.randn(b, self.cfg.model.z_dim, generator=gen, device=self.device)
        x_fake = self.G(z, y_fake)

        r1 = self.cfg.train.r1
        x_real = batch.x.requires_grad_(True) if r1 else batch.x
        d_real = self.D(x_real, self._cond(y_real))
        loss_d = d_loss(d_real, self.D(x_fake.detach(), self._cond(y_fake)))
        if r1:  # R1: r1 * E||grad_x D(x)||^2 on real images, as the MIC-GANs code (reg_param 10)
            grad, = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
            loss_d = loss_d + r1 * grad.pow(2).flatten(1).sum(1).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # G step on the same fakes: G has not changed since they were drawn. D's weights need no
        # gradient here, which saves their backward pass.
        self.D.requires_grad_(False)
        loss_g = g_loss(self.D(x_fake, self._cond(y_fake)))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            self._update_ema()

        self.step += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    @property
    def g_eval(self) -> torch.nn.Module:
        """The generator that samples: G's moving average when train.ema > 0, else G."""
        return self.G if self.G_ema is None else self.G_ema

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
        torch._foreach_copy_(avg_buf, live_buf)

    # --- the loop ---------------------------------------------------------------------------------

    def start(self) -> bool:
        """The partition's first clustering (before any step), once: True if it ran now. `train`
        calls it; so can callers that drive `train_step` themselves."""
        if self.started:
            return False
        self.partition.start(self)
        self.started = True
        return True

    def train(self, progress: bool = True) -> None:
        """Train up to cfg.train.steps, logging, refreshing and snapshotting on schedule."""
        if self.start():
            self._log_event({"event": "start", **self.partition.summary()})
        # Ctrl-C and SIGTERM only set a flag: the loop stops at the next step boundary and saves a
        # checkpoint there, so the saved state is never that of half a step.
        stop = []
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[sig] = signal.signal(sig, lambda signum, frame: stop.append(signum))
            except ValueError:  # not the main thread: leave signals alone
                pass
        retries = self.cfg.train.nan_retry
        try:
            while True:
                try:
                    self._loop(progress, stop)
                    break
                except TrainingDiverged as e:
                    latest = self.run_dir / "latest" if self.run_dir is not None else None
                    if latest is None or not latest.is_file():
                        raise TrainingDiverged(f"{e}; no checkpoint yet: lower train.lr") from None
                    good = self.run_dir / latest.read_text().strip()
                    if retries <= 0:
                        raise TrainingDiverged(f"{e}; the last good checkpoint is kept: {good} "
                                               "(lower train.lr, or pass --nan-retry N)") from None
                    retries -= 1
                    self._rollback(str(e), e.step)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if stop:
            where = ""
            if self.run_dir is not None:
                io.save_checkpoint(self.run_dir, self.state_dict(), self.step,
                                   keep=self.cfg.train.keep_checkpoints)
                where = f"; checkpoint saved, continue with: selfcond train --resume {self.run_dir}"
            self._log_event({"event": "interrupted", "signal": int(stop[0])})
            raise Interrupted(f"interrupted at step {self.step}{where}")

    def _rollback(self, why: str, step: int | None) -> None:
        """Back to the last checkpoint with half the learning rates (--nan-retry)."""
        step = self.step if step is None else step
        self.load_state_dict(io.load_checkpoint(self.run_dir))
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] *= 0.5
        lr = self.opt_g.param_groups[0]["lr"]
        self._log_event({"event": "nan_rollback", "diverged_at": step, "lr": lr})
        print(f"warning: {why}; rolled back to step {self.step} with lr {lr:g}", file=sys.stderr)

    def _check_weights(self) -> None:
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            if net is None:
                continue
            if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
                raise TrainingDiverged(f"weights of {name} are NaN/inf at step {self.step}", self.step)

    def _loop(self, progress: bool, stop: list) -> None:
        t = self.cfg.train
        bar = tqdm(total=t.steps, initial=self.step, disable=not progress, file=sys.stderr,
                   desc=self.cfg.data.name, dynamic_ncols=True, leave=False)
        tick, tick_step = time.perf_counter(), self.step
        sums = {"loss_d": 0.0, "loss_g": 0.0}
        # Losses are summed and checked on the device: reading them every step would make the CPU
        # wait for the GPU each step. The first non-finite step is kept there and read whenever
        # the CPU looks anyway (log lines), and before anything is refreshed or saved.
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)

        def check() -> None:
            bad = int(first_bad)
            if bad >= 0:
                bar.close()
                raise TrainingDiverged(f"the loss is NaN/inf at step {bad}", bad)

        while self.step < t.steps and not stop:
            # A refresh due at step s runs just before step s + 1, so none follows the last step:
            # the final snapshot scores G under the partition it trained with. (`last_refresh` keeps
            # a checkpoint written after a refresh, by older versions, from refreshing twice.)
            if self.step > 0 and self.last_refresh != self.step and self.partition.due(self.step):
                check()
                info = self.partition.refresh(self, self.step)
                self.last_refresh = self.step
                self._log_event({"event": "refresh", **info})
                self._record_modes(refreshed=True)
            losses = self.train_step()
            finite = torch.stack([v.isfinite() for v in losses.values()]).all()
            first_bad = torch.where(finite | (first_bad >= 0), first_bad, self.step)
            for key, value in losses.items():
                sums[key] = sums[key] + value
            bar.update(1)
            if self.step % t.log_every == 0 or self.step == t.steps:
                check()
                now = time.perf_counter()
                n = self.step - tick_step
                self.seconds += now - tick
                record = {"step": self.step, **{k: float(v) / n for k, v in sums.items()},
                          "steps_per_s": n / max(now - tick, 1e-9), **self.partition.summary(),
                          "last_refresh": self.last_refresh}
                self._log_stats(record)
                bar.set_postfix(d=f"{record['loss_d']:.3f}", g=f"{record['loss_g']:.3f}",
                                modes=record["modes_alive"])
                tick, tick_step, sums = time.perf_counter(), self.step, dict.fromkeys(sums, 0.0)
            if self.run_dir is not None and (self.step % t.snapshot_every == 0 or self.step == t.steps):
                check()
                pause = time.perf_counter()
                self.snapshot()
                tick += time.perf_counter() - pause  # snapshots do not count as training time
        check()
        bar.close()

    # --- sampling and evaluation ------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, y: torch.Tensor | None = None,
               chunk: int = 10000) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples from G's moving average (G when train.ema = 0) in eval mode: (x (n, *shape),
        conditions (n,)). Conditions are drawn from π unless given as `y` (n,)."""
        if y is None:
            y = self.partition.sample(n, generator)
        y = y.to(self.device)
        z = torch.randn(n, self.cfg.model.z_dim, generator=generator, device=self.device)
        with nets.eval_mode(self.g_eval) as g:
            x = torch.cat([g(z[i:i + chunk], y[i:i + chunk]) for i in range(0, n, chunk)])
        return x, y

    def eval_generator(self, offset: int = 1) -> torch.Generator:
        """A generator independent of training: evaluation never shifts the training RNG."""
        return torch.Generator(self.device).manual_seed(_stream_seed(self.cfg.train.seed, offset))

    def evaluate(self, n: int | None = None, metrics: list[str] | None = None, snapshot: bool = False,
                 progress: bool = False) -> dict:
        """The metrics named (registry names or keys, see selfcond.metrics), else those that apply to
        the data (only the cheap ones when `snapshot`), on n samples (default train.eval_samples)."""
        from selfcond.metrics import evaluate

        return evaluate(self, metrics or self.cfg.train.metrics or None, n, snapshot, progress)

    # --- run directory ----------------------------------------------------------------------------

    def _log_stats(self, record: dict) -> None:
        if self.run_dir is None:
            return
        io.append_jsonl(self.run_dir / "stats.jsonl", record)
        if self._tb is None:
            self._tb = _tensorboard(self.run_dir)
        if self._tb:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"train/{key}", value, record["step"])
            self._tb.flush()

    def _log_event(self, record: dict) -> None:
        if self.run_dir is not None:
            line = f"step {self.step}: " + ", ".join(f"{k}={v}" for k, v in record.items())
            with open(self.run_dir / "log.txt", "a") as f:
                f.write(line + "\n")

    def snapshot(self) -> None:
        """Metrics, sample images and a checkpoint, all written atomically. A net with NaN/inf
        weights is never checkpointed: the last good checkpoint stays the latest."""
        self._check_weights()
        metrics = {"step": self.step, **self.evaluate(snapshot=True)}
        self.last_metrics = metrics
        if self._tb:
            for key, value in metrics.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"metrics/{key}", value, self.step)
        io.append_jsonl(self.run_dir / "metrics.jsonl", metrics)
        if getattr(self.dataset, "is_toy", False):
            x, y = self.sample(2500, self.eval_generator(2))
            title = f"{self.cfg.method.name} step {self.step}: " + ", ".join(
                f"{k}={v:.3g}" for k, v in metrics.items() if k != "step")
            png = scatter_png(x.cpu(), y.cpu(), self.dataset.means, title)
            io.atomic_write(self.run_dir / f"fakes_{self.step:08d}.png", png)
        else:
            self._image_snapshot()
        self._record_modes()
        info = self._modes_info if self.partition.conditional and self._modes_info else {}
        png = None
        if "mode_x_label" in info:  # modes_x_labels.png: which true labels each mode holds
            from selfcond.report import mode_label_png

            png = mode_label_png(info)
            if png:
                io.atomic_write(self.run_dir / "modes_x_labels.png", png)
        io.save_checkpoint(self.run_dir, self.state_dict(), self.step, keep=self.cfg.train.keep_checkpoints)
        try:  # the report is a view of the files above: its failure must not stop training
            from selfcond.report import write_report

            write_report(self.run_dir, mode_label=png)  # the heatmap of the newest modes record
        except Exception as e:  # noqa: BLE001 - logged, visible, and the run goes on
            self._log_event({"event": "report_failed", "error": f"{type(e).__name__}: {e}"})
            print(f"warning: report.html not written at step {self.step}: {type(e).__name__}: {e}",
                  file=sys.stderr)

    def _image_snapshot(self, rows: int = 20, cols: int = 10) -> None:
        """fakes_<step>.png: one row per live mode, modes sorted by π (fixed noise across snapshots);
        reals.png: real images of the same modes."""
        pi = self.partition.pi
        order = torch.argsort(pi, descending=True, stable=True)
        order = order[pi[order] > 0][:rows]
        names = [f"{int(m)}: {float(pi[m]):.2f}" for m in order]
        x, _ = self.sample(len(order) * cols, self.eval_generator(2), order.repeat_interleave(cols))
        grid = x.view(len(order), cols, *x.shape[1:]).cpu()
        io.atomic_write(self.run_dir / f"fakes_{self.step:08d}.png", mode_grid_png(grid, names))
        table = getattr(self.partition, "table", None)
        if table is not None:
            reals = torch.full_like(grid, -1.0)  # empty cells stay black
            for r, m in enumerate(order):  # one gather per shown mode, not per image
                idx = torch.nonzero(table == m).flatten()[:cols]
                reals[r, :len(idx)] = self.dataset.images(idx, "cpu")
            io.atomic_write(self.run_dir / "reals.png", mode_grid_png(reals, names))

    def _record_modes(self, refreshed: bool = False) -> dict | None:
        """modes.json: the partition now; modes.jsonl: its history (after every refresh and snapshot).

        A snapshot at step s comes before the refresh due at s, so that step can hold two records:
        the partition G trained with, then the refreshed one."""
        if self.run_dir is None or not self.partition.conditional:
            return None
        if self._modes_step == self.step and not refreshed:
            return None
        info = self.modes_info()
        io.atomic_write(self.run_dir / "modes.json", json.dumps(info) + "\n")
        io.append_jsonl(self.run_dir / "modes.jsonl", info)
        self._modes_step, self._modes_info = self.step, info
        return info

    def modes_info(self) -> dict:
        """π, counts and (with true labels) the mode x label table of the partition now."""
        info = {"step": self.step, "pi": self.partition.pi.tolist(),
                "counts": self.partition.counts.tolist(), "modes_alive": int(self.partition.alive.sum())}
        table = getattr(self.partition, "table", None)
        labels = getattr(self.dataset, "labels", None)
        if table is not None and labels is not None:
            info["mode_x_label"] = contingency(table.cpu(), labels.cpu(), self.partition.k,
                                               self.dataset.num_classes).tolist()
        return info

    # --- state ------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: plain tensors and numbers (weights_only-safe)."""
        rng = {"generator": self.generator.get_state(), "torch": torch.get_rng_state(),
               "device": self.device.type}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"version": CHECKPOINT_VERSION, "config": self.cfg.to_dict(), "step": self.step,
                "last_refresh": self.last_refresh,
                "seconds": self.seconds, "G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": None if self.G_ema is None else self.G_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "partition": self.partition.state_dict(), "rng": rng}

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != CHECKPOINT_VERSION:
            raise UserError(f"checkpoint version {state.get('version')} is not supported "
                            f"(this selfcond reads version {CHECKPOINT_VERSION})")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:  # a run saved without an average starts one from G
            self.G_ema.load_state_dict(state.get("G_ema") or state["G"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.partition.load_state_dict(state["partition"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        # A CPU generator's state does not fit a CUDA one (nor back): a run moved to another kind of
        # device continues with a generator seeded from (seed, step), reproducible but not the
        # stream it would have drawn at home. Older checkpoints (no "device") were CPU or CUDA by size.
        saved = rng.get("device") or ("cpu" if rng["generator"].numel() > 16 else "cuda")
        if saved == self.device.type:
            self.generator.set_state(rng["generator"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        else:
            self.generator.manual_seed(_stream_seed(self.cfg.train.seed, _MOVED + state["step"]))
        self.step, self.seconds, self.started = state["step"], state["seconds"], True
        self.last_refresh = state.get("last_refresh", 0)


_MOVED = 1 << 40  # streams of a run moved between devices: never one of the evaluation offsets


def _stream_seed(seed: int, stream: int) -> int:
    """The seed of one of a run's side streams: evaluation (stream 1-4), or the training stream
    of a run moved to another kind of device (_MOVED + step). Distinct streams, distinct seeds."""
    return seed * 1_000_003 + stream


def _tensorboard(run_dir: Path):
    """A SummaryWriter into the run directory when tensorboard is installed, else False."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        return False
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir))


def start_run(cfg: Config, out: str | Path = "runs") -> Trainer:
    """A trainer writing to a new numbered run directory with the resolved config saved in it."""
    trainer = Trainer(cfg)  # data and nets are checked before anything is written
    name = getattr(trainer.dataset, "name", None) or cfg.data.name  # a folder: its own name, not the path
    desc = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{name}-{cfg.method.name}")
    if cfg.partition in ("kmeans", "random", "crp"):
        desc += f"-k{cfg.method.k}"
    trainer.run_dir = io.new_run_dir(out, desc)
    io.atomic_write(trainer.run_dir / "config.yaml", to_yaml(cfg))
    return trainer

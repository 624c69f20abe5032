"""Nothing lost: NaN rollback, kill -9, half-written checkpoints, TensorBoard events."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from selfcond.config import resolve
from selfcond.errors import TrainingDiverged
from selfcond.train import Trainer, checkpoint, start_run
from selfcond.train.rundir import new_run_dir


def cfg(**over):
    return resolve(overrides={"data.name": "ring", "method.name": "gan", "train.threads": 1,
                              "model.g_width": 32, "model.d_width": 16, "train.snapshot_every": 20,
                              "train.log_every": 10, "train.eval_samples": 2000, "train.steps": 60, **over})


class PoisonedOnce(Trainer):
    """A real run whose G weights turn NaN once, at step 30 (as after an exploding update)."""

    poisoned = False

    def train_step(self):
        out = super().train_step()
        if self.step == 30 and not PoisonedOnce.poisoned:
            PoisonedOnce.poisoned = True
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
        return out


def test_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    PoisonedOnce.poisoned = False
    t = PoisonedOnce(cfg(), new_run_dir(tmp_path, "ring-gan"))
    with pytest.raises(TrainingDiverged, match=r"at step 31.*last good checkpoint is kept: .*checkpoint-00000020\.pt"):
        t.train(progress=False)
    assert (t.run_dir / "latest").read_text().strip() == "checkpoint-00000020.pt"
    state = checkpoint.read(t.run_dir)
    assert all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())


def test_nan_retry_rolls_back_with_half_the_lr_and_finishes(tmp_path):
    PoisonedOnce.poisoned = False
    t = PoisonedOnce(cfg(**{"train.nan_retry": 1}), new_run_dir(tmp_path, "ring-gan"))
    t.train(progress=False)
    assert t.step == 60 and t.opt_g.param_groups[0]["lr"] == pytest.approx(0.5 * t.cfg.train.lr)
    log = (t.run_dir / "log.txt").read_text()
    assert "event=nan_rollback" in log and "diverged_at=31" in log


def test_a_half_written_checkpoint_is_never_loaded(tmp_path):
    t = start_run(cfg(**{"train.steps": 40, "train.keep_checkpoints": 1}), tmp_path)
    t.train(progress=False)
    assert [p.name for p in t.run_dir.glob("checkpoint-*.pt")] == ["checkpoint-00000040.pt"]
    # What a process killed inside atomic_write leaves: a temp file beside the good checkpoint.
    (t.run_dir / ".checkpoint-00000060.pt.tmp999").write_bytes(b"PK\x03\x04 half")
    state = checkpoint.read(t.run_dir)
    assert state["step"] == 40


def test_kill_9_loses_at_most_the_work_since_the_last_snapshot(tmp_path):
    cmd = [sys.executable, "-m", "selfcond", "train", "--data", "ring", "--method", "gan", "--steps", "100000",
           "--snapshot-every", "20", "--out", str(tmp_path), "--threads", "1", "--quiet",
           "--set", "model.g_width=32", "--set", "model.d_width=16", "--set", "train.eval_samples=1000"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Any checkpoint at step >= 40: on a fast GPU, checkpoint 40 is rotated away (keep 3)
        # between two polls.
        def past_40():
            return [c for c in tmp_path.glob("*/checkpoint-*.pt") if int(c.stem.split("-")[1]) >= 40]

        deadline = time.time() + 120
        while time.time() < deadline and not past_40():
            time.sleep(0.2)
        assert past_40(), "no checkpoint written in time"
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    run = next(tmp_path.iterdir())
    state = checkpoint.read(run)  # the latest complete snapshot
    assert state["step"] >= 40 and state["step"] % 20 == 0
    r = subprocess.run([sys.executable, "-m", "selfcond", "train", "--resume", str(run), "--steps",
                        str(state["step"] + 20), "--threads", "1", "--quiet"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["step"] == state["step"] + 20


def test_tensorboard_events_are_written_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t = start_run(cfg(**{"train.steps": 20}), tmp_path)
    t.train(progress=False)
    acc = EventAccumulator(str(t.run_dir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss_d", "train/loss_g", "metrics/modes"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss_d")] == [10, 20]


def test_running_out_of_memory_is_one_line_and_leaves_no_run(tmp_path, monkeypatch):
    """An allocation failure in a step (the CPU allocator's RuntimeError, CUDA's OutOfMemoryError)
    says which batch to lower; a run that has no checkpoint yet leaves no directory behind."""
    from selfcond.errors import UserError

    t = start_run(cfg(), tmp_path)
    monkeypatch.setattr(t, "train_step", lambda: (_ for _ in ()).throw(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")))
    with pytest.raises(UserError, match=r"train.batch \(100\) does not fit in cpu memory at step 0.*lower --batch"):
        t.train(progress=False)
    assert not t.run_dir.exists()
    t2 = start_run(cfg(**{"train.steps": 20}), tmp_path)
    t2.train(progress=False)  # a checkpoint now exists: a later failure keeps the run
    t2.cfg.train.steps = 40
    monkeypatch.setattr(t2, "train_step", lambda: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory")))
    with pytest.raises(UserError, match="does not fit"):
        t2.train(progress=False)
    assert (t2.run_dir / "checkpoint-00000020.pt").is_file()
    other = start_run(cfg(), tmp_path)
    monkeypatch.setattr(other, "train_step", lambda: (_ for _ in ()).throw(RuntimeError("a bug, not memory")))
    with pytest.raises(RuntimeError, match="a bug"):  # other errors are not dressed up as the user's
        other.train(progress=False)

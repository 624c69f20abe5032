"""Training: the loop (loop.py), runs started and resumed (run.py), snapshots, checkpoints, guards."""

from selfcond.train.loop import Trainer
from selfcond.train.run import plan_resume, resume, start_run

__all__ = ["Trainer", "plan_resume", "resume", "start_run"]

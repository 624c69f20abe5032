"""The errors selfcond reports as one line on stderr, never as a traceback: the CLI prints the
message and exits with the error's `exit_code`."""

from __future__ import annotations


class SelfcondError(Exception):
    """Base of the errors the CLI reports in one line."""

    exit_code = 1


class UserError(SelfcondError):
    """A mistake the user can fix: a bad path, config value, mode, checkpoint... (exit code 2)."""

    exit_code = 2


class TrainingDiverged(SelfcondError):
    """A loss or a weight became NaN/inf at `step` (exit code 1)."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


class Interrupted(SelfcondError):
    """SIGINT/SIGTERM arrived; the run was checkpointed at a step boundary (exit code 130)."""

    exit_code = 130

"""The `selfcond` command run in this process (fast: no interpreter and torch start-up per call),
for tests of what a command answers; tests of signals, kills and real start-up use subprocesses."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import warnings
from types import SimpleNamespace


def cli(*args) -> SimpleNamespace:
    """returncode, stdout and stderr of `selfcond ARGS`, as a subprocess would give them."""
    from selfcond.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # what a user's terminal would show
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=shown + err.getvalue())


def cli_process(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """`python -m selfcond ARGS` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "selfcond", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)

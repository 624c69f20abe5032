"""The same flags give the same bytes: fixed-seed CPU runs against the digests that selfcond 0.1
(commit 1ca0c8a) gave before the code was restructured (tests/golden/digests.json).

Bits are only defined for one torch build on one CPU (oneDNN and MKL pick kernels by vendor and
model, so two AVX-512 machines can differ), so digests are kept per machine and the test is skipped,
with the reason, on a machine that has none. To add one, run this file as a script on a commit whose
behaviour is trusted (`python tests/test_golden.py --record`): it trains the runs and resumes the
version-1 fixtures with that commit's code and adds this machine's digests.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
from pathlib import Path

import pytest
import torch

import selfcond
from selfcond.config import resolve
from selfcond.train import checkpoint, plan_resume, resume, start_run
from selfcond.viz.grid import mode_grid_png

DIGESTS = Path(__file__).parent / "golden" / "digests.json"
FIXTURES = Path(__file__).parent / "fixtures" / "runs-v1"
GOLDEN = json.loads(DIGESTS.read_text())
PART_KEYS = ("counts", "table", "z", "cluster_labels", "centers")


def machine() -> str:
    """This torch build and CPU, as the digests are keyed."""
    cpu = platform.processor() or platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text()
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        cpu = f"{fields.get('vendor_id', '?')} {fields.get('model name', cpu)}"
    except OSError:
        pass
    return f"torch {torch.__version__} | {torch.backends.cpu.get_cpu_capability()} | {cpu}"


HERE = GOLDEN["machines"].get(machine())
SAME_MACHINE = HERE is not None
pytestmark = pytest.mark.skipif(not SAME_MACHINE, reason=(
    f"no digests recorded for {machine()} (recorded: {', '.join(GOLDEN['machines'])}); "
    "`python tests/test_golden.py --record` on a trusted commit adds them"))


def digest_tensors(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:20]


def checkpoint_digest(state: dict) -> str:
    """G, D and G's average, and the partition's modes, of a checkpoint."""
    ts = list(state["G"].values()) + list(state["D"].values())
    if state.get("G_ema") is not None:
        ts += list(state["G_ema"].values())
    ts += [state["partition"][k] for k in PART_KEYS if state["partition"].get(k) is not None]
    return digest_tensors(ts)


def generate_digest(run) -> str:
    """`generate --seeds 0-15 --mode all` of a run: the PNG bytes of each live mode's 16 images
    (the samples themselves for 2D runs)."""
    m = selfcond.load(run, device="cpu")
    h = hashlib.sha256()
    points = m.cfg.kind == "points"
    for mode in (m.live_modes if m.conditional else [None]):
        x, _ = m.generate(mode=mode, seeds=list(range(16)))
        h.update(x.numpy().tobytes() if points else mode_grid_png(x[None]))
    return h.hexdigest()[:20]


def train_run(overrides: dict, out: Path) -> Path:
    t = start_run(resolve(overrides={"train.threads": 1, **overrides}), out)
    t.train(progress=False)
    return t.run_dir


@pytest.mark.parametrize("name", sorted(GOLDEN["runs"]))
def test_a_fixed_seed_run_gives_the_recorded_bytes(tmp_path, name):
    spec, want = GOLDEN["runs"][name], HERE["runs"][name]
    run = train_run(spec["overrides"], tmp_path)
    state = checkpoint.read(run)
    assert state["step"] == spec["step"]
    assert checkpoint_digest(state) == want["checkpoint"], name
    assert generate_digest(run) == want["generate"], name


def resume_v1(name: str, tmp: Path) -> tuple[Path, str]:
    """A copy of a version-1 fixture run and its generate digest, then resumed to its resumed_step."""
    run = Path(shutil.copytree(FIXTURES / name, tmp / name))
    before = generate_digest(run)
    resume(plan_resume(run, {"train.steps": GOLDEN["v1_fixtures"][name]["resumed_step"], "train.threads": 1})).train(
        progress=False)
    return run, before


if __name__ == "__main__" and "--record" in sys.argv:
    import subprocess
    import tempfile

    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    entry = {"recorded_at": f"{commit}, {__import__('datetime').date.today()}", "runs": {}, "v1_fixtures": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in GOLDEN["runs"].items():
            run = train_run(spec["overrides"], Path(tmp) / name)
            entry["runs"][name] = {"checkpoint": checkpoint_digest(checkpoint.read(run)), "generate": generate_digest(run)}
            print(name, entry["runs"][name], flush=True)
        for name in GOLDEN["v1_fixtures"]:
            run, before = resume_v1(name, Path(tmp) / "v1")
            entry["v1_fixtures"][name] = {"generate": before, "resumed_checkpoint": checkpoint_digest(checkpoint.read(run))}
            print(name, entry["v1_fixtures"][name], flush=True)
    GOLDEN["machines"][machine()] = entry
    DIGESTS.write_text(json.dumps(GOLDEN, indent=1) + "\n")

"""The same flags give the same bytes: fixed-seed CPU runs against the digests that selfcond 0.1
(commit 1ca0c8a) gave before the code was restructured (tests/golden/digests.json).

Bits are only defined for one torch build on one CPU instruction set, so on another build or CPU
the test is skipped with the reason; there it is re-recorded by running this file as a script
(`python tests/test_golden.py --record`) on a commit whose behaviour is trusted.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

import selfcond
from selfcond.config import resolve
from selfcond.train import checkpoint, start_run
from selfcond.viz.grid import mode_grid_png

DIGESTS = Path(__file__).parent / "golden" / "digests.json"
GOLDEN = json.loads(DIGESTS.read_text())
PART_KEYS = ("counts", "table", "z", "cluster_labels", "centers")
SAME_MACHINE = (GOLDEN["torch"] == torch.__version__
                and GOLDEN["cpu_capability"] == torch.backends.cpu.get_cpu_capability())
pytestmark = pytest.mark.skipif(not SAME_MACHINE, reason=(
    f"digests recorded with torch {GOLDEN['torch']} on {GOLDEN['cpu_capability']}; this is torch "
    f"{torch.__version__} on {torch.backends.cpu.get_cpu_capability()}"))


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
    want = GOLDEN["runs"][name]
    run = train_run(want["overrides"], tmp_path)
    state = checkpoint.read(run)
    assert state["step"] == want["step"]
    assert checkpoint_digest(state) == want["checkpoint"], name
    assert generate_digest(run) == want["generate"], name


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name, rec in GOLDEN["runs"].items():
            run = train_run(rec["overrides"], Path(tmp) / name)
            rec.update(checkpoint=checkpoint_digest(checkpoint.read(run)), generate=generate_digest(run))
            print(name, rec, flush=True)
    GOLDEN.update(torch=torch.__version__, cpu_capability=torch.backends.cpu.get_cpu_capability())
    DIGESTS.write_text(json.dumps(GOLDEN, indent=1) + "\n")

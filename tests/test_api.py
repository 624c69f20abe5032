"""The verbs on a trained run: generate, interpolate, evaluate (API and command line), bad inputs."""

import json

import pytest
import torch

import selfcond
from clirun import cli, cli_process
from selfcond.config import resolve
from selfcond.errors import UserError
from selfcond.train import start_run

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = resolve(overrides={"data.name": "digits", "method.name": "scgan", "method.k": 4,
                             "model.g_width": 8, "model.d_width": 8, "model.z_dim": 16, "model.embed_dim": 8,
                             "train.batch": 16, "train.steps": 10, "train.snapshot_every": 10,
                             "method.recluster_every": 5, "train.threads": 1})
    t = start_run(cfg, tmp_path_factory.mktemp("runs"))
    t.train(progress=False)
    return t.run_dir



def test_load_generate_is_reproducible_per_seed(run):
    m = selfcond.load(run, device="cpu")
    live = m.live_modes
    x, y = m.generate(seeds=[3, 5, 7], mode=live[0])
    assert x.shape == (3, 1, 32, 32) and x.min() >= -1 and x.max() <= 1 and set(y.tolist()) == {live[0]}
    x2, _ = m.generate(seeds=[7], mode=live[0])  # seed 7 alone gives the same image as in a batch
    assert torch.allclose(x[2], x2[0], atol=1e-6)
    _, y_pi = m.generate(n=200)  # modes drawn from π
    assert set(y_pi.tolist()) <= set(live)


def test_dead_and_unknown_modes_are_refused(run):
    m = selfcond.load(run, device="cpu")
    with pytest.raises(UserError, match="does not exist"):
        m.generate(2, mode=4)
    m.counts[live := m.live_modes[-1]] = 0  # kill a mode
    with pytest.raises(UserError, match="is dead"):
        m.generate(2, mode=live)


def test_interpolation_strip_and_sheet(run):
    m = selfcond.load(run, device="cpu")
    a, b = m.live_modes[:2]
    strip = m.interpolate([a, b], steps=5, rows=2)
    assert strip.shape == (2, 5, 1, 32, 32)
    ends, _ = m.generate(seeds=[0, 0], weights=torch.eye(4)[[a, b]])
    assert torch.allclose(strip[0, 0], ends[0], atol=1e-5) and torch.allclose(strip[0, -1], ends[1], atol=1e-5)
    modes = (m.live_modes * 4)[:4]
    assert m.interpolate(modes, steps=3).shape == (3, 3, 1, 32, 32)
    with pytest.raises(UserError, match="2 or 4 modes"):
        m.interpolate(modes[:3])


def test_cli_generate_same_seed_same_png_bytes(run, tmp_path):
    for out, run_cli in (("a", cli_process), ("b", cli)):  # the real command, and in this process
        r = run_cli("generate", run, "--seeds", "0-2", "--out", tmp_path / out, "--device", "cpu")
        assert r.returncode == 0, r.stderr
    a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(a) == 3 and all(str(p).startswith("mode") for p in a)
    for p in a:
        assert (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes()
    r = cli("generate", run, "--mode", "all", "--n", "4", "--grid", "--out", tmp_path / "g")
    assert r.returncode == 0 and r.stdout.strip().endswith(".png")


def test_cli_evaluate_appends_and_prints_one_json_line(run):
    before = (run / "metrics.jsonl").read_text().count("\n")
    r = cli("evaluate", run, "--metrics", "purity,nmi")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["source"] == "evaluate" and 0 < result["purity"] <= 1 and "nmi" in result
    assert (run / "metrics.jsonl").read_text().count("\n") == before + 1


@pytest.mark.parametrize("args, message", [
    (["generate", "no/such/run"], "run not found"),
    (["generate", "RUN", "--mode", "7"], "mode 7 does not exist"),
    (["evaluate", "RUN", "--metrics", "bogus"], "unknown metric 'bogus'"),
    (["evaluate", "RUN", "--metrics", "hq"], "does not apply"),
    (["interpolate", "RUN", "--modes", "1"], "2 or 4 modes"),
    (["train", "--set", "train.nope=1", "--dry-run"], "unknown key 'train.nope'"),
    (["train", "--steps", "-5", "--dry-run"], "train.steps must be >= 0"),
    (["train", "--data", "nosuch", "--dry-run"], "unknown dataset 'nosuch'"),
    (["generate", "CORRUPT"], "corrupt or unreadable"),
])
def test_bad_inputs_give_one_line_and_exit_2(run, tmp_path, args, message):
    corrupt = tmp_path / "corrupt-run"
    corrupt.mkdir()
    (corrupt / "checkpoint-00000010.pt").write_bytes(b"PK\x03\x04 half written")
    (corrupt / "latest").write_text("checkpoint-00000010.pt\n")
    args = [str(run) if a == "RUN" else str(corrupt) if a == "CORRUPT" else a for a in args]
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_generate_needs_only_the_checkpoint(tmp_path, monkeypatch):
    """With the training data moved away, a run still generates and interpolates; evaluating, which
    needs the data, says where it looked."""
    import numpy as np

    from selfcond.data.idx import write_idx

    from selfcond.data import mnist

    monkeypatch.setenv("SELFCOND_CACHE", str(tmp_path / "cache"))  # no cached MNIST to fall back on
    monkeypatch.setitem(mnist.MIRRORS, "mnist", ["http://127.0.0.1:9/"])  # nor a download
    files = tmp_path / "mnist-files"
    files.mkdir()
    rng = np.random.default_rng(0)
    write_idx(files / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (64, 28, 28)))
    write_idx(files / "train-labels-idx1-ubyte.gz", np.arange(64) % 10)
    cfg = resolve(overrides={"data.name": "mnist", "data.data_dir": str(files), "method.k": 3, "train.steps": 4,
                             "model.g_width": 8, "model.d_width": 8, "model.z_dim": 8, "model.embed_dim": 4,
                             "train.batch": 8, "method.cluster_samples": 64, "train.threads": 1})
    t = start_run(cfg, tmp_path / "runs")
    t.train(progress=False)
    files.rename(tmp_path / "elsewhere")
    r = cli("generate", t.run_dir, "--mode", "all", "--n", "2", "--grid", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    a, b = selfcond.load(t.run_dir, device="cpu").live_modes[:2]
    assert cli("interpolate", t.run_dir, "--modes", f"{a},{b}", "--steps", "3").returncode == 0
    r = cli("evaluate", t.run_dir, "--metrics", "purity")
    assert r.returncode == 2 and "of dataset 'mnist'" in r.stderr and len(r.stderr.splitlines()) == 1

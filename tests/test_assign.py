"""Using what a run learnt: assign (modes of new images, outliers), held-out clustering, export."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import selfcond
from clirun import cli
from selfcond.config import resolve
from selfcond.errors import UserError
from selfcond.train import start_run

TINY = {"method.k": 6, "model.g_width": 8, "model.d_width": 8, "model.z_dim": 16, "model.embed_dim": 8,
        "train.batch": 16, "train.snapshot_every": 40, "train.threads": 1, "train.eval_samples": 500}


def train(root, method="scgan", steps=40, **over):
    schedule = {"scgan": {"method.recluster_every": 10},
                "micgan": {"method.init_steps": 20, "method.epoch_steps": 10, "method.q_steps": 10,
                           "method.sample_epochs": 3}}[method]
    t = start_run(resolve(overrides={"method.name": method, "train.steps": steps, **TINY, **schedule, **over}), root)
    t.train(progress=False)
    return t


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {m: train(root, m, steps=60 if m == "micgan" else 40) for m in ("scgan", "micgan")}


@pytest.mark.parametrize("method", ["scgan", "micgan"])
def test_assign_on_the_training_images_agrees_with_the_runs_table(runs, method):
    t = runs[method]
    m = selfcond.load(t.run_dir, device="cpu")
    x = t.dataset.images(torch.arange(len(t.dataset)))
    a = m.assign(x)
    agree = float((a.modes == t.partition.table.cpu()).float().mean())
    assert agree == 1.0, agree  # both are the rule assign applies (MIC-GANs: settled after its last round)
    assert a.outlier.float().mean() == pytest.approx(0.01, abs=0.002)  # the default quantile of the run's own
    if method == "micgan":
        assert ((a.probability > 0) & (a.probability <= 1)).all()
    else:
        assert a.probability is None and (a.fit <= 0).all()  # minus a squared distance
    assert not m.assign(x, threshold=-float("inf")).outlier.any()


def test_assign_command_writes_a_csv_a_sheet_and_a_summary(runs, tmp_path):
    r = cli("assign", runs["scgan"].run_dir, "--grid", "--out", tmp_path / "out" / "modes.csv")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["n"] == 1797 and summary["outliers"] == 18 and 0 < summary["purity"] <= 1
    rows = list(csv.DictReader(open(tmp_path / "out" / "modes.csv")))
    assert len(rows) == 1797 and set(rows[0]) == {"index", "file", "label", "mode", "fit", "probability", "outlier"}
    assert sum(int(row["outlier"]) for row in rows) == 18
    assert (tmp_path / "out" / "modes.png").read_bytes()[:4] == b"\x89PNG"


def test_assign_a_folder_names_each_file(runs, tmp_path):
    for i in range(6):
        (tmp_path / "imgs" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.random.default_rng(i).random((8, 8)) * 255).astype(np.uint8)).save(
            tmp_path / "imgs" / f"c{i % 2}" / f"{i}.png")
    r = cli("assign", runs["scgan"].run_dir, tmp_path / "imgs", "--out", tmp_path / "f.csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert [row["file"] for row in rows] == [f"c{i % 2}/{i}.png" for i in (0, 2, 4, 1, 3, 5)]
    assert {row["label"] for row in rows} == {"0", "1"}  # the sub-folders are the true labels
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "c0" / "rgb.png")  # now an RGB folder
    r = cli("assign", runs["scgan"].run_dir, tmp_path / "imgs")
    assert r.returncode == 2 and "this run's are (1, 32, 32)" in r.stderr


def test_assign_is_refused_where_there_are_no_modes(tmp_path):
    t = start_run(resolve(overrides={"data.name": "ring", "method.name": "gan", "train.steps": 5,
                                     "model.g_width": 16, "model.d_width": 8, "train.threads": 1}), tmp_path)
    t.train(progress=False)
    with pytest.raises(UserError, match="unconditional"):
        selfcond.load(t.run_dir, device="cpu").assign(torch.zeros(3, 2))
    r = cli("assign", t.run_dir)
    assert r.returncode == 2 and "sampled fresh" in r.stderr


def test_a_held_out_share_is_never_trained_on_and_evaluated_beside(tmp_path):
    t = train(tmp_path, "scgan", steps=20, **{"data.holdout": 0.2})
    assert len(t.dataset) == 1797 - 359 and t.partition.table.shape == (1438,)
    m = selfcond.load(t.run_dir, device="cpu")
    out = m.evaluate(["clusters", "heldout"], record=False)
    assert out["n_heldout"] == 359 and 0 < out["purity_heldout"] <= 1 and 0 < out["purity"] <= 1
    from selfcond import data

    held = data.heldout(t.cfg.data)
    seen = {tuple(r) for r in t.dataset.data.flatten(1).tolist()}
    assert not any(tuple(r) in seen for r in held.data.flatten(1)[:50].tolist())  # disjoint images


def test_a_test_split_is_the_held_out_set(tmp_path, monkeypatch):
    from selfcond.data.idx import write_idx

    monkeypatch.setenv("SELFCOND_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "fashion"
    d.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 32)):
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    t = train(tmp_path, "scgan", steps=10, **{"data.name": "fashion-mnist", "data.data_dir": str(d),
                                               "method.cluster_samples": 64})
    out = t.evaluate(metrics=["heldout"])
    assert out["n_heldout"] == 32
    r = cli("assign", t.run_dir, "--split", "test", "--out", tmp_path / "test.csv")
    assert r.returncode == 0 and json.loads(r.stdout)["n"] == 32, r.stderr


def test_an_exported_generator_runs_without_selfcond_and_draws_the_same_images(runs, tmp_path):
    m = selfcond.load(runs["micgan"].run_dir, device="cpu")
    r = cli("export", runs["micgan"].run_dir, tmp_path / "gen.pt")
    assert r.returncode == 0, r.stderr
    seeds = list(range(12))
    x, y = m.generate(seeds=seeds)
    np.save(tmp_path / "want.npy", x.numpy())
    np.save(tmp_path / "modes.npy", y.numpy())
    code = f"""
import sys, importlib.util
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path = [p for p in sys.path if not p.endswith("/src") and "__editable__" not in p]
assert importlib.util.find_spec("selfcond") is None, "selfcond is importable"
import numpy as np, torch
g = torch.jit.load({str(tmp_path / 'gen.pt')!r})
z = torch.stack([torch.randn(g.z_dim, generator=torch.Generator().manual_seed(s)) for s in range(12)])
mode = torch.from_numpy(np.load({str(tmp_path / 'modes.npy')!r}))
x = g(z, mode)
assert torch.equal(x, torch.from_numpy(np.load({str(tmp_path / 'want.npy')!r}))), "images differ"
mixed = g.mix(z, torch.eye(g.k)[mode])
assert torch.allclose(mixed, x, atol=1e-5)
s, m = g.sample(5)
assert s.shape == (5,) + tuple(x.shape[1:]) and (g.pi[m] > 0).all()
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_onnx_export_matches(runs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from selfcond.export import export

    m = selfcond.load(runs["scgan"].run_dir, device="cpu")
    pt, onnx_path = export(m, tmp_path / "g.pt", onnx=True)
    x, y = m.generate(seeds=range(8))
    z = torch.stack([torch.randn(m.cfg.model.z_dim, generator=torch.Generator().manual_seed(s)) for s in range(8)])
    out = ort.InferenceSession(str(onnx_path)).run(None, {"z": z.numpy(), "mode": y.numpy()})[0]
    assert np.abs(out - x.numpy()).max() < 1e-5

"""`datasets prepare`: a folder into a StyleGAN2-ADA-layout zip, bounded, atomic, bad files listed;
the zip trains and loads as the folder does."""

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from selfcond.data import prepare as prep
from selfcond.data.folder import folder_dataset
from selfcond.errors import UserError


def _world(root, n_per_class=3):
    """Two classes of images of several sizes and modes, and one unreadable file."""
    rng = np.random.default_rng(0)
    for c, cls in enumerate(("cat", "dog")):
        d = root / cls
        d.mkdir(parents=True)
        for i in range(n_per_class):
            h, w = 20 + 4 * i, 24
            a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(a).save(d / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def test_prepare_writes_the_stylegan2_ada_layout_and_loads_as_the_folder(tmp_path, monkeypatch):
    src = _world(tmp_path / "src")
    monkeypatch.setattr(prep, "CHUNK", 2)  # several chunks: the bounded path
    rec = prep.prepare(src, tmp_path / "out" / "pets.zip", resolution=16, progress=False)
    assert rec["images"] == 6 and rec["skipped"] == ["dog/broken.png"] and rec["classes"] == ["cat", "dog"]
    with zipfile.ZipFile(tmp_path / "out" / "pets.zip") as z:
        names = sorted(z.namelist())
        meta = json.loads(z.read("dataset.json"))
        first = Image.open(z.open("00000/img00000000.png"))
        assert first.size == (16, 16)
    assert names == ["00000/img%08d.png" % i for i in range(6)] + ["dataset.json"]
    assert meta["labels"] == [["00000/img%08d.png" % i, int(i >= 3)] for i in range(6)]
    assert meta["classes"] == ["cat", "dog"]
    zipped = folder_dataset(tmp_path / "out" / "pets.zip", resolution=16)
    direct = folder_dataset(src, resolution=16)
    assert zipped.name == "pets" and zipped.shape == direct.shape == (3, 16, 16)
    assert torch.equal(zipped.data, direct.data)  # resized once, then read back as it was written
    assert torch.equal(zipped.labels, direct.labels) and zipped.class_names == ["cat", "dog"]
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_a_failure_midway_leaves_no_archive(tmp_path, monkeypatch):
    src = _world(tmp_path / "src")
    calls = []

    def png(a):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return b"x"

    monkeypatch.setattr(prep, "_png", png)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(src, tmp_path / "a.zip", resolution=8, progress=False)
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob(".*tmp"))


def test_prepare_refuses_in_one_line(tmp_path):
    from clirun import cli

    src = _world(tmp_path / "src")
    (tmp_path / "there.zip").write_bytes(b"")
    for args, message in [
        ([str(src), str(tmp_path / "x.tar"), "--resolution", "8"], "must end in .zip"),
        ([str(src), str(tmp_path / "there.zip"), "--resolution", "8"], "exists: remove it"),
        ([str(src), str(tmp_path / "y.zip"), "--resolution", "0"], "between 4 and 4096"),
        ([str(tmp_path / "nowhere"), str(tmp_path / "y.zip"), "--resolution", "8"], "does not exist"),
        ([str(tmp_path / "there.zip"), str(tmp_path / "y.zip"), "--resolution", "8"], "not a zip archive"),
    ]:
        r = cli("datasets", "prepare", *args)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    r = cli("datasets", "prepare", str(src), str(tmp_path / "ok.zip"), "--resolution", "8")
    assert r.returncode == 0 and json.loads(r.stdout.strip().splitlines()[-1])["images"] == 6
    assert "skipped 1 unreadable file(s) of 7" in r.stderr and "dog/broken.png" in r.stderr


def test_a_prepared_zip_trains(tmp_path):
    from selfcond.config import resolve
    from selfcond.train import start_run

    src = _world(tmp_path / "src", n_per_class=8)
    prep.prepare(src, tmp_path / "pets.zip", resolution=28, progress=False)
    cfg = resolve(overrides={"data.name": str(tmp_path / "pets.zip"), "data.resolution": 28, "method.k": 2,
                             "method.cluster_samples": 16, "train.steps": 2, "train.batch": 4, "train.threads": 1,
                             "model.g_width": 4, "model.d_width": 4, "model.z_dim": 8, "train.eval_samples": 16})
    t = start_run(cfg, tmp_path / "runs")
    t.train(progress=False)
    assert t.step == 2 and (t.run_dir / "config.yaml").exists() and t.dataset.shape == (3, 28, 28)


def test_an_unreadable_dataset_json_is_one_line_in_a_folder_and_in_a_zip(tmp_path):
    src = _world(tmp_path / "src")
    (src / "dataset.json").write_bytes(b"\xff\xfe not text")
    with pytest.raises(UserError, match="dataset.json: expected"):
        folder_dataset(src, resolution=8)
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("a/0.png", (src / "cat" / "1.png").read_bytes())
        z.writestr("dataset.json", b"\xff\xfe not text")
    with pytest.raises(UserError, match="dataset.json: expected"):
        folder_dataset(tmp_path / "bad.zip", resolution=8)

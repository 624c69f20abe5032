"""Datasets by name or path, and what `datasets info` / `datasets list` report."""

import pickle

import numpy as np
import pytest
from PIL import Image

from selfcond import data
from selfcond.data import cifar, mnist
from selfcond.data.base import ImageOptions
from selfcond.errors import UserError


def DataConfig(name, **options):
    """The options of dataset `name` (each dataset declares its own class)."""
    return data.spec(name).options(name=name, **options)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any download attempt fails loudly: info and available must never try one."""
    for name in mnist.MIRRORS:
        monkeypatch.setitem(mnist.MIRRORS, name, ["http://127.0.0.1:9/"])
    monkeypatch.setattr(cifar, "MIRRORS", ["http://127.0.0.1:9/"])


def test_names_and_load_by_name(tmp_path, mnist_files):
    assert data.names() == ["cifar10", "digits", "fashion-mnist", "grid", "mnist", "ring", "stacked-mnist"]
    mnist_files(tmp_path, n=12)
    ds = data.load(DataConfig(name="mnist", data_dir=str(tmp_path), resolution=16))
    assert ds.name == "mnist" and ds.shape == (1, 16, 16) and len(ds) == 12
    st = data.load(DataConfig(name="stacked-mnist", data_dir=str(tmp_path), resolution=8, stack_n=40))
    assert st.shape == (3, 8, 8) and len(st) == 40 and st.num_classes == 1000
    assert data.load(DataConfig(name="ring")).num_classes == 8


def test_load_a_directory_by_path(tmp_path):
    for i, c in enumerate(("a", "b")):
        (tmp_path / "shapes" / c).mkdir(parents=True)
        Image.new("RGB", (10, 10), (i, 0, 0)).save(tmp_path / "shapes" / c / "x.png")
    ds = data.load(DataConfig(name=str(tmp_path / "shapes"), resolution=4))
    assert ds.name == "shapes" and ds.shape == (3, 4, 4) and ds.labels.tolist() == [0, 1]
    with pytest.raises(UserError, match="does not exist"):
        data.load(DataConfig(name=str(tmp_path / "typo")))
    with pytest.raises(UserError, match=r"unknown dataset 'cifar100': give one of .*mnist.*or a directory"):
        data.load(ImageOptions(name="cifar100"))


def test_info_and_available_without_files(isolated):
    assert data.available("digits") and data.available("grid")
    for name in ("mnist", "fashion-mnist", "stacked-mnist", "cifar10"):
        assert not data.available(name)
        i = data.info(name)
        assert not i["available"] and i["downloadable"] and i["path"] is None and i["splits"] == {}
        assert i["searched"][-1] == str(isolated.system / ("mnist" if name == "stacked-mnist" else name))
    assert data.info("ring") == {"name": "ring", "kind": "2d", "available": True, "path": None,
                                 "searched": [], "downloadable": False, "splits": {}, "shape": [2],
                                 "classes": 8}
    with pytest.raises(UserError, match="unknown dataset"):
        data.info("nope")


def test_info_reads_headers_and_counts(tmp_path, isolated, mnist_files):
    mnist_files(isolated.system / "fashion-mnist", n=21, splits=("train", "test"))
    i = data.info("fashion-mnist")
    assert i["available"] and i["path"] == str(isolated.system / "fashion-mnist")
    assert i["splits"] == {"train": 21, "test": 21} and i["shape"] == [1, 28, 28] and i["classes"] == 10
    mnist_files(tmp_path / "m", n=13)
    s = data.info("stacked-mnist", tmp_path / "m")
    assert s["available"] and s["digits"] == 13 and s["splits"] == {"train": 60000} and s["classes"] == 1000
    assert data.available("mnist", tmp_path / "m") and not data.available("mnist")
    batches = isolated.cache / "cifar10" / cifar.INNER
    batches.mkdir(parents=True)
    for f in cifar.SPLITS["train"]:
        (batches / f).write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}))
    c = data.info("cifar10")
    assert c["available"] and c["splits"] == {"train": 10} and c["path"] == str(batches)
    (batches / "data_batch_5").write_bytes(b"junk")
    c = data.info("cifar10")
    assert not c["available"] and "data_batch_5 is not a readable CIFAR-10 batch" in c["problem"]
    assert not (isolated.cache / "mnist").exists()  # nothing was downloaded


def test_info_on_a_folder(tmp_path):
    for i in range(3):
        (tmp_path / "f" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (5, 5)).save(tmp_path / "f" / f"c{i % 2}" / f"{i}.png")
    i = data.info(str(tmp_path / "f"))
    assert i["kind"] == "folder" and i["available"] and i["splits"] == {"train": 3} and i["classes"] == 2
    assert data.available(str(tmp_path / "f")) and not data.available(str(tmp_path / "g"))
    assert not data.info(str(tmp_path / "g"))["available"]

"""The IDX reader refuses damaged files with one clear line instead of returning garbage."""

import gzip

import numpy as np
import pytest
import torch

from selfcond.data import mnist
from selfcond.data.idx import idx_shape, read_idx, write_idx
from selfcond.errors import UserError

IMAGES, LABELS = mnist.SPLITS["train"]


def test_roundtrip_raw_and_gzip_and_header_only(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.gz"):
        write_idx(tmp_path / name, a)
        assert np.array_equal(read_idx(tmp_path / name), a) and idx_shape(tmp_path / name) == (2, 3, 4)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"


def _damage(path, how):
    raw = gzip.decompress(path.read_bytes())
    if how == "bad magic":
        path.write_bytes(gzip.compress(b"\x12\x34" + raw[2:]))
    elif how == "not gzip":
        path.write_bytes(b"this is an HTML error page, not a gzip file")
    elif how == "cut gzip":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "short data":
        path.write_bytes(gzip.compress(raw[:-5]))
    elif how == "long data":
        path.write_bytes(gzip.compress(raw + b"extra"))
    elif how == "short header":
        path.write_bytes(gzip.compress(raw[:9]))


@pytest.mark.parametrize("how,message", [
    ("bad magic", "not an IDX file"), ("not gzip", "cannot read .*Not a gzipped file"),
    ("cut gzip", "cannot read .*end-of-stream"), ("short data", r"truncated \(\d+ bytes, expected \d+\)"),
    ("long data", "longer than its header says"), ("short header", "header cut short")])
def test_damaged_file_is_a_user_error(tmp_path, mnist_files, how, message):
    mnist_files(tmp_path, n=12)
    _damage(tmp_path / IMAGES, how)
    with pytest.raises(UserError, match=message) as e:
        mnist.load_idx("mnist", tmp_path, download=False)
    assert "\n" not in str(e.value) and IMAGES in str(e.value) and "delete it" in str(e.value)


def test_images_and_labels_must_agree(tmp_path, mnist_files):
    mnist_files(tmp_path, n=12)
    write_idx(tmp_path / LABELS, np.zeros(11, np.uint8))
    with pytest.raises(UserError, match=r"images \(12, 8, 8\) and labels \(11,\) do not match"):
        mnist.load_idx("mnist", tmp_path, download=False)
    write_idx(tmp_path / LABELS, np.full(12, 10, np.uint8))
    with pytest.raises(UserError, match="labels must be 0..9, found 10"):
        mnist.load_idx("mnist", tmp_path, download=False)
    write_idx(tmp_path / IMAGES, np.zeros((12, 64), np.uint8))  # flat images: wrong rank
    with pytest.raises(UserError, match="do not match"):
        mnist.load_idx("mnist", tmp_path, download=False)


def test_idx_dataset_resizes_and_scales(tmp_path, mnist_files):
    images, labels = mnist_files(tmp_path, n=12)["train"]
    ds = mnist.idx_dataset("fashion-mnist", resolution=16, data_dir=tmp_path, download=False)
    assert ds.name == "fashion-mnist" and ds.shape == (1, 16, 16) and len(ds) == 12
    assert np.array_equal(ds.data[:, 0, 5, 5].numpy(), images[:, 0, 0])  # constant images stay constant
    x = ds.images(torch.arange(12))
    assert x.min() == -1.0 and abs(float(x[11, 0, 0, 0]) - (77 / 127.5 - 1)) < 1e-6


def test_a_test_split_is_only_taken_beside_the_train_split(tmp_path, monkeypatch):
    """MNIST and Fashion-MNIST share file names: a directory of MNIST training files must not be
    paired with a Fashion-MNIST test split found elsewhere."""
    from selfcond.data import files, mnist
    from selfcond.data.idx import write_idx

    monkeypatch.setattr(files, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("SELFCOND_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SELFCOND_DATA", raising=False)
    other = tmp_path / "system" / "fashion-mnist"
    mine = tmp_path / "mine"
    for d, splits in ((other, ("train", "test")), (mine, ("train",))):
        d.mkdir(parents=True)
        for split in splits:
            images, labels = mnist.SPLITS[split]
            write_idx(d / images, np.zeros((5, 28, 28), np.uint8))
            write_idx(d / labels, np.zeros(5, np.uint8))
    assert mnist.split_beside_train("fashion-mnist", mine) is None
    assert mnist.split_beside_train("fashion-mnist") == other

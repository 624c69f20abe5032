"""Downloads against a local HTTP server on 127.0.0.1 serving tiny IDX files."""

import socket

import numpy as np
import pytest

from selfcond.data import files, mnist
from selfcond.errors import UserError

EVERY = [f for pair in mnist.SPLITS.values() for f in pair]


@pytest.fixture
def mirror(http_root, monkeypatch, mnist_files):
    """Tiny MNIST on the server under b/ (a/ is empty: 404); the module tables point there."""
    root, base = http_root
    data = mnist_files(root / "b", n=15, splits=("train", "test"))
    sums = {f: files.sha256_file(root / "b" / f) for f in EVERY}
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [base + "a/", base + "b/"])
    monkeypatch.setitem(mnist.SHA256, "mnist", sums)
    return root, base, data, sums


def test_download_falls_back_to_second_mirror_checks_and_loads(mirror, isolated, capsys):
    root, _, data, sums = mirror
    ds = mnist.idx_dataset("mnist", resolution=8)
    assert len(ds) == 15 and ds.shape == (1, 8, 8) and ds.num_classes == 10
    assert np.array_equal(ds.labels.numpy(), data["train"][1])
    assert np.array_equal(ds.data[:, 0].numpy(), data["train"][0])
    cache = isolated.cache / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(EVERY)  # both splits, no temp files left
    assert all(files.sha256_file(cache / f) == sums[f] for f in EVERY)
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err  # the progress bar, on stderr
    assert mnist.has_split("mnist", split="test")
    for f in EVERY:  # from now on the cache is found: the server is not needed
        (root / "b" / f).unlink()
    assert np.array_equal(mnist.load_idx("mnist", split="test")[1], data["test"][1])


def test_wrong_checksum_is_refused_and_leaves_nothing(mirror, isolated, monkeypatch):
    *_, sums = mirror
    monkeypatch.setitem(mnist.SHA256, "mnist", {**sums, "train-images-idx3-ubyte.gz": "0" * 64})
    with pytest.raises(UserError) as e:
        mnist.load_idx("mnist")
    msg = str(e.value)
    assert "\n" not in msg and "train-images-idx3-ubyte.gz" in msg and "HTTP 404" in msg
    assert "0" * 64 in msg and sums["train-images-idx3-ubyte.gz"] in msg and "--data-dir" in msg
    assert list((isolated.cache / "mnist").iterdir()) == []


def test_unreachable_mirror_is_one_clear_line(monkeypatch, isolated):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [f"http://127.0.0.1:{port}/"])
    with pytest.raises(UserError, match=r"cannot download train-images-idx3-ubyte.gz of dataset 'mnist'.*"
                                        r"Pass --data-dir") as e:
        mnist.load_idx("mnist")
    assert "\n" not in str(e.value)
    assert list((isolated.cache / "mnist").iterdir()) == []


def test_no_download_when_found_locally_or_not_allowed(monkeypatch, mnist_files, isolated):
    monkeypatch.setitem(mnist.MIRRORS, "mnist", ["http://127.0.0.1:9/"])  # would fail if ever used
    with pytest.raises(UserError, match="not found"):
        mnist.load_idx("mnist", download=False)
    mnist_files(isolated.system / "mnist", n=5)
    assert len(mnist.load_idx("mnist")[0]) == 5
    assert not (isolated.cache / "mnist").exists()


def test_partial_cache_fetches_only_missing_files(mirror, isolated, mnist_files):
    mnist_files(isolated.cache / "mnist", n=15)  # train present (not the served bytes), test missing
    before = files.sha256_file(isolated.cache / "mnist" / "train-images-idx3-ubyte.gz")
    assert len(mnist.load_idx("mnist", split="test")[0]) == 15
    assert files.sha256_file(isolated.cache / "mnist" / "train-images-idx3-ubyte.gz") == before

"""CIFAR-10 from tiny batches in the official python-pickle format, written by the test."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from selfcond.data import cifar, files
from selfcond.errors import UserError


def _batch(first: int, n: int = 3, protocol: int = 2) -> bytes:
    """n images; image j of the batch has channel c filled with 10 (first + j) + c, label (first + j) % 10."""
    idx = first + np.arange(n)
    planes = (10 * idx[:, None] + np.arange(3)).astype(np.uint8)  # (n, 3)
    data = np.repeat(planes, 1024, axis=1)  # (n, 3072): R plane, G plane, B plane
    return pickle.dumps({b"batch_label": b"tiny", b"labels": [int(i % 10) for i in idx], b"data": data,
                         b"filenames": [b"x.png"] * n}, protocol=protocol)


def _write(directory, protocol=2):
    d = directory / cifar.INNER
    d.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(cifar.SPLITS["train"] + cifar.SPLITS["test"]):
        (d / f).write_bytes(_batch(3 * i, protocol=protocol))
    return d


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_batches_load_in_order_with_channel_planes(tmp_path, protocol):
    _write(tmp_path, protocol)
    for given in (tmp_path, tmp_path / cifar.INNER):  # the directory itself or its parent
        ds = cifar.cifar10(32, given, download=False)
        assert len(ds) == 15 and ds.shape == (3, 32, 32) and ds.num_classes == 10
        assert ds.class_names[3] == "cat"
        assert torch.equal(ds.labels, torch.arange(15) % 10)
        assert torch.equal(ds.data[:, :, 7, 9], (10 * torch.arange(15)[:, None] + torch.arange(3)).to(torch.uint8))
    test = cifar.cifar10(8, tmp_path, split="test", download=False)
    assert len(test) == 3 and test.shape == (3, 8, 8) and int(test.data[0, 2, 0, 0]) == 152


def test_missing_batches_are_not_found(tmp_path):
    d = _write(tmp_path)
    (d / "data_batch_4").unlink()
    with pytest.raises(UserError, match=r"dataset 'cifar10' not found: looked for data_batch_1 in"):
        cifar.cifar10(32, tmp_path, download=False)


def test_damaged_or_foreign_batches_are_user_errors(tmp_path):
    d = _write(tmp_path)
    f = d / "data_batch_2"
    good = f.read_bytes()
    f.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="data_batch_2 is not a readable CIFAR-10 batch"):
        cifar.cifar10(32, tmp_path, download=False)
    f.write_bytes(pickle.dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}))
    with pytest.raises(UserError, match=r"must be an \(N, 3072\) uint8 array, got \(3, 100\)"):
        cifar.cifar10(32, tmp_path, download=False)
    f.write_bytes(pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 12]}))
    with pytest.raises(UserError, match="must be 3 integers in 0..9"):
        cifar.cifar10(32, tmp_path, download=False)
    f.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UserError, match="b'data' must be"):
        cifar.cifar10(32, tmp_path, download=False)


class _Evil:
    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_a_pickle_that_runs_code_is_refused_not_run(tmp_path):
    d = _write(tmp_path)
    evil = _Evil()
    evil.target = str(tmp_path / "pwned")
    (d / "data_batch_1").write_bytes(pickle.dumps({b"data": evil}))
    with pytest.raises(UserError, match="asks for posix.mkdir, refused"):
        cifar.cifar10(32, tmp_path, download=False)
    assert not (tmp_path / "pwned").exists()


def test_archive_is_downloaded_checked_and_extracted(http_root, monkeypatch, isolated):
    root, base = http_root
    src = _write(root.parent / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname=cifar.INNER)
        info = tarfile.TarInfo("../escape")  # a hostile member: must not be written anywhere
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (root / cifar.ARCHIVE).write_bytes(buf.getvalue())
    monkeypatch.setattr(cifar, "MIRRORS", [base])
    monkeypatch.setattr(cifar, "SHA256", {cifar.ARCHIVE: files.sha256_file(root / cifar.ARCHIVE)})
    ds = cifar.cifar10(32)
    assert len(ds) == 15 and torch.equal(ds.labels, torch.arange(15) % 10)
    cache = isolated.cache / "cifar10"
    assert sorted(p.name for p in cache.iterdir()) == [cifar.INNER]  # archive removed once extracted
    assert len(list((cache / cifar.INNER).iterdir())) == 6
    assert not (isolated.cache / "escape").exists() and not (cache / "escape").exists()

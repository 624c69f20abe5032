"""Stacked MNIST: three digits as RGB channels, triples drawn from a seed and saved in the cache."""

import numpy as np
import torch

from selfcond.data import files
from selfcond.data.mnist import stacked_mnist


def _triples_file():
    (path,) = (files.cache_root() / "stacked-mnist").glob("triples-*-n50-seed3.npy")
    return path


def test_channels_are_digits_and_label_is_their_number(tmp_path, mnist_files):
    images, labels = mnist_files(tmp_path, n=30)["train"]
    ds = stacked_mnist(resolution=8, data_dir=tmp_path, n=50, seed=3)
    assert len(ds) == 50 and ds.shape == (3, 8, 8) and ds.num_classes == 1000 and ds.name == "stacked-mnist"
    src = ds.data[:, :, 4, 4].numpy() // 7  # image i is the constant 7 i: the pixel names the digit used
    assert (ds.data == ds.data[:, :, :1, :1]).all()  # each channel is one whole source image
    a, b, c = (labels[src[:, k]].astype(int) for k in range(3))
    assert np.array_equal(ds.labels.numpy(), 100 * a + 10 * b + c)
    assert np.array_equal(src, np.load(_triples_file()))
    assert len(set(src.ravel())) > 20  # drawn across the whole source


def test_same_seed_same_data_other_seed_differs(tmp_path, mnist_files):
    mnist_files(tmp_path, n=30)
    a = stacked_mnist(8, tmp_path, n=50, seed=3)
    _triples_file().unlink()  # drawn again from the seed, not just read back
    b = stacked_mnist(8, tmp_path, n=50, seed=3)
    c = stacked_mnist(8, tmp_path, n=50, seed=4)
    assert torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)


def test_saved_triples_are_reused_and_a_corrupt_file_is_redrawn(tmp_path, mnist_files):
    mnist_files(tmp_path, n=30)
    first = stacked_mnist(8, tmp_path, n=50, seed=3)
    path = _triples_file()
    np.save(path, np.zeros((50, 3), np.int64))  # a valid file is what evaluation and resume read
    assert (stacked_mnist(8, tmp_path, n=50, seed=3).data[:, :, 0, 0] == 0).all()
    for junk in (b"garbage", np.full((50, 3), 99)):  # unreadable, or indices out of range
        np.save(path, junk) if isinstance(junk, np.ndarray) else path.write_bytes(junk)
        again = stacked_mnist(8, tmp_path, n=50, seed=3)
        assert torch.equal(again.data, first.data) and torch.equal(again.labels, first.labels)
        assert np.array_equal(np.load(path), first.data[:, :, 0, 0].numpy() // 7)  # rewritten

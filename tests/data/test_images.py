import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from selfcond.data.base import IndexedDataset
from selfcond.data.images import ImageDataset, digits, resize_uint8


@pytest.fixture(scope="module")
def ds():
    return digits()


def test_digits_shape_range_and_labels(ds):
    assert len(ds) == 1797 and ds.shape == (1, 32, 32) and ds.num_classes == 10
    assert isinstance(ds, IndexedDataset)
    assert ds.data.dtype == torch.uint8 and ds.data.min() == 0 and ds.data.max() == 255
    assert ds.labels.dtype == torch.int64 and ds.labels.min() == 0 and ds.labels.max() == 9
    assert np.array_equal(torch.bincount(ds.labels).numpy(), np.bincount(load_digits().target))


def test_digits_resolutions():
    for r in (28, 64):
        d = digits(r)
        assert d.shape == (1, r, r) and d.data.max() == 255


def test_images_are_scaled_to_minus_one_one(ds):
    x = ds.images(torch.arange(100), "cpu")
    assert x.dtype == torch.float32 and x.shape == (100, 1, 32, 32)
    assert x.min() == -1.0 and x.max() == 1.0
    torch.testing.assert_close(x, ds.data[:100].float() / 127.5 - 1)


def test_batch_is_reproducible_from_the_generator(ds):
    a = ds.batch(64, torch.Generator().manual_seed(5), "cpu")
    b = ds.batch(64, torch.Generator().manual_seed(5), "cpu")
    c = ds.batch(64, torch.Generator().manual_seed(6), "cpu")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.index, b.index)
    assert not torch.equal(a.index, c.index)
    assert torch.equal(a.y, ds.labels[a.index]) and torch.equal(a.x, ds.images(a.index, "cpu"))
    assert a.x.shape == (64, 1, 32, 32) and a.index.dtype == torch.int64


def test_unlabelled_dataset_and_resize():
    gen = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=gen)
    d = ImageDataset("rand", imgs, None, None).to("cpu")
    assert d.num_classes is None and d.labels is None and d.shape == (3, 16, 16)
    assert d.batch(4, torch.Generator().manual_seed(0), "cpu").y is None
    small = resize_uint8(torch.full((2, 1, 16, 16), 200, dtype=torch.uint8), 8)
    assert small.shape == (2, 1, 8, 8) and small.dtype == torch.uint8 and (small == 200).all()
    with pytest.raises(ValueError):
        ImageDataset("bad", imgs.float(), None, None)

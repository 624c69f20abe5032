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


def sharded_pair(n_images=50, seed=3):
    data = torch.arange(n_images, dtype=torch.uint8).view(-1, 1, 1, 1)
    ranks = [ImageDataset("toy", data.clone(), torch.arange(n_images) % 5) for _ in range(2)]
    for r, ds in enumerate(ranks):
        ds.shard(r, 2, seed)
    return ranks


def items(batch) -> list[int]:
    return batch.index.tolist()


def test_ranks_walk_disjoint_slices_of_every_epoch_and_resume_their_place():
    """Several ranks (torchrun): in-memory images are walked as streamed ones are, each rank its
    slice of the epoch's permutation; an epoch's batches never repeat an image across ranks, the
    next epoch is another permutation, and a checkpointed position continues the same walk."""
    a, b = sharded_pair()
    gen = torch.Generator().manual_seed(0)
    per_epoch = 25 // 6  # 4 batches of 6 per rank, the rest of the slice dropped
    first = [items(ds.batch(6, gen)) for ds in (a, b) for _ in range(per_epoch)]
    seen = [i for batch in first for i in batch]
    assert len(seen) == len(set(seen)) == 2 * per_epoch * 6
    batch = a.batch(6, gen)  # epoch 1
    assert a.epoch == 1 and items(batch) != first[0]
    assert torch.equal(batch.x.flatten(), batch.index.float() / 127.5 - 1)  # each image is its index
    state = a.state_dict()
    after = [items(a.batch(6, gen)) for _ in range(5)]
    c, _ = sharded_pair()
    c.load_state_dict(state)
    assert [items(c.batch(6, gen)) for _ in range(5)] == after
    # saved by another world size: the next epoch starts afresh
    c, _ = sharded_pair()
    c.load_state_dict({**state, "world": 4})
    assert (c.epoch, c.pos) == (state["epoch"] + 1, 0)


def test_one_process_draws_as_before_and_a_batch_beyond_a_slice_is_one_line():
    ds = ImageDataset("toy", torch.zeros(10, 1, 2, 2, dtype=torch.uint8))
    assert ds.state_dict() == {}
    a, _ = sharded_pair(n_images=10)
    from selfcond.errors import UserError

    with pytest.raises(UserError, match="more than the 10 images"):
        a.batch(6, torch.Generator().manual_seed(0))

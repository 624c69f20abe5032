"""Folders and zips read on demand (data.stream): the same pixels as held in memory, batches that walk
a fresh permutation every epoch and resume exactly, workers that read zips safely, bad files."""

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from selfcond.config import resolve
from selfcond.data import folder, load
from selfcond.data.stream import EpochBatches, StreamedImages
from selfcond.train import Trainer, checkpoint, start_run


def write_mixed(root):
    """Nested folders, odd sizes, grey, RGB and RGBA images, and one unreadable file: 9 names, 8 images."""
    rng = np.random.default_rng(0)
    specs = [("a/x1.png", (37, 23), "L"), ("a/deep/x2.png", (64, 50), "RGB"), ("a/x3.png", (16, 16), "RGBA"),
             ("b/y1.jpg", (41, 41), "RGB"), ("b/y2.png", (9, 30), "L"), ("b/deeper/more/y3.png", (33, 17), "RGBA"),
             ("b/y4.bmp", (20, 21), "RGB"), ("b/y5.png", (40, 40), "L")]
    for rel, (w, h), mode in specs:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        planes = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        a = rng.integers(0, 256, (h, w, planes), dtype=np.uint8)
        Image.fromarray(a[..., 0] if planes == 1 else a, mode).save(p)
    (root / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def zip_of(root, out):
    with zipfile.ZipFile(out, "w") as z:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(root).as_posix())
    return out


@pytest.fixture(params=["folder", "zip"])
def mixed(request, tmp_path):
    root = write_mixed(tmp_path / "imgs")
    return zip_of(root, tmp_path / "imgs.zip") if request.param == "zip" else root


def test_streamed_pixels_equal_the_in_memory_ones(mixed, capsys):
    held = folder.folder_dataset(mixed, resolution=12)
    capsys.readouterr()
    streamed = folder.streamed_dataset(mixed, resolution=12, workers=0)
    assert streamed.shape == held.shape == (3, 12, 12)  # grey, RGB and RGBA mixed: RGB
    assert streamed.labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]  # sub-folders a, b (broken.png included)
    assert streamed.class_names == ["a", "b"] and streamed.num_classes == 2
    x = streamed.images(torch.arange(len(streamed)))
    for i, rel in enumerate(streamed.files):
        if rel in held.files:
            assert torch.equal(x[i], held.images(torch.tensor([held.files.index(rel)]))[0]), rel
    bad = streamed.files.index("b/broken.png")
    assert torch.equal(x[bad], x[bad + 1])  # replaced by the next readable image, and named once
    assert capsys.readouterr().err.count("b/broken.png") == 1


def test_epoch_batches_visit_every_image_once_per_epoch_in_a_new_order():
    keys = iter(EpochBatches(10, 3, seed=5))
    epochs = [[next(keys) for _ in range(3)] for _ in range(2)]  # 3 batches of 3 per epoch; 1 dropped
    for e, batches in enumerate(epochs):
        assert [(k[0], k[1]) for k in batches] == [(e, 0), (e, 1), (e, 2)]
        seen = torch.cat([k[2] for k in batches])
        assert len(set(seen.tolist())) == 9
    assert not torch.equal(epochs[0][0][2], epochs[1][0][2])
    later = next(iter(EpochBatches(10, 3, seed=5, epoch=1, pos=2)))
    assert torch.equal(later[2], epochs[1][2][2])


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_resume_from_a_saved_position_and_workers_read_what_one_process_reads(mixed, workers):
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    one = folder.streamed_dataset(mixed, resolution=8, workers=0)
    g = gen()
    ref = [one.batch(3, g) for _ in range(6)]  # two epochs of 9 images (batches of 3)
    ds = folder.streamed_dataset(mixed, resolution=8, workers=workers)
    g = gen()
    first = [ds.batch(3, g) for _ in range(2)]
    state = ds.state_dict()
    again = folder.streamed_dataset(mixed, resolution=8, workers=workers)
    again.load_state_dict(state)
    rest = [again.batch(3, g) for _ in range(4)]
    for a, b in zip(ref, first + rest):
        assert torch.equal(a.x, b.x) and torch.equal(a.index, b.index) and torch.equal(a.y, b.y)
    assert state == {"seed": one.seed, "epoch": 0, "pos": 2, "world": 1}
    bad = one.files.index("b/broken.png")
    assert all(bad not in b.index.tolist() for b in ref)  # its batch slot holds the next image, by index
    ds.close(), again.close()


def test_auto_streams_what_exceeds_the_memory_budget(mixed, capsys):
    cfg = resolve(overrides={"data.name": str(mixed), "data.resolution": 28})
    assert cfg.data.stream == "auto" and not isinstance(load(cfg.data), StreamedImages)
    small = resolve(overrides={"data.name": str(mixed), "data.resolution": 28, "data.memory_gb": 1e-6})
    assert isinstance(load(small.data), StreamedImages)
    assert "read on demand" in capsys.readouterr().err
    off = resolve(overrides={"data.name": str(mixed), "data.resolution": 28, "data.memory_gb": 1e-6,
                             "data.stream": "never"})
    assert not isinstance(load(off.data), StreamedImages)
    held = resolve(overrides={"data.name": str(mixed), "data.resolution": 28, "data.stream": "always",
                              "data.holdout": 0.3})
    assert len(load(held.data)) == 6  # 9 less round(2.7)


def tiny_stream_run(root, **over):
    return resolve(overrides={"data.name": str(root), "data.resolution": 28, "data.stream": "always",
                              "data.workers": 1, "method.name": "scgan", "method.k": 3,
                              "method.recluster_every": 4, "model.g_width": 8, "model.d_width": 8,
                              "model.z_dim": 16, "model.embed_dim": 8, "train.batch": 4,
                              "train.snapshot_every": 6, "train.eval_samples": 64, "train.threads": 1, **over})


def test_a_streamed_run_trains_and_resumes_bit_for_bit(mixed, tmp_path):
    straight = Trainer(tiny_stream_run(mixed, **{"train.steps": 12}))
    straight.train(progress=False)
    assert isinstance(straight.dataset, StreamedImages) and straight.partition.table.shape == (9,)
    first = start_run(tiny_stream_run(mixed, **{"train.steps": 6}), tmp_path)
    first.train(progress=False)
    state = checkpoint.read(first.run_dir)
    assert (state["data"]["epoch"], state["data"]["pos"]) == (2, 2)  # 6 batches: 2 of 4 per epoch of 9
    resumed = Trainer(tiny_stream_run(mixed, **{"train.steps": 12}), first.run_dir)
    resumed.load_state_dict(state)
    resumed.train(progress=False)
    for (name, p), q in zip(straight.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(p, q), name
    assert torch.equal(straight.partition.table, resumed.partition.table)


def test_the_classifier_cache_key_of_a_stream_reads_no_pixels_and_follows_the_files(mixed):
    from selfcond.metrics.classifier import DEFAULT, _digest

    ds = folder.streamed_dataset(mixed, resolution=8, workers=0)
    key = _digest(ds, None, DEFAULT)
    assert key == _digest(folder.streamed_dataset(mixed, resolution=8, workers=0), None, DEFAULT)
    assert key != _digest(ds.subset(torch.arange(8)), None, DEFAULT)

"""A directory of images: crop, resize, channels, labels from sub-folders or dataset.json, bad files."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from selfcond.data import folder
from selfcond.data.folder import folder_dataset
from selfcond.errors import UserError


def _img(path, value, size=(16, 16), mode="RGB"):
    """A constant image; RGB values are (value, value + 1, value + 2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = value if mode == "L" else (value, value + 1, value + 2)
    Image.new(mode, size, fill).save(path)


def test_subfolders_give_sorted_class_ids_and_rgb(tmp_path):
    _img(tmp_path / "dog" / "a.png", 10)
    _img(tmp_path / "cat" / "b.jpg", 100, mode="L")  # grayscale among RGB: repeated to 3 planes
    _img(tmp_path / "cat" / "deep" / "c.PNG", 200)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = folder_dataset(tmp_path, resolution=8)
    assert ds.name == tmp_path.name and ds.shape == (3, 8, 8) and len(ds) == 3
    assert ds.class_names == ["cat", "dog"] and ds.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 1]  # cat/b.jpg, cat/deep/c.PNG, dog/a.png (sorted paths)
    px = ds.data[:, :, 3, 3].tolist()
    assert px[0] == [100, 100, 100] and px[1] == [200, 201, 202] and px[2] == [10, 11, 12]


def test_center_crop_then_resize(tmp_path):
    im = np.zeros((8, 12), np.uint8)
    im[:, 2:10] = 255  # the central 8x8 square is white, the side margins black
    Image.fromarray(im).save(tmp_path / "wide.png")
    im = np.zeros((20, 10), np.uint8)
    im[5:15] = 255
    Image.fromarray(im).save(tmp_path / "tall.png")
    ds = folder_dataset(tmp_path, resolution=8)
    assert ds.shape == (1, 8, 8) and ds.labels is None and ds.num_classes is None  # all gray: 1 channel
    assert (ds.data == 255).all()
    assert torch.equal(ds.images(torch.arange(2)), torch.ones(2, 1, 8, 8))


def test_dataset_json_labels_override_subfolders(tmp_path):
    for i in range(4):
        _img(tmp_path / f"0000{i % 2}" / f"img{i}.png", 20 * i)
    meta = {"labels": [[f"0000{i % 2}/img{i}.png", 3 * i] for i in range(4)]}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    ds = folder_dataset(tmp_path, 4)
    assert ds.labels.tolist() == [0, 6, 3, 9] and ds.num_classes == 10 and ds.class_names is None
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": None}))  # StyleGAN: chunks, no labels
    assert folder_dataset(tmp_path, 4).labels is None
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": meta["labels"][:3]}))
    with pytest.raises(UserError, match="has no label for 1 image"):
        folder_dataset(tmp_path, 4)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(UserError, match="dataset.json: expected"):
        folder_dataset(tmp_path, 4)


def test_top_level_images_or_one_subfolder_mean_no_labels(tmp_path):
    _img(tmp_path / "a" / "x.png", 1)
    _img(tmp_path / "a" / "y.png", 2)
    assert folder_dataset(tmp_path, 4).labels is None
    _img(tmp_path / "b" / "z.png", 3)
    _img(tmp_path / "top.png", 4)
    assert folder_dataset(tmp_path, 4).labels is None


def test_unreadable_images_are_skipped_and_counted(tmp_path, capsys):
    _img(tmp_path / "cat" / "ok.png", 50)
    _img(tmp_path / "dog" / "ok.png", 60)
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "dog" / "empty.jpg").write_bytes(b"")
    ds = folder_dataset(tmp_path, 8)
    assert len(ds) == 2 and ds.labels.tolist() == [0, 1] and ds.data[:, 0, 0, 0].tolist() == [50, 60]
    assert "skipped 2 unreadable image(s) of 4" in capsys.readouterr().err
    for f in ("cat/ok.png", "dog/ok.png"):
        (tmp_path / f).write_bytes(b"garbage")
    with pytest.raises(UserError, match="none of the 4 images under .* is readable"):
        folder_dataset(tmp_path, 8)


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        folder_dataset(tmp_path / "nope", 8)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(UserError, match="no images"):
        folder_dataset(tmp_path, 8)


def test_many_files_decode_in_threads_with_a_bar(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(folder, "BAR_MIN", 10)
    for i in range(30):
        _img(tmp_path / f"{i:02d}.png", i, size=(6, 6))
    ds = folder_dataset(tmp_path, 6, workers=3)
    assert ds.data[:, 0, 0, 0].tolist() == list(range(30))  # order kept despite threads
    assert "decoding" in capsys.readouterr().err


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((4, 4), 65535 // 3, np.uint16)).save(tmp_path / "deep.png")
    ds = folder_dataset(tmp_path, 4)
    assert ds.shape == (1, 4, 4) and (ds.data == 85).all()


def test_a_folder_too_large_to_scan_answers_at_once(tmp_path, monkeypatch):
    """`--data /` (a typo) must answer, not crawl the whole disk."""
    from selfcond.data import folder
    from selfcond.errors import UserError

    for i in range(6):
        (tmp_path / f"f{i}.txt").write_text("x")
    monkeypatch.setattr(folder, "MAX_ENTRIES", 5)
    with pytest.raises(UserError, match="more than 5 files and folders under .*point --data at the directory"):
        folder.image_files(tmp_path)

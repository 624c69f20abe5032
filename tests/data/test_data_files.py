"""Where dataset files are found: data_dir, then $SELFCOND_DATA/<name>, the cache, /usr/share/datasets."""

import pytest

from selfcond.data import files
from selfcond.data.mnist import load_idx
from selfcond.errors import UserError


def test_search_order_first_complete_directory_wins(tmp_path, monkeypatch, isolated, mnist_files):
    dirs = {"arg": tmp_path / "arg", "env": tmp_path / "env" / "mnist", "cache": isolated.cache / "mnist",
            "system": isolated.system / "mnist"}
    for n, d in zip((11, 12, 13, 14), dirs.values()):  # each place holds a different number of images
        mnist_files(d, n=n)
    monkeypatch.setenv("SELFCOND_DATA", str(tmp_path / "env"))
    assert files.search_dirs("mnist", dirs["arg"]) == list(dirs.values())
    sizes = []
    for d in dirs.values():
        sizes.append(len(load_idx("mnist", dirs["arg"], download=False)[0]))
        (d / "train-labels-idx1-ubyte.gz").unlink()  # incomplete: this place no longer counts
    assert sizes == [11, 12, 13, 14]
    with pytest.raises(UserError, match=r"dataset 'mnist' not found: looked for .* in .*arg.*system"):
        load_idx("mnist", dirs["arg"], download=False)


def test_selfcond_cache_moves_the_cache(tmp_path, monkeypatch, mnist_files):
    monkeypatch.setenv("SELFCOND_CACHE", str(tmp_path / "c"))
    assert files.cache_root() == tmp_path / "c"
    mnist_files(tmp_path / "c" / "mnist", n=9)
    assert len(load_idx("mnist", download=False)[1]) == 9
    assert files.search_dirs("mnist")[0] == tmp_path / "c" / "mnist"


def test_inner_directory_is_also_tried(tmp_path):
    (tmp_path / "d" / "inner").mkdir(parents=True)
    (tmp_path / "d" / "inner" / "f").write_bytes(b"x")
    assert files.find("x", ["f"], tmp_path / "d") is None
    assert files.find("x", ["f"], tmp_path / "d", inner="inner") == tmp_path / "d" / "inner"
    assert files.find("x", ["f"], tmp_path / "d" / "inner", inner="inner") == tmp_path / "d" / "inner"

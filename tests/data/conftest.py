"""Every data test runs with its own HOME, no SELFCOND_DATA/SELFCOND_CACHE and a fake
/usr/share/datasets, so nothing on the machine leaks in and nothing is written outside tmp_path."""

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest

from selfcond.data import files
from selfcond.data.idx import write_idx
from selfcond.data.mnist import SPLITS


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    home, system = tmp_path / "home", tmp_path / "system"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SELFCOND_DATA", raising=False)
    monkeypatch.delenv("SELFCOND_CACHE", raising=False)
    monkeypatch.setenv("no_proxy", "*")  # the local test server must never go through a proxy
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setattr(files, "SYSTEM_DIR", system)
    return SimpleNamespace(home=home, system=system, cache=home / ".cache" / "selfcond")


def make_mnist(directory, n=20, size=8, seed=0, splits=("train",)):
    """Tiny IDX gzip files in `directory`; image i of a split is the constant 7*i (so a pixel says
    which image it came from). Returns {split: (images (n, size, size) uint8, labels (n,) uint8)}."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split in splits:
        images = (7 * np.arange(n, dtype=np.uint8))[:, None, None].repeat(size, 1).repeat(size, 2)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(directory / SPLITS[split][0], images)
        write_idx(directory / SPLITS[split][1], labels)
        out[split] = (images, labels)
    return out


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """(directory served, base URL) of an HTTP server on 127.0.0.1, random port, in a thread."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def mnist_files():
    """`make_mnist` as a fixture (test modules do not import conftest)."""
    return make_mnist

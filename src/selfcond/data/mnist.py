"""MNIST, Fashion-MNIST (official IDX gzip files) and Stacked MNIST (three MNIST digits as RGB).

The IDX files are searched for locally (see `files`); when no searched directory has them they are
downloaded from the official mirrors into the cache, checked against the SHA-256 sums below.

Stacked MNIST has 1000 modes: image i stacks MNIST digits (a, b, c) as its R, G, B channels and its
label is 100a + 10b + c. The triples are drawn from `data.stack_seed` and saved in the cache, so
training, resume and evaluation all see the same images.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import torch

from selfcond.atomic import atomic_write
from selfcond.data import files
from selfcond.data.base import DatasetSpec, FileImageOptions, SplitOptions, register
from selfcond.data.idx import idx_shape, read_idx
from selfcond.data.images import ImageDataset, resize_uint8
from selfcond.errors import UserError
from selfcond.options import opt

SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_DATASETS = ("mnist", "fashion-mnist")
# Module-level so that tests (and users with a local mirror) can point them elsewhere.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
    },
}


def locate_split(name: str, data_dir=None, split: str = "train", download: bool = True):
    """The directory holding `split` of `name`: found locally, else (if `download`) fetched into the
    cache. Downloads take every split at once, so the test split is there when the train one is."""
    wanted = list(SPLITS[split])
    root = files.find(name, wanted, data_dir)
    if root is not None:
        return root
    if not download:
        raise files.not_found(name, wanted, data_dir)
    every = [f for pair in SPLITS.values() for f in pair]
    return files.download(name, every, MIRRORS[name], SHA256[name], files.cache_root() / name)


def load_idx(name: str, data_dir=None, split: str = "train",
             download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8) of one split of an IDX dataset."""
    images_file, labels_file = SPLITS[split]
    root = locate_split(name, data_dir, split, download)
    images, labels = read_idx(root / images_file), read_idx(root / labels_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{root}: images {images.shape} and labels {labels.shape} do not match")
    if len(images) == 0:
        raise UserError(f"{root / images_file} holds no images; delete it and fetch it again")
    if labels.size and labels.max() > 9:
        raise UserError(f"{root / labels_file}: labels must be 0..9, found {int(labels.max())}")
    return images, labels


def split_beside_train(name: str, data_dir=None, split: str = "test"):
    """The directory of the train split when `split` lies in the same directory, else None: a test
    split from elsewhere may be another dataset's (MNIST and Fashion-MNIST share file names)."""
    train_dir = files.find(name, list(SPLITS["train"]), data_dir)
    if train_dir is not None and all((train_dir / f).is_file() for f in SPLITS[split]):
        return train_dir
    return None


def has_split(name: str, data_dir=None, split: str = "test") -> bool:
    """Whether `split` is on disk (never downloads)."""
    return files.find(name, list(SPLITS[split]), data_dir) is not None


def idx_dataset(name: str, resolution: int = 28, data_dir=None, split: str = "train",
                download: bool = True) -> ImageDataset:
    """One split as an ImageDataset: (N, 1, resolution, resolution) uint8, 10 classes."""
    images, labels = load_idx(name, data_dir, split, download)
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    return ImageDataset(name, resize_uint8(x, resolution), torch.from_numpy(labels.astype(np.int64)), 10)


def stack_triples(n_source: int, n: int, seed: int) -> np.ndarray:
    """(n, 3) indices into the source digits, drawn uniformly with replacement from `seed`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(n_source, (n, 3), generator=g).numpy()


def stacked_mnist(resolution: int = 32, data_dir=None, n: int = 60000, seed: int = 0,
                  download: bool = True) -> ImageDataset:
    """n RGB images (n, 3, resolution, resolution), each channel an MNIST training digit;
    label = 100 * R digit + 10 * G digit + B digit (1000 classes)."""
    images, labels = load_idx("mnist", data_dir, download=download)
    digest = hashlib.sha256(labels.tobytes() + images[:: max(1, len(images) // 100)].tobytes()).hexdigest()[:12]
    path = files.cache_root() / "stacked-mnist" / f"triples-{digest}-n{n}-seed{seed}.npy"
    triples = None
    if path.is_file():
        try:
            triples = np.load(path)
        except (OSError, ValueError, EOFError):
            triples = None  # unreadable: draw again (the same seed gives the same triples)
        if triples is not None and (triples.shape != (n, 3) or triples.dtype.kind not in "iu"
                                    or n and (triples.min() < 0 or triples.max() >= len(images))):
            triples = None
    if triples is None:
        triples = stack_triples(len(images), n, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, triples)
        atomic_write(path, buf.getvalue())
    digits = resize_uint8(torch.from_numpy(images.copy()).unsqueeze(1), resolution)[:, 0]  # (M, R, R)
    t = torch.from_numpy(triples).long()
    x = digits[t]  # (n, 3, R, R): one gather, no per-image loop
    lab = torch.from_numpy(labels.astype(np.int64))[t]
    y = lab[:, 0] * 100 + lab[:, 1] * 10 + lab[:, 2]
    return ImageDataset("stacked-mnist", x.contiguous(), y, 1000)


# --- registration --------------------------------------------------------------------------------


@dataclass
class StackedOptions(FileImageOptions):
    stack_n: int = opt(60000, min=1, help="number of stacked images")
    stack_seed: int = opt(0, help="seed of the digit triples")


def _splits(source: str, resolution: int, data_dir=None) -> tuple[ImageDataset, ImageDataset | None]:
    """The train split, and the test split when it lies beside it: what classifiers learn from."""
    train = idx_dataset(source, resolution, data_dir)
    beside = split_beside_train(source, data_dir, "test")
    return train, None if beside is None else idx_dataset(source, resolution, beside, "test")


def _idx_info(name: str, stacked: bool = False):
    source = "mnist" if stacked else name

    def info(data_dir=None) -> dict:
        out = {"searched": [str(d) for d in files.search_dirs(source, data_dir)], "downloadable": True,
               "shape": [3 if stacked else 1, 28, 28], "classes": 1000 if stacked else 10, "splits": {}}
        for split, pair in SPLITS.items():
            if (root := files.find(source, list(pair), data_dir)) is not None:
                out["path"] = out.get("path") or str(root)
                out["splits"][split] = idx_shape(root / pair[0])[0]
        if stacked:
            found = out["splits"].get("train")
            out.update(digits=found, splits={"train": StackedOptions().stack_n} if found else {})
        return out

    return info


def _test(name: str, options) -> ImageDataset | None:
    """The test split of the files trained on, when it lies beside them."""
    beside = split_beside_train(name, options.data_dir, "test")
    return None if beside is None else idx_dataset(name, options.resolution, beside, "test")


for _name in IDX_DATASETS:
    register(DatasetSpec(
        _name, "images", SplitOptions,
        load=lambda o, n=_name: idx_dataset(n, o.resolution, o.data_dir, o.split),
        available=lambda data_dir=None, n=_name: has_split(n, data_dir, "train"),
        info=_idx_info(_name), preset={"data": {"resolution": 28}, "method": {"k": 20}},
        evaluation=lambda o, n=_name: _splits(n, o.resolution, o.data_dir),
        test=lambda o, n=_name: _test(n, o)))

# Stacked MNIST as in the papers: 32 px RGB, 1000 true modes, 26,000 samples counted. Re-clustering
# every 25,000 steps, as the paper's config, keeps the clusters of the random D in runs up to that
# length: they split all three digits (docs/RESULTS.md, Stacked MNIST).
register(DatasetSpec(
    "stacked-mnist", "images", StackedOptions,
    load=lambda o: stacked_mnist(o.resolution, o.data_dir, o.stack_n, o.stack_seed),
    available=lambda data_dir=None: has_split("mnist", data_dir, "train"),
    info=_idx_info("stacked-mnist", stacked=True),
    preset={"data": {"resolution": 32}, "method": {"recluster_every": 25000},
            "train": {"eval_samples": 26000}},
    evaluation=lambda o: _splits("mnist", o.resolution, o.data_dir)))

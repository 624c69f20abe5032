"""Evaluation classifiers: a small CNN per labeled dataset, trained by selfcond itself and cached.

They count Stacked MNIST modes (one MNIST digit per channel) and give the features of `fid_cls`.
The cache key hashes the training images, labels and every setting, so a different dataset,
resolution or recipe never reuses a stale classifier. Held-out accuracy is stored with the weights
and printed on training.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from selfcond.atomic import atomic_write
from selfcond.data.files import cache_root
from selfcond.data.images import ImageDataset
from selfcond.errors import UserError

VERSION = 1  # bump when the net or the recipe changes: old cache entries are then ignored


class SmallCNN(nn.Module):
    """images (n, C, R, R) in [-1, 1] -> logits (n, classes); `features` -> (n, 128).

    3 x [conv 3x3, ReLU, (max-pool)] -> adaptive 2x2 average -> fc 128 (the features) -> fc classes.
    """

    feature_dim = 128

    def __init__(self, channels: int = 1, classes: int = 10):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(True), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(512, self.feature_dim), nn.ReLU(True))
        self.out = nn.Linear(self.feature_dim, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x))


@dataclass
class Recipe:
    epochs: int = 4
    min_steps: int = 1500  # small datasets get more epochs: 4 epochs of 9,000 digits is too few
    batch: int = 128
    lr: float = 1e-3
    seed: int = 0
    holdout: float = 0.1  # share held out for accuracy when the data has no test split


DEFAULT = Recipe()  # what `for_dataset` and the metrics use


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = 2000, features: bool = False) -> torch.Tensor:
    """Class predictions (n,) or features (n, 128) of images x (n, C, R, R), in chunks."""
    model.eval()
    f = model.features if features else (lambda b: model(b).argmax(1))
    return torch.cat([f(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])


def _digest(train: ImageDataset, test: ImageDataset | None, recipe: Recipe) -> str:
    h = hashlib.sha256(json.dumps({"v": VERSION, **asdict(recipe)}, sort_keys=True).encode())
    for d in (train, test):
        if d is None:
            continue
        if isinstance(d, ImageDataset):
            h.update(str(tuple(d.data.shape)).encode())
            h.update(d.data.cpu().numpy().tobytes())
        else:  # read on demand (data/stream.py): hashing every pixel would read the whole dataset
            h.update(f"{d.shape} {d.fingerprint()}".encode())
        h.update(d.labels.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def train_classifier(train: ImageDataset, test: ImageDataset | None = None, recipe: Recipe | None = None,
                     device: str | torch.device = "cpu", progress: bool = True) -> tuple[SmallCNN, dict]:
    """Train on `train` (random flips are wrong for digits, so only small shifts as augmentation);
    accuracy on `test`, or on a held-out share of `train` when there is no test split."""
    from tqdm import tqdm

    recipe = recipe or DEFAULT
    if train.labels is None:
        raise UserError(f"dataset {train.name!r} has no labels: no classifier can be trained on it")
    g = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    n = len(train)
    order = torch.randperm(n, generator=g)
    if test is None:
        n_test = max(1, int(n * recipe.holdout))
        test_idx, train_idx = order[:n_test], order[n_test:]
        x_test, y_test = train.images(test_idx, device), train.labels[test_idx.to(train.labels.device)]
    else:
        train_idx = order
        x_test, y_test = test.images(torch.arange(len(test)), device), test.labels
    model = SmallCNN(train.shape[0], train.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    steps_per_epoch = max(1, len(train_idx) // recipe.batch)
    epochs = max(recipe.epochs, -(-recipe.min_steps // steps_per_epoch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=epochs * steps_per_epoch)
    start = time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, desc=f"classifier {train.name}", file=sys.stderr,
               disable=not progress, leave=False, dynamic_ncols=True)
    model.train()
    for _ in range(epochs):
        perm = train_idx[torch.randperm(len(train_idx), generator=g)]
        for s in range(steps_per_epoch):
            idx = perm[s * recipe.batch:(s + 1) * recipe.batch]
            x = train.images(idx, device)
            shift = torch.randint(-2, 3, (2,), generator=g).tolist()  # a small translation per batch
            x = torch.roll(x, shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(model(x), train.labels[idx.to(train.labels.device)].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    acc = float((predict(model, x_test) == y_test.to(device)).float().mean())
    info = {"dataset": train.name, "resolution": train.shape[-1], "accuracy": acc, "n_train": len(train_idx),
            "n_test": len(y_test), "test": "test split" if test is not None else f"{recipe.holdout:.0%} held out",
            "seconds": time.perf_counter() - start, **asdict(recipe), "epochs": epochs}
    return model.eval(), info


_LOADED: dict[str, tuple[SmallCNN, dict]] = {}


def cached_classifier(train: ImageDataset, test: ImageDataset | None = None, recipe: Recipe | None = None,
                      device: str | torch.device = "cpu", progress: bool = True) -> tuple[SmallCNN, dict]:
    """The classifier for these data and recipe: from memory, from the cache on disk, or trained now
    (then saved atomically). Returns (model in eval mode on `device`, info with 'accuracy')."""
    recipe = recipe or DEFAULT
    if train.labels is None:
        raise UserError(f"dataset {train.name!r} has no labels: no classifier can be trained on it")
    key = f"{train.name}-{train.shape[-1]}px-{_digest(train, test, recipe)}"
    if key in _LOADED:
        model, info = _LOADED[key]
        return model.to(device), info
    path = cache_root() / "classifiers" / f"{key}.pt"
    model = None
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            info = json.loads(state["info"])
            model = SmallCNN(train.shape[0], train.num_classes)
            model.load_state_dict(state["model"])
        except Exception as e:  # a damaged cache entry is retrained, never trusted
            print(f"classifier cache {path} unreadable ({type(e).__name__}); training again", file=sys.stderr)
            model = None
    if model is None:
        model, info = train_classifier(train, test, recipe, device, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "info": json.dumps(info)}, buf)
        atomic_write(path, buf.getvalue())
        print(f"classifier for {train.name} ({train.shape[-1]} px): held-out accuracy {info['accuracy']:.4f} "
              f"({info['n_test']} images, {info['test']}), cached at {path}", file=sys.stderr)
    info = {**info, "path": str(path)}
    model = model.to(device).eval().requires_grad_(False)
    _LOADED[key] = (model, info)
    return model, info


def for_dataset(data_options, device="cpu", progress: bool = True) -> tuple[SmallCNN, dict]:
    """The evaluation classifier of a labeled dataset at its configured resolution, trained on the
    splits the dataset names for it (Stacked MNIST: the 1-channel MNIST classifier, applied to
    each channel), else on the data themselves with a share held out."""
    from selfcond import data as datasets
    from selfcond.data.base import IndexedDataset

    spec = datasets.spec(data_options.name)
    if spec.evaluation is not None:
        train, test = spec.evaluation(data_options)
    else:
        train, test = spec.load(data_options), None
    if not isinstance(train, IndexedDataset) or train.labels is None:
        raise UserError(f"dataset {data_options.name!r} has no labels: metrics needing a classifier "
                        "are not available")
    return cached_classifier(train, test, device=device, progress=progress)

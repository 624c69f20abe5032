"""Feature extractors for the distances between generated and real images, and the real images'
features, cached on disk.

An `Extractor` maps images (n, C, H, W) in [-1, 1] to features (n, d): `cls`, the dataset's own
evaluation classifier (metrics/classifier.py), or `inception` (a local file, metrics/inception.py).
The real features come from a fixed subset of the run's training images (all of them up to n,
else the first n of a permutation seeded 0, whatever the run's seed), and are cached under
`<cache>/stats/`, keyed by the data options, the extractor's digest and n, written atomically.
The fakes' features are drawn once per evaluation and shared by its metric groups.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from selfcond.atomic import atomic_write
from selfcond.metrics.base import EvalContext

CHUNK = 2000  # images per extractor call
VERSION = 1  # of the cached files' protocol: bump when the subset or the feeding changes


@dataclass(frozen=True)
class Extractor:
    """name ("cls", "inception"); digest: identifies its weights; protocol: how images are fed;
    features(images in [-1, 1]) -> (n, d)."""

    name: str
    digest: str
    protocol: str
    features: Callable[[torch.Tensor], torch.Tensor]


def classifier_extractor(ctx: EvalContext) -> Extractor:
    from selfcond.metrics.classifier import for_dataset, predict

    model, info = for_dataset(ctx.data, ctx.device)
    digest = hashlib.sha256(info["path"].encode()).hexdigest()[:12]  # the path names its data and recipe
    return Extractor("cls", digest, "selfcond classifier, penultimate layer",
                     lambda x: predict(model, x, features=True))


def _extract(extractor: Extractor, images: Callable[[int, int], torch.Tensor], n: int) -> torch.Tensor:
    return torch.cat([extractor.features(images(i, min(i + CHUNK, n))).float().cpu() for i in range(0, n, CHUNK)])


def real_features(ctx: EvalContext, extractor: Extractor, n: int, progress: bool = True) -> torch.Tensor:
    """(min(N, n), d) features of the run's training images, from the cache or computed now."""
    from selfcond.data.files import cache_root

    ds = ctx.dataset
    m = min(len(ds), n)
    options = hashlib.sha256(json.dumps(asdict(ctx.data), sort_keys=True).encode()).hexdigest()[:12]
    path = cache_root() / "stats" / f"{ds.name}-{options}-{extractor.name}-{extractor.digest}-n{m}-v{VERSION}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)["features"]
        except Exception:  # noqa: BLE001 - a damaged entry is recomputed, never trusted
            pass
    index = torch.arange(m) if m == len(ds) else torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:m]
    feats = _extract(extractor, lambda a, b: ds.images(index[a:b], ctx.device), m)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"features": feats, "protocol": extractor.protocol, "n": m}, buf)
    atomic_write(path, buf.getvalue())
    if progress:
        print(f"real features of {ds.name} ({extractor.name}, {m} images) cached at {path}", file=sys.stderr)
    return feats


def fake_features(ctx: EvalContext, extractor: Extractor, n: int) -> torch.Tensor:
    """(n, d) features of n samples (modes from π, stream 3), once per evaluation and extractor."""
    key = ("fake_features", extractor.name, n)
    if key not in ctx.memo:
        g = ctx.generator(3)
        # Each chunk's features are made where its images are (on several ranks, each its block).
        ctx.memo[key] = torch.cat([ctx.sample(min(CHUNK, n - i), g, apply=extractor.features)[0].float().cpu()
                                   for i in range(0, n, CHUNK)])
    return ctx.memo[key]

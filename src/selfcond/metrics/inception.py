"""Optional Inception features for the standard FID, from a local file only (nothing is downloaded).

Point `$SELFCOND_INCEPTION` at a TorchScript file of a feature extractor that maps (n, 3, 299, 299)
float images in [0, 255] to (n, d) features: e.g. the standard 2015-12-05 Inception-v3 pool3
features (d = 2048), exported once with `torch.jit.script`/`trace` on a machine that has them. Then
the `fid` metric applies to image runs. Without it, `fid_cls` (the project's own classifier) is the
quality metric; the two are not comparable.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from selfcond.errors import UserError
from selfcond.metrics.base import metric

ENV = "SELFCOND_INCEPTION"
_LOADED: dict[tuple[str, str], torch.jit.ScriptModule] = {}


def configured() -> Path | None:
    """The extractor file named by $SELFCOND_INCEPTION, or None; a name that is not a file is an error."""
    value = os.environ.get(ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f"${ENV} names {path}, which is not a file")
    return path


def load(path: str | Path, device="cpu") -> torch.jit.ScriptModule:
    key = (str(path), str(device))
    if key not in _LOADED:
        try:
            _LOADED[key] = torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # not a TorchScript archive
            raise UserError(f"cannot load the Inception extractor {path} as TorchScript ({type(e).__name__})") from None
    return _LOADED[key]


@torch.no_grad()
def features(model, x: torch.Tensor, chunk: int = 200) -> torch.Tensor:
    """images (n, C, H, W) in [-1, 1], C = 1 or 3 -> (n, d) features of the extractor."""
    out = []
    for i in range(0, x.shape[0], chunk):
        b = x[i:i + chunk]
        if b.shape[1] == 1:
            b = b.expand(-1, 3, -1, -1)
        b = F.interpolate(b, size=(299, 299), mode="bilinear", align_corners=False)
        out.append(model((b + 1) * 127.5).flatten(1).double())
    return torch.cat(out)


def _applies(ctx) -> bool:
    from selfcond.data.base import IndexedDataset

    return isinstance(ctx.dataset, IndexedDataset) and configured() is not None


@metric("fid", ("fid",), _applies, at_snapshot=False)
def _fid(ctx, n: int) -> dict:
    from selfcond.metrics.fid import fakes_and_reals, fid_from_features

    model = load(configured(), ctx.device)
    fake, real = fakes_and_reals(ctx, n)
    return {"fid": fid_from_features(features(model, fake), features(model, real))}

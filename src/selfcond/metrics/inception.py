"""Standard FID, KID and precision/recall from a local Inception file (nothing is downloaded).

Point `$SELFCOND_INCEPTION` at one of the two files the field's implementations use:
- NVIDIA's TorchScript `inception-2015-12-05.pt` (stylegan2-ada-pytorch's detector): images are fed
  as stylegan2-ada feeds them, uint8 NCHW with 3 channels at their own resolution (the file
  resizes them itself), `return_features=True`, 2048 features;
- pytorch-fid's / torch-fidelity's state dict `pt_inception-2015-12-05-6726825d.pth`: the
  FID Inception-v3 of pytorch-fid (metrics/pt_inception.py, no torchvision), fed as pytorch-fid
  feeds it: floats in [0, 1], bilinearly resized to 299 x 299, scaled to [-1, 1], pool3 features.
Each figure says which (`fid_protocol`). Without the file, `fid_cls` (the data's own classifier) is
the quality metric; the two are not comparable.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from selfcond.errors import UserError
from selfcond.metrics.base import metric
from selfcond.metrics.features import Extractor, fake_features, real_features

ENV = "SELFCOND_INCEPTION"
NVIDIA = "nvidia inception-2015-12-05 TorchScript (uint8, return_features)"
PYTORCH_FID = "pytorch-fid pt_inception-2015-12-05 (bilinear 299, [-1, 1])"
_LOADED: dict[tuple, tuple] = {}


def configured() -> Path | None:
    """The extractor file named by $SELFCOND_INCEPTION, or None; a name that is not a file is an error."""
    value = os.environ.get(ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f"${ENV} names {path}, which is not a file")
    return path


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def load(path: str | Path, device="cpu") -> tuple[torch.nn.Module, str, str]:
    """(module in eval mode on `device`, protocol, digest) of an Inception file of either kind."""
    path = Path(path)
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, str(device))
    if key in _LOADED:
        return _LOADED[key]
    try:
        module = torch.jit.load(str(path), map_location=device).eval()
        if "return_features" not in [a.name for a in module.forward.schema.arguments]:
            raise UserError(f"{path} is TorchScript but not NVIDIA's inception-2015-12-05.pt (its forward "
                            "takes no return_features)")
        protocol = NVIDIA
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - not TorchScript: maybe pytorch-fid's state dict
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            raise UserError(f"{path} is neither NVIDIA's TorchScript inception-2015-12-05.pt nor pytorch-fid's "
                            "pt_inception state dict") from None
        from selfcond.metrics.pt_inception import FIDInceptionV3

        module = FIDInceptionV3()
        try:
            module.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - keys or shapes of another net
            raise UserError(f"{path} is not pytorch-fid's pt_inception state dict ({str(e).splitlines()[0][:120]})") from None
        module = module.to(device).eval().requires_grad_(False)
        protocol = PYTORCH_FID
    _LOADED[key] = (module, protocol, _digest(path))
    return _LOADED[key]


@torch.no_grad()
def features(model, x: torch.Tensor, protocol: str = NVIDIA) -> torch.Tensor:
    """images (n, C, H, W) in [-1, 1], C = 1 or 3 -> (n, 2048) features, fed as `protocol` feeds them."""
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if protocol == NVIDIA:
        return model((x * 127.5 + 128).clamp(0, 255).to(torch.uint8), return_features=True).double()
    x = F.interpolate((x + 1) / 2, size=(299, 299), mode="bilinear", align_corners=False)
    return model(2 * x - 1).double()


def inception_extractor(ctx) -> Extractor:
    model, protocol, digest = load(configured(), ctx.device)
    return Extractor("inception", digest, protocol, lambda x: features(model, x, protocol))


def _applies(ctx) -> bool:
    from selfcond.data.base import IndexedDataset

    return isinstance(ctx.dataset, IndexedDataset) and configured() is not None


@metric("fid", ("fid", "fid_protocol"), _applies, at_snapshot=False)
def _fid(ctx, n: int) -> dict:
    from selfcond.metrics.fid import fid_from_features

    ext = inception_extractor(ctx)
    return {"fid": fid_from_features(fake_features(ctx, ext, n), real_features(ctx, ext, n)),
            "fid_protocol": ext.protocol}

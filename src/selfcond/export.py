"""A trained generator as one file that runs without selfcond: TorchScript (and ONNX when the
`onnx` package is installed).

The TorchScript module holds G's moving average (in eval mode), π and the mode codes:

    g = torch.jit.load("gen.pt")
    x = g(z, mode)            # z (n, z_dim) float32, mode (n,) int64 -> images (n, C, H, W) in [-1, 1]
    x = g.mix(z, weights)     # weights (n, k): a convex combination of modes per image
    x, mode = g.sample(n)     # modes drawn from π, z from torch's global generator
    g.pi, g.z_dim, g.k        # π (k,), and the sizes

With z drawn per seed as `selfcond generate` draws it (torch.randn(z_dim,
generator=torch.Generator().manual_seed(seed))), `g(z, mode)` gives the same images, bit for bit on
the CPU.
"""

from __future__ import annotations

import io
import importlib.util
from pathlib import Path
from typing import Tuple

import torch
from torch import nn

from selfcond.atomic import atomic_write
from selfcond.errors import UserError


class ExportedGenerator(nn.Module):
    def __init__(self, g_modes: nn.Module, g_mix: nn.Module, pi: torch.Tensor, z_dim: int, k: int):
        super().__init__()
        self.g_modes, self.g_mix = g_modes, g_mix
        self.register_buffer("pi", pi.float())
        self.z_dim, self.k = z_dim, k

    def forward(self, z: torch.Tensor, mode: torch.Tensor) -> torch.Tensor:
        return self.g_modes(z, mode)

    @torch.jit.export
    def mix(self, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.g_mix(z, weights)

    @torch.jit.export
    def sample(self, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        mode = torch.multinomial(self.pi, n, replacement=True)
        z = torch.randn(n, self.z_dim)
        return self.g_modes(z, mode), mode


def build(model) -> torch.jit.ScriptModule:
    """The TorchScript module of a loaded run (selfcond.load), on the CPU."""
    g = model.G.cpu().eval()
    z = torch.randn(4, model.cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    modes = torch.arange(4) % model.k
    weights = torch.eye(model.k)[modes]
    with torch.no_grad():  # one traced graph per kind of condition: int modes, mixing weights
        g_modes = torch.jit.trace(g, (z, modes), check_trace=False)
        g_mix = torch.jit.trace(g, (z, weights), check_trace=False)
    pi = model.pi if model.conditional else torch.ones(1, dtype=torch.float64)
    return torch.jit.script(ExportedGenerator(g_modes, g_mix, pi, model.cfg.model.z_dim, model.k))


def export(model, out: str | Path, onnx: bool | None = None) -> list[Path]:
    """Write the TorchScript file `out` (and `out` with .onnx when `onnx`, default: when the onnx
    package is installed); returns the paths written."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{out} is a directory; give a file name such as {out / 'generator.pt'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    module = build(model)
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    atomic_write(out, buf.getvalue())
    written = [out]
    if onnx is None:
        onnx = importlib.util.find_spec("onnx") is not None
    if onnx:
        written.append(_onnx(model, out.with_suffix(".onnx")))
    return written


def _onnx(model, path: Path) -> Path:
    """G's average as ONNX: inputs z (n, z_dim) float32 and mode (n,) int64, output image."""
    if importlib.util.find_spec("onnx") is None:
        raise UserError("ONNX export needs the onnx package: pip install onnx")
    g = model.G.cpu().eval()
    z = torch.randn(2, model.cfg.model.z_dim)
    mode = torch.zeros(2, dtype=torch.long)
    buf = io.BytesIO()
    torch.onnx.export(g, (z, mode), buf, input_names=["z", "mode"], output_names=["image"],
                      dynamic_axes={"z": {0: "n"}, "mode": {0: "n"}, "image": {0: "n"}}, dynamo=False)
    atomic_write(path, buf.getvalue())
    return path

"""Sample grids: one row per mode, images tiled with reshape/permute (no per-image loop)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageDraw

_BG = 255  # padding colour: white, so dark digits and black backgrounds both stand out


def image_grid(images: torch.Tensor, pad: int = 2) -> np.ndarray:
    """Tile images (rows, cols, C, H, W) in [-1, 1] into one uint8 picture.

    Returns (rows * (H + pad) + pad, cols * (W + pad) + pad, 3) for C = 3 and (..., 1) for C = 1, with
    a `pad`-pixel white border around every image.
    """
    rows, cols, c, h, w = images.shape
    if c not in (1, 3):
        raise ValueError(f"image_grid needs 1 or 3 channels, got {c}")
    x = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    canvas = torch.full((rows, cols, c, h + pad, w + pad), _BG, dtype=torch.uint8)
    canvas[..., pad:, pad:] = x  # each cell = image with a pad strip above and to its left
    grid = canvas.permute(0, 3, 1, 4, 2).reshape(rows * (h + pad), cols * (w + pad), c)
    out = torch.full((grid.shape[0] + pad, grid.shape[1] + pad, c), _BG, dtype=torch.uint8)
    out[:-pad or None, :-pad or None] = grid  # close the bottom and right borders
    return out.numpy()


def mode_grid_png(images: torch.Tensor, row_labels: list[str] | None = None, pad: int = 2) -> bytes:
    """PNG bytes of a grid of images (rows, cols, C, H, W) in [-1, 1], one row per mode.

    With `row_labels` (one string per row) a left margin holds each row's label, vertically centred.
    Grayscale images are written as a grey ("L") PNG, colour ones as RGB.
    """
    rows, _, _, h, _ = images.shape
    grid = image_grid(images, pad)
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid, "L" if grid.shape[2] == 1 else "RGB")
    if row_labels is not None:
        if len(row_labels) != rows:
            raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
        draw = ImageDraw.Draw(img)
        margin = max(int(draw.textlength(str(s))) for s in row_labels) + 2 * pad + 4 if rows else 0
        ink = 0 if img.mode == "L" else (0, 0, 0)
        full = Image.new(img.mode, (img.width + margin, img.height), _BG if img.mode == "L" else (_BG,) * 3)
        full.paste(img, (margin, 0))
        draw = ImageDraw.Draw(full)
        for r, s in enumerate(row_labels):
            _, top, _, bottom = draw.textbbox((0, 0), str(s))  # no anchors: bitmap fonts lack them
            draw.text((pad + 2, pad + r * (h + pad) + (h - top - bottom) / 2), str(s), fill=ink)
        img = full
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()

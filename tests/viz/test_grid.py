import io

import numpy as np
import torch
from PIL import Image

from selfcond.viz.grid import image_grid, mode_grid_png


def _constant(rows, cols, c, h, w):
    """Image (r, c) filled with the value that maps to pixel 20 * (r * cols + c)."""
    v = torch.arange(rows * cols, dtype=torch.float32).view(rows, cols, 1, 1, 1) * 20 / 127.5 - 1
    return v.expand(rows, cols, c, h, w).clone()


def test_grid_places_each_image_in_its_cell():
    rows, cols, h, w, pad = 2, 3, 4, 5, 2
    g = image_grid(_constant(rows, cols, 3, h, w), pad=pad)
    assert g.dtype == np.uint8 and g.shape == (rows * (h + pad) + pad, cols * (w + pad) + pad, 3)
    for r in range(rows):
        for c in range(cols):
            y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
            want = 20 * (r * cols + c)
            assert (g[y0:y0 + h, x0:x0 + w] == want).all()
    assert (g[:pad] == 255).all() and (g[:, :pad] == 255).all() and (g[-pad:] == 255).all()
    assert (g[pad + h:2 * pad + h] == 255).all()  # gap between rows


def test_grayscale_grid_and_png():
    x = _constant(3, 4, 1, 8, 8)
    g = image_grid(x)
    assert g.shape == (3 * 10 + 2, 4 * 10 + 2, 1) and g[2, 2, 0] == 0
    img = Image.open(io.BytesIO(mode_grid_png(x)))
    assert img.size == (42, 32) and img.mode == "L"
    assert np.array_equal(np.asarray(img), g[..., 0])
    labelled = Image.open(io.BytesIO(mode_grid_png(x, ["mode 0", "mode 1", "mode 2"])))
    assert labelled.height == 32 and labelled.width > 42
    assert np.array_equal(np.asarray(labelled)[:, -42:], g[..., 0])  # images intact right of the margin


def test_rgb_png_and_clipping():
    x = torch.full((1, 2, 3, 4, 4), 5.0)  # out of range is clipped, not wrapped
    img = Image.open(io.BytesIO(mode_grid_png(x)))
    assert img.mode == "RGB" and np.asarray(img)[2, 2].tolist() == [255, 255, 255]

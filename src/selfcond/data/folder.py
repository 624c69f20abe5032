"""Any directory of images (png, jpg, ...), searched recursively, for evaluation.

Every image is center-cropped to a square and resized to the resolution; the dataset is grayscale
(1 channel) when every image is, else RGB. True labels, when there are any, come from
- `dataset.json` at the top, in StyleGAN2-ADA's format: {"labels": [["sub/img.png", 3], ...]} with
  paths relative to the directory; every image must then have an integer label ({"labels": null}
  means none, whatever the sub-folders);
- else the first-level sub-folders, when every image is inside one and there are at least two
  (sorted names -> class ids 0, 1, ...);
- else there are none.
Unreadable images are skipped and counted on stderr; none readable is an error.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from selfcond.data.base import DatasetSpec, ImageOptions
from selfcond.data.images import ImageDataset
from selfcond.errors import UserError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
BAR_MIN = 500  # fewer files decode in a blink: no progress bar


MAX_ENTRIES = 2_000_000  # entries scanned under one folder: a typo'd --data / must answer, not crawl


def image_files(root: Path) -> list[str]:
    """Paths of the image files under `root`, relative, '/'-separated, sorted."""
    out = []
    for n, p in enumerate(root.rglob("*")):
        if n >= MAX_ENTRIES:
            raise UserError(f"more than {MAX_ENTRIES:,} files and folders under {root}: point --data at the "
                            "directory of images itself")
        if p.suffix.lower() in EXTENSIONS and p.is_file():
            out.append(p.relative_to(root).as_posix())
    return sorted(out)


def folder_labels(root: Path, rels: list[str]) -> tuple[list[int] | None, list[str] | None]:
    """(label of each of `rels`, class names) from dataset.json or sub-folders, or (None, None)."""
    meta = root / "dataset.json"
    if meta.is_file():
        try:
            table = json.loads(meta.read_text()).get("labels")
            table = None if table is None else {str(p).replace("\\", "/"): v for p, v in table}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise UserError(f"{meta}: expected {{\"labels\": [[\"path.png\", int], ...]}} ({e})") from None
        if table is None:  # {"labels": null}: unlabelled (sub-folders are then mere chunks, as StyleGAN's)
            return None, None
        missing = [r for r in rels if r not in table]
        if missing:
            raise UserError(f"{meta} has no label for {len(missing)} image(s), e.g. {missing[0]}")
        labels = [table[r] for r in rels]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in labels):
            raise UserError(f"{meta}: labels must be integers >= 0 (one class id per image)")
        return labels, None
    tops = [r.split("/")[0] if "/" in r else None for r in rels]
    classes = sorted(set(tops)) if None not in tops else []
    if len(classes) < 2:
        return None, None
    ids = {c: i for i, c in enumerate(classes)}
    return [ids[t] for t in tops], classes


def _decode(path: Path, resolution: int) -> np.ndarray | None:
    """One image -> (R, R) uint8 (grayscale) or (R, R, 3) uint8, center-cropped; None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale, still >= R
            if im.mode.startswith("I;16"):  # 16-bit gray: convert("L") would clip, not scale
                im = im.convert("I").point(lambda v: v * (1 / 257))
            im = im.convert("L" if im.mode in GRAY_MODES else "RGB")
            w, h = im.size
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            # crop first: resize(box=...) would let the filter read pixels outside the square
            return np.asarray(im.crop(box).resize((resolution, resolution), Image.Resampling.LANCZOS))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


def folder_dataset(path: str | Path, resolution: int = 32, name: str | None = None,
                   workers: int = 4) -> ImageDataset:
    """Every image under `path` as an ImageDataset (N, C, resolution, resolution), C = 1 or 3."""
    from tqdm import tqdm

    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"image directory {root} " + ("is a file, not a directory" if root.exists() else "does not exist"))
    rels = image_files(root)
    if not rels:
        raise UserError(f"no images ({', '.join(sorted(EXTENSIONS))}) under {root}")
    labels, classes = folder_labels(root, rels)
    # PIL releases the GIL while decoding and resizing, so threads keep several cores busy.
    with ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1))) as pool:
        decoded = list(tqdm(pool.map(lambda r: _decode(root / r, resolution), rels), total=len(rels),
                            desc=f"decoding {root.name}", unit="img", file=sys.stderr,
                            disable=len(rels) < BAR_MIN, leave=False))
    bad = [r for r, a in zip(rels, decoded) if a is None]
    if len(bad) == len(rels):
        raise UserError(f"none of the {len(rels)} images under {root} is readable (e.g. {bad[0]})")
    if bad:
        print(f"warning: skipped {len(bad)} unreadable image(s) of {len(rels)} under {root} "
              f"(e.g. {bad[0]})", file=sys.stderr)
    keep = [i for i, a in enumerate(decoded) if a is not None]
    arrays = [decoded[i] for i in keep]
    if all(a.ndim == 2 for a in arrays):
        x = np.stack(arrays)[:, None]  # (N, 1, R, R)
    else:  # mixed: grayscale to RGB by repeating the plane, as PIL's convert("RGB") does
        x = np.stack([a if a.ndim == 3 else np.repeat(a[..., None], 3, 2) for a in arrays]).transpose(0, 3, 1, 2)
    y = None if labels is None else torch.tensor([labels[i] for i in keep], dtype=torch.int64)
    n_classes = None if labels is None else (len(classes) if classes else max(labels) + 1)
    return ImageDataset(name or root.resolve().name, torch.from_numpy(np.ascontiguousarray(x)), y,
                        n_classes, classes, files=[rels[i] for i in keep])


def spec_for(path: str) -> DatasetSpec:
    """The dataset spec of the image directory `path` (the config's data.name)."""
    root = Path(path).expanduser()

    def info(data_dir=None) -> dict:
        out = {"kind": "folder", "searched": [str(root)], "splits": {}}
        if root.is_dir() and (rels := image_files(root)):
            labels, classes = folder_labels(root, rels)
            out.update(path=str(root.resolve()), splits={"train": len(rels)},
                       classes=None if labels is None else (len(classes) if classes else max(labels) + 1))
        return out

    return DatasetSpec(path, "images", ImageOptions, load=lambda o: folder_dataset(o.name, o.resolution),
                       available=lambda data_dir=None: root.is_dir(), info=info)

"""`selfcond datasets prepare SRC OUT.zip`: a directory (or zip) of images converted once into a zip
archive in StyleGAN2-ADA's layout: every image center-cropped and resized to R x R, written as PNG
(`00000/img00000000.png`, ...), with `dataset.json` holding the labels (from the source's
dataset.json or class sub-folders; null when there are none) and our class names. Decoding goes in
chunks, so memory stays bounded whatever the source's size; unreadable files are counted and listed,
not fatal; the archive appears only when complete (written beside OUT, then renamed)."""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from selfcond.data.folder import decode_all, folder_labels, open_source
from selfcond.errors import UserError

CHUNK = 1024  # images decoded at a time


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def prepare(src: str | Path, out: str | Path, resolution: int, workers: int = 4, progress: bool = True) -> dict:
    """Write the archive; returns {"images", "skipped" (the unreadable files), "labels", "path"}."""
    from tqdm import tqdm

    if resolution < 4 or resolution > 4096:
        raise UserError(f"--resolution must be between 4 and 4096, got {resolution}")
    out = Path(out).expanduser()
    if out.suffix.lower() != ".zip":
        raise UserError(f"{out}: the archive's name must end in .zip")
    if out.exists():
        raise UserError(f"{out} exists: remove it or name another archive")
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"{out.parent} is not a directory")
    source, rels = open_source(src)
    if source.zip is not None and source.root.resolve() == out.resolve():
        raise UserError(f"{out}: the archive cannot be its own source")
    labels, classes = folder_labels(source, rels)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    skipped, table, n = [], [], 0
    bar = tqdm(total=len(rels), desc=f"prepare {source.root.name}", unit="img", file=sys.stderr,
               disable=not progress)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # PNGs are compressed already
            for i in range(0, len(rels), CHUNK):
                part = rels[i:i + CHUNK]
                for j, (rel, a) in enumerate(zip(part, decode_all(source, part, resolution, workers, progress=False))):
                    if a is None:
                        skipped.append(rel)
                        continue
                    name = f"{n // 1000:05d}/img{n:08d}.png"
                    z.writestr(name, _png(a))
                    if labels is not None:
                        table.append([name, labels[i + j]])
                    n += 1
                bar.update(len(part))
            if n == 0:
                raise UserError(f"none of the {len(rels)} images under {source.root} is readable (e.g. {skipped[0]})")
            meta = {"labels": table if labels is not None else None}
            if classes:
                meta["classes"] = classes
            z.writestr("dataset.json", json.dumps(meta))
        os.replace(tmp, out)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    if skipped:
        print(f"warning: skipped {len(skipped)} unreadable file(s) of {len(rels)}:", file=sys.stderr)
        for rel in skipped[:20]:
            print(f"  {rel}", file=sys.stderr)
        if len(skipped) > 20:
            print(f"  ... and {len(skipped) - 20} more", file=sys.stderr)
    return {"path": str(out), "images": n, "skipped": skipped, "labels": labels is not None,
            "classes": classes, "resolution": resolution}

"""Any directory of images (png, jpg, ...), searched recursively, or a zip archive of them in
StyleGAN2-ADA's layout (images, and `dataset.json` at the top); `prepare` writes such an archive.

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
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from selfcond.data.base import DatasetSpec, FolderOptions, IndexedDataset
from selfcond.data.images import ImageDataset
from selfcond.errors import UserError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
BAR_MIN = 500  # fewer files decode in a blink: no progress bar


MAX_ENTRIES = 2_000_000  # entries scanned under one folder: a typo'd --data / must answer, not crawl


class Source:
    """Where the images are: a directory or a zip archive. `files` lists them (relative,
    '/'-separated, sorted), `read(rel)` gives one file's bytes, `meta()` dataset.json's text or None."""

    def __init__(self, root: Path):
        self.root = root
        self._zip, self._pid = None, None
        if root.is_file():
            try:
                self._open()
            except (zipfile.BadZipFile, OSError) as e:
                raise UserError(f"{root}: not a zip archive of images ({e}); give a directory or a .zip") from None

    def _open(self) -> None:
        self._zip, self._pid = zipfile.ZipFile(self.root), os.getpid()
        self._lock = threading.Lock()  # one zip handle, read by the decoding threads in turn

    @property
    def zip(self) -> zipfile.ZipFile | None:
        """The archive, opened once per process: a handle inherited by a forked DataLoader worker
        shares its file offset with its parent's, and concurrent reads would interleave."""
        if self._zip is not None and self._pid != os.getpid():
            self._open()
        return self._zip

    def __getstate__(self) -> dict:  # to spawned workers: the path, not the handle
        return {"root": self.root, "is_zip": self._zip is not None}

    def __setstate__(self, state: dict) -> None:
        self.root, self._zip, self._pid = state["root"], None, None
        if state["is_zip"]:
            self._open()

    def files(self) -> list[str]:
        if self.zip is None:
            return image_files(self.root)
        names = self.zip.namelist()
        if len(names) > MAX_ENTRIES:
            raise UserError(f"more than {MAX_ENTRIES:,} entries in {self.root}")
        return sorted(n for n in names if Path(n).suffix.lower() in EXTENSIONS and not n.endswith("/"))

    def read(self, rel: str) -> bytes:
        if self.zip is None:
            return (self.root / rel).read_bytes()
        with self._lock:
            return self.zip.read(rel)

    def meta(self) -> str | None:
        if self.zip is not None:
            return self.zip.read("dataset.json").decode() if "dataset.json" in self.zip.namelist() else None
        m = self.root / "dataset.json"
        return m.read_text() if m.is_file() else None


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


def folder_labels(source: "Source", rels: list[str]) -> tuple[list[int] | None, list[str] | None]:
    """(label of each of `rels`, class names) from dataset.json or sub-folders, or (None, None)."""
    meta = source.root / "dataset.json"
    try:
        text = source.meta()
        doc = None if text is None else json.loads(text)
        table = None if doc is None else doc.get("labels")
        table = None if table is None else {str(p).replace("\\", "/"): v for p, v in table}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{meta}: expected {{\"labels\": [[\"path.png\", int], ...]}} ({e})") from None
    if doc is not None:
        if table is None:  # {"labels": null}: unlabelled (sub-folders are then mere chunks, as StyleGAN's)
            return None, None
        names = doc.get("classes")  # ours, written by `datasets prepare`
        missing = [r for r in rels if r not in table]
        if missing:
            raise UserError(f"{meta} has no label for {len(missing)} image(s), e.g. {missing[0]}")
        labels = [table[r] for r in rels]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in labels):
            raise UserError(f"{meta}: labels must be integers >= 0 (one class id per image)")
        return labels, names if isinstance(names, list) and len(names) > max(labels, default=-1) else None
    tops = [r.split("/")[0] if "/" in r else None for r in rels]
    classes = sorted(set(tops)) if None not in tops else []
    if len(classes) < 2:
        return None, None
    ids = {c: i for i, c in enumerate(classes)}
    return [ids[t] for t in tops], classes


def _decode(source: "Source", rel: str, resolution: int, mode: str | None = None) -> np.ndarray | None:
    """One image -> (R, R) uint8 (grayscale) or (R, R, 3) uint8, center-cropped; None if unreadable.
    mode "L" or "RGB" converts every image to it; None keeps grayscale images grayscale."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(source.read(rel))) as im:
            im.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale, still >= R
            if im.mode.startswith("I;16"):  # 16-bit gray: convert("L") would clip, not scale
                im = im.convert("I").point(lambda v: v * (1 / 257))
            im = im.convert(mode or ("L" if im.mode in GRAY_MODES else "RGB"))
            w, h = im.size
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            # crop first: resize(box=...) would let the filter read pixels outside the square
            return np.asarray(im.crop(box).resize((resolution, resolution), Image.Resampling.LANCZOS))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


def open_source(path: str | Path) -> tuple[Source, list[str]]:
    """The directory or zip at `path` and its image files; one line if there is none."""
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"image directory {root} does not exist")
    source = Source(root)
    rels = source.files()
    if not rels:
        raise UserError(f"no images ({', '.join(sorted(EXTENSIONS))}) under {root}")
    return source, rels


def decode_all(source: Source, rels: list[str], resolution: int, workers: int = 4,
               progress: bool = True) -> list[np.ndarray | None]:
    """Every file of `rels` decoded, center-cropped and resized (None where unreadable), with progress."""
    from tqdm import tqdm

    # PIL releases the GIL while decoding and resizing, so threads keep several cores busy.
    with ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1))) as pool:
        return list(tqdm(pool.map(lambda r: _decode(source, r, resolution), rels), total=len(rels),
                         desc=f"decoding {source.root.name}", unit="img", file=sys.stderr,
                         disable=not progress or len(rels) < BAR_MIN, leave=False))


def folder_dataset(path: str | Path, resolution: int = 32, name: str | None = None,
                   workers: int = 4) -> ImageDataset:
    """Every image under `path` (a directory or zip) as an ImageDataset (N, C, resolution, resolution),
    C = 1 or 3."""
    source, rels = open_source(path)
    root = source.root
    labels, classes = folder_labels(source, rels)
    decoded = decode_all(source, rels, resolution, workers)
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
    return ImageDataset(name or _name(source), torch.from_numpy(np.ascontiguousarray(x)), y,
                        n_classes, classes, files=[rels[i] for i in keep])


def _name(source: Source) -> str:
    return source.root.resolve().stem if source.zip is not None else source.root.resolve().name


def streamed_dataset(path: str | Path, resolution: int = 32, workers: int = 2):
    """The images under `path` read on demand (data/stream.py): nothing is decoded up front."""
    from selfcond.data.stream import StreamedImages, probe_channels

    source, rels = open_source(path)
    labels, classes = folder_labels(source, rels)
    y = None if labels is None else torch.tensor(labels, dtype=torch.int64)
    n_classes = None if labels is None else (len(classes) if classes else max(labels) + 1)
    return StreamedImages(_name(source), source, rels, resolution, probe_channels(source, rels), y, n_classes,
                          classes, workers)


def load_folder(o: FolderOptions) -> IndexedDataset:
    """A folder's dataset as data.stream says: in memory, on demand, or on demand when the uint8
    pixels (N x 3 x R x R at most) would exceed data.memory_gb."""
    stream = o.stream == "always"
    if o.stream == "auto":
        source, rels = open_source(o.name)
        from selfcond.data.stream import probe_channels

        stream = len(rels) * probe_channels(source, rels) * o.resolution ** 2 > o.memory_gb * 2**30
        if stream:
            print(f"{o.name}: {len(rels):,} images at {o.resolution} px exceed data.memory_gb ({o.memory_gb:g}): "
                  f"read on demand (data.stream=never holds them)", file=sys.stderr)
    return streamed_dataset(o.name, o.resolution, o.workers) if stream else folder_dataset(o.name, o.resolution)


def spec_for(path: str) -> DatasetSpec:
    """The dataset spec of the image directory `path` (the config's data.name)."""
    root = Path(path).expanduser()

    def info(data_dir=None) -> dict:
        out = {"kind": "folder", "searched": [str(root)], "splits": {}}
        if root.exists() and (rels := (source := Source(root)).files()):
            labels, classes = folder_labels(source, rels)
            out.update(path=str(root.resolve()), splits={"train": len(rels)},
                       classes=None if labels is None else (len(classes) if classes else max(labels) + 1))
        return out

    return DatasetSpec(path, "images", FolderOptions, load=load_folder,
                       available=lambda data_dir=None: root.is_dir() or zipfile.is_zipfile(root), info=info)

"""Where dataset files live, and how they get there.

A dataset's files are looked for in this order, the first directory holding all of them wins:
`--data-dir` (data.data_dir), `$SELFCOND_DATA/<name>/`, the cache `<cache root>/<name>/`,
`/usr/share/datasets/<name>/` (Debian's dataset-* packages). The cache root is `$SELFCOND_CACHE`, else
`~/.cache/selfcond`; downloads and derived files (classifiers, Stacked MNIST triples) go there.

Downloads stream to a temporary file beside the target and are renamed into place only once their
SHA-256 matches, so an interrupted or corrupted download never looks like a dataset.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from selfcond.errors import UserError

SYSTEM_DIR = Path("/usr/share/datasets")
TIMEOUT_S = 30  # per socket operation, not per file


def cache_root() -> Path:
    return Path(os.environ.get("SELFCOND_CACHE") or Path.home() / ".cache" / "selfcond")


def search_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The directories searched for dataset `name`, in order."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    if os.environ.get("SELFCOND_DATA"):
        dirs.append(Path(os.environ["SELFCOND_DATA"]).expanduser() / name)
    return dirs + [cache_root() / name, SYSTEM_DIR / name]


def find(name: str, filenames: list[str], data_dir: str | Path | None = None,
         inner: str | None = None) -> Path | None:
    """The first searched directory that holds every one of `filenames`, or None.

    With `inner`, each searched directory `d` is tried as itself, then as `d/inner` (so that both
    `cifar-10-batches-py/` and its parent can be given)."""
    for d in search_dirs(name, data_dir):
        for c in (d, d / inner) if inner else (d,):
            if all((c / f).is_file() for f in filenames):
                return c
    return None


def not_found(name: str, filenames: list[str], data_dir: str | Path | None = None) -> UserError:
    where = ", ".join(str(d) for d in search_dirs(name, data_dir))
    return UserError(f"dataset {name!r} not found: looked for {filenames[0]} in {where} "
                     "(pass --data-dir or set SELFCOND_DATA)")


def locate(name: str, filenames: list[str], data_dir: str | Path | None = None,
           inner: str | None = None) -> Path:
    """Like `find`, but a missing dataset is a UserError that lists where we looked."""
    found = find(name, filenames, data_dir, inner)
    if found is None:
        raise not_found(name, filenames, data_dir)
    return found


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Mismatch(Exception):
    pass


def _fetch(url: str, target: Path, sha256: str) -> None:
    """Stream `url` to a temporary file beside `target`; rename it to `target` once the hash matches."""
    from tqdm import tqdm

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            size = int(resp.headers.get("Content-Length") or 0) or None
            h = hashlib.sha256()
            with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                      file=sys.stderr, leave=False) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        if h.hexdigest() != sha256:
            raise _Mismatch(f"{url} has sha256 {h.hexdigest()}, expected {sha256}")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def download(name: str, filenames: list[str], mirrors: list[str], sha256: dict[str, str],
             dest_dir: str | Path) -> Path:
    """Fetch each of `filenames` missing from `dest_dir`, trying `mirrors` (URL prefixes) in order.

    A file is kept only when its SHA-256 equals `sha256[filename]`; a mirror that fails (network
    error, HTTP error, wrong checksum) is skipped for the next. Returns `dest_dir`."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for f in filenames:
        if (dest / f).is_file():
            continue
        problems = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + f
            try:
                _fetch(url, dest / f, sha256[f])
                break
            except _Mismatch as e:
                problems.append(str(e))
            except urllib.error.HTTPError as e:
                problems.append(f"{url}: HTTP {e.code}")
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                problems.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise UserError(f"cannot download {f} of dataset {name!r}: {'; '.join(problems)}. "
                            f"Pass --data-dir DIR holding the files, or put them in {dest}")
    return dest

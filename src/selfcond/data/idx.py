"""The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), gzip or raw.

Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then one big-endian
uint32 per dimension; the data follow. A file whose length does not match its header is refused:
a truncated download must never become a silently shorter dataset.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from selfcond.errors import UserError

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(raw: bytes, where: str = "IDX data") -> np.ndarray:
    """Bytes of an (uncompressed) IDX file -> array with the header's shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise UserError(f"{where} is not an IDX file (bad magic number); delete it and fetch it again")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise UserError(f"{where} is truncated (header cut short); delete it and fetch it again")
    shape = struct.unpack(f">{ndim}I", raw[4:head])
    dtype = np.dtype(_TYPES[raw[2]])
    expected = head + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise UserError(f"{where} is {what} ({len(raw)} bytes, expected {expected}); "
                        "delete it and fetch it again")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file, gzip-compressed (by name ending .gz) or raw."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise UserError(f"cannot read {path}: {e}; delete it and fetch it again") from None
    return parse_idx(raw, str(path))


def idx_shape(path: str | Path) -> tuple[int, ...]:
    """The shape an IDX file's header declares, reading only the header (for `datasets info`)."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _TYPES:
                raise UserError(f"{path} is not an IDX file (bad magic number); delete it and fetch it again")
            dims = f.read(4 * head[3])
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read {path}: {e}; delete it and fetch it again") from None
    if len(dims) < 4 * head[3]:
        raise UserError(f"{path} is truncated (header cut short); delete it and fetch it again")
    return struct.unpack(f">{head[3]}I", dims)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzip when the name ends .gz): for tests and tiny fixtures."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)

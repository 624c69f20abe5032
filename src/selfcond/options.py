"""Typed option sections: one dataclass per section, its constraints declared beside each field.

Every options class (the training loop's, a method's, a net family's, a dataset's) is a dataclass
of `opt(...)` fields. `build` turns a mapping read from YAML or flags into an instance, refusing
unknown keys, wrong types and out-of-range values with one line that names the key, so a config is
checked whole before anything runs; `check` is where a class adds what one field cannot say alone.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from selfcond.errors import UserError


def opt(default: Any, *, min: float | None = None, max: float | None = None, gt: float | None = None,
        lt: float | None = None, choices: tuple | None = None, note: str = "", help: str = "") -> Any:
    """A field with its default and constraints: `min` (>=), `max` (<=), `gt` (>), `lt` (<),
    `choices`. `note` is added to the error message, `help` documents the key."""
    meta = {"min": min, "max": max, "gt": gt, "lt": lt, "choices": choices, "note": note, "help": help}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def fail(message: str) -> None:
    raise UserError(f"config: {message}")


def need(ok: bool, message: str) -> None:
    """A UserError with one line naming the problem, unless `ok`."""
    if not ok:
        fail(message)


@dataclass
class Options:
    """Base of every options section."""

    def check(self, cfg) -> None:
        """Checks across fields or sections (the whole resolved config is `cfg`); field
        constraints are checked before this is called."""

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _hint(cls, name: str):
    return typing.get_type_hints(cls)[name]


def _is_optional(hint) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in hint.__args__


def _coerce(value: Any, hint, where: str) -> Any:
    """`value` checked against the field's type; ints are accepted where floats are, and null only
    where the field may be null."""
    if _is_optional(hint):
        if value is None:
            return None
        hint = next(a for a in hint.__args__ if a is not type(None))
    if value is None:
        fail(f"{where} must not be null")
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            fail(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, where) for v in value]
    if hint is bool:
        if not isinstance(value, bool):
            fail(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            fail(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            fail(f"{where} must be a string, got {value!r}")
        return value
    return value


def _check_range(value: Any, meta: dict, where: str) -> None:
    note = f" ({meta['note']})" if meta.get("note") else ""
    if meta.get("choices") is not None and value not in meta["choices"]:
        fail(f"{where} must be one of {', '.join(map(str, meta['choices']))}{note}, got {value!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    lo, gt, lt = meta.get("min"), meta.get("gt"), meta.get("lt")
    if lo is not None and lt is not None:
        need(lo <= value < lt, f"{where} must be in [{lo}, {lt}){note}, got {value}")
    elif lo is not None:
        need(value >= lo, f"{where} must be >= {lo}{note}, got {value}")
    elif lt is not None:
        need(value < lt, f"{where} must be < {lt}{note}, got {value}")
    if gt is not None:
        need(value > gt, f"{where} must be > {gt}{note}, got {value}")
    if meta.get("max") is not None:
        need(value <= meta["max"], f"{where} must be <= {meta['max']:,}{note}, got {value:,}")


def build(cls: type[Options], tree: Any, where: str, what: str = "", drop: frozenset = frozenset()) -> Options:
    """An instance of `cls` from a mapping: unknown keys, wrong types and values out of range are
    UserErrors naming `where.key` (`what` says whose options they are). Keys in `drop` that `cls`
    does not have are ignored (a migrated old config's keys that meant nothing for this choice)."""
    if not isinstance(tree, dict):
        fail(f"{where or 'top level'} must be a mapping, got {tree!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(k for k in set(tree) - set(known) if f"{where}.{k}" not in drop)
    if unknown:
        whose = f" for {what}" if what else ""
        fail(f"unknown key '{where}.{unknown[0]}'{whose} (known: {', '.join(known)})")
    values = {}
    for name, f in known.items():
        if name in tree:
            value = _coerce(tree[name], _hint(cls, name), f"{where}.{name}")
            _check_range(value, f.metadata, f"{where}.{name}")
            values[name] = value
    return cls(**values)


def describe(cls: type[Options]) -> list[tuple[str, Any, str]]:
    """(key, default, help) of every field: what docs and --help show."""
    out = []
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append((f.name, default, f.metadata.get("help", "")))
    return out

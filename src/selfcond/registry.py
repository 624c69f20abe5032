"""Registries: a method, a net family, a dataset, a metric or a bench is one module that registers
itself here, under its name.

The built-in modules of a registry's package are imported on the first lookup (so adding one is
adding one file), then the plugins: the modules named in `$SELFCOND_PLUGINS` (comma-separated) and
those of the `selfcond.plugins` entry-point group, so a user's own method or dataset works from
the command line without editing selfcond.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Generic, Iterator, TypeVar

from selfcond.errors import UserError

T = TypeVar("T")
PLUGINS_ENV = "SELFCOND_PLUGINS"
_plugins_loaded = False


def load_plugins() -> None:
    """Import the user's plugin modules, once per process."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UserError(f"${PLUGINS_ENV} names {name!r}, which cannot be imported ({e})") from None
    from importlib.metadata import entry_points

    for ep in entry_points(group="selfcond.plugins"):
        ep.load()


class Registry(Generic[T]):
    """Items of one kind by name. `package`: where the built-in modules live."""

    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, item: T) -> T:
        """Add `item` as `name` (a second registration of a name is a programming error)."""
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        """Remove `name` (a plugin's or a test's own entry)."""
        self._items.pop(name, None)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            pkg = importlib.import_module(self.package)
            for mod in pkgutil.iter_modules(pkg.__path__):
                importlib.import_module(f"{self.package}.{mod.name}")
            load_plugins()

    def get(self, name: str) -> T:
        """The item registered as `name`; an unknown name is a UserError listing the known ones."""
        self._load()
        if name not in self._items:
            raise UserError(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self.names()))}; "
                            f"your own need ${PLUGINS_ENV})")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        self._load()
        return iter(list(self._items.values()))

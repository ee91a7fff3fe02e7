"""Registries of named plug-ins: model architectures, prediction backends, explanation methods.

A plug-in is a module that registers its entry on import. Each registry names the packages its built-in plug-ins
live in and imports every module of them on the first lookup, so adding an architecture, a backend or an
explanation method is adding one module there, and a layer below (core, inference) can look up what a layer above
provides without importing it. User code registers its own entries the same way, before the lookup.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, Iterator, TypeVar

from medclass.core.errors import MedclassError

T = TypeVar("T")


class Registry(Generic[T]):
    """`kind` names the entries in errors ("unknown backend 'x'; available: ..."); `plugins`: the packages whose
    modules are imported before the first lookup; `hint`: what to add to an unknown name's error."""

    def __init__(self, kind: str, plugins: tuple[str, ...] = (), hint: str = ""):
        self.kind, self.plugins, self.hint = kind, plugins, hint
        self._entries: dict[str, T] = {}
        self._state = "empty"  # -> "loading" -> "loaded"

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        entries = self._loaded()
        if name not in entries:
            raise MedclassError(f"unknown {self.kind} {name!r}; available: {', '.join(entries)}{self.hint}")
        return entries[name]

    def names(self) -> list[str]:
        """In registration order: the built-in plug-ins' order, e.g. the default explanation method first."""
        return list(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._loaded().items()))

    def _loaded(self) -> dict[str, T]:
        if self._state == "empty":
            self._state = "loading"  # a plug-in looking entries up while it registers sees those so far
            try:
                for package in self.plugins:
                    import_package(package)
            except BaseException:
                self._state = "empty"
                raise
            self._state = "loaded"
        return self._entries


def import_package(name: str) -> None:
    """Import a package and every module directly inside it (each registers what it provides)."""
    package = importlib.import_module(name)
    for module in pkgutil.iter_modules(getattr(package, "__path__", [])):
        importlib.import_module(f"{name}.{module.name}")

"""Old import paths of moved modules, kept working for one release (the README's changelog lists them)."""

from __future__ import annotations

import importlib
import warnings


def moved_to(old: str, new: str):
    """The `__getattr__` of the module left at `old`: each name is served from `new`, with a DeprecationWarning
    naming where to import it from now."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            value = getattr(importlib.import_module(new), name)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r}") from None
        warnings.warn(f"{old} moved to {new}: import {name} from there ({old} goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return value

    return __getattr__

"""Task kinds and the rules for task and class names, shared by the readers, the task heads and the artefact's
header check."""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Sequence

KINDS = ("binary", "multiclass", "multilabel")
# Unicode categories a task or class name may not hold: control characters (newline, tab, NUL, escape, ...) and line
# or paragraph separators. Names become CSV columns, JSON keys, lines of reports and of the server's log.
FORBIDDEN_IN_NAMES = ("Cc", "Zl", "Zp")


def name_problem(name) -> str | None:
    """Why `name` cannot name a task or a class (a phrase to follow the name), or None when it can: it must be
    non-empty text without control characters."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not text"
    if not name.strip():
        return "is empty"
    bad = next((c for c in name if unicodedata.category(c) in FORBIDDEN_IN_NAMES), None)
    return None if bad is None else f"holds the control character {bad!r}"


def repeated(values: Sequence) -> list:
    """The values that occur more than once, in order of first occurrence: in linear time, since a header from
    elsewhere may list 100,000 class names."""
    counts = Counter(values)
    return [value for value, n in counts.items() if n > 1]

"""How a list of choices reads in help texts and messages: 'torch, onnx or ncnn'."""

from __future__ import annotations

from typing import Iterable


def either(words: Iterable[str]) -> str:
    """'a', 'a or b', 'a, b or c' ('' for none)."""
    words = list(words)
    return f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else "".join(words)

"""Inference: the model artefact, the Predictor over it and the backends that run its network (the runtimes
besides PyTorch are in medclass.export and register in inference/backends.py `BACKENDS`).

Names load on first use, so the command line can read the backend registry (its help text) without importing
PyTorch.
"""

from __future__ import annotations

import importlib

_SOURCES = {"ModelArtifact": "medclass.core.artifact", "TorchBackend": "medclass.inference.backends",
            "BACKENDS": "medclass.inference.backends", "BackendEntry": "medclass.inference.backends",
            "load_predictor": "medclass.inference.loading", "Predictor": "medclass.inference.predictor"}

__all__ = sorted(_SOURCES)
# Names that moved up a layer: inference may not import them (an export builds on inference), so only the error
# says where they went.
_MOVED = {"OnnxBackend": "medclass.export.onnx", "NcnnBackend": "medclass.export.ncnn"}


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(f"{__name__}.{name} moved to {_MOVED[name]}: import it from there")
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_SOURCES[name]), name)

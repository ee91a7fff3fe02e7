"""Evaluation: predict a split, score it like a clinical paper, calibrate, choose operating points, compare runs."""

from __future__ import annotations

import importlib

_SOURCES = {"evaluate_run": "evaluate", "auc_score": "metrics", "task_metrics": "metrics"}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    # loaded on first use: TrainConfig reads evaluation/rules.py's choices at every start of the command line,
    # which must not pay for scikit-learn and PyTorch
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)

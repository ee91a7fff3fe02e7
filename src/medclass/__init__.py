"""medclass: train, evaluate, explain and serve medical image classifiers.

The public API, importable from here: `open_dataset`, `TrainConfig`, `train`, `evaluate_run`, `Predictor`,
`load_predictor`, `ModelArtifact`, `ExplainOptions` (explanations: `medclass.explain`). Each loads on first use, so `import medclass` stays
cheap.
"""

from __future__ import annotations

import importlib

from medclass.core.errors import MedclassError

__version__ = "0.1.0"

_PUBLIC = {"open_dataset": "medclass.data", "TrainConfig": "medclass.training", "train": "medclass.training",
           "evaluate_run": "medclass.evaluation", "Predictor": "medclass.inference",
           "load_predictor": "medclass.inference", "ModelArtifact": "medclass.core.artifact",
           "ExplainOptions": "medclass.explain"}

__all__ = ["MedclassError", "__version__", *_PUBLIC]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'medclass' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)

"""The model artefact a run leaves (core/artifact.py: ModelArtifact): the best checkpoint's network with everything
needed to predict, and where it came from."""

from __future__ import annotations

import platform
from pathlib import Path

import lightning as L
import torch

import medclass
from medclass.core.artifact import ModelArtifact
from medclass.core.preprocessing import Preprocessing
from medclass.training.config import TrainConfig
from medclass.training.module import ClassifierModule


def trained_artifact(config: TrainConfig, module: ClassifierModule, preprocessing: Preprocessing,
                     checkpoint: str | Path, best_val_auc: float) -> ModelArtifact:
    """The artefact of `module` as trained (the best checkpoint's weights already loaded into it), untuned: its
    heads' temperatures and thresholds are chosen next, on validation (training/tuning.py), before it is saved."""
    return ModelArtifact(
        model_name=config.model, heads=module.task_heads, preprocessing=preprocessing,
        state_dict=module.model.state_dict(), model_kwargs=module.model_kwargs,
        tta=["hflip"] if config.hflip else [], modality=config.modality, description=config.description,
        provenance={"data": config.data, "run_dir": str(config.run_dir), "best_checkpoint": Path(checkpoint).name,
                    "best_val_auc": best_val_auc, "seed": config.seed, **versions()})


def versions() -> dict:
    """What a result depends on besides the config: written into config.yaml and the artefact's provenance."""
    import timm

    return {"medclass": medclass.__version__, "torch": str(torch.__version__), "lightning": L.__version__,
            "timm": timm.__version__, "python": platform.python_version()}

"""What a served model is for and whether its answers mean anything: the part of /models (and of the page, before
any upload) that comes from the artefact itself, and the warnings `medclass serve` prints at start.
"""

from __future__ import annotations

import math
from pathlib import Path

from medclass.explain.explainer import method_names
from medclass.explain.options import polarity_for
from medclass.core.artifact import ModelArtifact

# A model whose validation AUC is this close to 0.5 ranks images no better than a coin.
CHANCE_MARGIN = 0.05
# Temperature scaling of a network that learned something lands between about 0.5 and 3; one that divides the
# logits by more than this has found they carry (almost) nothing: a model at chance was calibrated to 16.7.
FLAT_TEMPERATURE = 5.0


def about(artifact: ModelArtifact, backend: str = "torch") -> dict:
    """{description, data, modality, input, explain}: what the model is for and which explanations it offers."""
    data = artifact.provenance.get("data")
    # CAMs differentiate through the PyTorch network; other backends offer the methods that use none
    methods = method_names() if backend == "torch" else method_names(uses_network=False)
    return {"description": artifact.description, "data": Path(str(data)).name if data else None,
            "modality": artifact.modality,
            "input": {"size": artifact.preprocessing.img_size, "channels": artifact.preprocessing.in_chans},
            "explain": {"methods": methods, "polarity": polarity_for(artifact.modality)}}


def chance_warnings(artifact: ModelArtifact, test_metrics: dict | None = None) -> list[str]:
    """Why this model's answers may be no better than chance, one sentence each (empty when nothing says so): its
    validation AUC at training, a flattening calibration temperature, a test AUC at chance."""
    found = []
    val_auc = artifact.provenance.get("best_val_auc")
    if at_chance(val_auc):
        found.append(f"validation AUC {val_auc:.3f} at training: no better than chance")
    for head in artifact.heads:
        if head.temperature >= FLAT_TEMPERATURE:
            found.append(f"task {head.name}: calibration temperature {head.temperature:.1f} flattens its "
                         "probabilities towards equal: the network's outputs barely tell its classes apart")
    for task, metrics in (test_metrics or {}).items():
        if at_chance(metrics.get("auc")):
            found.append(f"task {task}: test AUC {metrics['auc']:.3f} (n = {metrics.get('n')}): no better than chance")
    return found


def at_chance(auc) -> bool:
    return isinstance(auc, (int, float)) and math.isfinite(auc) and abs(auc - 0.5) < CHANCE_MARGIN

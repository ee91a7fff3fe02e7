"""What `medclass models` shows: each registered model's default input size, parameter count and weights."""

from __future__ import annotations

import torch

from medclass.core.architectures import create_model, list_models, model_entry


def parameter_count(name: str, num_classes: int = 2) -> int:
    """Counted on the meta device: shapes without memory or initialisation, so VGG-16 costs nothing to count."""
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, in_chans=3)
    return sum(p.numel() for p in model.parameters())


def catalogue() -> list[dict]:
    rows = []
    for name in list_models():
        entry = model_entry(name)
        rows.append({"name": name, "default_size": entry.default_size, "params": parameter_count(name),
                     "weights": entry.weights, "description": entry.description})
    return rows

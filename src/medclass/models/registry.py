"""One registry and one factory for every model medclass can train.

Every registered builder returns an `nn.Module` answering timm's small contract (`forward_features`,
`forward_head`, `get_classifier`, `reset_classifier`), so heads, CAMs and feature caching work for any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from medclass.errors import MedclassError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    min_input: int  # smallest input side the architecture accepts


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, min_input: int = 16):
    def decorate(builder: Callable[..., nn.Module]):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, builder, description, min_input)
        return builder

    return decorate


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise MedclassError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, num_classes: int, in_chans: int = 3, pretrained: bool | str | Path = False,
                 **kwargs) -> nn.Module:
    """Build a registered model.

    `pretrained`: False (random init), True (download the published weights, needs internet), or the path of a
    local weights file (air-gapped use). Architectures without published weights refuse `pretrained`.
    """
    if num_classes < 2:
        raise MedclassError(f"num_classes must be >= 2 (binary tasks use two outputs); got {num_classes}")
    if in_chans not in (1, 3):
        raise MedclassError(f"in_chans must be 1 (grayscale) or 3 (RGB); got {in_chans}")
    if isinstance(pretrained, (str, Path)) and not Path(pretrained).is_file():
        raise MedclassError(f"{pretrained}: pretrained weights file not found")
    return model_entry(name).builder(num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, **kwargs)

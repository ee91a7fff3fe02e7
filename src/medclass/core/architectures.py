"""One registry and one factory for every model medclass can train: the networks a model artefact names.

Every builder returns an `nn.Module` answering timm's small contract (`forward_features`, `forward_head`,
`get_classifier`, `reset_classifier`), so heads, CAMs and feature caching work for any of them. Besides the
registered short names, `timm:<arch>` builds any timm architecture (models/timm_models.py). The architectures
themselves are plug-ins in `medclass.models` (core/registry.py), found on the first lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from medclass.core.choices import HEADS, MLP_HIDDEN  # noqa: F401  (imported from here too)
from medclass.core.errors import MedclassError
from medclass.core.registry import Registry



@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    min_input: int  # smallest input side the architecture accepts
    default_size: int | None = None  # input side of its pretrained weights; None: the data's own size
    weights: str = "none"  # where pretrained weights come from
    # The layer whose activations a CAM weighs (explain/cam.py); None: the deepest feature map timm's
    # `feature_info` names, which every timm backbone declares.
    cam_layer: Callable[[nn.Module], nn.Module] | None = None


MODELS: Registry[ModelEntry] = Registry("model", plugins=("medclass.models",),
                                       hint=", or any timm architecture as timm:<name> (medclass models --timm "
                                            "PATTERN lists them)")
_PREFIXES: dict[str, Callable[[str], ModelEntry]] = {}  # "timm:" -> entry for the name after the prefix


def register_model(name: str, description: str, min_input: int = 16, default_size: int | None = None,
                   weights: str = "none", cam_layer: Callable[[nn.Module], nn.Module] | None = None):
    def decorate(builder: Callable[..., nn.Module]):
        MODELS.register(name, ModelEntry(name, builder, description, min_input, default_size, weights, cam_layer))
        return builder

    return decorate


def register_prefix(prefix: str, resolve: Callable[[str], ModelEntry]) -> None:
    _PREFIXES[prefix] = resolve


def list_models() -> list[str]:
    return sorted(MODELS.names())


def model_entry(name: str) -> ModelEntry:
    entries = dict(MODELS)  # the plug-ins loaded, prefixes registered
    for prefix, resolve in _PREFIXES.items():
        if name.startswith(prefix):
            return resolve(name[len(prefix):])
    if name not in entries:
        raise MedclassError(f"unknown model {name!r}; available: {', '.join(sorted(entries))}{MODELS.hint}")
    return entries[name]


def cam_target_layer(model_name: str, model: nn.Module) -> nn.Module:
    """The layer a CAM explains `model` (built as `model_name`) at: the entry's own choice, else the last feature map
    in timm's `feature_info`. Several-task models keep their backbone, so the same layer serves them."""
    entry = model_entry(model_name)
    if entry.cam_layer is not None:
        return entry.cam_layer(model)
    info = getattr(model, "feature_info", None)
    if not info:
        raise MedclassError(f"model {model_name!r}: no CAM target layer registered and no timm feature_info to "
                            "take the last feature map from; register one with register_model(cam_layer=...)")
    return model.get_submodule(info[-1]["module"])


def create_model(name: str, num_classes: int, in_chans: int = 3, pretrained: bool | str | Path = False,
                 head: str = "linear", task_outputs: list[int] | None = None, **kwargs) -> nn.Module:
    """Build a model by registered name or `timm:<arch>`.

    `pretrained`: False (random init), True (the published weights: downloaded, or the packaged file where one is
    installed), or the path of a local weights file (air-gapped use; `model.weights_report` then says which tensors
    loaded). `head`: linear, or mlp (pool -> Linear 256 -> ReLU -> Dropout -> Linear), always newly initialised.
    `task_outputs`: several tasks, the outputs of each (summing to num_classes): one head per task on the shared
    backbone (`TaskHeads`), their logits side by side.
    """
    if task_outputs is not None and sum(task_outputs) != num_classes:
        raise MedclassError(f"task_outputs {task_outputs} do not add up to num_classes {num_classes}")
    if num_classes < 2 and not task_outputs:
        raise MedclassError(f"num_classes must be >= 2 (binary tasks use two outputs); got {num_classes}")
    if in_chans not in (1, 3):
        raise MedclassError(f"in_chans must be 1 (grayscale) or 3 (RGB); got {in_chans}")
    if head not in HEADS:
        raise MedclassError(f"head must be one of {', '.join(HEADS)}; got {head!r}")
    if isinstance(pretrained, (str, Path)) and not Path(pretrained).is_file():
        raise MedclassError(f"{pretrained}: pretrained weights file not found")
    model = model_entry(name).builder(num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, **kwargs)
    drop_rate = kwargs.get("drop_rate") or 0.0
    if task_outputs and len(task_outputs) > 1:
        replace_classifier(model, TaskHeads(linear_classifier(model, "several tasks").in_features, task_outputs, head,
                                            drop_rate))
    elif head == "mlp":
        replace_classifier(model, classifier_head(linear_classifier(model, "--head mlp").in_features, num_classes,
                                                  head, drop_rate))
    return model


def classifier_head(in_features: int, outputs: int, head: str, drop_rate: float) -> nn.Module:
    if head == "linear":
        return nn.Linear(in_features, outputs)
    return nn.Sequential(nn.Linear(in_features, MLP_HIDDEN), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
                         nn.Linear(MLP_HIDDEN, outputs))


class TaskHeads(nn.Module):
    """One classifier per task (linear or MLP) on the shared pooled features; their logits side by side, in task
    order (medclass/core/heads.py reads them). A single Linear over all outputs would compute the same linear heads, but
    MLP heads must not share their hidden layer, and one module per task keeps each head's weights apart."""

    def __init__(self, in_features: int, task_outputs: list[int], head: str, drop_rate: float):
        super().__init__()
        self.heads = nn.ModuleList(classifier_head(in_features, n, head, drop_rate) for n in task_outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(features) for head in self.heads], 1)


def linear_classifier(model: nn.Module, needed_by: str) -> nn.Linear:
    classifier = model.get_classifier()
    if not isinstance(classifier, nn.Linear):
        raise MedclassError(f"{needed_by} needs a linear classifier to replace; this model's is "
                            f"{type(classifier).__name__}")
    return classifier


def classifier_name(model: nn.Module) -> str:
    """Where the architecture keeps its final classifier: fc, classifier, head, head.fc."""
    classifier = model.get_classifier()
    return next(name for name, module in model.named_modules() if module is classifier)


def replace_classifier(model: nn.Module, new: nn.Module) -> None:
    """Put `new` where the architecture keeps its final classifier (fc, classifier, head, head.fc): the pooling
    and flattening before it stay the architecture's own."""
    parent_path, _, attr = classifier_name(model).rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, new)


def features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits `model(x)` gives in eval mode, and the pooled features its classifier reads (timm's
    `forward_head(..., pre_logits=True)`): what the input guard scores."""
    features = model.forward_head(model.forward_features(x), pre_logits=True)
    return model.get_classifier()(features), features


class WithFeatures(nn.Module):
    """A network whose outputs are (logits, pooled features): what an export carries for the input guard."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return features_and_logits(self.model, x)


def main_classifier(model: nn.Module, outputs: int):
    """The main task's last linear layer on the pooled features as (weight, bias), or None when it is not one
    (an MLP head): ViM reads it. Several linear heads: the first one's."""
    classifier = model.get_classifier()
    if isinstance(classifier, TaskHeads):
        classifier = classifier.heads[0]
    if not isinstance(classifier, nn.Linear):
        return None
    return classifier.weight.detach()[:outputs], classifier.bias.detach()[:outputs]

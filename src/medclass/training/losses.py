"""The training loss over every task a model learns: each head's own loss, summed with the configured weights.

Binary and multiclass heads: cross-entropy (or focal loss) over the head's softmax, label smoothing and class
weights as configured. Multilabel heads: one binary cross-entropy per finding, smoothed the same way, with a
positive weight per finding for `--class-weights balanced`. Samples without a label for a task add nothing to that
task's loss; a batch in which no sample has one adds zero (not NaN).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from medclass.core.heads import TaskHead, output_slices, target_slices
from medclass.training.imbalance import FocalLoss


class TaskLoss(nn.Module):
    def __init__(self, heads: Sequence[TaskHead], task_weights: dict[str, float] | None = None,
                 class_weights: dict[str, list[float]] | None = None, label_smoothing: float = 0.0,
                 loss: str = "ce", focal_gamma: float = 2.0):
        super().__init__()
        self.heads = list(heads)
        self.weights = [float((task_weights or {}).get(h.name, 1.0)) for h in self.heads]
        self.outputs, self.targets = output_slices(self.heads), target_slices(self.heads)
        self.label_smoothing = label_smoothing
        self.losses = nn.ModuleList()
        for head in self.heads:
            given = (class_weights or {}).get(head.name)
            weight = torch.tensor(given, dtype=torch.float32) if given else None
            if head.kind == "multilabel":
                self.losses.append(MaskedMultilabelLoss(weight, label_smoothing))
            elif loss == "focal":
                self.losses.append(FocalLoss(focal_gamma, weight, label_smoothing))
            else:
                self.losses.append(nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        for head, loss, weight, out, cols in zip(self.heads, self.losses, self.weights, self.outputs, self.targets):
            total = total + weight * self.task_loss(head, loss, logits[:, out], targets[:, cols])
        return total

    @staticmethod
    def task_loss(head: TaskHead, loss: nn.Module, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if head.kind == "multilabel":
            return loss(logits, target)
        labelled = target[:, 0] >= 0
        if not labelled.any():
            return logits.sum() * 0.0  # keeps the graph (DDP expects every head to get a gradient)
        if labelled.all():  # the common case: no copy
            return loss(logits, target[:, 0])
        return loss(logits[labelled], target[labelled, 0])


class MaskedMultilabelLoss(nn.Module):
    """Mean binary cross-entropy over the labelled (image, finding) entries. `pos_weight`: per finding, the weight
    of its positive images (balanced: negatives / positives)."""

    def __init__(self, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labelled = target >= 0
        smooth = target.clamp(min=0).float() * (1 - self.label_smoothing) + self.label_smoothing / 2
        entries = F.binary_cross_entropy_with_logits(logits.float(), smooth, pos_weight=self.pos_weight,
                                                     reduction="none")
        return (entries * labelled).sum() / labelled.sum().clamp(min=1)

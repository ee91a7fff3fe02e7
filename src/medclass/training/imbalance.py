"""Class imbalance, each remedy chosen by one option: a class-weighted loss (`--class-weights balanced`), a
sampler that draws classes equally (`--sampler weighted`) or repeats minority images up to the majority's count
(`--sampler oversample`), and focal loss (`--loss focal`), which lowers the weight of images already learnt.

All of them move the decision towards minority classes at the cost of accuracy at the argmax; the default is none
of them (see TrainConfig), and the operating point is the place to trade sensitivity for specificity.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler, WeightedRandomSampler

from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead, encode_targets, per_task
from medclass.data.base import ImageDataset
from medclass.training.choices import CLASS_WEIGHTS, LOSSES, SAMPLERS  # noqa: F401  (imported from here too)



def balanced_class_weights(targets: np.ndarray, n_classes: int) -> list[float]:
    """Inverse class frequency, scaled so that a balanced set gets weight 1 everywhere (scikit-learn's rule)."""
    counts = np.bincount(targets, minlength=n_classes).astype(float)
    return (counts.sum() / (n_classes * np.maximum(counts, 1))).tolist()


class OversampleSampler(Sampler[int]):
    """Each epoch: every image of every class, plus minority images drawn again at random (without repeating one
    before all are used) until each class has as many as the largest; shuffled."""

    def __init__(self, targets: np.ndarray, seed: int = 0):
        self.by_class = [np.flatnonzero(targets == c) for c in np.unique(targets)]
        self.per_class = max(len(ix) for ix in self.by_class)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.per_class * len(self.by_class)

    def __iter__(self) -> Iterator[int]:
        drawn = []
        for ix in self.by_class:
            copies, rest = divmod(self.per_class, len(ix))
            drawn += [np.tile(ix, copies), self.rng.permutation(ix)[:rest]]
        return iter(self.rng.permutation(np.concatenate(drawn)).tolist())


def loss_class_weights(kind: str, dataset: ImageDataset, task_heads: list[TaskHead]) -> dict[str, list[float]]:
    """`balanced`, per task, from its labelled training images: inverse class frequency (single-label), or each
    finding's negatives / positives as the weight of its positives (multi-label). `none`: no weights."""
    if kind == "none":
        return {}
    train = dataset.subset("train")
    targets = per_task(task_heads, encode_targets(task_heads, train.samples, where=train.name), "targets")
    weights = {}
    for task in task_heads:
        labelled = targets[task.name][(targets[task.name] >= 0).all(1)]
        if task.kind == "multilabel":
            positives = labelled.sum(0)
            weights[task.name] = ((len(labelled) - positives) / np.maximum(positives, 1)).tolist()
        else:
            weights[task.name] = balanced_class_weights(labelled[:, 0], len(task.classes))
    return weights


def train_sampler(kind: str, dataset: ImageDataset, main_task: TaskHead, seed: int) -> Sampler | None:
    """Samplers balance the main task's classes, so they need one class per training image."""
    if kind == "none":
        return None
    targets = dataset.subset("train").targets() if main_task.kind != "multilabel" else None
    if targets is None or (targets < 0).any():
        why = "it is multi-label" if targets is None else "some have no label"
        raise MedclassError(f"--sampler {kind} balances the classes of the main task {main_task.name!r}, which "
                            f"needs one class per training image ({why}); use --class-weights balanced instead")
    return make_sampler(kind, targets, seed)


def make_sampler(kind: str, targets: np.ndarray, seed: int) -> Sampler | None:
    if kind == "none":
        return None
    if kind == "oversample":
        return OversampleSampler(targets, seed)
    per_image = 1.0 / np.bincount(targets)[targets]
    return WeightedRandomSampler(torch.as_tensor(per_image, dtype=torch.double), num_samples=len(targets),
                                 replacement=True, generator=torch.Generator().manual_seed(seed))


class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)^gamma; gamma 0 is cross-entropy.
    Class weights and label smoothing act as in nn.CrossEntropyLoss."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.gamma, self.label_smoothing = gamma, label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = nn.functional.cross_entropy(logits, target, weight=self.weight, reduction="none",
                                         label_smoothing=self.label_smoothing)
        p_true = logits.float().softmax(1).gather(1, target[:, None]).squeeze(1)
        focal = (1 - p_true).pow(self.gamma) * ce
        if self.weight is None:
            return focal.mean()
        return focal.sum() / self.weight[target].sum()  # the weighted mean, as nn.CrossEntropyLoss takes it

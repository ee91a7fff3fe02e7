"""Optimisers and learning-rate schedules by name: these tables are `--optimizer` and `--scheduler`'s choices
(TrainConfig takes them from here), so a name offered is a name implemented."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # imported where an optimiser is built: TrainConfig reads these tables' names at every CLI start
    import torch


def _sgd(groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)


def _adamw(groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    import torch

    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def _adam(groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    import torch

    return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)


OPTIMIZERS = {"adamw": _adamw, "adam": _adam, "sgd": _sgd}


def _onecycle(optimizer: torch.optim.Optimizer, epochs: int, steps: Callable[[], int]) -> dict:
    import torch

    # each group peaks at its own rate (two-stage: the backbone's is a share of the classifier's)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=max(steps(), 1))
    return {"scheduler": schedule, "interval": "step"}


def _cosine(optimizer: torch.optim.Optimizer, epochs: int, steps: Callable[[], int]) -> dict:
    import torch

    return {"scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1)),
            "interval": "epoch"}


def _step(optimizer: torch.optim.Optimizer, epochs: int, steps: Callable[[], int]) -> dict:
    """MedMNIST's baseline schedule: x0.1 at 50 % and 75 % of the epochs."""
    import torch

    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[epochs // 2, epochs * 3 // 4], gamma=0.1)
    return {"scheduler": schedule, "interval": "epoch"}


SCHEDULERS = {"onecycle": _onecycle, "cosine": _cosine, "step": _step, "none": None}


def optimization(optimizer: str, scheduler: str, groups: list[dict], lr: float, weight_decay: float, epochs: int,
                 steps: Callable[[], int]):
    """What LightningModule.configure_optimizers returns for these names: the optimiser alone, or it with its
    schedule. `steps()`: the optimiser steps of the whole run, which the one-cycle schedule spans; asked only by
    it, since counting them loads the training data early."""
    built = OPTIMIZERS[optimizer](groups, lr, weight_decay)
    schedule = SCHEDULERS[scheduler]
    return built if schedule is None else {"optimizer": built, "lr_scheduler": schedule(built, epochs, steps)}

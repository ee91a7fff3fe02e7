"""A frozen backbone's features, checked at the first training batch, and its BatchNorm statistics re-estimated on
the training images when asked (`--bn-recalibrate`).

A frozen backbone normalises with the running statistics stored in its weights file. When they do not fit the
images (a file whose statistics came from other data, a damaged or hand-made file), its features are constant,
huge or not finite: the head learns nothing, validation AUC stays at 0.5, and nothing else says why (a run on such
a file trained at a loss of 2.4e10 for every epoch). The check names the cause and the fixes before an epoch is
spent. Re-estimating the statistics runs the training images through the backbone once, its BatchNorm layers in
training mode and without gradients: each layer's statistics then describe what it sees on this data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medclass.data.base import ImageDataset
from medclass.core.errors import MedclassError
from medclass.training.augment import BatchAugment
from medclass.training.augment_policy import resolve_policy
from medclass.training.datamodule import decode_all
from medclass.core.preprocessing import Preprocessing

RECALIBRATION_IMAGES = 512  # training images drawn (seeded) to re-estimate the statistics
RECALIBRATION_BATCH = 32
HUGE_FEATURES = 1e4  # pretrained pooled features are of order 1; a mean size above this is a broken backbone
FIXES = ("--bn-recalibrate (re-estimates the BatchNorm statistics on the training images before training), "
         "--finetune two-stage (the backbone, and its statistics, train after --head-epochs) or --finetune full")


def backbone_batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of everything but the classifier."""
    head = set(model.get_classifier().modules())
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in head]


def feature_problem(features: torch.Tensor) -> str | None:
    """What makes (N, D) pooled features useless to a classifier, or None: not finite, the same for every image,
    or of an absurd size."""
    features = features.detach().float()
    if not torch.isfinite(features).all():
        share = float((~torch.isfinite(features)).float().mean())
        return f"not finite ({share:.0%} of the values are NaN or infinite)"
    size = float(features.abs().mean())
    if len(features) > 1 and float(features.std(0).max()) <= 1e-6 * max(1.0, size):
        return f"the same for every image (mean size {size:.3g}, no variation across {len(features)} images)"
    if size > HUGE_FEATURES:
        return f"of an absurd size (mean |feature| {size:.3g}; pretrained features are of order 1)"
    return None


def check_frozen_features(features: torch.Tensor, stops: bool) -> str | None:
    """Raise (`stops`: a backbone frozen for the whole run) or return a warning line when the features of the first
    training batch are useless; None when they look usable."""
    problem = feature_problem(features)
    if problem is None:
        return None
    message = (f"the frozen backbone's features are {problem} on the first training batch, so the classifier cannot "
               "learn from them (validation AUC would stay at 0.5). Most often the weights file's BatchNorm "
               "statistics do not fit these images")
    if stops:
        raise MedclassError(f"{message}. Fix: {FIXES}; stopped before the first epoch")
    return (f"{message}. The classifier-only first stage trains on them as they are, until the backbone trains; "
            "--bn-recalibrate re-estimates the statistics on the training images first")


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, train: ImageDataset, preprocessing: Preprocessing, device: torch.device,
                          num_workers: int = 0, seed: int = 0, limit: int = RECALIBRATION_IMAGES) -> int:
    """Re-estimate the backbone's BatchNorm running statistics on up to `limit` training images (a seeded draw),
    as a plain average over them; every weight stays as it is. Returns the number of images used."""
    norms = backbone_batchnorms(model)
    if not norms:
        return 0
    chosen = np.sort(np.random.default_rng(seed).permutation(len(train))[:limit])
    images = decode_all(train.with_samples([train.samples[i] for i in chosen]), preprocessing, num_workers).images
    normalize = BatchAugment(preprocessing, resolve_policy("none", hflip=False))
    momenta, was_training = [m.momentum for m in norms], model.training
    model.to(device).eval()  # dropout and everything else as at inference; only the BatchNorm layers collect
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    used = 0
    for start in range(0, len(images), RECALIBRATION_BATCH):
        batch = images[start:start + RECALIBRATION_BATCH]
        if len(batch) < 2 and used:  # one image gives no batch statistics
            break
        model.forward_features(normalize(batch.to(device), train=False))
        used += len(batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return used

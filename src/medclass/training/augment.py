"""Augmentation of whole uint8 batches on the training device (GPU or CPU), after the batch is transferred.

Images travel as uint8 (decoded and resized once, by `Preprocessing.load_transform`); each batch is scaled,
augmented with one random affine warp per image (rotation, shift, zoom, crop and flip folded into one
`grid_sample`), and normalised here. Per-image PIL augmentation in the main process was the bottleneck of
small-image training; this costs one kernel per batch. Validation batches get only scaling and normalisation,
which equals `Preprocessing.eval_transform` exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medclass.errors import MedclassError
from medclass.transforms import Preprocessing

AUGMENTATIONS = ("none", "light", "strong")


class BatchAugment:
    """`light`: rotation +-10 deg, shift +-10 %, zoom 0.9-1.1 (MedMNIST-scale images). `strong`: also a random
    crop of 70-100 % of the area and brightness/contrast jitter of +-20 %. `hflip` adds mirror images."""

    def __init__(self, preprocessing: Preprocessing, augment: str = "light", hflip: bool = True):
        if augment not in AUGMENTATIONS:
            raise MedclassError(f"augment must be one of {', '.join(AUGMENTATIONS)}; got {augment!r}")
        self.preprocessing, self.augment, self.hflip = preprocessing, augment, hflip
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # mean/std, made once per device

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (N, C, H, W) -> normalised float32; augmented when `train`."""
        if images.dtype != torch.uint8:
            raise MedclassError(f"batch augmentation expects uint8 images; got {images.dtype}")
        x = images.float().div_(255)
        if train and self.augment != "none":
            x = self._warp(x)
            if self.augment == "strong":
                x = self._jitter(x)
        return self._normalize(x)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The batched equivalent of eval_transform's Normalize."""
        if x.device not in self._stats:
            shape = (1, -1, 1, 1)
            self._stats[x.device] = (torch.tensor(self.preprocessing.mean, device=x.device).view(shape),
                                     torch.tensor(self.preprocessing.std, device=x.device).view(shape))
        mean, std = self._stats[x.device]
        return (x - mean) / std

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        n, device = len(x), x.device
        angle = _uniform(n, -10, 10, device) * math.pi / 180
        zoom = _uniform(n, 0.9, 1.1, device)
        shift = _uniform((n, 2), -0.2, 0.2, device)  # normalised coordinates span 2: +-0.2 is +-10 % of the side
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        if self.augment == "strong":  # crop: look at a random window holding 70-100 % of the area
            side = _uniform(n, 0.7, 1.0, device).sqrt()
            offset = (1 - side)[:, None] * _uniform((n, 2), -1, 1, device)
            theta = theta * side[:, None, None]
            theta[:, :, 2] += offset
        if self.hflip:  # mirror half of the images: negate the x column of their sampling grid
            flip = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
            theta[:, :, 0] *= flip[:, None]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def _jitter(x: torch.Tensor) -> torch.Tensor:
        n, device = len(x), x.device
        brightness = _uniform((n, 1, 1, 1), 0.8, 1.2, device)
        contrast = _uniform((n, 1, 1, 1), 0.8, 1.2, device)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * contrast + mean).mul_(brightness).clamp_(0, 1)


def _uniform(shape, low: float, high: float, device) -> torch.Tensor:
    return torch.empty(shape, device=device).uniform_(low, high)

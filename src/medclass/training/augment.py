"""Augmentation of whole uint8 batches on the training device (GPU or CPU), after the batch is transferred.

Images travel as uint8 (decoded and resized once, by `Preprocessing.load_transform`); each training batch is
augmented as its `AugmentPolicy` (training/augment_policy.py) says, then normalised here:
1. `strong` only: one photometric TrivialAugment-Wide op per image (torchvision v2, on the uint8 tensors);
2. geometry: one random affine matrix per image (rotation, quarter turns, shear, zoom, shift, crop and flips
   folded together) and one `grid_sample` for the whole batch. Per-image PIL augmentation in the main process
   was the bottleneck of small-image training, and this batched warp measured 2x faster, so geometry stays here
   rather than in torchvision's per-image transforms;
3. brightness/contrast jitter for the batch at once; hue/saturation per image with v2.ColorJitter (colour only).
Validation batches get only scaling and normalisation, which equals `Preprocessing.eval_transform` exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from medclass.core.errors import MedclassError
from medclass.training.augment_policy import AugmentPolicy
from medclass.core.preprocessing import Preprocessing

GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


class PhotometricTrivialAugment(v2.TrivialAugmentWide):
    """TrivialAugment-Wide's intensity ops only (brightness, contrast, sharpness, posterize, solarize, equalize,
    ...): its rotation reaches 135 deg, which the modality's bounds (e.g. 5 deg for chest X-rays) must not let
    through. On 1-channel images its `Color` op is a no-op; every other op works on them."""

    _AUGMENTATION_SPACE = {name: op for name, op in v2.TrivialAugmentWide._AUGMENTATION_SPACE.items()
                           if name not in GEOMETRIC_OPS}


class BatchAugment:
    def __init__(self, preprocessing: Preprocessing, policy: AugmentPolicy | None = None):
        self.preprocessing, self.policy = preprocessing, policy or AugmentPolicy()
        self._trivial = PhotometricTrivialAugment()
        self._colour = v2.ColorJitter(saturation=self.policy.saturation or None, hue=self.policy.hue or None)
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # mean/std, made once per device

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (N, C, H, W) -> normalised float32; augmented when `train`."""
        if images.dtype != torch.uint8:
            raise MedclassError(f"batch augmentation expects uint8 images; got {images.dtype}")
        policy = self.policy
        if not (train and policy.trains):
            return self._normalize(images.float().div_(255))
        if policy.trivial_augment:
            images = torch.stack([self._trivial(image) for image in images])
        x = self._warp(images.float().div_(255))
        if policy.brightness_contrast:
            x = self._jitter(x, policy.brightness_contrast)
        if (policy.saturation or policy.hue) and x.shape[1] == 3:
            x = torch.stack([self._colour(image) for image in x])
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
        """One sampling matrix per image (output -> input coordinates); the random draws of `light` come in the
        order they always did, so a seeded `light` run reproduces earlier results."""
        p, n, device = self.policy, len(x), x.device
        angle = _uniform(n, -p.rotation, p.rotation, device) * math.pi / 180
        zoom = _uniform(n, 1 - p.zoom, 1 + p.zoom, device)
        shift = _uniform((n, 2), -2 * p.shift, 2 * p.shift, device)  # normalised coordinates span 2
        if p.rot90:  # a whole quarter turn maps pixel centres onto pixel centres of a square image
            angle = angle + torch.randint(0, 4, (n,), device=device) * (math.pi / 2)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        columns = [torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)]  # rotation / zoom, by column
        if p.shear:  # rotation @ [[1, tan s], [0, 1]]: the x shear adds tan(s) x the first column to the second
            tan = torch.tan(_uniform(n, -p.shear, p.shear, device) * math.pi / 180)
            columns[1] = columns[1] + tan[:, None] * columns[0]
        theta = torch.stack([*columns, shift], 2)
        if p.crop < 1:  # look at a random window holding crop-100 % of the area
            side = _uniform(n, p.crop, 1.0, device).sqrt()
            offset = (1 - side)[:, None] * _uniform((n, 2), -1, 1, device)
            theta = theta * side[:, None, None]
            theta[:, :, 2] += offset
        for enabled, column in ((p.hflip, 0), (p.vflip, 1)):
            if enabled:  # mirror half of the images: negate that column of their sampling grid
                flip = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
                theta[:, :, column] *= flip[:, None]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def _jitter(x: torch.Tensor, strength: float) -> torch.Tensor:
        n, device = len(x), x.device
        brightness = _uniform((n, 1, 1, 1), 1 - strength, 1 + strength, device)
        contrast = _uniform((n, 1, 1, 1), 1 - strength, 1 + strength, device)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * contrast + mean).mul_(brightness).clamp_(0, 1)


def _uniform(shape, low: float, high: float, device) -> torch.Tensor:
    return torch.empty(shape, device=device).uniform_(low, high)

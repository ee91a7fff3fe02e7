"""Preprocessing that travels with a model: the same object builds the training and the serving transforms,
so what a model sees in the web app is exactly what it saw in validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from medclass.core.errors import MedclassError

@dataclass(frozen=True)
class Preprocessing:
    img_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"

    def __post_init__(self):
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise MedclassError(f"preprocessing: mean/std need {self.in_chans} values; got {self.mean}, {self.std}")

    def to_dict(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})

    def _mode(self, img: Image.Image) -> Image.Image:
        return img.convert("L" if self.in_chans == 1 else "RGB")

    def _resize(self):
        # Squash to a square: medical images are usually stored square already, and padding would put
        # artificial borders the classifier could learn from.
        return T.Resize((self.img_size, self.img_size), interpolation=InterpolationMode(self.interpolation),
                        antialias=True)

    def load_transform(self) -> T.Compose:
        """Decode-side steps only: mode and size, as a uint8 tensor (C, H, W). Training keeps images in this form
        (4x smaller than float, and cheap to hold in memory); scaling and normalising happen per batch."""
        return T.Compose([T.Lambda(self._mode), self._resize(), T.ToImage(), T.ToPureTensor()])

    def to_original(self, coords, original_size: tuple[int, int]) -> tuple[float, ...]:
        """Model-input coordinates (x, y) or a box (x0, y0, x1, y1) in the original image's pixels; `original_size`
        is (width, height). The input squashes the image to a square, so going back is one scale per axis
        (continuous pixel-edge coordinates: the input's right edge img_size maps to the original's width)."""
        sx, sy = original_size[0] / self.img_size, original_size[1] / self.img_size
        if len(coords) not in (2, 4):
            raise MedclassError(f"to_original: expected (x, y) or (x0, y0, x1, y1); got {tuple(coords)}")
        return tuple(float(v) * (sx if i % 2 == 0 else sy) for i, v in enumerate(coords))

    def normalise_transform(self) -> T.Compose:
        """Scale to [0, 1] and normalise: per pixel, so one call on a stacked uint8 batch gives what eval_transform
        gives image by image, at a fraction of the per-call overhead."""
        return T.Compose([T.ToDtype(torch.float32, scale=True), T.Normalize(self.mean, self.std)])

    def eval_transform(self) -> T.Compose:
        """What a model sees at validation, evaluation and serving: load_transform, then scale and normalise."""
        return T.Compose([self.load_transform(), self.normalise_transform()])


def default_preprocessing(img_size: int, in_chans: int, pretrained_cfg: dict | None = None) -> Preprocessing:
    """From a pretrained model's own config (mean/std/interpolation) when it has one, else mean 0.5 / std 0.5
    as MedMNIST's baselines (a neutral choice for images trained from scratch)."""
    mean, std, interpolation = (0.5,) * 3, (0.5,) * 3, "bilinear"
    if pretrained_cfg and pretrained_cfg.get("mean"):
        mean, std = tuple(pretrained_cfg["mean"]), tuple(pretrained_cfg["std"])
        interpolation = pretrained_cfg.get("interpolation", "bilinear") or "bilinear"
    if in_chans == 1:  # a grayscale input feeds the summed RGB filters timm builds for in_chans=1
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return Preprocessing(img_size, in_chans, tuple(mean), tuple(std), interpolation)

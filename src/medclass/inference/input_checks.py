"""The input guard's cheap checks, made on the decoded image before the network sees it: a blank or near-constant
image, a colour photograph sent to a model trained on grayscale images, an extreme aspect ratio. Each names what it
found, so an answer can say why the image was set apart; none needs fitting, so they run for old artefacts too.

What the training images looked like (colour or not, their widest aspect ratio) is measured when the guard is
fitted (`ImageStats`); without that, a model with one input channel counts as grayscale-trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

MIN_SPREAD = 2.0  # standard deviation of the grey levels (0-255) below which an image is blank
MAX_ASPECT = 3.0  # a wider (or taller) image than this, and than the training images, is flagged
COLOURFUL = 15.0  # Hasler & Suesstrunk's colourfulness above which an image is a colour picture
GREY = 5.0  # ... and below which a training set counts as grayscale (JPEG artefacts give a little colour)
SAMPLE_SIDE = 128  # the checks read a thumbnail: a 4k upload costs no more than a small one


def thumbnail(image: Image.Image) -> Image.Image:
    small = image.copy()
    small.draft("RGB", (SAMPLE_SIDE, SAMPLE_SIDE))  # JPEG: decode at a reduced scale
    small.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE))
    return small


def colourfulness(image: Image.Image) -> float:
    """Hasler & Suesstrunk (2003) colourfulness of an RGB rendering: 0 for any grey image."""
    if image.mode in ("L", "I", "I;16", "F", "1"):
        return 0.0
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def grey_spread(image: Image.Image) -> float:
    """Standard deviation of the grey levels, on a 0-255 scale whatever the bit depth."""
    grey = np.asarray(image if image.mode in ("I", "I;16", "F") else image.convert("L"), dtype=np.float64)
    low, high = (0.0, 255.0) if image.mode not in ("I", "I;16", "F") else (grey.min(), grey.max())
    return float(grey.std() * 255.0 / (high - low)) if high > low else 0.0


def aspect(image: Image.Image) -> float:
    width, height = image.size
    return max(width, height) / max(1, min(width, height))


@dataclass(frozen=True)
class ImageStats:
    """What the training images looked like: the checks compare an input with it."""

    colour_trained: bool
    max_aspect: float = 1.0
    images: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ImageStats":
        return cls(**data)

    @classmethod
    def measure(cls, images) -> "ImageStats":
        """From a sample of training images (Pillow images)."""
        colours, aspects = [], []
        for image in images:
            colours.append(colourfulness(thumbnail(image)))
            aspects.append(aspect(image))
        return cls(bool(np.percentile(colours, 95) > GREY) if colours else True,
                   float(max(aspects, default=1.0)), len(colours))


def input_problems(image: Image.Image, stats: ImageStats) -> list[str]:
    """What sets this image apart before the network sees it, in words; empty when nothing does."""
    problems = []
    ratio = aspect(image)
    if ratio > max(MAX_ASPECT, 1.5 * stats.max_aspect):
        problems.append(f"extreme aspect ratio {ratio:.1f}:1 (the training images reach "
                        f"{stats.max_aspect:.1f}:1)")
    small = thumbnail(image)
    spread = grey_spread(small)
    if spread < MIN_SPREAD:
        problems.append(f"blank or near-constant image (grey-level spread {spread:.2f} of 255)")
    if not stats.colour_trained:
        colour = colourfulness(small)
        if colour > COLOURFUL:
            problems.append(f"colour picture (colourfulness {colour:.0f}) for a model trained on grayscale images")
    return problems

"""Built-in demo data: breast-ultrasound-like phantoms in three classes, deterministic by seed.

- normal: layered tissue texture with speckle, no lesion;
- benign: a smooth oval hypoechoic (dark) lesion, wider than tall, with posterior acoustic enhancement;
- malignant: an irregular, spiculated hypoechoic lesion, often taller than wide, with posterior shadowing.

These are the sonographic signs radiologists use (BI-RADS margin, shape, orientation, posterior features).
Lesion size and contrast vary so the task is not trivial. Every lesion's ground-truth box is written to
`boxes.csv` (columns filename,label,xmin,ymin,xmax,ymax; pixel coordinates, max exclusive) for scoring
explanations later.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

CLASSES = ("normal", "benign", "malignant")


def _tissue(rng: np.random.Generator, size: int) -> np.ndarray:
    """Echogenic tissue: horizontal layers (skin, fat, glandular tissue) plus smooth random structure."""
    depth = np.linspace(0, 1, size)[:, None]
    layers = 0.55 + 0.15 * np.sin(2 * np.pi * (depth * rng.uniform(2, 4) + rng.uniform(0, 1)))
    structure = gaussian_filter(rng.normal(size=(size, size)), sigma=(size / 40, size / 12))
    return layers + 0.6 * structure / (np.abs(structure).max() + 1e-9)


def _lesion_mask(rng: np.random.Generator, size: int, malignant: bool) -> tuple[np.ndarray, tuple[float, float]]:
    cy, cx = rng.uniform(0.35, 0.65) * size, rng.uniform(0.3, 0.7) * size
    radius = rng.uniform(0.09, 0.2) * size
    yy, xx = np.mgrid[0:size, 0:size]
    angle = np.arctan2(yy - cy, xx - cx)
    if malignant:
        # Taller than wide, with an irregular outline and thin spicules radiating out.
        aspect = rng.uniform(0.8, 1.3)
        outline = 1 + sum(rng.uniform(0.05, 0.18) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (3, 5, 7))
        spikes = rng.uniform(0.2, 0.5) * np.maximum(np.cos(rng.integers(7, 13) * angle + rng.uniform(0, 6)), 0) ** 8
        outline = outline + spikes
    else:
        aspect = rng.uniform(1.3, 1.9)  # wider than tall: parallel to the skin
        outline = 1 + 0.03 * np.cos(2 * angle + rng.uniform(0, 2 * np.pi))
    dist = np.hypot((xx - cx) / aspect, yy - cy)
    return dist <= radius * outline, (cy, radius)


def phantom(rng: np.random.Generator, label: str, size: int = 64) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """One image (uint8, size x size) and its lesion box (xmin, ymin, xmax, ymax) or None for `normal`."""
    echo = _tissue(rng, size)
    box = None
    if label != "normal":
        mask, (cy, radius) = _lesion_mask(rng, size, malignant=label == "malignant")
        contrast = rng.uniform(0.35, 0.8)
        soft = gaussian_filter(mask.astype(float), 0.6 if label == "malignant" else 1.2)
        echo = echo * (1 - contrast * soft)
        # Posterior feature: a band below the lesion, brighter (benign enhancement) or darker (malignant shadow).
        columns = gaussian_filter(mask.any(axis=0).astype(float), 1.5)[None, :]
        below = (np.arange(size)[:, None] > cy + radius * 0.8).astype(float)
        gain = rng.uniform(0.15, 0.35) * (-1.3 if label == "malignant" else 1.0)
        echo = echo * (1 + gain * columns * below)
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    attenuation = np.exp(-rng.uniform(0.6, 1.2) * np.linspace(0, 1, size))[:, None]
    speckle = rng.rayleigh(scale=0.8, size=(size, size))  # fully developed speckle is Rayleigh-distributed
    image = gaussian_filter(echo * attenuation * speckle, 0.5)
    return (np.clip(image / np.percentile(image, 99.5), 0, 1) * 255).astype(np.uint8), box


def generate_demo_data(out_dir: str | Path, n_per_class: int = 200, size: int = 64, seed: int = 0) -> Path:
    """Write `out_dir/<class>/<class>_NNNN.png` and `out_dir/boxes.csv`; returns `out_dir`."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    for label in CLASSES:
        (out_dir / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            pixels, box = phantom(rng, label, size)
            name = f"{label}/{label}_{i:04d}.png"
            Image.fromarray(pixels, mode="L").save(out_dir / name)
            if box:
                rows.append([name, label, *box])
    with open(out_dir / "boxes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(rows)
    return out_dir

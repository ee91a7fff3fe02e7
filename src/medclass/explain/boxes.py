"""Boxes from an explanation: connected regions of a CAM, or the classic OpenCV pipeline (Otsu + contours).

Every box is in pixel coordinates of the image it was computed on (x0, y0 inclusive; x1, y1 exclusive, like
`medclass.data.base.Box`), best first.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from medclass.errors import MedclassError

CAM_THRESHOLD = 0.5  # share of the heatmap's maximum a pixel needs to be part of a region
MIN_AREA_FRACTION = 0.002  # regions smaller than this share of the image are noise, not findings
POLARITIES = ("auto", "dark", "bright")


@dataclass(frozen=True)
class ScoredBox:
    """A predicted box and how strongly its method backs it (CAM mass inside, or contour area for Otsu)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 0.0
    label: str = ""

    @property
    def area(self) -> float:
        return max(self.x1 - self.x0, 0.0) * max(self.y1 - self.y0, 0.0)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def corners(self) -> tuple[float, float, float, float]:
        return self.x0, self.y0, self.x1, self.y1


def cam_boxes(heatmap: np.ndarray, threshold: float = CAM_THRESHOLD, min_area_fraction: float = MIN_AREA_FRACTION,
              label: str = "") -> list[ScoredBox]:
    """One box per connected region where the heatmap reaches `threshold` x its maximum (8-connected), regions
    under `min_area_fraction` of the image dropped, sorted by the CAM mass inside the region (largest first)."""
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise MedclassError(f"cam_boxes: expected a 2-D heatmap; got shape {heatmap.shape}")
    peak = float(heatmap.max())
    if peak <= 0:
        return []
    mask = (heatmap >= threshold * peak).astype(np.uint8)
    count, regions, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = min_area_fraction * heatmap.size
    boxes = []
    for region in range(1, count):  # 0 is the background
        x, y, w, h, area = stats[region]
        if area >= min_area:
            mass = float(heatmap[regions == region].sum())
            boxes.append(ScoredBox(float(x), float(y), float(x + w), float(y + h), mass, label))
    return sorted(boxes, key=lambda b: b.score, reverse=True)


def otsu_boxes(image: Image.Image | np.ndarray, polarity: str = "auto", blur_fraction: float = 0.02,
               min_area_fraction: float = MIN_AREA_FRACTION, label: str = "") -> list[ScoredBox]:
    """Classic localisation without a model: grayscale, Gaussian blur, Otsu's threshold, outer contours, one
    bounding box per contour of at least `min_area_fraction` of the image, largest first.

    `polarity` says which side of the threshold is the structure: dark (hypoechoic ultrasound lesions), bright
    (opacities on X-ray), or auto (default): the side covering fewer pixels, since a finding is usually the smaller
    part of an image whatever the modality. `blur_fraction`: the blur's sigma as a share of the image side.
    """
    if polarity not in POLARITIES:
        raise MedclassError(f"polarity must be one of {', '.join(POLARITIES)}; got {polarity!r}")
    gray = np.asarray(image.convert("L")) if isinstance(image, Image.Image) else np.asarray(image)
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY)
    gray = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    sigma = max(blur_fraction * max(gray.shape), 0.5)
    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    _, bright = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if polarity == "dark" or (polarity == "auto" and np.count_nonzero(bright) > bright.size / 2):
        bright = cv2.bitwise_not(bright)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = min_area_fraction * gray.size
    boxes = []
    for contour in contours:
        area = float(cv2.contourArea(contour))
        if area >= min_area:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append(ScoredBox(float(x), float(y), float(x + w), float(y + h), area, label))
    return sorted(boxes, key=lambda b: b.score, reverse=True)

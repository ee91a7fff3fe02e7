"""Boxes from an explanation: connected regions of a CAM, or the classic OpenCV pipeline (Otsu + contours).

Every box is in pixel coordinates of the image it was computed on (x0, y0 inclusive; x1, y1 exclusive, like
`medclass.data.base.Box`), best first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from medclass.core.errors import MedclassError
from medclass.explain.options import CAM_THRESHOLD, POLARITIES

MIN_AREA_FRACTION = 0.002  # regions smaller than this share of the image are noise, not findings
BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1", "box_score")  # a table's cells of a best box
# what a predictions CSV's column guide says of them
BOX_DESCRIPTIONS = {**{column: f"the best explanation box's {column[4:]}, in the image's own pixels (x1, y1 "
                               "exclusive); '' when none was found" for column in BOX_COLUMNS[:4]},
                    "box_score": "the best box's score (CAM: the heatmap's mass inside; Otsu: explain/boxes.py)"}


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

    def to_dict(self, digits: int = 1) -> dict:
        """{x0, y0, x1, y1, score, label}: what the predictions CSV and the server's answer carry."""
        return {**{k: round(v, digits) for k, v in zip(("x0", "y0", "x1", "y1"), self.corners())},
                "score": round(self.score, 4), "label": self.label}


def best_box_cells(boxes: Sequence[ScoredBox]) -> list[str]:
    """BOX_COLUMNS' cells of the best of `boxes`, or empty cells when there is none."""
    if not boxes:
        return [""] * len(BOX_COLUMNS)
    return [*(f"{v:.1f}" for v in boxes[0].corners()), f"{boxes[0].score:.4g}"]


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
    """Classic localisation without a model: grayscale, Gaussian blur, Otsu's threshold, connected regions, one
    bounding box per region of at least `min_area_fraction` of the image, best first.

    `polarity` says which side of the threshold is the structure: dark (hypoechoic ultrasound lesions), bright
    (opacities on X-ray), or auto (default): the regions of both sides compete. A region's score is its area, times
    the share of its box it fills (a compact blob, not a band), times the share of the image's edge it leaves free:
    a finding lies inside the image, while background lines its edges (the skin and tissue bands of an ultrasound
    image, the dark depths under them, the air around a chest). The older auto, "the side covering fewer pixels",
    boxed the bright tissue band of most BUSI images; on 200 ultrasound-like phantoms of medclass.data.demo (64 px)
    its best box held the lesion's centre for 21% of them, this score's for 67% (dark: 68%).
    `blur_fraction`: the blur's sigma as a share of the image side.
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
    sides = {"bright": [bright], "dark": [cv2.bitwise_not(bright)]}
    masks = sides["bright"] + sides["dark"] if polarity == "auto" else sides[polarity]
    min_area = min_area_fraction * gray.size
    boxes = [box for mask in masks for box in region_boxes(mask, min_area, label)]
    return sorted(boxes, key=lambda b: b.score, reverse=True)


def region_boxes(mask: np.ndarray, min_area: float, label: str) -> list[ScoredBox]:
    """One scored box per 8-connected region of a binary mask (see `otsu_boxes` for the score)."""
    count, regions, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    edge = np.concatenate([regions[0], regions[-1], regions[1:-1, 0], regions[1:-1, -1]])
    edge_share = np.bincount(edge, minlength=count) / edge.size
    boxes = []
    for region in range(1, count):  # 0 is the other side of the threshold
        x, y, w, h, area = (int(v) for v in stats[region])
        if area >= min_area:
            score = area * (area / (w * h)) * (1 - edge_share[region])
            boxes.append(ScoredBox(float(x), float(y), float(x + w), float(y + h), float(score), label))
    return boxes

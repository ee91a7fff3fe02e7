"""Overlay PNGs: the image with its heatmap blended in, predicted boxes, ground-truth boxes and a caption."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image
from pytorch_grad_cam.utils.image import show_cam_on_image

from medclass.data.base import Box
from medclass.explain.boxes import ScoredBox, best_box_cells
from medclass.explain.explainer import Explanation

PREDICTED = (255, 255, 255)  # RGB: white stands out on the jet colour map
TRUTH = (0, 255, 0)
MIN_SIDE = 256  # small images are enlarged, so the caption and the boxes stay readable
CAPTION_HEIGHT = 24


def overlay_image(image: Image.Image, explanation: Explanation | None, predicted: Sequence[ScoredBox] = (),
                  truth_boxes: Sequence[Box] = (), caption: str = "", heat_weight: float = 0.4) -> np.ndarray:
    """RGB uint8 array: `image` with the explanation's heatmap blended in (none: the image alone), the predicted
    boxes in white (thick: the best), the ground-truth boxes in green, and a caption band on top."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    if explanation is not None and explanation.heatmap is not None:
        picture = show_cam_on_image(rgb, explanation.heatmap, use_rgb=True, image_weight=1 - heat_weight)
    else:
        picture = (rgb * 255).astype(np.uint8)
    scale = max(1.0, MIN_SIDE / min(picture.shape[:2]))
    picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 \
        else picture.copy()
    for box in truth_boxes:
        draw_box(picture, (box.x0, box.y0, box.x1, box.y1), scale, TRUTH, 1)
    for rank, box in enumerate(predicted):
        draw_box(picture, box.corners(), scale, PREDICTED, 2 if rank == 0 else 1)
    band = np.zeros((CAPTION_HEIGHT, picture.shape[1], 3), np.uint8)
    cv2.putText(band, caption, (4, CAPTION_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.vstack([band, picture])


def draw_box(picture: np.ndarray, corners, scale: float, colour, thickness: int) -> None:
    x0, y0, x1, y1 = (int(round(v * scale)) for v in corners)
    cv2.rectangle(picture, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, thickness)  # x1, y1 exclusive


def save_overlay(path: str | Path, image: Image.Image, explanation: Explanation,
                 truth_boxes: Sequence[Box] = ()) -> Path:
    """Write the overlay of one explanation (its heatmap, boxes and caption) as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = overlay_image(image, explanation, explanation.boxes, truth_boxes, explanation.caption)
    Image.fromarray(picture).save(path)
    return path


class ExplanationWriter:
    """`medclass predict --explain`: an overlay PNG per image and explanations.csv (the overlay, the explained task
    and class, its probability, the best box with its score and the heatmap's peak, in original pixels, and Otsu's
    polarity), row by row."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.count, self.table = folder, 0, folder / "explanations.csv"
        self._file = open(self.table, "w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(["path", "overlay", "method", "task", "class", "probability", "x0", "y0", "x1", "y1",
                            "score", "peak_x", "peak_y", "polarity"])

    def write(self, row) -> None:
        """One predicted row (a PredictionRow) of `iter_predictions(..., on_batch=explaining(...))`: its extras'
        `explanation` and `image`."""
        explanation, self.count = row.extras["explanation"], self.count + 1
        overlay = save_overlay(self.folder / f"{self.count:05d}_{Path(row.path).stem}.png", row.extras["image"],
                               explanation)
        self._csv.writerow([row.path, overlay, explanation.method, explanation.task, explanation.class_name,
                            f"{explanation.probability:.6f}", *best_box_cells(explanation.boxes),
                            *(f"{v:.1f}" for v in explanation.peak), explanation.polarity or ""])

    def close(self) -> None:
        self._file.close()

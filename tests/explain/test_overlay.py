"""Overlay PNGs: heatmap blended in, predicted and ground-truth boxes in their colours, a caption band on top."""

import numpy as np
from PIL import Image

from medclass.data.base import Box
from medclass.explain.boxes import ScoredBox
from medclass.explain.cam import Explanation
from medclass.explain.overlay import CAPTION_HEIGHT, PREDICTED, TRUTH, save_overlay


def test_overlay_shows_the_heatmap_the_boxes_and_the_caption(tmp_path):
    image = Image.fromarray(np.full((300, 400), 90, np.uint8))
    heat = np.zeros((300, 400), np.float32)
    heat[100:200, 100:200] = 1
    explanation = Explanation(heat, "label", "malignant", 1, 0.87, "gradcam", [ScoredBox(100, 100, 200, 200, 1.0)],
                              (150.0, 150.0))
    path = save_overlay(tmp_path / "sub" / "o.png", image, explanation, [Box("malignant", 250, 50, 350, 150)])
    picture = np.asarray(Image.open(path).convert("RGB"))
    assert picture.shape == (300 + CAPTION_HEIGHT, 400, 3)
    body = picture[CAPTION_HEIGHT:]
    assert tuple(body[100, 150]) == PREDICTED and tuple(body[50, 300]) == TRUTH  # box edges
    hot, cold = body[150, 150].astype(int), body[250, 20].astype(int)
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet colour map: red where the CAM is high, blue where low
    assert picture[:CAPTION_HEIGHT].max() > 0  # the caption is written


def test_small_images_are_enlarged_for_reading(tmp_path):
    image = Image.fromarray(np.zeros((32, 48, 3), np.uint8))
    explanation = Explanation(np.zeros((32, 48), np.float32), "t", "c", 0, 0.5, "gradcam")
    picture = Image.open(save_overlay(tmp_path / "small.png", image, explanation))
    assert min(picture.size) >= 256

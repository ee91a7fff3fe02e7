"""Boxes from a CAM and from the classic Otsu pipeline, on images and heatmaps the tests draw."""

import numpy as np
import pytest
from PIL import Image

from medclass.core.errors import MedclassError
from medclass.explain.boxes import cam_boxes, otsu_boxes


def blob_image(background: int, blob: int, box=(40, 30, 70, 52), size=(100, 80), seed=0) -> Image.Image:
    """A noisy background with one filled ellipse inside `box` (x0, y0, x1, y1; max exclusive)."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = np.clip(rng.normal(background, 12, (height, width)), 0, 255)
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy, rx, ry = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    pixels[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = blob
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.mark.parametrize("background,blob,polarity", [(190, 40, "dark"), (60, 220, "bright"), (190, 40, "auto"),
                                                      (60, 220, "auto")])
def test_otsu_finds_a_drawn_blob_of_either_polarity(background, blob, polarity):
    truth = (40, 30, 70, 52)
    best = otsu_boxes(blob_image(background, blob, truth), polarity, blur_fraction=0.01)[0]
    assert best.corners() == pytest.approx(truth, abs=2)


def test_otsu_with_the_wrong_polarity_boxes_the_background_not_the_blob():
    best = otsu_boxes(blob_image(190, 40), "bright")[0]
    assert best.area > 0.8 * 100 * 80


def test_otsu_drops_specks_under_the_minimum_area_and_refuses_an_unknown_polarity():
    pixels = np.asarray(blob_image(190, 40, (40, 30, 70, 52))).copy()
    pixels[10:13, 10:13] = 40  # a 3x3 speck: 9 px, under 1% of the image
    boxes = otsu_boxes(Image.fromarray(pixels), "dark", blur_fraction=0.005, min_area_fraction=0.01)
    assert [b.corners() for b in boxes] == [pytest.approx((40, 30, 70, 52), abs=2)]
    assert len(otsu_boxes(Image.fromarray(pixels), "dark", blur_fraction=0.005, min_area_fraction=0)) >= 2
    with pytest.raises(MedclassError, match="polarity must be one of auto, dark, bright; got 'dim'"):
        otsu_boxes(blob_image(190, 40), "dim")


def heatmap_with_blobs(blobs, shape=(60, 80)) -> np.ndarray:
    """Gaussian bumps (cx, cy, sigma, height) summed, scaled to [0, 1]."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    heat = sum(h * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s ** 2)) for cx, cy, s, h in blobs)
    return heat / heat.max()


def test_cam_boxes_one_per_region_ranked_by_mass_inside():
    heat = heatmap_with_blobs([(20, 20, 3, 1.0), (60, 40, 6, 0.9)])  # the wider bump holds more mass
    boxes = cam_boxes(heat, threshold=0.5)
    assert len(boxes) == 2
    wide, narrow = boxes
    assert wide.x0 < 60 < wide.x1 and wide.y0 < 40 < wide.y1
    assert narrow.x0 < 20 < narrow.x1 and narrow.y0 < 20 < narrow.y1
    assert wide.score > narrow.score
    # a bump at 0.9 of the peak falls out above a 0.95 threshold
    assert len(cam_boxes(heat, threshold=0.95, min_area_fraction=0)) == 1


def test_cam_box_of_a_known_square_region_is_exact_and_empty_maps_give_none():
    heat = np.zeros((50, 50), np.float32)
    heat[10:20, 30:45] = 1.0
    (box,) = cam_boxes(heat)
    assert box.corners() == (30, 10, 45, 20) and box.area == 150
    assert cam_boxes(np.zeros((8, 8))) == []
    speck = np.zeros((100, 100))
    speck[5, 5] = 1
    assert cam_boxes(speck, min_area_fraction=0.001) == []

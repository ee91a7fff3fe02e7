"""IoBB, the pointing game and the random baseline on hand-made boxes."""

import json

import numpy as np
import pytest

from medclass.data.base import Box
from medclass.explain.boxes import ScoredBox
from medclass.explain.localize import LocalizationResult, Tally, format_table, inside, iobb, random_box_like, \
    random_point
from medclass.core.preprocessing import Preprocessing


def test_iobb_divides_the_overlap_by_the_predicted_box_not_the_union():
    truth = Box("Mass", 0, 0, 10, 10)
    assert iobb(ScoredBox(5, 5, 15, 15), truth) == pytest.approx(25 / 100)
    assert iobb(ScoredBox(2, 2, 4, 4), truth) == 1.0  # inside the truth: IoBB 1 whatever its size
    assert iobb(ScoredBox(0, 0, 20, 10), truth) == pytest.approx(0.5)
    assert iobb(ScoredBox(10, 0, 20, 10), truth) == 0.0  # touching edges (max exclusive) do not overlap
    assert iobb((3, 3, 3, 8), truth) == 0.0  # an empty box


def test_pointing_game_counts_points_inside_any_truth_box_max_exclusive():
    boxes = [Box("Nodule", 0, 0, 10, 10), Box("Nodule", 20, 20, 30, 30)]
    assert inside((9.9, 0), boxes) and inside((25, 25), boxes)
    assert not inside((10, 5), boxes) and not inside((15, 15), boxes)


def test_tally_counts_a_hit_above_each_threshold_and_a_missing_box_as_a_miss():
    truth = [Box("Mass", 0, 0, 10, 10)]
    tally = Tally()
    tally.add(ScoredBox(5, 0, 15, 10), (2, 2), truth)  # IoBB 0.5: above 0.1 and 0.25, not above 0.5
    tally.add(None, None, truth)
    rates = tally.rates()
    assert rates == {"n": 2, "iobb>0.1": 0.5, "iobb>0.25": 0.5, "iobb>0.5": 0.0, "pointing": 0.5}


def test_random_baseline_is_seeded_keeps_the_box_size_and_stays_inside_the_image():
    box = ScoredBox(0, 0, 30, 20)
    draws = [random_box_like(box, (100, 50), np.random.default_rng(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = np.random.default_rng(1)
    for _ in range(200):
        moved = random_box_like(box, (100, 50), rng)
        assert (moved.x1 - moved.x0, moved.y1 - moved.y0) == pytest.approx((30, 20))
        assert 0 <= moved.x0 and moved.x1 <= 100 and 0 <= moved.y0 and moved.y1 <= 50
    points = np.array([random_point((100, 50), np.random.default_rng(3)) for _ in range(3)])
    assert (points == points[0]).all()
    spread = np.array([random_point((100, 50), rng) for _ in range(2000)])
    # a uniform point lands in a box covering 12% of the image about 12% of the time
    hits = np.mean([inside(p, [Box("x", 0, 0, 30, 20)]) for p in spread])
    assert 0.09 < hits < 0.15


def test_result_json_and_table_put_each_method_beside_its_baseline(tmp_path):
    result = LocalizationResult(["gradcam"], seed=5, n_images=2)
    truth = [Box("Mass", 0, 0, 10, 10)]
    result.add("gradcam", "Mass", ScoredBox(0, 0, 5, 5), (1, 1), truth, ScoredBox(50, 50, 55, 55), (60, 60))
    result.add("gradcam", "Infiltrate", ScoredBox(0, 0, 5, 5), (1, 1), [Box("Infiltrate", 0, 0, 4, 4)],
               ScoredBox(0, 0, 5, 5), (80, 80))
    saved = json.loads(result.write_json(tmp_path / "out" / "loc.json").read_text())
    assert saved["scores"]["gradcam"]["per_class"]["Mass"]["pointing"] == 1.0
    assert saved["scores"]["gradcam/random"]["overall"] == {"n": 2, "iobb>0.1": 0.5, "iobb>0.25": 0.5,
                                                           "iobb>0.5": 0.5, "pointing": 0.0}
    table = format_table(result, {"Mass": 0.4, "Infiltration": 0.7073}, "Wang", {"Infiltrate": "Infiltration"})
    lines = table.splitlines()
    assert lines[0].startswith("| class | n | gradcam IoBB>0.1") and lines[0].endswith("| Wang |")
    assert lines[2].startswith("| Mass | 1 | 1.00 (0.00) |") and lines[2].endswith("| 0.40 |")
    assert lines[3].endswith("| 0.71 |") and lines[4].startswith("| overall | 2 |")


def test_preprocessing_maps_input_coordinates_back_per_axis():
    pre = Preprocessing(64, 1, (0.5,), (0.5,))
    assert pre.to_original((32, 16), (128, 256)) == (64, 64)
    assert pre.to_original((0, 0, 64, 64), (300, 200)) == (0, 0, 300, 200)
    assert pre.to_original((16, 32, 48, 64), (100, 50)) == (25, 25, 75, 50)

"""Localisation scores of explanations against ground-truth boxes, as ChestX-ray8 (Wang et al., CVPR 2017) does.

For every (image, class) pair with a ground-truth box of that class, a method predicts one box (its best) and one
point, explaining that class (the ground-truth finding, as Wang et al. do; a CAM of another class would answer
another question):

- IoBB = area(predicted ∩ truth) / area(predicted): a hit at T when it exceeds T for some truth box of the class;
- pointing game: a hit when the point lies inside a truth box of the class. A CAM's point is its heatmap's
  maximum; Otsu has no heatmap, so its point is the centre of its best (largest) box.

Each method has a random baseline drawn in the same run (seeded): a box of the predicted box's size at a uniformly
random position inside the image, and a uniformly random point. A method that predicts no box misses, and so does
its baseline's box; the baseline's point is drawn all the same.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from medclass.explain.boxes import ScoredBox

THRESHOLDS = (0.1, 0.25, 0.5)
RANDOM = "random"  # suffix of a method's baseline: "gradcam/random"


def corners(box) -> tuple[float, float, float, float]:
    return (box.x0, box.y0, box.x1, box.y1) if hasattr(box, "x0") else tuple(map(float, box))


def iobb(predicted, truth) -> float:
    """area(predicted ∩ truth) / area(predicted); 0 for an empty predicted box. Corners max-exclusive."""
    px0, py0, px1, py1 = corners(predicted)
    tx0, ty0, tx1, ty1 = corners(truth)
    area = max(px1 - px0, 0) * max(py1 - py0, 0)
    if area <= 0:
        return 0.0
    overlap = max(min(px1, tx1) - max(px0, tx0), 0) * max(min(py1, ty1) - max(py0, ty0), 0)
    return overlap / area


def inside(point: tuple[float, float], boxes: Sequence) -> bool:
    x, y = point
    return any(x0 <= x < x1 and y0 <= y < y1 for x0, y0, x1, y1 in map(corners, boxes))


def random_box_like(box, image_size: tuple[int, int], rng: np.random.Generator) -> ScoredBox:
    """A box of `box`'s width and height (clipped to the image) at a uniformly random position inside the image."""
    width, height = image_size
    x0, y0, x1, y1 = corners(box)
    w, h = min(x1 - x0, width), min(y1 - y0, height)
    left, top = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return ScoredBox(left, top, left + w, top + h)


def random_point(image_size: tuple[int, int], rng: np.random.Generator) -> tuple[float, float]:
    return float(rng.uniform(0, image_size[0])), float(rng.uniform(0, image_size[1]))


@dataclass
class Tally:
    """Hits of one method on one class: n pairs, hits per IoBB threshold, pointing-game hits."""

    n: int = 0
    iobb_hits: dict = field(default_factory=lambda: {t: 0 for t in THRESHOLDS})
    pointing_hits: int = 0

    def add(self, box, point, truth: Sequence) -> None:
        self.n += 1
        best = max((iobb(box, t) for t in truth), default=0.0) if box is not None else 0.0
        for threshold in THRESHOLDS:
            self.iobb_hits[threshold] += best > threshold
        self.pointing_hits += point is not None and inside(point, truth)

    def merge(self, other: "Tally") -> None:
        self.n += other.n
        self.pointing_hits += other.pointing_hits
        for threshold in THRESHOLDS:
            self.iobb_hits[threshold] += other.iobb_hits[threshold]

    def rates(self) -> dict:
        share = (lambda hits: hits / self.n) if self.n else (lambda hits: float("nan"))
        return {"n": self.n, **{f"iobb>{t:g}": share(self.iobb_hits[t]) for t in THRESHOLDS},
                "pointing": share(self.pointing_hits)}


@dataclass
class LocalizationResult:
    """Tallies per method (and its baseline, "METHOD/random") and class, in first-seen class order."""

    methods: list[str]
    seed: int
    tallies: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(Tally)))
    n_images: int = 0
    settings: dict = field(default_factory=dict)  # what else decided the numbers (polarity, CAM box threshold)

    def add(self, method: str, class_name: str, box, point, truth, random_box, random_pt) -> None:
        self.tallies[method][class_name].add(box, point, truth)
        self.tallies[f"{method}/{RANDOM}"][class_name].add(random_box, random_pt, truth)

    @property
    def classes(self) -> list[str]:
        return list(dict.fromkeys(c for per_class in self.tallies.values() for c in per_class))

    def overall(self, key: str) -> Tally:
        total = Tally()
        for tally in self.tallies[key].values():
            total.merge(tally)
        return total

    def to_dict(self) -> dict:
        keys = [k for m in self.methods for k in (m, f"{m}/{RANDOM}")]
        return {"protocol": "Wang et al. 2017 IoBB and pointing game; random baseline per method, same run",
                "methods": self.methods, "seed": self.seed, "n_images": self.n_images, "thresholds": list(THRESHOLDS),
                "settings": self.settings,
                "scores": {k: {"per_class": {c: self.tallies[k][c].rates() for c in self.classes},
                               "overall": self.overall(k).rates()} for k in keys}}

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def format_table(result: LocalizationResult, reference: dict[str, float] | None = None,
                 reference_name: str = "reference IoBB>0.1", aliases: dict[str, str] | None = None) -> str:
    """A markdown table: a row per class and one overall; per method its IoBB>T and pointing-game hit rates, each
    as `method (random)`. `reference`: a published IoBB>0.1 rate per class, shown in its own column (`aliases`:
    this data's class name -> the reference's)."""
    metrics = [f"IoBB>{t:g}" for t in THRESHOLDS] + ["pointing"]
    header = ["class", "n"] + [f"{m} {metric}" for m in result.methods for metric in metrics]
    if reference:
        header.append(reference_name)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = [(c, lambda key, c=c: result.tallies[key][c]) for c in result.classes]
    rows.append(("overall", result.overall))
    for name, tally_of in rows:
        cells = [name, str(tally_of(result.methods[0]).n)]
        for method in result.methods:
            own, baseline = tally_of(method).rates(), tally_of(f"{method}/{RANDOM}").rates()
            cells += [f"{own[k]:.2f} ({baseline[k]:.2f})" for k in [f"iobb>{t:g}" for t in THRESHOLDS] + ["pointing"]]
        if reference:
            value = reference.get((aliases or {}).get(name, name))
            cells.append(f"{value:.2f}" if value is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n(each cell: the method's hit rate (its random baseline, same run, seed " \
                              f"{result.seed}))"


"""Conformal prediction sets: the arithmetic (numpy only), and the record a task head stores.

A single-label task (binary or multiclass) can answer with a set of classes instead of one label: the set holds the
true class for at least `coverage` of the images (split conformal prediction, Vovk et al. 2005; Angelopoulos & Bates
2021), provided the images to come are exchangeable with the calibration images (drawn alike; a shifted population
breaks it). A multilabel task gets no sets: its findings are decided one by one, and "at least one finding set" has
no class to cover.

Each label of an image gets a conformity score (how unusual the label is for this image, higher = less plausible);
the calibration images' scores of their true labels give a quantile `q`; a label belongs to an image's set when its
score is <= q. The scores:

- **aps** (the default; Romano, Sesia & Candès 2020, non-randomised): the total probability of the labels strictly
  more probable than this one. The most probable label scores 0, so a set is never empty; labels of equal
  probability score alike and enter a set together (deterministic, whatever the class order). This is the
  "include the label that crosses the quantile" form: the set is the top labels until their probability first
  reaches q.
- **raps** (Angelopoulos et al. 2021): aps plus `lambda * max(0, rank - k_reg)`, rank 0 for the most probable label
  (tied labels share the smaller rank). It penalises long tails of improbable labels, so sets stay short where many
  classes each hold a little probability. Defaults lambda 0.01, k_reg 1: the first two labels are never penalised
  (for a binary task raps is aps), each further one costs 0.01 of probability, the scale the paper's
  recommended lambdas (0.001-0.2 on ImageNet) start from for the few classes of a medical task.
- **lac** (least ambiguous classifier, Sadinle et al. 2019): 1 - p(label). The smallest sets on average, but a set
  may be empty (no label plausible enough), which a user reads as a failure; offered for comparison.

The quantile is the ceil((n + 1) * coverage)-th smallest of the n calibration scores (the finite-sample correction
that makes the guarantee hold exactly, not only as n grows). When (n + 1) * coverage > n (fewer than
coverage / (1 - coverage) images: 9 at 0.9, 19 at 0.95) no finite quantile guarantees it: the quantile is +inf and
every label is always in the set, which `PredictionSets.unbounded` reports. Mondrian (class-conditional) sets take
one quantile per true class, each from the calibration images of that class, so every class, the rare one
included, is covered at the target (Vovk 2012): label y is in a set when its score is <= q[y].

For a binary task the set is {the more probable class} or both classes: never the less probable one alone. The set
covers the truth; it does not follow the head's decision threshold, so with a threshold far from 0.5 the decided
class and a one-class set may differ (the set then says the decision is a close call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medclass.core.errors import MedclassError

SCORES = ("aps", "raps", "lac")
DEFAULT_SCORE = "aps"
RAPS_LAMBDA, RAPS_K_REG = 0.01, 1
# (n + 1) * coverage is a float: 100 * 0.9 is 90.00000000000001, whose ceil (91) would ask one image too many
ROUNDING = 1e-9


def check_coverage(coverage: float, what: str = "coverage") -> float:
    """A target coverage strictly between 0 and 1."""
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float)) or not 0 < coverage < 1:
        raise MedclassError(f"{what} must be a share strictly between 0 and 1 (e.g. 0.9); got {coverage!r}")
    return float(coverage)


def check_requested_coverage(coverage: float | None, what: str = "--coverage") -> None:
    """What tuning takes: None (keep the stored sets), 0 (no sets) or a share strictly between 0 and 1."""
    if coverage is not None and not (coverage == 0 and not isinstance(coverage, bool)):
        check_coverage(coverage, what)


def quantile_rank(n: int, coverage: float) -> int:
    """Which order statistic (1 = the smallest) of n calibration scores is the quantile: ceil((n + 1) * coverage).
    Above n: none is, and the quantile is +inf."""
    return math.ceil((n + 1) * coverage - ROUNDING)


def minimum_images(coverage: float) -> int:
    """The fewest calibration images that give a finite quantile at `coverage`."""
    n = 1
    while quantile_rank(n, coverage) > n:
        n += 1
    return n


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The ceil((n + 1) * coverage)-th smallest score, or +inf when that exceeds n (n = 0 included)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    k = quantile_rank(len(scores), coverage)
    return math.inf if k > len(scores) else float(np.sort(scores)[k - 1])


def class_quantiles(scores: np.ndarray, y: np.ndarray, n_classes: int, coverage: float) -> np.ndarray:
    """Mondrian: one quantile per class from the scores of the calibration images whose true class it is."""
    scores, y = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(y).ravel()
    return np.array([conformal_quantile(scores[y == c], coverage) for c in range(n_classes)])


def _ranked(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image and label: the probability of the labels strictly more probable, and how many they are (the
    label's rank, 0 for the top; tied labels share the rank and sum of the first of them)."""
    proba = np.asarray(proba, dtype=np.float64)
    order = np.argsort(-proba, axis=1, kind="stable")
    ranked = np.take_along_axis(proba, order, axis=1)
    before = np.cumsum(ranked, axis=1) - ranked  # probability of the labels ranked above
    columns = np.arange(proba.shape[1])
    first_of_tie = np.ones_like(ranked, dtype=bool)
    first_of_tie[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    start = np.maximum.accumulate(np.where(first_of_tie, columns, 0), axis=1)  # first position of each tie
    above, rank = np.empty_like(ranked), np.empty(proba.shape, dtype=np.int64)
    np.put_along_axis(above, order, np.take_along_axis(before, start, axis=1), axis=1)
    np.put_along_axis(rank, order, start, axis=1)
    return above, rank


def label_scores(proba: np.ndarray, score: str = DEFAULT_SCORE, raps_lambda: float = RAPS_LAMBDA,
                 raps_k_reg: int = RAPS_K_REG) -> np.ndarray:
    """(images, classes) conformity score of every label of every image (see the module's docstring)."""
    if score not in SCORES:
        raise MedclassError(f"prediction set score must be one of {', '.join(SCORES)}; got {score!r}")
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise MedclassError(f"prediction sets: probabilities must be (images, classes); got shape {proba.shape}")
    if score == "lac":
        return 1.0 - proba
    above, rank = _ranked(proba)
    if score == "raps":
        return above + raps_lambda * np.maximum(0, rank - raps_k_reg)
    return above


def true_label_scores(proba: np.ndarray, y: np.ndarray, score: str = DEFAULT_SCORE, **options) -> np.ndarray:
    """(images,) the score of each image's true class (`y`: class indices)."""
    y = np.asarray(y, dtype=np.int64).ravel()
    return label_scores(proba, score, **options)[np.arange(len(y)), y]


def set_mask(proba: np.ndarray, quantiles, score: str = DEFAULT_SCORE, **options) -> np.ndarray:
    """(images, classes) bool: label in the image's set. `quantiles`: one value (marginal) or one per class
    (Mondrian); +inf puts the label(s) in every set."""
    q = np.asarray(quantiles, dtype=np.float64).reshape(1, -1)
    return label_scores(proba, score, **options) <= q


@dataclass(frozen=True)
class PredictionSets:
    """How a head's prediction sets were calibrated, as the artefact stores it (`TaskHead.prediction_sets`).

    `coverage`: the target share of images whose set holds the true class; `quantiles`: one (marginal) or one per
    class in the head's class order (`by_class`, Mondrian), +inf where no finite quantile guarantees the target;
    `method`: how the calibration scores were made (split or cross-conformal, which images); `images`: how many
    calibration images; `split`: where they came from."""

    coverage: float
    quantiles: tuple[float, ...]
    score: str = DEFAULT_SCORE
    by_class: bool = False
    method: str = ""
    images: int = 0
    split: str = "val"
    raps_lambda: float = RAPS_LAMBDA
    raps_k_reg: int = RAPS_K_REG

    def __post_init__(self):
        check_coverage(self.coverage, "prediction_sets.coverage")
        if self.score not in SCORES:
            raise MedclassError(f"prediction_sets.score must be one of {', '.join(SCORES)}; got {self.score!r}")
        try:
            quantiles = tuple(float(q) for q in self.quantiles)
        except (TypeError, ValueError):
            quantiles = ()
        if not quantiles or any(q != q or q < 0 for q in quantiles):
            raise MedclassError(f"prediction_sets.quantiles must be non-negative numbers (or null: every label); "
                                f"got {list(self.quantiles)!r}")
        object.__setattr__(self, "quantiles", quantiles)
        if not self.by_class and len(quantiles) != 1:
            raise MedclassError(f"prediction_sets.quantiles: marginal sets (by_class false) have one quantile; got "
                                f"{len(quantiles)}")

    @property
    def options(self) -> dict:
        """The score's parameters, as label_scores takes them."""
        return {"raps_lambda": self.raps_lambda, "raps_k_reg": self.raps_k_reg} if self.score == "raps" else {}

    @property
    def unbounded(self) -> tuple[int, ...]:
        """Indices of the quantiles that are +inf (too few calibration images): their labels are in every set. With
        marginal sets, (0,) means every label is in every set."""
        return tuple(i for i, q in enumerate(self.quantiles) if q == math.inf)

    def members(self, proba: np.ndarray) -> np.ndarray:
        """(images, classes) bool: each image's set, from its probabilities (the head's, temperature applied)."""
        return set_mask(proba, self.quantiles, self.score, **self.options)

    def describe(self) -> str:
        kind = "Mondrian (one quantile per class)" if self.by_class else "marginal"
        return f"{self.coverage:.0%} coverage, {self.score.upper()}, {kind}, {self.images} {self.split} images"

    def to_dict(self) -> dict:
        """JSON values: +inf as null (JSON has no infinity); the raps parameters only for raps."""
        data = {"coverage": self.coverage, "score": self.score, "by_class": self.by_class,
                "quantiles": [None if q == math.inf else q for q in self.quantiles], "method": self.method,
                "images": self.images, "split": self.split}
        return data | ({"raps_lambda": self.raps_lambda, "raps_k_reg": self.raps_k_reg} if self.score == "raps"
                       else {})

    @classmethod
    def from_dict(cls, data: dict) -> "PredictionSets":
        data = dict(data)
        data["quantiles"] = tuple(math.inf if q is None else q for q in data.get("quantiles") or ())
        return cls(**data)

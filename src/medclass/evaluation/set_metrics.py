"""How a head's conformal prediction sets (core/prediction_sets.py) did on the split evaluated: the share of images
whose set holds their true class (empirical coverage) beside the target, how large the sets are, and both per
class. In metrics.json as each task's `prediction_sets`, printed by `medclass evaluate`, and a section of
report.html.

Intervals are exact (Clopper-Pearson) 95% binomial intervals. `expected_range` is where the empirical coverage of
n exchangeable images falls 95% of the time when the sets cover exactly at the target: conformal sets cover at
least the target (and at most 1/(n_calibration + 1) above it), so an empirical coverage within or above that range
is what the guarantee promises, and one below it says the test images are not like the calibration images.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, binomtest

from medclass.core.heads import TaskHead

INTERVAL = "Clopper-Pearson (exact binomial) 95%"


def share(hits: int, n: int) -> dict:
    """A share with its Clopper-Pearson 95% interval (None when n = 0)."""
    if n == 0:
        return {"rate": None, "count": 0, "n": 0, "ci": [None, None]}
    ci = binomtest(int(hits), int(n)).proportion_ci(0.95, method="exact")
    return {"rate": hits / n, "count": int(hits), "n": int(n), "ci": [float(ci.low), float(ci.high)]}


def expected_range(target: float, n: int) -> list[float | None]:
    """The central 95% range of the empirical coverage of n images under sets that cover exactly at `target`."""
    if n == 0:
        return [None, None]
    return [float(binom.ppf(0.025, n, target) / n), float(binom.ppf(0.975, n, target) / n)]


def verdict(rate: float | None, bounds: list) -> str:
    """within, above or below the expected range (above: more than the target, which the guarantee allows)."""
    if rate is None:
        return "no images"
    return "below" if rate < bounds[0] else "above" if rate > bounds[1] else "within"


def set_metrics(head: TaskHead, y: np.ndarray, proba: np.ndarray) -> dict | None:
    """The sets of `head` on labelled images (y: its target column, -1 rows dropped; proba: its probabilities);
    None when the head has no sets."""
    sets = head.prediction_sets
    if sets is None:
        return None
    truth = np.asarray(y).reshape(len(y), -1)[:, 0]
    members = head.set_membership(proba)
    covered = members[np.arange(len(truth)), truth]
    sizes = members.sum(1)
    overall = share(int(covered.sum()), len(truth))
    bounds = expected_range(sets.coverage, len(truth))
    per_class = {}
    for index, name in enumerate(head.classes):
        rows = truth == index
        per_class[name] = share(int(covered[rows].sum()), int(rows.sum())) | {
            "mean_size": float(sizes[rows].mean()) if rows.any() else None}
    return {"target": sets.coverage, "score": sets.score, "by_class": sets.by_class, "calibration": sets.method,
            "calibration_images": sets.images, "in_every_set": [head.classes[i] for i in sets.unbounded]
            if sets.by_class else (list(head.classes) if sets.unbounded else []),
            "n": int(len(truth)), "coverage": overall, "interval": INTERVAL, "expected_range": bounds,
            "verdict": verdict(overall["rate"], bounds),
            "mean_size": float(sizes.mean()) if len(sizes) else None,
            "singletons": float((sizes == 1).mean()) if len(sizes) else None,
            "empty": float((sizes == 0).mean()) if len(sizes) else None,
            "sizes": {str(k): int((sizes == k).sum()) for k in range(len(head.classes) + 1) if (sizes == k).any()},
            "per_class": per_class}


def coverage_text(block: dict) -> str:
    """'0.912 (0.89-0.93)'."""
    rate, (low, high) = block["rate"], block["ci"]
    return "–" if rate is None else f"{rate:.3f} ({low:.3f}-{high:.3f})"


def set_summary_lines(metrics: dict) -> list[str]:
    """What `medclass evaluate` prints for one task's sets."""
    sets = metrics.get("prediction_sets")
    if not sets:
        return []
    kind = "Mondrian" if sets["by_class"] else "marginal"
    low, high = sets["expected_range"]
    lines = [f"{'prediction sets':>36}: coverage {coverage_text(sets['coverage'])} for a target of "
             f"{sets['target']:.2f} ({sets['verdict']} {low:.3f}-{high:.3f}; {kind} {sets['score'].upper()}); "
             f"mean size {sets['mean_size']:.2f}, {sets['singletons']:.0%} one class"
             + (f"; in every set (too few calibration images): {', '.join(sets['in_every_set'])}"
                if sets["in_every_set"] else "")]
    lines.append(f"{'coverage per class':>36}: " + ", ".join(
        f"{name} {coverage_text(block)}" for name, block in sets["per_class"].items()))
    return lines


def two_class_example(classes: list[str]) -> str:
    """The plain reading of a set of two classes."""
    return (f"“{classes[0]} or {classes[1]}”: the model cannot tell these apart for this image; a set of one class "
            "is a confident answer.")

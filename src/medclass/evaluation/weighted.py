"""Metrics over weighted rows, many weightings at once: a bootstrap resample is a count per row (how often it was
drawn), so `weights` (resamples, rows) scores every resample of a chunk in a few array operations instead of one
scikit-learn call per resample and metric. One row of ones is the data set itself, which is how the point
estimates are computed: an interval and the number beside it come from the same code.

Each function equals scikit-learn's on the rows repeated by their counts (tests/evaluation/test_metrics.py checks
every one against it): AUC is the Mann-Whitney statistic over mid-ranks (ties count one half), average precision
the step sum over distinct scores that `average_precision_score` computes.
"""

from __future__ import annotations

import numpy as np


def ratio(num: np.ndarray, den: np.ndarray, undefined: float = float("nan")) -> np.ndarray:
    """num / den, `undefined` where den is 0 (NaN: a rate without cases; 0: scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, undefined), where=den != 0)


def total(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(resamples,) weighted count of the rows where `mask` holds."""
    return weights @ np.asarray(mask, dtype=float)


def _per_score(weights: np.ndarray, truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted positives and negatives at each distinct score, in ascending score order: (resamples, scores) each."""
    _, key = np.unique(score, return_inverse=True)
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(key[order]) != 0])
    truth = np.asarray(truth, dtype=bool)[order]
    ordered = weights[:, order]
    positives = np.add.reduceat(ordered * truth, starts, axis=1)
    negatives = np.add.reduceat(ordered * ~truth, starts, axis=1)
    return positives, negatives


def weighted_auc(weights: np.ndarray, truth: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC-AUC of `score` for the bool `truth` per weighting; NaN where positives or negatives weigh nothing."""
    positives, negatives = _per_score(weights, truth, score)
    below = np.cumsum(negatives, axis=1) - negatives
    wins = np.sum(positives * (below + 0.5 * negatives), axis=1)
    return ratio(wins, positives.sum(1) * negatives.sum(1))


def weighted_average_precision(weights: np.ndarray, truth: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Average precision (PR-AUC) per weighting: the precision at each distinct score, highest first, weighted by
    the recall it adds. NaN where positives or negatives weigh nothing (as `finding_pr_auc`)."""
    positives, negatives = _per_score(weights, truth, score)
    true_pos = np.cumsum(positives[:, ::-1], axis=1)
    called = true_pos + np.cumsum(negatives[:, ::-1], axis=1)
    precision = ratio(true_pos, called, 0.0)
    found = true_pos[:, -1]
    ap = ratio(np.sum(positives[:, ::-1] * precision, axis=1), found)
    return np.where(negatives.sum(1) > 0, ap, np.nan)


def confusion(weights: np.ndarray, y: np.ndarray, decided: np.ndarray, n_classes: int) -> np.ndarray:
    """(resamples, true class, decided class) weighted counts."""
    cell = np.asarray(y) * n_classes + np.asarray(decided)
    onehot = np.zeros((len(cell), n_classes * n_classes))
    onehot[np.arange(len(cell)), cell] = 1.0
    return (weights @ onehot).reshape(len(weights), n_classes, n_classes)


def class_rates(true_pos: np.ndarray, support: np.ndarray, called: np.ndarray) -> dict[str, np.ndarray]:
    """Per class (last axis) precision, recall and F1 with scikit-learn's zero_division=0."""
    return {"precision": ratio(true_pos, called, 0.0), "recall": ratio(true_pos, support, 0.0),
            "f1": ratio(2 * true_pos, support + called, 0.0)}


def quadratic_kappa(counts: np.ndarray) -> np.ndarray:
    """Cohen's kappa with quadratic weights from (resamples, K, K) confusion matrices."""
    k = counts.shape[-1]
    penalty = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
    expected = counts.sum(2)[:, :, None] * counts.sum(1)[:, None, :] / counts.sum((1, 2))[:, None, None]
    return 1 - ratio(np.sum(penalty * counts, (1, 2)), np.sum(penalty * expected, (1, 2)))


def defined_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the defined (finite) values; NaN where none is."""
    values = np.asarray(values, dtype=float)
    defined = np.isfinite(values)
    return ratio(np.where(defined, values, 0).sum(-1), defined.sum(-1))

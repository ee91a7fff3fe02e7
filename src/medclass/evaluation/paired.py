"""Comparing two models scored on the same test images ("is DenseNet's AUC really higher than ResNet's?").

Two AUCs measured on the same cases are correlated: an image that is hard for one model tends to be hard for the
other. Comparing two independent confidence intervals ignores that and is far too conservative, so both tests
here are paired: DeLong's test uses the covariance of the two AUC estimates, the paired bootstrap draws the same
images for both models in every resample.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats

from medclass.evaluation.bootstrap import percentile_interval, resample_weights
from medclass.evaluation.metrics import class_auc, findings_auc
from medclass.evaluation.weighted import defined_mean


def delong_test(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, level: float = 0.95) -> dict:
    """DeLong, DeLong & Clarke-Pearson (1988): are two correlated ROC AUCs on the same cases different?

    y: 0/1 (or bool) labels; score_a, score_b: each model's positive-class score per case. Uses the O(n log n)
    mid-rank form of Sun & Xu (2014). The difference is b - a; the CI is the normal interval at `level`.
    Assumes independent cases: with several images per patient, prefer the bootstrap with `groups`.
    """
    y = _binary_labels(y)
    scores = np.stack([np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)])
    if scores.shape[1] != len(y):
        raise ValueError(f"DeLong: {len(y)} labels but {scores.shape[1]} scores per model")
    aucs, v10, v01 = zip(*(_structural_components(s[y], s[~y]) for s in scores))
    positives, negatives = int(y.sum()), int((~y).sum())
    cov = np.cov(np.stack(v10)) / positives + np.cov(np.stack(v01)) / negatives
    se = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)))
    difference = float(aucs[1] - aucs[0])
    z, p_value = _normal_test(difference, se)
    half_width = float(stats.norm.ppf((1 + level) / 2)) * se
    return {"method": "DeLong", "auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": difference,
            "se": se, "z": z, "p_value": p_value, "ci": [difference - half_width, difference + half_width],
            "level": level, "n": int(len(y)), "positives": positives}


def _binary_labels(y: np.ndarray) -> np.ndarray:
    """Labels as a bool mask, refusing what DeLong cannot use: other values, or too few cases of a class."""
    y = np.asarray(y).ravel()
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"DeLong needs 0/1 labels, got values {np.unique(y)[:5].tolist()}")
    y = y.astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"DeLong needs both classes: the labels hold only {'positives' if positives else 'negatives'}"
                         f" ({len(y)} cases), so the AUC is undefined")
    if positives < 2 or negatives < 2:
        raise ValueError(f"DeLong needs at least two cases of each class to estimate a variance "
                         f"({positives} positives, {negatives} negatives)")
    return y


def _structural_components(pos: np.ndarray, neg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's placement values from mid-ranks, with ties counting one half (as the AUC does).

    V10[i]: share of negatives scored below positive i; V01[j]: share of positives scored above negative j.
    A case's rank among all cases minus its rank within its own class counts the other class's cases below it.
    """
    m, n = len(pos), len(neg)
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    v10 = (ranks[:m] - stats.rankdata(pos)) / n
    v01 = 1 - (ranks[m:] - stats.rankdata(neg)) / m
    return float(v10.mean()), v10, v01


def _normal_test(difference: float, se: float) -> tuple[float, float]:
    """z and two-sided p; a zero SE (identical models) gives z 0, p 1 without dividing by zero."""
    if se == 0:
        if difference == 0:
            return 0.0, 1.0
        return float(np.copysign(np.inf, difference)), 0.0
    z = difference / se
    return float(z), float(2 * stats.norm.sf(abs(z)))


def paired_bootstrap(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray,
                     statistic: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], strata: np.ndarray,
                     n_boot: int = 2000, seed: int = 0, groups: np.ndarray | None = None, level: float = 0.95) -> dict:
    """Bootstrap of statistic(y, proba_b) - statistic(y, proba_a), drawing the same rows for both models.

    statistic(weights, y, proba): one value per row of `weights` (resamples, rows), each a count of how often every
    row was drawn (evaluation/weighted.py); a row of ones scores the data itself. Drawing the same rows keeps the
    correlation between the models, which is what makes the test paired. strata and groups are as in
    `resample_indices` (stratified; whole patients when groups are given). p_value: two-sided,
    twice the smaller share of resampled differences on either side of 0 (capped at 1, undefined draws ignored);
    its resolution is 1 / n_boot, so 0 means "below that".
    """
    y, proba_a, proba_b = np.asarray(y), np.asarray(proba_a), np.asarray(proba_b)
    everything = np.ones((1, len(y)))
    a, b = statistic(everything, y, proba_a)[0], statistic(everything, y, proba_b)[0]
    draws = np.concatenate([statistic(w, y, proba_b) - statistic(w, y, proba_a)
                            for w in resample_weights(strata, n_boot, seed, groups)]).astype(float)
    return {"method": "paired bootstrap", "a": float(a), "b": float(b), "difference": float(b - a),
            "ci": percentile_interval(draws, level), "p_value": _bootstrap_p(draws), "level": level,
            "n_boot": int(n_boot), "n": int(len(y))}


def _bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided bootstrap p of "no difference": how often the resampled difference lands on the other side of 0."""
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(draws <= 0), np.mean(draws >= 0))))


def compare_auc(y_true: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, kind: str,
                positive_index: int | None, n_boot: int, seed: int = 0, groups: np.ndarray | None = None,
                level: float = 0.95) -> dict:
    """The AUC tests a comparison of two runs reports for one task.

    binary: y_true class indices, probas (n, 2): DeLong on the positive class's column and the paired bootstrap.
    multiclass: the paired bootstrap of the macro one-vs-rest AUC (DeLong compares one binary AUC).
    multilabel: y_true and probas (n, findings), 0/1 targets: the paired bootstrap of the macro AUC over findings.
    Rows must all be labelled (drop -1 rows first).
    """
    y_true, proba_a, proba_b = np.asarray(y_true), np.asarray(proba_a), np.asarray(proba_b)
    if proba_a.shape != proba_b.shape or len(proba_a) != len(y_true):
        raise ValueError(f"compare: shapes differ (labels {y_true.shape}, A {proba_a.shape}, B {proba_b.shape}); "
                         "both runs must score the same images")
    if kind == "multilabel":
        return {"bootstrap": paired_bootstrap(y_true, proba_a, proba_b, macro_findings_auc, y_true.any(1), n_boot,
                                              seed, groups, level)}
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"compare: unknown task kind {kind!r} (binary, multiclass or multilabel)")
    result = {}
    if kind == "binary":
        positive = 1 if positive_index is None else positive_index
        result["delong"] = delong_test(y_true == positive, proba_a[:, positive], proba_b[:, positive], level)
    result["bootstrap"] = paired_bootstrap(y_true, proba_a, proba_b, lambda w, y, p: class_auc(w, y, p, positive_index),
                                           y_true, n_boot, seed, groups, level)
    return result


def macro_findings_auc(weights: np.ndarray, y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return defined_mean(findings_auc(weights, y, proba))

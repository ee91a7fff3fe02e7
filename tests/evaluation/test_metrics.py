"""Metrics against scikit-learn and the bootstrap interval's behaviour."""

import numpy as np
from sklearn.metrics import roc_auc_score

from medclass.evaluation.metrics import auc_score, classification_metrics


def _binary(seed=0, n=200):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    return y, np.stack([1 - p1, p1], 1)


def test_binary_auc_scores_the_positive_column():
    y, proba = _binary()
    assert auc_score(y, proba, 1) == roc_auc_score(y, proba[:, 1])
    assert auc_score(y, proba, 0) == roc_auc_score(y == 0, proba[:, 0])


def test_auc_undefined_is_nan_not_an_exception():
    assert np.isnan(auc_score(np.zeros(5, int), np.full((5, 2), 0.5), 1))


def test_report_keys_and_interval_brackets_the_estimate():
    y, proba = _binary(1)
    pred = (proba[:, 1] >= 0.5).astype(int)
    m = classification_metrics(y, proba, pred, ["neg", "pos"], positive_index=1, n_boot=200)
    for key in ("accuracy", "balanced_accuracy", "auc", "f1_macro", "f1_weighted", "confusion_matrix", "per_class"):
        assert key in m
    assert np.sum(m["confusion_matrix"]) == len(y) and m["positive_class"] == "pos"
    assert m["per_class"]["pos"]["support"] == int(y.sum())
    low, high = m["ci"]["auc"]
    assert low < m["auc"] < high and high - low < 0.3


def test_multiclass_auc_is_macro_one_vs_rest():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 30)
    proba = rng.dirichlet([1, 1, 1], 90)
    proba[np.arange(90), y] += 0.5
    proba /= proba.sum(1, keepdims=True)
    expected = roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert abs(auc_score(y, proba) - expected) < 1e-12

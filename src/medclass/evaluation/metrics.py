"""Classification metrics as a clinical paper reports them, computed with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def auc_score(y_true: np.ndarray, proba: np.ndarray, positive_index: int | None = None) -> float:
    """Binary: ROC-AUC of the positive class's probability. Multi-class: macro one-vs-rest ROC-AUC.

    NaN when it is undefined (a class absent from y_true), rather than an exception mid-training.
    """
    n_classes = proba.shape[1]
    present = np.unique(y_true)
    try:
        if n_classes == 2:
            positive = 1 if positive_index is None else positive_index
            return float(skm.roc_auc_score(y_true == positive, proba[:, positive])) if len(present) == 2 else float("nan")
        if len(present) < n_classes:
            return float("nan")
        return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=range(n_classes)))
    except ValueError:
        return float("nan")


def bootstrap_ci(y_true: np.ndarray, proba: np.ndarray, y_pred: np.ndarray, positive_index: int | None,
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap CIs (resampling images) for AUC, accuracy and balanced accuracy."""
    rng = np.random.default_rng(seed)
    n = len(y_true)
    samples = {"auc": [], "accuracy": [], "balanced_accuracy": []}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        yt, yp = y_true[idx], y_pred[idx]
        samples["auc"].append(auc_score(yt, proba[idx], positive_index))
        samples["accuracy"].append(float(np.mean(yt == yp)))
        samples["balanced_accuracy"].append(_balanced_accuracy(yt, yp))
    tail = (1 - level) / 2 * 100
    return {name: [float(np.nanpercentile(vals, tail)), float(np.nanpercentile(vals, 100 - tail))]
            for name, vals in samples.items()} | {"level": level, "n_boot": n_boot}


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return float(np.mean(recalls))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, y_pred: np.ndarray, classes: list[str],
                           positive_index: int | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Everything `medclass evaluate` reports, as plain JSON-ready values."""
    labels = list(range(len(classes)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i]),
               "auc_ovr": auc_score((y_true == i).astype(int), np.stack([1 - proba[:, i], proba[:, i]], 1), 1)}
        for i, name in enumerate(classes)
    }
    result = {
        "n": int(len(y_true)),
        "classes": list(classes),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "auc": auc_score(y_true, proba, positive_index),
        "auc_kind": "binary, positive class" if len(classes) == 2 else "macro one-vs-rest",
    }
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        result |= {f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)}
    if len(classes) == 2:
        result["positive_class"] = classes[positive_index if positive_index is not None else 1]
    result["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    result["per_class"] = per_class
    if n_boot:
        result["ci"] = bootstrap_ci(y_true, proba, y_pred, positive_index, n_boot=n_boot, seed=seed)
    return result

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
    return {name: _percentiles(values, level) for name, values in samples.items()} | {"level": level,
                                                                                        "n_boot": n_boot}


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


def labelled_rows(y: np.ndarray) -> np.ndarray:
    """Rows of a task's target columns that carry a label (-1: none)."""
    return (y >= 0).all(1)


def multilabel_auc(y: np.ndarray, proba: np.ndarray, average: str = "macro") -> float:
    """Macro: the mean AUC over findings that have positive and negative images (others are undefined, not 0.5);
    micro: one AUC over every (image, finding) pair. NaN when undefined."""
    if average == "micro":
        flat = y.ravel()
        return float(skm.roc_auc_score(flat, proba.ravel())) if 0 < flat.sum() < len(flat) else float("nan")
    per_finding = [finding_auc(y[:, j], proba[:, j]) for j in range(y.shape[1])]
    return float(np.nanmean(per_finding)) if np.isfinite(per_finding).any() else float("nan")


def finding_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def task_scores(heads, y_by_task: dict, proba_by_task: dict) -> dict[str, dict]:
    """Validation's two numbers per task: AUC (binary: positive class; multiclass: macro one-vs-rest; multilabel:
    macro over findings) and accuracy at the head's decision (multilabel: over image-finding pairs), on the images
    labelled for that task."""
    scores = {}
    for head in heads:
        y, proba = y_by_task[head.name], proba_by_task[head.name]
        keep = labelled_rows(y)
        y, proba = y[keep], proba[keep]
        if not len(y):
            scores[head.name] = {"auc": float("nan"), "accuracy": float("nan")}
            continue
        decided = head.decide(proba)
        if head.kind == "multilabel":
            scores[head.name] = {"auc": multilabel_auc(y, proba), "accuracy": float((decided == y).mean())}
        else:
            scores[head.name] = {"auc": auc_score(y[:, 0], proba, head.positive_index),
                                 "accuracy": float((decided == y[:, 0]).mean())}
    return scores


def multilabel_metrics(y: np.ndarray, proba: np.ndarray, decided: np.ndarray, findings: list[str],
                       n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """A multi-label task as ChestX-ray14 papers report it: AUC per finding with bootstrap CIs (resampling images),
    macro and micro AUC, and precision/recall/F1 per finding at the decision thresholds."""
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, decided, zero_division=0)
    specificity = [float(((decided[:, j] == 0) & (y[:, j] == 0)).sum() / max((y[:, j] == 0).sum(), 1))
                   for j in range(y.shape[1])]
    per_finding = {name: {"auc": finding_auc(y[:, j], proba[:, j]), "positives": int(support[j]),
                          "precision": float(precision[j]), "recall": float(recall[j]), "f1": float(f1[j]),
                          "specificity": specificity[j]}
                   for j, name in enumerate(findings)}
    result = {"n": int(len(y)), "classes": list(findings), "auc": multilabel_auc(y, proba),
              "auc_micro": multilabel_auc(y, proba, "micro"), "auc_kind": "macro over findings",
              "subset_accuracy": float((decided == y).all(1).mean()),
              "label_accuracy": float((decided == y).mean())}
    for avg in ("macro", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, decided, average=avg, zero_division=0)
        result |= {f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)}
    result["per_finding"] = per_finding
    if n_boot:
        rng = np.random.default_rng(seed)
        draws = {"auc": [], "auc_micro": [], **{name: [] for name in findings}}
        for _ in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            yb, pb = y[idx], proba[idx]
            draws["auc"].append(multilabel_auc(yb, pb))
            draws["auc_micro"].append(multilabel_auc(yb, pb, "micro"))
            for j, name in enumerate(findings):
                draws[name].append(finding_auc(yb[:, j], pb[:, j]))
        bounds = {key: _percentiles(values, level) for key, values in draws.items()}
        result["ci"] = {"auc": bounds["auc"], "auc_micro": bounds["auc_micro"], "level": level, "n_boot": n_boot}
        for name in findings:
            per_finding[name]["auc_ci"] = bounds[name]
    return result


def _percentiles(values: list[float], level: float) -> list[float] | None:
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).any():
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]

"""Classification metrics as a clinical paper reports them, per task kind.

Each kind has one `*_summary` function giving its headline numbers under weightings of the rows (evaluation/
weighted.py: equal to scikit-learn's on the rows repeated, which the tests check); the point estimates (every row
once) and the bootstrap intervals (evaluation/bootstrap.py: stratified, by patient when patients have several
images; each resample a count per row) both come from it, so an interval always belongs to the number printed
beside it, and 1000 resamples cost a few array operations rather than thousands of scikit-learn calls. Tables
(per class, per finding, the confusion matrix) and validation's scores use scikit-learn directly.
- binary: sensitivity, specificity, PPV, NPV, F1 and accuracy at the operating point; ROC-AUC and PR-AUC (average
  precision) of the positive class's probability;
- multiclass: accuracy, balanced accuracy, macro and weighted P/R/F1, macro one-vs-rest ROC-AUC; ordinal grades
  also quadratic-weighted kappa;
- multilabel: macro and micro ROC-AUC and PR-AUC, per-finding AUC, F1 and accuracy over image-finding pairs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn import metrics as skm

from medclass.evaluation.bootstrap import bootstrap_intervals
from medclass.evaluation.weighted import (class_rates, confusion, defined_mean, quadratic_kappa, ratio, total,
                                          weighted_auc, weighted_average_precision)


def auc_score(y_true: np.ndarray, proba: np.ndarray, positive_index: int | None = None) -> float:
    """Binary: ROC-AUC of the positive class's probability. Multi-class: macro one-vs-rest ROC-AUC.

    NaN when it is undefined (a class absent from y_true), rather than an exception mid-training.
    """
    n_classes = proba.shape[1]
    present = np.unique(y_true)
    try:
        if n_classes == 2:
            positive = 1 if positive_index is None else positive_index
            if len(present) < 2:
                return float("nan")
            return float(skm.roc_auc_score(y_true == positive, proba[:, positive]))
        if len(present) < n_classes:
            return float("nan")
        return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=range(n_classes)))
    except ValueError:
        return float("nan")


def _rates(tp, fp, fn, tn) -> dict:
    """Sensitivity, specificity, PPV, NPV, F1, accuracy and balanced accuracy from the four counts (floats or
    arrays of them; NaN where a denominator is empty)."""
    sensitivity, specificity = ratio(tp, tp + fn), ratio(tn, tn + fp)
    return {"sensitivity": sensitivity, "specificity": specificity, "ppv": ratio(tp, tp + fp),
            "npv": ratio(tn, tn + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "accuracy": ratio(tp + tn, tp + fp + fn + tn), "balanced_accuracy": (sensitivity + specificity) / 2}


def decision_rates(positive: np.ndarray, called: np.ndarray) -> dict[str, float]:
    """What one yes/no decision achieves: sensitivity, specificity, PPV, NPV, F1, accuracy, balanced accuracy
    (NaN where a denominator is empty). positive: the truth; called: the decision (both bool)."""
    positive, called = np.asarray(positive, bool), np.asarray(called, bool)
    counts = [np.sum(t & c) for t, c in ((positive, called), (~positive, called), (positive, ~called),
                                          (~positive, ~called))]
    return {k: float(v) for k, v in _rates(*counts).items()}


def class_auc(weights: np.ndarray, y: np.ndarray, proba: np.ndarray, positive_index: int | None = None
              ) -> np.ndarray:
    """`auc_score` per weighting of the rows: binary, the positive class's AUC; multi-class, the macro one-vs-rest
    AUC, undefined (NaN) where a class weighs nothing."""
    n_classes = proba.shape[1]
    if n_classes == 2:
        positive = 1 if positive_index is None else positive_index
        return weighted_auc(weights, y == positive, proba[:, positive])
    per_class = np.stack([weighted_auc(weights, y == c, proba[:, c]) for c in range(n_classes)], 1)
    present = np.stack([total(weights, y == c) > 0 for c in range(n_classes)], 1)
    return np.where(present.all(1), per_class.mean(1), np.nan)


def findings_auc(weights: np.ndarray, y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """(resamples, findings): each finding's AUC per weighting (`defined_mean` of it: `multilabel_auc`)."""
    return np.stack([weighted_auc(weights, y[:, j] == 1, proba[:, j]) for j in range(y.shape[1])], 1)


# The `*_summary` functions score every weighting of the rows at once (weights: (resamples, rows), a row of ones
# for the data itself) and return {name: (resamples,) array}; `task_metrics` takes the point estimate and the
# bootstrap intervals from the same function.

def binary_summary(positive: np.ndarray, score: np.ndarray, called: np.ndarray, weights: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """positive: the truth (bool); score: the positive class's probability; called: the decision (bool)."""
    positive, called = np.asarray(positive, bool), np.asarray(called, bool)
    counts = [total(weights, t & c) for t, c in ((positive, called), (~positive, called), (positive, ~called),
                                                 (~positive, ~called))]
    return _rates(*counts) | {"auc": weighted_auc(weights, positive, score),
                              "pr_auc": weighted_average_precision(weights, positive, score)}


def multiclass_summary(y: np.ndarray, proba: np.ndarray, decided: np.ndarray, weights: np.ndarray,
                       ordinal: bool = False) -> dict[str, np.ndarray]:
    n_classes = proba.shape[1]
    counts = confusion(weights, y, decided, n_classes)
    true_pos, support, called = np.diagonal(counts, axis1=1, axis2=2), counts.sum(2), counts.sum(1)
    present = support > 0
    result = {"accuracy": ratio(true_pos.sum(1), support.sum(1)), "auc": class_auc(weights, y, proba),
              # the mean recall over the classes present, as scikit-learn's balanced_accuracy_score
              "balanced_accuracy": defined_mean(np.where(present, ratio(true_pos, support), np.nan))}
    rates = class_rates(true_pos, support, called)
    share = support / support.sum(1, keepdims=True)
    for name, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1")):
        result[f"{name}_macro"] = rates[key].mean(1)
        result[f"{name}_weighted"] = np.sum(rates[key] * share, 1)
    if ordinal:
        result["kappa_quadratic"] = quadratic_kappa(counts)
    return result


def multilabel_auc(y: np.ndarray, proba: np.ndarray, average: str = "macro") -> float:
    """Macro: the mean AUC over findings that have positive and negative images (others are undefined, not 0.5);
    micro: one AUC over every (image, finding) pair. NaN when undefined."""
    if average == "micro":
        flat = y.ravel()
        return float(skm.roc_auc_score(flat, proba.ravel())) if 0 < flat.sum() < len(flat) else float("nan")
    return float(defined_mean([finding_auc(y[:, j], proba[:, j]) for j in range(y.shape[1])]))


def finding_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def finding_pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.average_precision_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def multilabel_summary(y: np.ndarray, proba: np.ndarray, decided: np.ndarray, findings: list[str],
                       weights: np.ndarray) -> dict[str, np.ndarray]:
    y, decided = np.asarray(y, bool), np.asarray(decided, bool)
    n_findings = y.shape[1]
    aucs = findings_auc(weights, y, proba)
    precisions = np.stack([weighted_average_precision(weights, y[:, j], proba[:, j]) for j in range(n_findings)], 1)
    pairs = np.repeat(weights, n_findings, axis=1)  # every (image, finding) pair weighs as its image
    images = weights.sum(1)
    result = {"auc": defined_mean(aucs), "auc_micro": weighted_auc(pairs, y.ravel(), proba.ravel()),
              "pr_auc": defined_mean(precisions),
              "pr_auc_micro": weighted_average_precision(pairs, y.ravel(), proba.ravel()),
              "label_accuracy": ratio(weights @ (decided == y).sum(1), images * n_findings),
              "subset_accuracy": ratio(total(weights, (decided == y).all(1)), images)}
    true_pos = np.stack([total(weights, y[:, j] & decided[:, j]) for j in range(n_findings)], 1)
    support = np.stack([total(weights, y[:, j]) for j in range(n_findings)], 1)
    called = np.stack([total(weights, decided[:, j]) for j in range(n_findings)], 1)
    macro = class_rates(true_pos, support, called)
    micro = class_rates(true_pos.sum(1), support.sum(1), called.sum(1))
    for name in ("precision", "recall", "f1"):
        result |= {f"{name}_macro": macro[name].mean(1), f"{name}_micro": micro[name]}
    return result | {f"auc:{name}": aucs[:, j] for j, name in enumerate(findings)}


def per_class_table(y: np.ndarray, proba: np.ndarray, decided: np.ndarray, classes: list[str]) -> dict:
    labels = list(range(len(classes)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, decided, labels=labels, zero_division=0)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i]), "auc_ovr": finding_auc(y == i, proba[:, i]),
                   "pr_auc_ovr": finding_pr_auc(y == i, proba[:, i])}
            for i, name in enumerate(classes)}


def per_finding_table(y: np.ndarray, proba: np.ndarray, decided: np.ndarray, findings: list[str]) -> dict:
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, decided, zero_division=0)
    return {name: {"auc": finding_auc(y[:, j], proba[:, j]), "pr_auc": finding_pr_auc(y[:, j], proba[:, j]),
                   "positives": int(support[j]), "precision": float(precision[j]), "recall": float(recall[j]),
                   "f1": float(f1[j]), "specificity": decision_rates(y[:, j] == 1, decided[:, j] == 1)["specificity"]}
            for j, name in enumerate(findings)}


def task_statistics(kind: str, y: np.ndarray, proba: np.ndarray, decided: np.ndarray, classes: list[str],
                    positive_index: int | None = None, ordinal: bool = False) -> tuple[Callable, np.ndarray]:
    """(statistics, strata): `statistics(weights)` is the kind's `*_summary` on these rows, `strata` what a
    bootstrap of them stratifies by (the class; multi-label: whether any finding is present)."""
    if kind == "multilabel":
        return (lambda weights: multilabel_summary(y, proba, decided, classes, weights)), y.any(1)
    if kind == "binary":
        positive, called, score = y == positive_index, decided == positive_index, proba[:, positive_index]
        return (lambda weights: binary_summary(positive, score, called, weights)), y
    return (lambda weights: multiclass_summary(y, proba, decided, weights, ordinal)), y


def task_metrics(kind: str, y: np.ndarray, proba: np.ndarray, decided: np.ndarray, classes: list[str],
                 positive_index: int | None = None, ordinal: bool = False, n_boot: int = 1000, seed: int = 0,
                 groups: np.ndarray | None = None, level: float = 0.95) -> dict:
    """Every number `medclass evaluate` reports for one task, as plain JSON-ready values.

    y: class indices (binary, multiclass) or the 0/1 finding matrix (multilabel); decided: likewise, the model's
    decisions. With `n_boot`, `ci` holds a percentile interval per headline number (stratified by class; by
    patient when `groups` gives each row's patient)."""
    summary, strata = task_statistics(kind, y, proba, decided, classes, positive_index, ordinal)
    point = {k: float(v[0]) for k, v in summary(np.ones((1, len(y)))).items()}
    result = {"n": int(len(y)), "classes": list(classes), **point}
    if kind == "multilabel":
        result["auc_kind"] = "macro over findings"
        result["per_finding"] = per_finding_table(y, proba, decided, classes)
    else:
        result["auc_kind"] = "binary, positive class" if kind == "binary" else "macro one-vs-rest"
        result["confusion_matrix"] = skm.confusion_matrix(y, decided, labels=list(range(len(classes)))).tolist()
        result["per_class"] = per_class_table(y, proba, decided, classes)
        if kind == "binary":
            result["positive_class"] = classes[positive_index]
            result["prevalence"] = float(np.mean(y == positive_index))
            others = multiclass_summary(y, proba, decided, np.ones((1, len(y))))
            result |= {k: float(v[0]) for k, v in others.items() if k not in result}
    if n_boot:
        bounds = bootstrap_intervals(summary, strata, n_boot, seed, groups, level)
        result["ci"] = {k: v for k, v in bounds.items() if not k.startswith("auc:")} | {
            "level": level, "n_boot": n_boot, "seed": seed, "resampled": "patients" if groups is not None else "images",
            "stratified": "by finding presence" if kind == "multilabel" else "by class"}
        for name in result.get("per_finding", {}):
            result["per_finding"][name]["auc_ci"] = bounds.get(f"auc:{name}")
    for name in classes if kind == "multilabel" else ():
        result.pop(f"auc:{name}", None)
    return result


def labelled_rows(y: np.ndarray) -> np.ndarray:
    """Rows of a task's target columns that carry a label (-1: none)."""
    return (y >= 0).all(1)


def decision_accuracy(head, y: np.ndarray, proba: np.ndarray) -> float:
    """Accuracy at the head's decision on the rows labelled for it (multilabel: over image-finding pairs); NaN when
    none is."""
    keep = labelled_rows(y)
    if not keep.any():
        return float("nan")
    decided, y = head.decide(proba[keep]), y[keep]
    return float((decided == (y if head.kind == "multilabel" else y[:, 0])).mean())


def task_scores(heads, y_by_task: dict, proba_by_task: dict) -> dict[str, dict]:
    """Validation's two numbers per task: AUC (binary: positive class; multiclass: macro one-vs-rest; multilabel:
    macro over findings) and accuracy at the head's decision (multilabel: over image-finding pairs), on the images
    labelled for that task."""
    scores = {}
    for head in heads:
        y, proba = y_by_task[head.name], proba_by_task[head.name]
        keep = labelled_rows(y)
        accuracy = decision_accuracy(head, y, proba)
        if not keep.any():
            scores[head.name] = {"auc": float("nan"), "accuracy": accuracy}
        elif head.kind == "multilabel":
            scores[head.name] = {"auc": multilabel_auc(y[keep], proba[keep]), "accuracy": accuracy}
        else:
            scores[head.name] = {"auc": auc_score(y[keep][:, 0], proba[keep], head.positive_index),
                                 "accuracy": accuracy}
    return scores

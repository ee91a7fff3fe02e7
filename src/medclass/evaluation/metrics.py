"""Classification metrics as a clinical paper reports them, computed with scikit-learn, per task kind.

Each kind has one `*_summary` function giving its headline numbers on a set of rows; the point estimates and the
bootstrap intervals (evaluation/bootstrap.py: stratified, by patient when patients have several images) both come
from it, so an interval always belongs to the number printed beside it.
- binary: sensitivity, specificity, PPV, NPV, F1 and accuracy at the operating point; ROC-AUC and PR-AUC (average
  precision) of the positive class's probability;
- multiclass: accuracy, balanced accuracy, macro and weighted P/R/F1, macro one-vs-rest ROC-AUC; ordinal grades
  also quadratic-weighted kappa;
- multilabel: macro and micro ROC-AUC and PR-AUC, per-finding AUC, F1 and accuracy over image-finding pairs.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm

from medclass.evaluation.bootstrap import bootstrap_intervals


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


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def decision_rates(positive: np.ndarray, called: np.ndarray) -> dict[str, float]:
    """What one yes/no decision achieves: sensitivity, specificity, PPV, NPV, F1, accuracy, balanced accuracy
    (NaN where a denominator is empty). positive: the truth; called: the decision (both bool)."""
    positive, called = np.asarray(positive, bool), np.asarray(called, bool)
    tp, fp = np.sum(positive & called), np.sum(~positive & called)
    fn, tn = np.sum(positive & ~called), np.sum(~positive & ~called)
    sensitivity, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    return {"sensitivity": sensitivity, "specificity": specificity, "ppv": _ratio(tp, tp + fp),
            "npv": _ratio(tn, tn + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "accuracy": _ratio(tp + tn, len(positive)), "balanced_accuracy": (sensitivity + specificity) / 2}


def binary_summary(positive: np.ndarray, score: np.ndarray, called: np.ndarray) -> dict[str, float]:
    """positive: the truth (bool); score: the positive class's probability; called: the decision (bool)."""
    positive = np.asarray(positive, bool)
    return decision_rates(positive, called) | {"auc": finding_auc(positive, score),
                                               "pr_auc": finding_pr_auc(positive, score)}


def multiclass_summary(y: np.ndarray, proba: np.ndarray, decided: np.ndarray, ordinal: bool = False
                       ) -> dict[str, float]:
    labels = list(range(proba.shape[1]))
    result = {"accuracy": float(np.mean(y == decided)), "auc": auc_score(y, proba)}
    with warnings.catch_warnings():  # a class absent from a resample: its recall is undefined, not a problem
        warnings.simplefilter("ignore")
        result["balanced_accuracy"] = float(skm.balanced_accuracy_score(y, decided))
        for avg in ("macro", "weighted"):
            p, r, f, _ = skm.precision_recall_fscore_support(y, decided, labels=labels, average=avg, zero_division=0)
            result |= {f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)}
        if ordinal:
            result["kappa_quadratic"] = float(skm.cohen_kappa_score(y, decided, labels=labels, weights="quadratic"))
    return result


def multilabel_auc(y: np.ndarray, proba: np.ndarray, average: str = "macro") -> float:
    """Macro: the mean AUC over findings that have positive and negative images (others are undefined, not 0.5);
    micro: one AUC over every (image, finding) pair. NaN when undefined."""
    if average == "micro":
        flat = y.ravel()
        return float(skm.roc_auc_score(flat, proba.ravel())) if 0 < flat.sum() < len(flat) else float("nan")
    return _defined_mean([finding_auc(y[:, j], proba[:, j]) for j in range(y.shape[1])])


def finding_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def finding_pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.average_precision_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _defined_mean(values: list[float]) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def multilabel_summary(y: np.ndarray, proba: np.ndarray, decided: np.ndarray, findings: list[str]
                       ) -> dict[str, float]:
    flat = y.ravel()
    result = {"auc": multilabel_auc(y, proba), "auc_micro": multilabel_auc(y, proba, "micro"),
              "pr_auc": _defined_mean([finding_pr_auc(y[:, j], proba[:, j]) for j in range(y.shape[1])]),
              "pr_auc_micro": finding_pr_auc(flat, proba.ravel()),
              "label_accuracy": float((decided == y).mean()), "subset_accuracy": float((decided == y).all(1).mean())}
    for avg in ("macro", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, decided, average=avg, zero_division=0)
        result |= {f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)}
    return result | {f"auc:{name}": finding_auc(y[:, j], proba[:, j]) for j, name in enumerate(findings)}


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


def task_metrics(kind: str, y: np.ndarray, proba: np.ndarray, decided: np.ndarray, classes: list[str],
                 positive_index: int | None = None, ordinal: bool = False, n_boot: int = 1000, seed: int = 0,
                 groups: np.ndarray | None = None, level: float = 0.95) -> dict:
    """Every number `medclass evaluate` reports for one task, as plain JSON-ready values.

    y: class indices (binary, multiclass) or the 0/1 finding matrix (multilabel); decided: likewise, the model's
    decisions. With `n_boot`, `ci` holds a percentile interval per headline number (stratified by class; by
    patient when `groups` gives each row's patient)."""
    if kind == "multilabel":
        def summary(idx):
            return multilabel_summary(y[idx], proba[idx], decided[idx], classes)
        strata = y.any(1)
    elif kind == "binary":
        positive, called, score = y == positive_index, decided == positive_index, proba[:, positive_index]

        def summary(idx):
            return binary_summary(positive[idx], score[idx], called[idx])
        strata = y
    else:
        def summary(idx):
            return multiclass_summary(y[idx], proba[idx], decided[idx], ordinal)
        strata = y
    everything = np.arange(len(y))
    result = {"n": int(len(y)), "classes": list(classes), **summary(everything)}
    if kind == "multilabel":
        result["auc_kind"] = "macro over findings"
        result["per_finding"] = per_finding_table(y, proba, decided, classes)
    else:
        result["auc_kind"] = "binary, positive class" if kind == "binary" else "macro one-vs-rest"
        result["confusion_matrix"] = skm.confusion_matrix(y, decided, labels=list(range(len(classes)))).tolist()
        result["per_class"] = per_class_table(y, proba, decided, classes)
        if kind == "binary":
            result["positive_class"] = classes[positive_index]
            result["prevalence"] = float(np.mean(positive))
            result |= {k: v for k, v in multiclass_summary(y, proba, decided).items() if k not in result}
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

"""Operating points: the probability at which a binary task (or each finding of a multi-label task) is called
positive, chosen on the validation split by a stated rule and stored in the artefact (scikit-learn's
`TunedThresholdClassifierCV` does the same for its estimators). The test split never chooses anything.

Rules (`--operating-point`): `0.5` (or any fixed value; with a softmax over two classes 0.5 is the argmax),
`youden` (maximise sensitivity + specificity - 1), `sensitivity:0.95` (the highest threshold that still reaches that
sensitivity, so the most specific one) and `specificity:0.9` (the lowest threshold keeping that specificity).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sklearn.metrics import roc_curve

from medclass.core.errors import MedclassError
from medclass.evaluation.rules import RULES, ThresholdRule  # noqa: F401  (imported from here too)
from medclass.evaluation.metrics import decision_rates
from medclass.core.heads import TaskHead

def choose_threshold(positive: np.ndarray, score: np.ndarray, rule: ThresholdRule) -> float:
    """The threshold `rule` picks on these labels (bool) and positive-class scores; decisions are score >= it."""
    if rule.kind == "fixed":
        return float(rule.value)
    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        raise MedclassError(f"operating point {rule}: needs positive and negative images to choose on; the split has "
                            f"{int(positive.sum())} positive of {len(positive)}")
    fpr, tpr, thresholds = roc_curve(positive, score, drop_intermediate=False)
    thresholds = np.minimum(thresholds, 1.0)  # the first is +inf (nothing called positive)
    if rule.kind == "youden":
        best = int(np.argmax(tpr - fpr))
    elif rule.kind == "sensitivity":
        best = int(np.flatnonzero(tpr >= rule.value - 1e-12)[0])  # thresholds fall: the first is the most specific
    else:
        best = int(np.flatnonzero(1 - fpr >= rule.value - 1e-12)[-1])  # the last keeping it is the most sensitive
    return float(thresholds[best])


def check_rule_applies(rule: ThresholdRule, heads, tasks: list[str] | None = None, where: str = "") -> None:
    """A rule that tunes needs binary or multi-label tasks among `tasks` (default: all), and none that is
    multiclass when tasks are named: those decide by the most probable class."""
    if not rule.tunes:
        return
    named = [h for h in heads if tasks is None or h.name in tasks]
    multiclass = [h.name for h in named if h.kind == "multiclass"]
    if multiclass and (tasks is not None or len(multiclass) == len(named)):
        raise MedclassError(f"{where}operating point {rule}: task(s) {', '.join(multiclass)} decide by the most "
                            "probable class; operating points apply to binary and multi-label tasks")


def tune_head(head: TaskHead, y: np.ndarray, proba: np.ndarray, rule: ThresholdRule, split: str) -> TaskHead:
    """`head` with threshold(s) chosen by `rule` on its labelled rows `y` / probabilities `proba`. Binary: one
    threshold on the positive class; multilabel: one per finding. Multiclass heads decide by argmax: refused."""
    if head.kind == "multiclass":
        raise MedclassError(f"task {head.name!r} is multiclass and decides by the most probable class; operating "
                            "points apply to binary and multi-label tasks")
    source = rule.describe(split, len(y))
    if head.kind == "binary":
        positive = y[:, 0] == head.positive_index
        return replace(head, threshold=choose_threshold(positive, proba[:, head.positive_index], rule),
                       threshold_source=source)
    thresholds, kept = [], []
    for j, name in enumerate(head.classes):
        present = y[:, j] == 1
        if rule.tunes and (present.all() or not present.any()):  # nothing to choose on: keep what it had
            thresholds.append(head.threshold[j])
            kept.append(name)
        else:
            thresholds.append(choose_threshold(present, proba[:, j], rule))
    if kept:
        source += f"; kept for {', '.join(kept)} (no positive or no negative image there)"
    return replace(head, threshold=tuple(thresholds), threshold_source=source)


def operating_characteristics(head: TaskHead, y: np.ndarray, proba: np.ndarray) -> dict:
    """Sensitivity and specificity at the head's threshold(s): per finding for multi-label."""
    decided = head.decide(proba)
    if head.kind == "binary":
        return {"threshold": head.threshold, **_sens_spec(y[:, 0] == head.positive_index,
                                                          decided == head.positive_index)}
    return {name: {"threshold": t, **_sens_spec(y[:, j] == 1, decided[:, j] == 1)}
            for j, (name, t) in enumerate(zip(head.classes, head.threshold))}


def _sens_spec(truth: np.ndarray, called: np.ndarray) -> dict:
    rates = decision_rates(truth, called)
    return {"sensitivity": rates["sensitivity"], "specificity": rates["specificity"]}

"""The value of one prediction: per task its label (a multilabel task's findings), its probability of every class,
and the rule that decided (threshold, where it came from, whether the probabilities are calibrated).

Every rendering reads this value: the predictions CSV (inference/batch.py), the line `medclass predict` prints, the
server's JSON and its page, the Python API (`Predictor.predictions`). None of them parses another's text, so a
finding whose name holds '|' stays one finding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from medclass.core.heads import UNTUNED, TaskHead, per_task, view_probabilities

FINDINGS_SEP = "|"  # how a multilabel task's findings share one CSV cell


def threshold_of(head: TaskHead):
    """Binary: the positive class's threshold; multilabel: {finding: threshold}; multiclass: None (argmax)."""
    if head.kind == "multilabel":
        return dict(zip(head.classes, head.threshold))
    return head.threshold if head.kind == "binary" else None


def threshold_source(head: TaskHead) -> str:
    return "argmax" if head.kind == "multiclass" else head.threshold_source or UNTUNED


@dataclass(frozen=True)
class TaskPrediction:
    """One task's answer for one image. `label`: the class decided, or for a multilabel task the findings present
    (a tuple, maybe empty); `probabilities`: {class: probability} in the head's class order; `prediction_set`: the
    classes of its conformal prediction set in class order (core/prediction_sets.py), None when the head has no
    sets (multilabel heads, older artefacts)."""

    task: str
    kind: str
    label: str | tuple[str, ...]
    probabilities: Mapping[str, float]
    threshold: float | Mapping[str, float] | None
    threshold_source: str
    calibrated: bool
    prediction_set: tuple[str, ...] | None = None

    @property
    def findings(self) -> tuple[str, ...]:
        """The findings present (multilabel), or the one class decided."""
        return self.label if isinstance(self.label, tuple) else (self.label,)

    @property
    def text(self) -> str:
        """The label as one cell of text: a class name, or the findings joined by '|' ('' for none)."""
        return FINDINGS_SEP.join(self.label) if isinstance(self.label, tuple) else self.label

    def values(self) -> list[float]:
        """The probabilities in class order."""
        return list(self.probabilities.values())

    def to_dict(self) -> dict:
        """The server's JSON of this task: {label (a list of findings for multilabel), probabilities, threshold,
        threshold_source, calibrated}, and prediction_set (a list) when the head has sets."""
        label = list(self.label) if isinstance(self.label, tuple) else self.label
        threshold = dict(self.threshold) if isinstance(self.threshold, Mapping) else self.threshold
        answer = {"label": label, "probabilities": dict(self.probabilities), "threshold": threshold,
                  "threshold_source": self.threshold_source, "calibrated": self.calibrated}
        return answer | ({"prediction_set": list(self.prediction_set)} if self.prediction_set is not None else {})

    @property
    def set_text(self) -> str | None:
        """The prediction set as one cell of text, its classes joined by '|'; None without sets."""
        return None if self.prediction_set is None else FINDINGS_SEP.join(self.prediction_set)


@dataclass(frozen=True)
class Prediction:
    """One image's answer to every task of a model, in head order. `extras`: what else a later step attaches to
    the answer (e.g. flags of an out-of-distribution check), by name; empty by default."""

    tasks: Mapping[str, TaskPrediction]
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, task: str) -> TaskPrediction:
        return self.tasks[task]

    def __iter__(self) -> Iterator[TaskPrediction]:
        return iter(self.tasks.values())

    def texts(self) -> dict[str, str]:
        """{task: label as text}: the CSV's `prediction` cells."""
        return {name: task.text for name, task in self.tasks.items()}

    def proba(self) -> dict[str, list[float]]:
        """{task: probabilities in class order}."""
        return {name: task.values() for name, task in self.tasks.items()}

    def to_dict(self) -> dict:
        """The server's JSON: {tasks: {task: ...}}, and {extras} when there are any."""
        answer = {"tasks": {name: task.to_dict() for name, task in self.tasks.items()}}
        return answer | ({"extras": dict(self.extras)} if self.extras else {})


def task_prediction(head: TaskHead, decision, proba: Sequence[float],
                    prediction_set: tuple[str, ...] | None = None) -> TaskPrediction:
    """One image's TaskPrediction from its decision (a class index, or the 0/1 row of findings), probabilities and
    prediction set (None: made here from the probabilities when the head has sets)."""
    if head.kind == "multilabel":
        label = tuple(c for c, on in zip(head.classes, decision) if on)
    else:
        label = head.classes[int(decision)]
    if prediction_set is None and head.prediction_sets is not None:
        prediction_set = head.set_names(np.asarray(proba, dtype=np.float64)[None])[0]
    return TaskPrediction(head.name, head.kind, label, dict(zip(head.classes, (float(p) for p in proba))),
                          threshold_of(head), threshold_source(head), head.temperature != 1.0, prediction_set)


def predictions_from_probabilities(heads: Sequence[TaskHead], proba: np.ndarray) -> list[Prediction]:
    """One Prediction per row of `proba` (images x outputs, every head side by side)."""
    by_task = per_task(heads, proba)
    decided = {h.name: h.decide(by_task[h.name]) for h in heads}
    sets = {h.name: h.set_names(by_task[h.name]) or [None] * len(proba) for h in heads}  # a batch at a time
    return [Prediction({h.name: task_prediction(h, decided[h.name][i], by_task[h.name][i], sets[h.name][i])
                        for h in heads}) for i in range(len(proba))]


def predictions_from_logits(heads: Sequence[TaskHead], logits: np.ndarray) -> list[Prediction]:
    """One Prediction per image of `logits` (views, images, outputs): the views' probabilities averaged."""
    if logits is None or not logits.shape[1]:
        return []
    return predictions_from_probabilities(heads, view_probabilities(heads, logits))


# The keys of the plain dict rows that came before PredictionRow: path, frame, error, and the prediction as text.
LEGACY_KEYS = {"prediction": lambda row: row.prediction.texts() if row.prediction else None,
               "proba": lambda row: row.prediction.proba() if row.prediction else None}


@dataclass(frozen=True)
class PredictionRow:
    """One prediction input's row: its file (and frame), its Prediction or the error that kept it from one, and
    `extras`: what a layer above attached (an explanation, its table cells), by name.

    Reading it as the dict rows of before (`row["path"]`, `row["proba"]`, an extra by its name) still works;
    `row["prediction"]` and `row["proba"]` warn: read `row.prediction`."""

    path: str
    frame: int | None = None
    prediction: Prediction | None = None
    error: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str):
        if key in LEGACY_KEYS:
            warnings.warn(f"row[{key!r}] is the old dict row's text: read row.prediction (a Prediction)",
                          DeprecationWarning, stacklevel=2)
            return LEGACY_KEYS[key](self)
        if key in ("path", "frame", "error"):
            return getattr(self, key)
        return self.extras[key]

    def get(self, key: str, default=None):
        try:
            return self[key]
        except KeyError:
            return default

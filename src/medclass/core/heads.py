"""What a model's outputs mean: one `TaskHead` per task, and the one way to read them.

A model ends in one logits vector per image: its heads' outputs side by side, in head order (the main task first).
A binary or multiclass head owns one output per class (a softmax over them, never a single sigmoid with an argmax);
a multilabel head one output per finding (a sigmoid each). Training, validation, evaluation and the Predictor turn
logits into probabilities and decisions only through here, so none of them can disagree with another.

Targets travel alike: one column per single-label head (the class index, -1 = no label) and one per finding for a
multilabel head (1/0, -1 = no label), so a sample without a label for a task is masked in that task's loss and
metrics only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from medclass.core.errors import DataError, MedclassError
from medclass.core.names import KINDS, name_problem, repeated
from medclass.core.prediction_sets import PredictionSets

if TYPE_CHECKING:  # the readers' types, for annotations only: core imports nothing above it
    from medclass.data.base import ImageDataset, Sample

MISSING = -1  # target value of a sample that has no label for a task
# A binary task's class named like a disease is its positive class ("sensitivity" then means finding the disease).
DISEASE_WORDS = re.compile(r"malignan|pneumonia|mass|tumou?r|cancer|carcinoma|abnormal|positive|disease|lesion|"
                           r"melanoma|covid|tuberculosis|glioma|effusion|nodule|fracture|metasta", re.IGNORECASE)
# ...unless the name negates it ("no tumor", "non-malignant", "negative", "normal, benign").
NEGATION = re.compile(r"\b(no|non|not|without|free|negative|normal|benign|healthy)\b|^no[a-z]*?(tumou?r|malign|"
                      r"cancer|lesion|disease|pneumonia|mass)", re.IGNORECASE)
UNTUNED = "fixed 0.5 (not tuned)"


@dataclass(frozen=True)
class TaskHead:
    """One task a model answers: its name, kind, classes (findings, for multilabel) and how it decides.

    `positive_index`: binary heads, the class whose probability is thresholded. `threshold`: binary heads, one
    value (positive when its probability >= it); multilabel heads, one value per finding; `threshold_source` says
    which split and rule chose it. `temperature` divides the logits before the softmax/sigmoid (temperature
    scaling fitted on validation; 1 = uncalibrated). `ordinal`: a multiclass task whose classes are ordered grades
    (scored also by quadratic-weighted kappa). `prediction_sets`: single-label heads, how their conformal
    prediction sets were calibrated (core/prediction_sets.py; None = no sets; multilabel heads never have them).
    """

    name: str
    kind: str
    classes: tuple[str, ...]
    positive_index: int | None = None
    threshold: float | tuple[float, ...] = 0.5
    threshold_source: str = UNTUNED
    temperature: float = 1.0
    ordinal: bool = False
    prediction_sets: PredictionSets | None = None

    def __post_init__(self):
        if isinstance(self.classes, str):  # "abc" would read as three classes a, b, c
            raise MedclassError(f"task {self.name!r}: classes must be a list of names; got the text {self.classes!r}")
        object.__setattr__(self, "classes", tuple(self.classes))
        self._check_names()
        if self.kind not in KINDS:
            raise MedclassError(f"task {self.name!r}: kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.kind == "binary" and len(self.classes) != 2:
            raise MedclassError(f"task {self.name!r}: a binary task has 2 classes; got {len(self.classes)}")
        if self.kind == "multiclass" and len(self.classes) < 2:
            raise MedclassError(f"task {self.name!r}: needs at least 2 classes; got {list(self.classes)}")
        if self.kind == "multilabel":
            if not self.classes:
                raise MedclassError(f"task {self.name!r}: a multi-label task needs at least one finding")
            thresholds = self.threshold if isinstance(self.threshold, (tuple, list)) else \
                (self.threshold,) * len(self.classes)
            if len(thresholds) != len(self.classes):
                raise MedclassError(f"task {self.name!r}: {len(thresholds)} thresholds for {len(self.classes)} "
                                    "findings; expected one per finding")
            object.__setattr__(self, "threshold", tuple(float(t) for t in thresholds))
        elif self.kind == "binary" and self.positive_index is None:
            object.__setattr__(self, "positive_index", 1)
        self._check_decision()
        if self.ordinal and self.kind == "multilabel":
            raise MedclassError(f"task {self.name!r}: ordinal grades need a single-label task, not multilabel")
        if not self.temperature > 0:
            raise MedclassError(f"task {self.name!r}: temperature must be positive; got {self.temperature}")
        self._check_sets()

    def _check_sets(self) -> None:
        """Sets (a record, or its JSON form) of a single-label head, with one quantile or one per class."""
        sets = self.prediction_sets
        if isinstance(sets, dict):
            sets = PredictionSets.from_dict(sets)
            object.__setattr__(self, "prediction_sets", sets)
        if sets is None:
            return
        if self.kind == "multilabel":
            raise MedclassError(f"task {self.name!r}: prediction_sets apply to single-label tasks; this one is "
                                "multilabel")
        if sets.by_class and len(sets.quantiles) != len(self.classes):
            raise MedclassError(f"task {self.name!r}: prediction_sets.quantiles: by class, one per class "
                                f"({len(self.classes)}); got {len(sets.quantiles)}")

    def _check_names(self) -> None:
        """The task's and classes' names become column names, JSON keys and report lines: non-empty text without
        control characters, and no class twice."""
        problem = name_problem(self.name)
        if problem:
            raise MedclassError(f"task name {self.name!r} {problem}; expected non-empty text without control "
                                "characters")
        for index, name in enumerate(self.classes):
            problem = name_problem(name)
            if problem:
                raise MedclassError(f"task {self.name!r}: class {index} ({name!r}) {problem}; expected non-empty "
                                    "text without control characters")
        twice = sorted(repeated(self.classes))
        if twice:
            raise MedclassError(f"task {self.name!r}: class(es) {', '.join(map(repr, twice))} named more than "
                                "once; expected distinct class names")

    def _check_decision(self) -> None:
        """A positive class that exists, and thresholds that are probabilities (one per finding, else one)."""
        if self.kind == "binary" and self.positive_index not in (0, 1):
            raise MedclassError(f"task {self.name!r}: positive_index must be 0 or 1 (one of its 2 classes); got "
                                f"{self.positive_index!r}")
        if self.kind != "binary" and self.positive_index is not None:
            raise MedclassError(f"task {self.name!r}: a {self.kind} task has no positive class; got positive_index "
                                f"{self.positive_index!r}")
        thresholds = self.threshold if self.kind == "multilabel" else (self.threshold,)
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in thresholds):
            raise MedclassError(f"task {self.name!r}: threshold must be a probability in [0, 1]"
                                f"{' per finding' if self.kind == 'multilabel' else ''}; got {self.threshold!r}")

    @property
    def outputs(self) -> int:
        """Logits this head owns."""
        return len(self.classes)

    @property
    def target_columns(self) -> int:
        return len(self.classes) if self.kind == "multilabel" else 1

    @property
    def positive_class(self) -> str | None:
        return self.classes[self.positive_index] if self.kind == "binary" else None

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        # float32: bf16 probabilities sum off by >1e-3, which scikit-learn's AUC refuses
        logits = logits.float() / self.temperature
        return logits.sigmoid() if self.kind == "multilabel" else logits.softmax(1)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Binary: the positive class where its probability >= threshold; multiclass: the most probable class
        (class indices); multilabel: a 0/1 matrix, one column per finding."""
        if self.kind == "multilabel":
            return (proba >= np.asarray(self.threshold)).astype(np.int64)
        if self.kind == "binary":
            positive = self.positive_index
            return np.where(proba[:, positive] >= self.threshold, positive, 1 - positive)
        return proba.argmax(1)

    def set_membership(self, proba: np.ndarray) -> np.ndarray | None:
        """(images, classes) bool: each image's prediction set from this head's probabilities; None without sets."""
        return None if self.prediction_sets is None else self.prediction_sets.members(proba)

    def set_names(self, proba: np.ndarray) -> list[tuple[str, ...]] | None:
        """Each image's prediction set as class names, in class order; None without sets."""
        members = self.set_membership(proba)
        return None if members is None else [tuple(c for c, on in zip(self.classes, row) if on) for row in members]

    def describe_decision(self) -> str:
        if self.kind == "binary":
            return f"{self.positive_class} when its probability >= {self.threshold:.4g} ({self.threshold_source})"
        if self.kind == "multilabel":
            return "each finding present when its probability >= its threshold (" + ", ".join(
                f"{c} {t:.4g}" for c, t in zip(self.classes, self.threshold)) + f"; {self.threshold_source})"
        return "the most probable class"

    def label_names(self, decisions: np.ndarray) -> list[str]:
        """Decisions as text, one per image: a class name, or the findings joined by '|' ('' for none)."""
        if self.kind == "multilabel":
            return ["|".join(c for c, on in zip(self.classes, row) if on) for row in decisions]
        return [self.classes[int(i)] for i in decisions]

    def encode(self, sample: Sample, task: str, where: str) -> list[int]:
        """The target columns of one sample's label for `task` (the dataset's name for this head's task)."""
        value = sample.labels.get(task)
        if value is None:
            return [MISSING] * self.target_columns
        if self.kind == "multilabel":
            findings = (value,) if isinstance(value, str) else tuple(value)
            unknown = [f for f in findings if f not in self.classes]
            if unknown:
                raise DataError(f"{where}: {sample.source}: finding(s) {', '.join(unknown)} of task {task!r} are "
                                f"not among the model's ({', '.join(self.classes)})")
            return [int(c in findings) for c in self.classes]
        if isinstance(value, (tuple, list)):
            raise DataError(f"{where}: {sample.source}: task {task!r} has several labels ({'|'.join(value)}) but "
                            f"is single-label; pass --multilabel to learn every finding, or --positive FINDING")
        if value not in self.classes:
            raise DataError(f"{where}: {sample.source}: class {value!r} of task {task!r} is not among the model's "
                            f"({', '.join(self.classes)})")
        return [self.classes.index(value)]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["classes"] = list(self.classes)
        if isinstance(self.threshold, tuple):
            data["threshold"] = list(self.threshold)
        # left out when absent, so a head without sets keeps the header (and served version) it always had
        sets = data.pop("prediction_sets")
        if sets is not None:
            data["prediction_sets"] = self.prediction_sets.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TaskHead":
        data = dict(data)
        if isinstance(data.get("threshold"), list):
            data["threshold"] = tuple(data["threshold"])
        return cls(**data)


def default_positive(classes: Sequence[str]) -> tuple[int, str]:
    """A binary task's positive class when none is named, and why: the one class named like a disease
    (malignant, pneumonia, tumour, ...; not "no tumour" or "benign"), else the second class."""
    diseased = [i for i, c in enumerate(classes) if DISEASE_WORDS.search(c) and not NEGATION.search(c)]
    if len(diseased) == 1:
        return diseased[0], "its name means disease"
    return 1, "the second class; no single class is named like a disease"


def heads_for(dataset: ImageDataset, positive_class: str | None = None) -> list[TaskHead]:
    """One head per task the dataset's model learns, main task first. `positive_class` names the positive class of
    a binary main task; otherwise binary tasks take `default_positive`. Tasks the dataset marks ordinal
    (`meta["ordinal"]`, e.g. RetinaMNIST's grades) are scored as such."""
    heads = []
    ordinal = set(dataset.meta.get("ordinal", ()))
    for i, task in enumerate(dataset.learned):
        kind, classes = dataset.kind(task), dataset.tasks[task]
        positive = None
        if kind == "binary":
            positive = default_positive(classes)[0]
            if i == 0 and positive_class is not None:
                if positive_class not in classes:
                    raise MedclassError(f"--positive-class {positive_class!r} is not a class of task {task!r}; "
                                        f"classes: {', '.join(classes)}")
                positive = classes.index(positive_class)
        elif i == 0 and positive_class is not None:
            raise MedclassError(f"--positive-class applies to binary tasks; task {task!r} is {kind} "
                                f"({len(classes)} classes)")
        heads.append(TaskHead(task, kind, tuple(classes), positive, ordinal=task in ordinal and kind == "multiclass"))
    return heads


def output_slices(heads: Sequence[TaskHead]) -> list[slice]:
    return _slices([h.outputs for h in heads])


def target_slices(heads: Sequence[TaskHead]) -> list[slice]:
    return _slices([h.target_columns for h in heads])


def _slices(widths: list[int]) -> list[slice]:
    ends = np.cumsum([0, *widths])
    return [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]


def probabilities(heads: Sequence[TaskHead], logits: torch.Tensor) -> torch.Tensor:
    """Every head's probabilities, side by side in the logits' layout."""
    return torch.cat([h.probabilities(logits[:, s]) for h, s in zip(heads, output_slices(heads))], 1)


def per_task(heads: Sequence[TaskHead], values, layout: str = "outputs") -> dict:
    """Columns of a side-by-side array cut into {task: columns}; `layout` outputs (probabilities) or targets."""
    slices = output_slices(heads) if layout == "outputs" else target_slices(heads)
    return {h.name: values[:, s] for h, s in zip(heads, slices)}


def encode_targets(heads: Sequence[TaskHead], samples: Sequence[Sample], tasks: Sequence[str] | None = None,
                   where: str = "data") -> np.ndarray:
    """(N, target columns) int64. `tasks[i]`: the samples' task name that head i answers (default: its own name)."""
    tasks = list(tasks or [h.name for h in heads])
    width = sum(h.target_columns for h in heads)
    rows = [[v for h, t in zip(heads, tasks) for v in h.encode(s, t, where)] for s in samples]
    return np.array(rows, dtype=np.int64).reshape(len(samples), width)


def view_probabilities(heads: Sequence[TaskHead], logits: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Probabilities from the logits of every test-time view, (views, images, outputs): each view's probabilities
    (temperature applied), averaged over views, as validation, the Predictor and evaluation all compute them.
    A tensor in gives a tensor out (validation, on its device); an array gives an array."""
    tensor = logits if isinstance(logits, torch.Tensor) else torch.as_tensor(np.asarray(logits, dtype=np.float32))
    proba = torch.stack([probabilities(heads, view) for view in tensor]).mean(0)
    return proba if isinstance(logits, torch.Tensor) else proba.numpy()

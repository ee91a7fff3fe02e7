"""The schema of an artefact's header: every field its metadata may hold, with its type, range, length or choices,
declared once in the tables below and checked whole whenever an artefact is read (format 3's safetensors header,
an older model.pt, an export's metadata), before anything is built from it. A model file from elsewhere may carry
anything; a field outside its range would otherwise surface as a MemoryError (an image size of 100000), a
traceback deep in torchvision, or a NaN answered as a probability.

Declared as a compact table of this module's own rather than with a schema library: pydantic comes only with the
`serve` extra (through fastapi) and jsonschema would be a new dependency, for some thirty fields; and neither says
what medclass's errors say (the file, the field's path, what was expected, what was found) in one line without a
translation layer as long as this table. The ranges are generous bounds around what medclass itself writes
(TrainConfig, the heads, default_preprocessing, calibration's 0.05..20 temperatures), formats 1 and 2 included.

Checks between fields that the classes themselves make (a binary task's two classes and its positive class, mean and
std of in_chans values) stay with those classes (TaskHead, Preprocessing); `ModelArtifact.from_metadata` reports
them with the field's path too. Whether the weights fit the network the header names is checked against the tensors
(core/weights_check.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

from torchvision.transforms import InterpolationMode

from medclass.core.names import KINDS, name_problem, repeated
from medclass.core.choices import HEADS
from medclass.core.prediction_sets import SCORES

MAX_SIDE = 4096  # img_size: 8 (TrainConfig's MIN_IMG_SIZE) to 4096 px; a 4096 px float input is 64 MiB per channel
MAX_CLASSES = 100_000  # classes (findings) per task
MAX_TASKS = 100
MAX_NAME = 1000  # characters of a task or class name
INTERPOLATIONS = tuple(mode.value for mode in InterpolationMode)  # what Preprocessing's T.Resize accepts
TTA_VIEWS = ("hflip",)  # Predictor.views: each listed view is one more forward pass


def shown(value) -> str:
    """A value as the header holds it (JSON), cut to a readable length."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Spec:
    """One field's rule: `problem(value, path)` is None when the value fits, else the one-line reason."""

    expected = "a value"

    def fits(self, value) -> bool:
        raise NotImplementedError

    def problem(self, value, path: str) -> str | None:
        return None if self.fits(value) else f"{path} must be {self.expected}; got {shown(value)}"


@dataclass(frozen=True)
class Number(Spec):
    """A number in [low, high] (NaN and infinities never are); `integer`: whole numbers only (3.5 and "64" are no
    image sizes)."""

    low: float
    high: float
    integer: bool = False

    @property
    def expected(self) -> str:
        if self.integer:
            return f"an integer {self.low}..{self.high}"
        return f"a finite number in [{self.low:g}, {self.high:g}]"

    def fits(self, value) -> bool:
        kind = int if self.integer else (int, float)
        return isinstance(value, kind) and not isinstance(value, bool) and self.low <= value <= self.high


def Integer(low: int, high: int) -> Number:
    return Number(low, high, integer=True)


@dataclass(frozen=True)
class Choice(Spec):
    values: tuple

    @property
    def expected(self) -> str:
        return "one of " + ", ".join(map(shown, self.values))

    def fits(self, value) -> bool:  # by type too: true is not 1
        return any(type(value) is type(v) and value == v for v in self.values)


@dataclass(frozen=True)
class Text(Spec):
    max_len: int
    name: bool = False  # a task or class name: non-empty, no control characters (data/base.py: name_problem)

    @property
    def expected(self) -> str:
        if self.name:
            return f"a name: non-empty text of at most {self.max_len} characters without control characters"
        return f"text of at most {self.max_len} characters"

    def fits(self, value) -> bool:
        return isinstance(value, str) and len(value) <= self.max_len

    def problem(self, value, path: str) -> str | None:
        if self.fits(value) and self.name and name_problem(value):
            return f"{path} {name_problem(value)}; expected {self.expected}"
        return super().problem(value, path)


@dataclass(frozen=True)
class Flag(Spec):
    expected = "true or false"

    def fits(self, value) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class Nullable(Spec):
    inner: Spec

    def problem(self, value, path: str) -> str | None:
        problem = None if value is None else self.inner.problem(value, path)
        expected = f" must be {self.inner.expected};"
        return problem and problem.replace(expected, f"{expected[:-1]} or null;", 1)


@dataclass(frozen=True)
class Either(Spec):
    """The first spec the value's shape suits (a list for ListOf, else the other)."""

    single: Spec
    several: "ListOf"

    def problem(self, value, path: str) -> str | None:
        return (self.several if isinstance(value, list) else self.single).problem(value, path)


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    min_len: int
    max_len: int
    distinct: bool = False
    what: str = "values"

    @property
    def expected(self) -> str:
        count = f"{self.min_len}..{self.max_len}" if self.min_len != self.max_len else f"{self.min_len}"
        return f"a list of {count}{' distinct' if self.distinct else ''} {self.what}"

    def problem(self, value, path: str) -> str | None:
        if not isinstance(value, list) or not self.min_len <= len(value) <= self.max_len:
            return f"{path} must be {self.expected}; got {shown(value)}"
        for index, item in enumerate(value):
            problem = self.item.problem(item, f"{path}[{index}]")
            if problem:
                return problem
        if self.distinct:
            twice = repeated(value)
            if twice:
                return f"{path} must be {self.expected}; {shown(twice[0])} comes more than once"
        return None


@dataclass(frozen=True)
class Record(Spec):
    """A JSON object: the fields it must hold and those it may; any other key is refused (a misspelt field would
    otherwise be ignored, or a newer medclass's field misread)."""

    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)
    expected = "an object"

    def problem(self, value, path: str) -> str | None:
        if not isinstance(value, dict):
            return f"{path or 'the header'} must be {self.expected}; got {shown(value)}"
        where = f"{path}." if path else ""
        known = {**self.required, **self.optional}
        unknown = [k for k in value if k not in known]
        if unknown:
            return (f"{where}{unknown[0]} is not a field medclass knows here (known: {', '.join(known)}); a file from "
                    "a newer medclass, or edited")
        missing = [k for k in self.required if k not in value]
        if missing:
            return f"{where}{missing[0]} is missing (a medclass artefact always has it)"
        return next(filter(None, (known[k].problem(v, where + k) for k, v in value.items())), None)


@dataclass(frozen=True)
class JsonObject(Spec):
    """Free-form plain values (provenance): only its shape is known."""

    expected = "an object"

    def fits(self, value) -> bool:
        return isinstance(value, dict)


NAME = Text(MAX_NAME, name=True)
CLASSES = ListOf(NAME, 1, MAX_CLASSES, distinct=True, what="class names")
PROBABILITY = Number(0, 1)
# core/prediction_sets.py: the record of a head's conformal sets; a quantile is null where it is +inf (every label)
PREDICTION_SETS = Record(
    required={"coverage": Number(0, 1), "score": Choice(SCORES), "by_class": Flag(),
              "quantiles": ListOf(Nullable(Number(0, 1e6)), 1, MAX_CLASSES, what="quantiles (null: every label)")},
    optional={"method": Text(MAX_NAME), "images": Integer(0, 10**9), "split": Text(MAX_NAME),
              "raps_lambda": Number(0, 1e3), "raps_k_reg": Integer(0, MAX_CLASSES)})
HEAD = Record(
    required={"name": NAME, "kind": Choice(KINDS), "classes": CLASSES},
    # added within format 2, with defaults: older heads lack them
    optional={"positive_index": Nullable(Integer(0, 1)),
              "threshold": Either(PROBABILITY, ListOf(PROBABILITY, 1, MAX_CLASSES, what="probabilities")),
              "threshold_source": Text(MAX_NAME), "temperature": Number(1e-3, 1e3), "ordinal": Flag(),
              "prediction_sets": PREDICTION_SETS})  # added within format 3
PREPROCESSING = Record(
    required={"img_size": Integer(8, MAX_SIDE), "in_chans": Choice((1, 3)),
              "mean": ListOf(Number(-1e3, 1e3), 1, 3), "std": ListOf(Number(1e-6, 1e3), 1, 3)},
    optional={"interpolation": Choice(INTERPOLATIONS)})
# What create_model is called with: TrainConfig.model_kwargs (head, drop_rate), fit.py's task_outputs and smallcnn's
# width. Nothing else: another option would reach the network's constructor unchecked.
MODEL_KWARGS = Record(optional={"head": Choice(HEADS), "drop_rate": Number(0, 1), "width": Integer(1, 512),
                                "task_outputs": ListOf(Integer(1, MAX_CLASSES), 1, MAX_TASKS, what="output counts")})
GUARD = Record(
    required={"detector": Text(MAX_NAME, name=True), "threshold": Number(-1e30, 1e30), "accept": Number(0.5, 1),
              "stats": Record(required={"colour_trained": Flag()}, optional={"max_aspect": Number(1, 1e6),
                                                                             "images": Integer(0, 10**9)})},
    optional={"params": JsonObject(), "record": JsonObject(),
              "tensors": ListOf(Text(MAX_NAME, name=True), 0, 64, distinct=True, what="tensor names")})
# format and format_version: ModelArtifact.from_metadata reads them first (a newer format is named as such)
COMMON = {"format": Choice(("medclass-model",)), "format_version": Integer(1, 1_000), "model_name": Text(200),
          "preprocessing": PREPROCESSING}
OPTIONAL = {"tta": ListOf(Choice(TTA_VIEWS), 0, len(TTA_VIEWS), distinct=True, what="view names"),
            "model_kwargs": MODEL_KWARGS, "provenance": JsonObject(),
            # added within format 3 (older files read with neither)
            "modality": Nullable(Text(100, name=True)), "description": Text(10_000),
            # the input guard (inference/guard.py), added within format 3
            "guard": GUARD}
HEADER = Record(required={**COMMON, "heads": ListOf(HEAD, 1, MAX_TASKS, what="tasks")}, optional=OPTIONAL)
# format 1 (up to November 2026): one task's classes, positive_index and threshold, no head list
HEADER_FORMAT_1 = Record(required={**COMMON, "classes": CLASSES},
                         optional={**OPTIONAL, "task": NAME, "positive_index": HEAD.optional["positive_index"],
                                   "threshold": PROBABILITY})


def header_problems(meta: dict) -> Iterator[str]:
    """The first reason the header does not fit its format's schema, then those between its fields that no class
    checks; none if it fits."""
    schema = HEADER_FORMAT_1 if meta.get("format_version") == 1 else HEADER
    problem = schema.problem(meta, "")
    if problem:
        yield problem
        return
    heads = meta.get("heads", [{"name": meta.get("task", "label"), "classes": meta.get("classes")}])
    names = [h["name"] for h in heads]
    twice = repeated(names)
    if twice:
        yield f"heads: task {shown(twice[0])} comes more than once; expected distinct task names"
    outputs = [len(h["classes"]) for h in heads]
    given = meta.get("model_kwargs", {}).get("task_outputs")
    if given is not None and given != outputs:
        yield f"model_kwargs.task_outputs must be the heads' class counts {shown(outputs)}; got {shown(given)}"

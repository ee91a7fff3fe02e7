"""The one reader interface: every format becomes an `ImageDataset` of `Sample`s.

A sample names its image (`source`), its labels per task, and optionally its patient, split and boxes.
Pixels are decoded lazily by the dataset's `load_image`, so large folders cost nothing until used.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from medclass.core.errors import DataError
from medclass.core.names import KINDS, name_problem, repeated  # noqa: F401  (readers import them from here)
from medclass.data.images import read_image

SPLITS = ("train", "val", "test")
DEFAULT_TASK = "label"
# In a multi-label task this label means "none of the findings": the empty tuple, not a class of its own.
NO_FINDING = "No Finding"


@dataclass(frozen=True)
class Box:
    """A ground-truth box in pixel coordinates of the stored image (x0, y0 inclusive; x1, y1 exclusive)."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Sample:
    """One image and what is known about it.

    `labels` maps a task name to a class name (str) or, for multi-label tasks, a tuple of class names (empty: none
    of the findings). A task the sample has no label for is absent (or None): masked in the loss, left out of that
    task's metrics.
    """

    source: str
    labels: dict
    split: str | None = None
    patient: str | None = None
    boxes: tuple[Box, ...] = ()

    def with_split(self, split: str | None) -> "Sample":
        return replace(self, split=split)


def labels_of(sample: Sample, task: str) -> tuple[str, ...]:
    """A sample's labels for `task` as a tuple, whether the task is single- or multi-label; () when it has none."""
    value = sample.labels.get(task)
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclass
class ImageDataset:
    """A list of samples, the class names of each task, and how to decode a sample's pixels.

    `target` is the main task: the one a single-task model learns, splits are stratified on and class tables count.
    `selected` lists the tasks a model learns when there are several (`--tasks`; the first is `target`), empty for
    the target alone. `tasks[name]` fixes the order of a task's classes (column order of every probability matrix
    in medclass). Tasks named in `multilabel` label each image with a set of findings, each one output.
    """

    name: str
    samples: list[Sample]
    tasks: dict[str, list[str]]
    loader: Callable[[Sample], Image.Image]
    target: str = DEFAULT_TASK
    meta: dict = field(default_factory=dict)
    multilabel: tuple[str, ...] = ()
    selected: tuple[str, ...] = ()

    def __post_init__(self):
        for name in (self.target, *self.selected, *self.multilabel):
            if name not in self.tasks:
                raise DataError(f"{self.name}: no task {name!r}; available: {', '.join(self.tasks)}")
        if self.selected and self.selected[0] != self.target:
            raise DataError(f"{self.name}: the first selected task must be the target {self.target!r}; "
                            f"got {', '.join(self.selected)}")

    @property
    def learned(self) -> list[str]:
        """The tasks a model trained on this dataset learns, main task first."""
        return list(self.selected) or [self.target]

    def kind(self, task: str | None = None) -> str:
        """binary, multiclass or multilabel."""
        task = task or self.target
        if task in self.multilabel:
            return "multilabel"
        return "binary" if len(self.tasks[task]) == 2 else "multiclass"

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def classes(self) -> list[str]:
        return self.tasks[self.target]

    @property
    def has_splits(self) -> bool:
        return all(s.split is not None for s in self.samples)

    def load_image(self, index_or_sample: int | Sample) -> Image.Image:
        sample = self.samples[index_or_sample] if isinstance(index_or_sample, int) else index_or_sample
        return self.loader(sample)

    def label_index(self, sample: Sample) -> int:
        return self.classes.index(sample.labels[self.target])

    def targets(self, task: str | None = None) -> np.ndarray:
        """Class index of every sample for a single-label task (default: the target); -1 where it has no label."""
        task = task or self.target
        if task in self.multilabel:
            raise DataError(f"{self.name}: task {task!r} is multi-label; it has no single class index per image")
        lookup = {name: i for i, name in enumerate(self.tasks[task])}
        return np.array([lookup.get(s.labels.get(task), -1) for s in self.samples], dtype=np.int64)

    def subset(self, split: str) -> "ImageDataset":
        if not self.has_splits:
            raise DataError(f"{self.name}: has no train/val/test split yet; assign one before asking for {split!r}")
        chosen = [s for s in self.samples if s.split == split]
        if not chosen:
            found = sorted({s.split for s in self.samples})
            raise DataError(f"{self.name}: split {split!r} is empty; splits present: {', '.join(found)}")
        return replace(self, samples=chosen)

    def with_samples(self, samples: Sequence[Sample]) -> "ImageDataset":
        return replace(self, samples=list(samples))

    def counts(self, task: str | None = None) -> dict[str, dict[str, int]]:
        """Images per split and class of a task (default: the target) as {split: {class: n}}, splits in
        train/val/test order; split None is 'all'. A multi-label image counts once for each of its labels; an image
        without a label for the task is not counted."""
        task = task or self.target
        table: dict[str, Counter] = {}
        for s in self.samples:
            table.setdefault(s.split or "all", Counter()).update(labels_of(s, task))
        order = [split for split in (*SPLITS, "all") if split in table]
        return {split: {c: table[split].get(c, 0) for c in self.tasks[task]} for split in order}


def read_sample_file(sample: Sample) -> Image.Image:
    """The loader of every dataset whose sources are image files; a module-level function, so a dataset pickles
    (DataLoader workers started with `spawn` on macOS and Windows, `ddp_spawn`)."""
    return read_image(sample.source)


class Reader:
    """Base of every format reader: says whether it understands a data spec, then reads it.

    `options` names the keyword options `read` understands; `open_dataset` refuses any other (apart from the task
    options every format shares), so a misspelled or misplaced option is an error instead of being ignored.
    """

    name: str = "reader"
    description: str = ""
    options: tuple[str, ...] = ()
    # options naming a file or folder relative to the working directory (not to the data): a run records them
    # absolute (data/__init__.py: absolute_path_options)
    path_options: tuple[str, ...] = ()

    def can_read(self, spec: str) -> bool:
        raise NotImplementedError

    def read(self, spec: str, **options) -> ImageDataset:
        raise NotImplementedError

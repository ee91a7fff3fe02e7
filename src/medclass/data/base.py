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

from medclass.data.images import read_image
from medclass.errors import DataError

SPLITS = ("train", "val", "test")
DEFAULT_TASK = "label"


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

    `labels` maps a task name to a class name (str) or, for multi-label tasks, a tuple of class names.
    """

    source: str
    labels: dict
    split: str | None = None
    patient: str | None = None
    boxes: tuple[Box, ...] = ()

    def with_split(self, split: str | None) -> "Sample":
        return replace(self, split=split)


def labels_of(sample: Sample, task: str) -> tuple[str, ...]:
    """A sample's labels for `task` as a tuple, whether the task is single- or multi-label."""
    value = sample.labels[task]
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclass
class ImageDataset:
    """A list of samples, the class names of each task, and how to decode a sample's pixels.

    `target` is the task a classifier is trained on; `tasks[target]` fixes the order of its classes
    (column order of every probability matrix in medclass).
    """

    name: str
    samples: list[Sample]
    tasks: dict[str, list[str]]
    loader: Callable[[Sample], Image.Image]
    target: str = DEFAULT_TASK
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.target not in self.tasks:
            raise DataError(f"{self.name}: no task {self.target!r}; available: {', '.join(self.tasks)}")

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

    def targets(self) -> np.ndarray:
        """Class index of every sample for the target task."""
        lookup = {name: i for i, name in enumerate(self.classes)}
        return np.array([lookup[s.labels[self.target]] for s in self.samples], dtype=np.int64)

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

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class of the target task ({split: {class: n}}), splits in train/val/test order;
        split None is 'all'. A multi-label image counts once for each of its labels."""
        table: dict[str, Counter] = {}
        for s in self.samples:
            table.setdefault(s.split or "all", Counter()).update(labels_of(s, self.target))
        order = [split for split in (*SPLITS, "all") if split in table]
        return {split: {c: table[split].get(c, 0) for c in self.classes} for split in order}


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

    def can_read(self, spec: str) -> bool:
        raise NotImplementedError

    def read(self, spec: str, **options) -> ImageDataset:
        raise NotImplementedError

"""Predict a split once, keep the raw logits: evaluation, threshold choice, calibration and comparison all score
the same `SplitOutputs` (recomputing probabilities under a new temperature needs no second pass over the images)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medclass.data import ImageDataset
from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead, encode_targets, output_slices, per_task, view_probabilities


class DatasetImages:
    """A lazy, sliceable view of a dataset's images, so prediction decodes one batch at a time."""

    def __init__(self, dataset: ImageDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.dataset.load_image(i) for i in range(*index.indices(len(self)))]
        return self.dataset.load_image(index)


def dataset_tasks(dataset: ImageDataset, heads: Sequence[TaskHead]) -> list[str]:
    """The dataset's task each head is scored on: one head, the dataset's target (other data may name its task
    differently); several, the task of the head's own name."""
    if len(heads) == 1:
        return [dataset.target]
    absent = [h.name for h in heads if h.name not in dataset.tasks]
    if absent:
        raise MedclassError(f"{dataset.name}: has no task {', '.join(map(repr, absent))} of the model's "
                            f"({', '.join(h.name for h in heads)}); its tasks: {', '.join(dataset.tasks)}")
    return [h.name for h in heads]


@dataclass
class SplitOutputs:
    """A model's raw outputs on the images of one dataset split, with their labels."""

    heads: list[TaskHead]
    dataset: ImageDataset
    logits: np.ndarray  # (views, images, outputs)
    targets: dict[str, np.ndarray]  # task -> (images, target columns), -1 = no label
    guard: list[dict] | None = None  # each image's input guard answer, when predicted with `assess`

    @property
    def patients(self) -> np.ndarray | None:
        """Each image's patient when some patient has several images here (then resampling goes by patient)."""
        ids = [s.patient for s in self.dataset.samples]
        if any(p is None for p in ids) or len(set(ids)) == len(ids):
            return None
        return np.array(ids)

    def head_logits(self, task: str) -> np.ndarray:
        """(views, images, the task's outputs)."""
        index = [h.name for h in self.heads].index(task)
        return self.logits[:, :, output_slices(self.heads)[index]]

    def probabilities(self, heads: Sequence[TaskHead] | None = None) -> dict[str, np.ndarray]:
        """{task: probabilities} under the model's heads, or under `heads` (e.g. retuned ones, same layout)."""
        heads = heads or self.heads
        return per_task(heads, view_probabilities(heads, self.logits))


def predict_split(predictor, dataset: ImageDataset, assess: bool = False) -> SplitOutputs:
    """The split's logits and labels; `assess`: also each image's input guard answer (evaluate reports them)."""
    heads = predictor.heads
    targets = per_task(heads, encode_targets(heads, dataset.samples, dataset_tasks(dataset, heads), dataset.name),
                       "targets")
    outputs = predictor.outputs(DatasetImages(dataset), assess=assess)
    return SplitOutputs(list(heads), dataset, outputs.logits, targets,
                        predictor.assess(outputs) if assess else None)

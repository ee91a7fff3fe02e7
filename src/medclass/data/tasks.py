"""Options that apply to any dataset once read: which task to classify, and binary tasks derived from a finding.

`open_dataset(spec, target=..., positive=..., negative=...)` calls `apply_task_options` after the reader, so every
format gets them the same way. A label is a class name or, for multi-label tasks, a tuple of class names.
"""

from __future__ import annotations

from dataclasses import replace

from medclass.data.base import ImageDataset, Sample, labels_of
from medclass.errors import DataError

TASK_OPTIONS = ("target", "positive", "negative")  # understood for every format, after the reader


def apply_task_options(dataset: ImageDataset, target: str | None = None, positive: str | None = None,
                       negative: str | None = None) -> ImageDataset:
    """Select the target task, then (optionally) replace it by a binary task `positive` vs the rest/`negative`."""
    if target is not None:
        dataset = select_target(dataset, target)
    if negative is not None and positive is None:
        raise DataError(f"{dataset.name}: negative={negative!r} needs a positive finding too (--positive)")
    if positive is not None:
        dataset = derive_binary(dataset, positive, negative)
    return dataset


def select_target(dataset: ImageDataset, target: str) -> ImageDataset:
    if target not in dataset.tasks:
        raise DataError(f"{dataset.name}: no task {target!r}; tasks found: {', '.join(dataset.tasks)}")
    return replace(dataset, target=target)


def is_multi_label(dataset: ImageDataset, task: str | None = None) -> bool:
    task = task or dataset.target
    return any(isinstance(s.labels[task], (tuple, list)) for s in dataset.samples)


def binary_task_name(positive: str, negative: str | None) -> str:
    return f"{positive} vs {negative or 'rest'}"


def derive_binary(dataset: ImageDataset, positive: str, negative: str | None = None) -> ImageDataset:
    """New target task with classes [negative, positive] (index 1 = positive), from the current target's labels.

    Without `negative`, every image whose labels lack `positive` is a negative ("no <positive>"). With it, only
    images labelled exactly `negative` are negatives; the others are dropped and counted in meta["binary"].
    """
    source = dataset.target
    _require_class(dataset, source, positive, "positive")
    if negative is not None:
        _require_class(dataset, source, negative, "negative")
    negative_class = negative if negative is not None else f"no {positive}"
    task = binary_task_name(positive, negative)
    kept, dropped = [], 0
    for sample in dataset.samples:
        labels = labels_of(sample, source)
        if positive in labels:
            kept.append(_with_label(sample, task, positive))
        elif negative is None or labels == (negative,):
            kept.append(_with_label(sample, task, negative_class))
        else:
            dropped += 1
    for name in (positive, negative_class):
        if not any(s.labels[task] == name for s in kept):
            raise DataError(f"{dataset.name}: binary task {task!r} has no {name!r} image left")
    meta = {**dataset.meta, "binary": {"task": task, "from_task": source, "positive": positive,
                                       "negative": negative_class, "dropped": dropped}}
    tasks = {**dataset.tasks, task: [negative_class, positive]}
    return replace(dataset, samples=kept, tasks=tasks, target=task, meta=meta)


def _require_class(dataset: ImageDataset, task: str, name: str, role: str) -> None:
    if name not in dataset.tasks[task]:
        raise DataError(f"{dataset.name}: {role} class {name!r} is not a class of task {task!r}; "
                        f"classes found: {', '.join(dataset.tasks[task])}")


def _with_label(sample: Sample, task: str, label: str) -> Sample:
    return replace(sample, labels={**sample.labels, task: label})

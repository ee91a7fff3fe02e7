"""Does every class reach every split it must reach? Checked before training and reported by the audit.

A class with no training image is never learnt, yet a softmax still gives it probability; a class with no
validation image makes the validation AUC undefined, so checkpoint selection runs blind. Both stop a run before
its first epoch. A class too small to spread over train/val/test is warned about when a split is made.

Every function takes a task (default: the target). For a multi-label task a class is a finding, and an image
counts for it when it has that finding: each finding needs a positive image in every split it must reach.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

from medclass.data.base import SPLITS, ImageDataset
from medclass.core.errors import DataWarning

SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}


def counts_by_class(dataset: ImageDataset, task: str | None = None) -> dict[str, dict[str, int]]:
    """`dataset.counts(task)` turned around: {class: {split: n}}, every split of the data listed."""
    task = task or dataset.target
    by_split = dataset.counts(task)
    return {name: {split: row[name] for split, row in by_split.items()} for name in dataset.tasks[task]}


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{split} {n}" for split, n in counts.items())


def _finding(dataset: ImageDataset, task: str, name: str, splits: list[str], counts: dict, text: str) -> dict:
    """One coverage entry; its message names the task unless it is the target (the one a reader assumes)."""
    prefix = "" if task == dataset.target else f"task {task!r}: "
    return {"task": task, "class": name, "splits": splits, "counts": counts,
            "message": f"{prefix}class {name!r} {text}"}


def missing_classes(dataset: ImageDataset, splits: tuple[str, ...], task: str | None = None) -> list[dict]:
    """Classes of `task` (default: the target) with no image in one of `splits`: {task, class, splits, counts,
    message}, one entry per class."""
    task = task or dataset.target
    found = []
    for name, counts in counts_by_class(dataset, task).items():
        absent = [split for split in splits if counts.get(split, 0) == 0]
        if absent:
            words = " or ".join(SPLIT_WORDS[s] for s in absent)
            found.append(_finding(dataset, task, name, absent, counts,
                                  f"has no {words} image ({_counts_text(counts)})"))
    return found


def small_classes(keys: list[str], groups: list[str], parts: tuple[str, ...]) -> dict[str, int]:
    """Classes held by fewer patients (or images, when there are no patients) than there are parts to fill."""
    holders = defaultdict(set)
    for key, group in zip(keys, groups):
        holders[key].add(group)
    return {key: len(members) for key, members in sorted(holders.items()) if len(members) < len(parts)}


def warn_small_classes(name: str, keys: list[str], groups: list[str], parts: tuple[str, ...]) -> dict[str, int]:
    """Warn, as scikit-learn's splitters do, about classes too small to stratify; the others stay stratified."""
    small = small_classes(keys, groups, parts)
    if small:
        unit = "patient(s)" if any(g.startswith("patient:") for g in groups) else "image(s)"
        listed = ", ".join(f"{key!r} has {n} {unit}" for key, n in small.items())
        warnings.warn(f"{name}: too few to stratify into {'/'.join(parts)}: {listed}; "
                      "the split cannot give every part an image of it", DataWarning, stacklevel=3)
    return small


def coverage_findings(dataset: ImageDataset) -> list[dict]:
    """What the audit says about class coverage, for every task a model learns: absent classes per split, or
    classes too small to split."""
    return [finding for task in dataset.learned for finding in _task_coverage(dataset, task)]


def _task_coverage(dataset: ImageDataset, task: str) -> list[dict]:
    present = {s.split for s in dataset.samples}
    counts = counts_by_class(dataset, task)
    if None in present:  # no split yet: medclass will make one, so say which classes cannot be stratified
        return [_finding(dataset, task, name, [], c, f"has {c['all']} image(s): too few to stratify into "
                                                     "train/val/test")
                for name, c in counts.items() if c["all"] < len(SPLITS)]
    required = tuple(s for s in ("train", "val", "test") if s in present)
    found = missing_classes(dataset, required, task)
    if "val" not in present:  # validation will be carved from train, which needs two images of a class
        found += [_finding(dataset, task, name, ["val"], c, f"has 1 training image ({_counts_text(c)}): too few "
                                                            "to carve a validation part holding it")
                  for name, c in counts.items() if c.get("train", 0) == 1]
    return found

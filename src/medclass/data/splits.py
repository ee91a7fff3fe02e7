"""Train/val/test assignment: seeded, stratified, saved as CSV so a run can be reproduced and audited."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from medclass.data.base import ImageDataset
from medclass.errors import DataError


def stratified_split(dataset: ImageDataset, val: float = 0.15, test: float = 0.15, seed: int = 0) -> ImageDataset:
    """Assign every sample to train/val/test, keeping class proportions. Returns a new dataset."""
    if not 0 < val < 1 or not 0 < test < 1 or val + test >= 1:
        raise DataError(f"split fractions val={val}, test={test}: each must be in (0, 1) and sum below 1")
    y = dataset.targets()
    index = np.arange(len(y))
    stratify = y if np.bincount(y).min() >= 3 else None  # sklearn needs >= 2 per class in each cut
    rest, test_idx = train_test_split(index, test_size=test, random_state=seed, stratify=stratify)
    rest_strat = y[rest] if stratify is not None else None
    train_idx, val_idx = train_test_split(rest, test_size=val / (1 - test), random_state=seed, stratify=rest_strat)
    split_of = {**{i: "train" for i in train_idx}, **{i: "val" for i in val_idx}, **{i: "test" for i in test_idx}}
    return dataset.with_samples([s.with_split(split_of[i]) for i, s in enumerate(dataset.samples)])


def save_splits(dataset: ImageDataset, path: Path) -> None:
    """Write `source,split,label[,patient]` for every sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "split", dataset.target, "patient"])
        for s in dataset.samples:
            writer.writerow([s.source, s.split, s.labels[dataset.target], s.patient or ""])


def load_splits(dataset: ImageDataset, path: Path) -> ImageDataset:
    """Apply a CSV written by `save_splits` (columns `source`, `split`) to `dataset`."""
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"source", "split"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected source,split")
        split_of = {}
        for row_number, row in enumerate(reader, start=2):
            if row["split"] not in ("train", "val", "test"):
                raise DataError(f"{path}: row {row_number}, column split: expected train/val/test, "
                                f"found {row['split']!r}")
            split_of[row["source"]] = row["split"]
    unknown = [s.source for s in dataset.samples if s.source not in split_of]
    if unknown:
        raise DataError(f"{path}: has no split for {len(unknown)} image(s) of {dataset.name}, e.g. {unknown[0]}")
    return dataset.with_samples([s.with_split(split_of[s.source]) for s in dataset.samples])

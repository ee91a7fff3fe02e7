"""What a run records about its data beside the model, said on stderr as it is written: the rows the reader skipped
(skipped.csv), what became of segmentation masks and of images outside a CSV's folder, how a split made here was
grouped, every image's split (splits.csv) and every image left out, with why (excluded.csv: masks, duplicates,
unreadable files). Written by global rank 0 only."""

from __future__ import annotations

import csv
from pathlib import Path

from medclass.core.rundir import RunDir
from medclass.data import ImageDataset
from medclass.data.csv_reader import outside_lines
from medclass.data.masks import mask_lines
from medclass.data.splits import excluded_images, save_exclusions, save_splits
from medclass.training.progress import report


def record_reading(dataset: ImageDataset, run: RunDir) -> dict:
    """Before the audit: what the reader skipped or left out, and the split's grouping (None when the data or a
    --splits file brought its own): a split whose duplicates were not kept together is worth seeing before the
    numbers it produces. Returns these facts for config.yaml."""
    skipped = save_skipped(dataset, run.skipped_file)
    for line in mask_lines(dataset, str(run.excluded_file), "--keep-masks trains on them") + outside_lines(dataset):
        report(line)
    grouping = dataset.meta.get("split_grouping")
    if grouping:
        report(f"split grouped by {grouping['by']}: {grouping['groups']} groups, {grouping['multi_image_groups']} of "
               "them with more than one image")
    return {"skipped_images": skipped, "split_grouping": grouping}


def record_splits(dataset: ImageDataset, run: RunDir) -> int:
    """After the audit, every image of the data: what trains and is evaluated (splits.csv), and what was left out
    and why (excluded.csv). Returns how many were left out."""
    save_splits(dataset, run.splits_file)
    save_exclusions(dataset, run.excluded_file)
    return len(excluded_images(dataset))


def save_skipped(dataset: ImageDataset, path: Path) -> int:
    """Rows the reader skipped (e.g. CSV rows whose image file is missing), kept in the run beside the split."""
    skipped = dataset.meta.get("skipped") or []
    if skipped:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["row", "image", "reason"])
            writer.writeheader()
            writer.writerows(skipped)
    return len(skipped)

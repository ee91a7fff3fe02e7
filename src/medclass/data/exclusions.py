"""Images left out of a dataset (segmentation masks, duplicates, a split file's excluded rows), each kept as a record
with its reason, so every split file and run still accounts for every image of the data."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from medclass.data.base import ImageDataset, labels_of
from medclass.data.sources import data_root, portable_source

EXCLUDED = "excluded"
EXCLUSION_COLUMNS = ["source", "split", "label", "reason"]


def exclude(dataset: ImageDataset, reasons: dict[str, str]) -> ImageDataset:
    """The dataset without the images named in `reasons` (source -> why), each kept as a record in
    `meta["excluded"]` (source, split, label, patient, reason; in the order of `reasons`): every split file and run
    written from it lists them as `excluded`, so it still accounts for every image of the data, and says why each
    one was left out."""
    by_source = {s.source: s for s in dataset.samples}
    records = [{"source": source, "split": by_source[source].split, "patient": by_source[source].patient,
                "label": "|".join(labels_of(by_source[source], dataset.target)), "reason": reason}
               for source, reason in reasons.items() if source in by_source]
    if not records:
        return dataset
    kept = [s for s in dataset.samples if s.source not in reasons]
    return replace(dataset, samples=kept, meta={**dataset.meta, EXCLUDED: excluded_images(dataset) + records})


def excluded_images(dataset: ImageDataset) -> list[dict]:
    """The records of the images left out so far (see `exclude`), in the order they were left out."""
    return list(dataset.meta.get(EXCLUDED, []))


def save_exclusions(dataset: ImageDataset, path: Path) -> int:
    """Write `source,split,label,reason` of every image left out, named as in splits.csv (split: the one it had,
    empty when it was left out before splitting); the header alone when none was. Returns how many."""
    records, root = excluded_images(dataset), data_root(dataset)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EXCLUSION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r | {"source": portable_source(r["source"], root)} for r in records)
    return len(records)

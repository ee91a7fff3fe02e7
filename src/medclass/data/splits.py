"""Train/val/test assignment: seeded, stratified, grouped by patient, saved as CSV so a run can be reproduced.

Every image of a patient lands in the same split (images without a patient id are their own group), so a model is
never tested on a patient it was trained on. Data without patient ids can be grouped by its clusters of exact and
near duplicates instead (`group_duplicates`, data/groups.py), so no copy of a test image is trained on. The grouping
used is recorded in `meta["split_grouping"]`. `folds=K` adds K cross-validation folds over the non-test part.
"""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from medclass.data.base import ImageDataset, Sample
from medclass.data.coverage import warn_small_classes
from medclass.data.csv_file import read_csv_table
from medclass.data.duplicates import exact_duplicate_groups
from medclass.data.exclusions import (EXCLUDED, EXCLUSION_COLUMNS, exclude, excluded_images,  # noqa: F401
                                      save_exclusions)
from medclass.data.folders import SPLIT_ALIASES
from medclass.data.groups import PATIENT, split_groups
from medclass.data.image_hashes import ImageFacts
from medclass.data.sources import data_root, portable_source, source_lookup
from medclass.data.tasks import is_multi_label, labels_of
from medclass.core.errors import DataError

# val/test are cut as whole folds of a stratified group k-fold, so fractions are honoured to the nearest 1/20.
FRACTION_FOLDS = 20
# Split of the images left out (duplicates, segmentation masks, unreadable files): a split file still accounts for
# every image of the data, and says why in its `reason` column (see `exclude`).
# Strata and summary columns of images without a label for a task, and of multi-label images without a finding.
NO_LABEL, WITHOUT_FINDING = "(no label)", "(no finding)"


def make_splits(dataset: ImageDataset, val: float = 0.15, test: float = 0.15, seed: int = 0, by_patient: bool = True,
                folds: int | None = None, dedupe: bool | list[list[str]] | None = None, group_duplicates: bool = False,
                scanned: dict[str, ImageFacts] | None = None) -> ImageDataset:
    """Assign every sample to train/val/test (or train+fold/test when `folds`). Returns a new dataset.

    `dedupe`: True to drop exact duplicates found by the audit module, or the duplicate groups (lists of sources).
    `group_duplicates`: without patients, keep each cluster of exact/near duplicates in one split (decodes every
    image once; `scanned` holds or receives the decoded facts by source, for the audit to reuse).
    """
    if dedupe is True:
        dedupe = exact_duplicate_groups(dataset)
    if dedupe:
        dataset = dedupe_samples(dataset, dedupe)
    _check_fractions(val, test, folds)
    grouping = split_groups(dataset, by_patient, group_duplicates, scanned)
    keys, groups = stratify_keys(dataset), grouping.ids
    n_groups = len(set(groups))
    n_folds = fold_count(keys, groups)
    n_test, n_val = _folds_for(test, n_folds), 0 if folds else _folds_for(val, n_folds)
    if n_groups < 3 or n_test + n_val >= n_folds:
        raise DataError(f"{dataset.name}: {n_groups} {grouping.noun()} are too few for "
                        f"val={val}, test={test}; need a non-empty train split")
    parts = ("train",) + (("val",) if n_val else ()) + (("test",) if n_test else ())
    warn_small_classes(dataset.name, keys, groups, parts)
    fold = assign_folds(keys, groups, n_folds, seed)
    split = np.where(fold < n_test, "test", np.where(fold < n_test + n_val, "val", "train"))
    meta = {**dataset.meta, "split": {"by": "patient" if grouping.by == PATIENT else "image",
                                      "val": val, "test": test, "seed": seed, "folds": folds,
                                      "stratify": "rarest label" if is_multi_label(dataset) else "target class"},
            "split_grouping": grouping.summary()}
    if folds:
        meta["folds"] = _cv_folds(dataset, keys, groups, split != "test", folds, seed)
    samples = [s.with_split(str(name)) for s, name in zip(dataset.samples, split)]
    return replace(dataset, samples=samples, meta=meta)


def carve_validation(dataset: ImageDataset, fraction: float, seed: int, group_duplicates: bool = False,
                     scanned: dict[str, ImageFacts] | None = None) -> ImageDataset:
    """Data shipped with only train/test (e.g. Training/Testing folders): move a validation part out of train, so
    model selection never looks at the test images. Stratified by class and grouped by patient (or duplicate
    cluster, see `make_splits`) at once, like `make_splits`; the test split is left as shipped."""
    train = [i for i, s in enumerate(dataset.samples) if s.split == "train"]
    if not train:
        raise DataError(f"{dataset.name}: no training images (splits found: "
                        f"{', '.join(sorted({str(s.split) for s in dataset.samples}))})")
    if not 0 < fraction < 1:
        raise DataError(f"{dataset.name}: has no validation split, so val_fraction must be between 0 and 1 to carve "
                        f"one out of train; got {fraction}")
    # only the training images are grouped: clusters reaching into the shipped test split are the audit's to report
    grouping = split_groups(dataset.with_samples([dataset.samples[i] for i in train]), True, group_duplicates, scanned)
    all_keys = stratify_keys(dataset)
    keys, groups = [all_keys[i] for i in train], grouping.ids
    n_folds = fold_count(keys, groups)
    n_val = _folds_for(fraction, n_folds)
    if n_val >= n_folds:
        raise DataError(f"{dataset.name}: {len(set(groups))} training {grouping.noun()} are too few to carve a "
                        f"validation part ({fraction}) out of them")
    warn_small_classes(dataset.name, keys, groups, ("train", "val"))
    fold = assign_folds(keys, groups, n_folds, seed)
    val = {train[i] for i in np.flatnonzero(fold < n_val)}
    meta = {**dataset.meta, "validation": {"carved_from": "train", "fraction": fraction, "seed": seed,
                                           "by": "patient" if grouping.by == PATIENT else "image"},
            "split_grouping": grouping.summary()}
    samples = [s.with_split("val") if i in val else s for i, s in enumerate(dataset.samples)]
    return replace(dataset, samples=samples, meta=meta)


def stratified_split(dataset: ImageDataset, val: float = 0.15, test: float = 0.15, seed: int = 0,
                     group_duplicates: bool = False, scanned: dict[str, ImageFacts] | None = None) -> ImageDataset:
    """Stratified train/val/test; grouped by patient whenever the dataset knows its patients (it is safer), else by
    duplicate cluster when `group_duplicates`."""
    return make_splits(dataset, val=val, test=test, seed=seed, by_patient=True, group_duplicates=group_duplicates,
                       scanned=scanned)


def stratify_keys(dataset: ImageDataset) -> list[str]:
    """One hashable class per sample to stratify on, from the main task (`dataset.target`) only.

    Multi-label images (NIH: 'Effusion|Mass') stratify on their rarest label over the dataset: spreading the rare
    findings evenly is what matters, the common ones follow by sheer numbers. Images without a label for the main
    task form one stratum of their own, and so do multi-label images without any finding.
    """
    task = dataset.target
    multi = is_multi_label(dataset, task)
    frequency = Counter(name for s in dataset.samples for name in labels_of(s, task))

    def key(sample: Sample) -> str:
        value = sample.labels.get(task)
        if value is None:
            return NO_LABEL
        return min(value, key=lambda n: (frequency[n], n), default=WITHOUT_FINDING) if multi else value

    return [key(s) for s in dataset.samples]


def fold_count(keys: list[str], groups: list[str], wanted: int = FRACTION_FOLDS) -> int:
    """Folds to cut: `wanted`, unless there are fewer groups, or the largest class has fewer members (scikit-learn's
    stratified splitters need one class that can fill every fold). Small data gets coarser fractions instead of
    losing its stratification."""
    return max(1, min(wanted, len(set(groups)), max(Counter(keys).values(), default=0)))


def assign_folds(keys: list[str], groups: list[str], n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) per sample: stratified by key, no group split across folds.

    Classes smaller than n_folds cannot reach every fold; scikit-learn warns about them in its own words, which
    `warn_small_classes` replaces with one naming the classes and the splits they cannot fill.
    """
    y = np.unique(np.asarray(keys), return_inverse=True)[1]
    x = np.zeros((len(y), 1))
    fold = np.empty(len(y), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*", category=UserWarning)
        if len(set(groups)) == len(groups):  # no groups: the plain stratified k-fold is much faster
            parts = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(x, y)
        else:
            parts = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(x, y, groups)
        for i, (_, held_out) in enumerate(parts):
            fold[held_out] = i
    return fold


def _cv_folds(dataset: ImageDataset, keys, groups, rest: np.ndarray, folds: int, seed: int) -> dict[str, int]:
    index = np.flatnonzero(rest)
    if len({groups[i] for i in index}) < folds:
        raise DataError(f"{dataset.name}: folds={folds} needs at least {folds} patients/images outside the test "
                        f"split; found {len({groups[i] for i in index})}")
    keys, groups = [keys[i] for i in index], [groups[i] for i in index]
    if fold_count(keys, groups, folds) < folds:
        raise DataError(f"{dataset.name}: folds={folds} needs a class with at least {folds} images outside the test "
                        f"split to stratify the folds; the largest has {max(Counter(keys).values())}")
    warn_small_classes(dataset.name, keys, groups, tuple(f"fold {k}" for k in range(folds)))
    fold = assign_folds(keys, groups, folds, seed)
    return {dataset.samples[i].source: int(f) for i, f in zip(index, fold)}


def _check_fractions(val: float, test: float, folds: int | None) -> None:
    if val < 0 or test < 0 or val + test >= 1:
        raise DataError(f"split fractions val={val}, test={test}: each must be >= 0 and their sum below 1")
    if folds is not None and folds < 2:
        raise DataError(f"folds={folds}: expected at least 2 cross-validation folds")


def _folds_for(fraction: float, n_folds: int) -> int:
    return 0 if fraction == 0 else max(1, round(fraction * n_folds))


def select_fold(dataset: ImageDataset, fold: int) -> ImageDataset:
    """Cross-validation fold `fold` becomes val, the other folds train; test stays test."""
    folds = dataset.meta.get("folds")
    if not folds:
        raise DataError(f"{dataset.name}: has no cross-validation folds; make splits with folds=K first")
    if fold not in set(folds.values()):
        raise DataError(f"{dataset.name}: no fold {fold}; folds are {', '.join(map(str, sorted(set(folds.values()))))}")
    return dataset.with_samples([s.with_split(("val" if folds[s.source] == fold else "train"))
                                 if s.source in folds else s for s in dataset.samples])


def dedupe_samples(dataset: ImageDataset, groups: list[list[str]]) -> ImageDataset:
    """Keep the first member of each duplicate group; drop every member of a group whose labels disagree. The
    dropped images are excluded (`exclude`) with the copy they duplicate as the reason."""
    position = {s.source: i for i, s in enumerate(dataset.samples)}
    reasons, conflicting = {}, 0
    for group in groups:
        members = sorted(position[src] for src in group if src in position)
        if len(members) < 2:
            continue
        sources = [dataset.samples[i].source for i in members]
        if len({_label_key(dataset.samples[i]) for i in members}) == 1:
            reasons.update((src, f"duplicate of {sources[0]}") for src in sources[1:])
        else:
            conflicting += 1
            reasons.update((src, f"duplicate with another label of {sources[k == 0]}") for k, src in enumerate(sources))
    dataset = exclude(dataset, reasons)
    dedupe = {"groups": len(groups), "conflicting": conflicting, "dropped": len(reasons)}
    return replace(dataset, meta={**dataset.meta, "dedupe": dedupe})


def _label_key(sample: Sample) -> tuple:
    return tuple(sorted((task, labels_of(sample, task)) for task in sample.labels))


def split_summary(dataset: ImageDataset, task: str | None = None) -> list[dict]:
    """Per split (and per fold): images, patients, images per class of `task` (default: the target), and columns
    counting the images without a label, or (multi-label) without a finding, when there are any."""
    task = task or dataset.target
    folds = dataset.meta.get("folds") or {}
    parts: dict[str, list[Sample]] = {}
    for s in dataset.samples:
        parts.setdefault(s.split or "all", []).append(s)
        if s.source in folds:
            parts.setdefault(f"fold {folds[s.source]}", []).append(s)
    order = [name for name in ("train", "val", "test", "all") if name in parts]
    order += [f"fold {i}" for i in sorted(set(folds.values()))]
    extra = {column: test for column, test in ((NO_LABEL, _unlabelled), (WITHOUT_FINDING, _without_finding))
             if any(test(s, task) for s in dataset.samples)}
    return [_summary_row(parts[name], name, dataset, task, extra) for name in order]


def _unlabelled(sample: Sample, task: str) -> bool:
    return sample.labels.get(task) is None


def _without_finding(sample: Sample, task: str) -> bool:
    return sample.labels.get(task) == ()


def _summary_row(samples: list[Sample], name: str, dataset: ImageDataset, task: str, extra: dict) -> dict:
    per_class = Counter(label for s in samples for label in labels_of(s, task))
    patients = {s.patient for s in samples if s.patient}
    return {"split": name, "images": len(samples), "patients": len(patients) if patients else None,
            **{c: per_class.get(c, 0) for c in dataset.tasks[task]},
            **{column: sum(test(s, task) for s in samples) for column, test in extra.items()}}


def patients_in_several_splits(dataset: ImageDataset) -> list[str]:
    splits_of: dict[str, set] = {}
    for s in dataset.samples:
        if s.patient:
            splits_of.setdefault(s.patient, set()).add(s.split)
    return sorted(p for p, splits in splits_of.items() if len(splits) > 1)


def save_splits(dataset: ImageDataset, path: Path) -> None:
    """Write `source,split,label,patient[,fold][,reason]`: every image, each source relative to the data's root when
    inside it, those left out (`exclude`) with split 'excluded' and the reason (a column written only when some
    image was left out)."""
    if not dataset.has_splits:
        raise DataError(f"{dataset.name}: some images have no split yet; make splits before saving them to {path}")
    folds, excluded = dataset.meta.get("folds"), excluded_images(dataset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "split", "label", "patient"] + (["fold"] if folds else [])
                        + (["reason"] if excluded else []))
        root = data_root(dataset)  # images named from the data's root: the file still matches a moved dataset
        for s in dataset.samples:
            fold = [folds.get(s.source, "")] if folds else []
            writer.writerow([portable_source(s.source, root), s.split, "|".join(labels_of(s, dataset.target)),
                             s.patient or ""] + fold + ([""] if excluded else []))
        for record in excluded:
            writer.writerow([portable_source(record["source"], root), EXCLUDED, record["label"],
                             record["patient"] or ""] + ([""] if folds else []) + [record["reason"]])


def load_splits(dataset: ImageDataset, path: Path, fold: int | None = None, unlisted: str | None = None,
                recorded_root: Path | None = None) -> ImageDataset:
    """Apply a CSV written by `save_splits` to `dataset`. With folds, `fold` picks which one is val. Images the file
    marks 'excluded' are left out (`exclude`) with the file's reason. An image without a row is an error, unless
    `unlisted` gives the reason to leave such images out (a run of an older medclass wrote no row for them).
    `recorded_root`: where the data was when the file was written, for files naming images absolutely
    (data/sources.py)."""
    split_of, folds, reasons = _read_split_file(Path(path))
    source = source_lookup(dataset, recorded_root)
    split_of = {source(name): split for name, split in split_of.items()}
    folds = {source(name): number for name, number in folds.items()}
    reasons = {source(name): reason for name, reason in reasons.items()}
    unknown = [s.source for s in dataset.samples if s.source not in split_of]
    if unknown and unlisted is None:
        raise DataError(f"{path}: has no split for {len(unknown)} image(s) of {dataset.name}, e.g. {unknown[0]}")
    left_out = {s.source: reasons.get(s.source) or f"excluded in {path}" for s in dataset.samples
                if split_of.get(s.source) == EXCLUDED} | dict.fromkeys(unknown, unlisted)
    dataset = exclude(dataset, left_out)
    kept = [s.with_split(split_of[s.source]) for s in dataset.samples]
    dataset = replace(dataset, samples=kept, meta={**dataset.meta, "folds": folds} if folds else dataset.meta)
    if fold is not None and not folds:
        raise DataError(f"{path}: has no fold column; fold={fold} cannot be applied")
    if folds and fold is None and not any(s.split == "val" for s in kept):
        raise DataError(f"{path}: has cross-validation folds {', '.join(map(str, sorted(set(folds.values()))))} and "
                        "no val rows; choose a fold (fold=N, --fold N)")
    return select_fold(dataset, fold) if fold is not None else dataset


def _read_split_file(path: Path) -> tuple[dict[str, str], dict[str, int], dict[str, str]]:
    """{source: split}, {source: fold} and {source: reason} (of the excluded rows that give one)."""
    header, rows = read_csv_table(path, "split file")
    missing = {"source", "split"} - set(header)
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected source,split; "
                        f"columns found: {', '.join(header)}")
    split_of, folds, reasons = {}, {}, {}
    for number, row in rows:
        split_of[row["source"]] = _split_cell(path, number, row["split"])
        if row.get("fold", "").strip():
            folds[row["source"]] = _fold_cell(path, number, row["fold"])
        if row.get("reason", "").strip():
            reasons[row["source"]] = row["reason"].strip()
    return split_of, folds, reasons


def _split_cell(path: Path, number: int, value: str) -> str:
    value = (value or "").strip().lower()
    if value != EXCLUDED and value not in SPLIT_ALIASES:
        raise DataError(f"{path}: row {number}, column split: expected train/val/test or {EXCLUDED}, found {value!r}")
    return SPLIT_ALIASES.get(value, value)


def _fold_cell(path: Path, number: int, value: str) -> int:
    if not value.strip().isdigit():
        raise DataError(f"{path}: row {number}, column fold: expected a fold number 0, 1, ..., found {value!r}")
    return int(value)

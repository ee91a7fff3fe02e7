"""Audit a dataset for the problems that make a classifier look better than it is, before training on it.

`audit_dataset` decodes every image once and returns a JSON-serialisable report: counts (of every task a model
learns), image sizes and modes, unreadable files, exact and near duplicates (and which of them cross splits or
carry different labels in any learned task), mask-like files, images a CSV names outside its folder, class-dependent sizes or modes (a shortcut a model
can learn instead of the disease), and patients present in more than one split. Images left out before it (the
segmentation masks beside their images that `open_dataset` leaves out, a split file's excluded rows) are listed
with their reason, not decoded.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import PurePath


from medclass.data.base import ImageDataset, Sample
from medclass.data.coverage import coverage_findings
from medclass.data.csv_reader import OUTSIDE
from medclass.data.duplicates import NEAR_MIN_CORRELATION, NEAR_THRESHOLD, by_pixels, exact_groups, near_groups
from medclass.data.duplicates import duplicate_clusters, exact_duplicate_groups  # noqa: F401  (imported from here)
from medclass.data.image_hashes import ImageFacts, Progress, scan_dataset
from medclass.data.masks import is_mask_exclusion
from medclass.data.splits import NO_LABEL, WITHOUT_FINDING, split_summary

# A size or mode is a class artefact when its share differs by >= 0.75 between two classes (e.g. 90% vs 15%),
# counting only classes with enough readable images for a share to mean something.
ARTEFACT_SHARE_GAP = 0.75
ARTEFACT_MIN_CLASS_IMAGES = 5
MASK_NAME = re.compile(r"(?:^|[^a-z])(?:masks?|seg|segmentation)(?:[^a-z]|$)")


def audit_dataset(dataset: ImageDataset, near_threshold: int = NEAR_THRESHOLD,
                  near_min_correlation: float = NEAR_MIN_CORRELATION, progress: Progress = None,
                  scanned: dict[str, ImageFacts] | None = None) -> dict:
    """Decode every image once and report what is wrong with the data; see the module docstring. `scanned`: facts
    from an earlier scan of these images (by source), reused instead of decoding them again."""
    facts = scan_dataset(dataset, progress, scanned)
    describe = _Describer(dataset)
    exact = [describe.group(g) for g in exact_groups(facts)]
    near = [describe.group(g) for g in near_groups(facts, near_threshold, near_min_correlation)]
    near.sort(key=lambda g: (not g["conflicting_labels"], not g["cross_split"]))  # worst first; sort is stable
    report = {
        "dataset": dataset.name,
        "path": dataset.meta.get("path"),
        "target": dataset.target,
        "classes": list(dataset.classes),
        "settings": {"exact_hash": "blake2b-128 of decoded pixels (mode, size, bytes)",
                     "near_hash": "imagehash.phash 64-bit", "near_threshold": near_threshold,
                     "near_min_correlation": near_min_correlation, "artefact_share_gap": ARTEFACT_SHARE_GAP,
                     "artefact_min_class_images": ARTEFACT_MIN_CLASS_IMAGES},
        "counts": {split: dict(row) for split, row in dataset.counts().items()},
        "tasks": _tasks(dataset),
        "patients": _patients_per_split(dataset),
        "skipped": dataset.meta.get("skipped", []),
        # left out before the audit (not decoded): masks beside their images (data/masks.py), a split file's
        # excluded rows; each with its reason
        "excluded": [{key: r[key] for key in ("source", "label", "split", "reason")}
                     for r in dataset.meta.get("excluded", [])],
        "class_coverage": coverage_findings(dataset),
        "images": _image_summary(describe, facts),
        "corrupt": [describe.member(i) | {"reason": f.error} for i, f in enumerate(facts) if f.error],
        "duplicates": exact,
        "cross_split_duplicates": [g for g in exact if g["cross_split"]],
        "conflicting_label_duplicates": [g for g in exact if g["conflicting_labels"]],
        "near_duplicates": near,
        "masks": _masks(describe, facts),
        # images a CSV names outside its own folder (../, absolute paths, symbolic links): followed, listed here
        "outside_csv_folder": dataset.meta.get(OUTSIDE, []),
        "size_artefacts": _size_artefacts(describe, facts),
        "patient_leaks": _patient_leaks(dataset.samples),
    }
    report["summary"] = _summary(report, describe)
    return report


def _tasks(dataset: ImageDataset) -> dict[str, dict]:
    """Kind, classes, images per split and class, and images without a label, of every task a model learns."""
    return {task: {"kind": dataset.kind(task), "classes": list(dataset.tasks[task]), "counts": dataset.counts(task),
                   "unlabelled": sum(s.labels.get(task) is None for s in dataset.samples)}
            for task in dataset.learned}


class _Describer:
    """Turns sample indices into the JSON a reader needs: path, label of the target task (and, when a model learns
    several tasks, of each of them) and split."""

    def __init__(self, dataset: ImageDataset):
        self.samples = dataset.samples
        self.target = dataset.target
        self.tasks = dataset.learned

    def label(self, index: int, task: str | None = None) -> str:
        value = self.samples[index].labels.get(task or self.target)
        if value is None:
            return NO_LABEL
        return ("|".join(value) or WITHOUT_FINDING) if isinstance(value, (tuple, list)) else str(value)

    def labels(self, index: int) -> str:
        """The labels of every learned task: copies of one image conflict when they differ in any of them."""
        return " / ".join(self.label(index, task) for task in self.tasks)

    def member(self, index: int) -> dict:
        sample = self.samples[index]
        found = {"path": sample.source, "label": self.label(index), "split": sample.split}
        if len(self.tasks) > 1:
            found["labels"] = {task: self.label(index, task) for task in self.tasks}
        return found

    def group(self, indices: list[int]) -> dict:
        labels = sorted({self.labels(i) for i in indices})
        splits = sorted({self.samples[i].split for i in indices if self.samples[i].split is not None})
        return {"members": [self.member(i) for i in indices], "labels": labels, "splits": splits,
                "cross_split": len(splits) > 1, "conflicting_labels": len(labels) > 1}


def _image_summary(describe: _Describer, facts: list[ImageFacts]) -> dict:
    sizes, modes = Counter(), Counter()
    by_class = defaultdict(lambda: {"sizes": Counter(), "modes": Counter()})
    for index, fact in enumerate(facts):
        if fact.error:
            continue
        size = _size_text(fact.size)
        sizes[size] += 1
        modes[fact.mode] += 1
        by_class[describe.label(index)]["sizes"][size] += 1
        by_class[describe.label(index)]["modes"][fact.mode] += 1
    as_dict = lambda c: dict(c.most_common())  # noqa: E731 - most frequent first reads best in JSON
    per_class = {label: {k: as_dict(v) for k, v in table.items()} for label, table in sorted(by_class.items())}
    return {"sizes": as_dict(sizes), "modes": as_dict(modes), "by_class": per_class}


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _masks(describe: _Describer, facts: list[ImageFacts]) -> list[dict]:
    found = []
    for index, fact in enumerate(facts):
        reasons = []
        path = PurePath(describe.samples[index].source)
        if MASK_NAME.search(path.stem.lower()):
            reasons.append("file name looks like a mask")
        if fact.distinct_values == 2:
            reasons.append("binary image (2 distinct values)")
        elif fact.distinct_values == 1:
            reasons.append("constant image (1 value)")
        if reasons:
            found.append(describe.member(index) | {"reason": "; ".join(reasons)})
    return found


def _size_artefacts(describe: _Describer, facts: list[ImageFacts]) -> list[dict]:
    """Sizes or modes whose share differs by >= ARTEFACT_SHARE_GAP between two classes."""
    values = {"size": defaultdict(list), "mode": defaultdict(list)}
    for index, fact in enumerate(facts):
        if not fact.error:
            values["size"][describe.label(index)].append(_size_text(fact.size))
            values["mode"][describe.label(index)].append(fact.mode)
    found = []
    for attribute, per_class in values.items():
        per_class = {c: v for c, v in sorted(per_class.items()) if len(v) >= ARTEFACT_MIN_CLASS_IMAGES}
        for value in sorted({v for vs in per_class.values() for v in vs}):
            share = {c: round(vs.count(value) / len(vs), 3) for c, vs in per_class.items()}
            high, low = max(share, key=share.get), min(share, key=share.get)
            if share[high] - share[low] >= ARTEFACT_SHARE_GAP:
                message = f"{attribute} {value}: {share[high]:.0%} of {high} vs {share[low]:.0%} of {low}"
                found.append({"attribute": attribute, "value": value, "share_by_class": share, "message": message})
    return found


def _patients_per_split(dataset: ImageDataset) -> dict[str, int] | None:
    """Distinct patients per split ('all' before splitting); None when the data names no patients."""
    if not any(s.patient for s in dataset.samples):
        return None
    return {row["split"]: row["patients"] or 0 for row in split_summary(dataset)}


def _patient_leaks(samples: list[Sample]) -> list[dict]:
    splits = defaultdict(Counter)
    for sample in samples:
        if sample.patient is not None and sample.split is not None:
            splits[sample.patient][sample.split] += 1
    return [{"patient": patient, "splits": dict(sorted(counts.items())), "images": sum(counts.values())}
            for patient, counts in sorted(splits.items()) if len(counts) > 1]


def _summary(report: dict, describe: _Describer) -> dict:
    per_split, per_class = Counter(), defaultdict(Counter)
    for group in report["cross_split_duplicates"]:
        for member in group["members"]:
            # An image counts when its pixels also occur in *another* split, e.g. a test image seen in training.
            if member["split"] is not None and set(group["splits"]) - {member["split"]}:
                per_split[member["split"]] += 1
                per_class[member["split"]][member["label"]] += 1
    near = report["near_duplicates"]
    leakage = bool(report["cross_split_duplicates"] or report["conflicting_label_duplicates"]
                   or report["patient_leaks"])
    return {
        "images": len(describe.samples),
        "readable": len(describe.samples) - len(report["corrupt"]),
        "corrupt": len(report["corrupt"]),
        "duplicate_groups": len(report["duplicates"]),
        "duplicate_images": sum(len(g["members"]) for g in report["duplicates"]),
        "cross_split_duplicate_groups": len(report["cross_split_duplicates"]),
        "cross_split_duplicate_images": dict(sorted(per_split.items())),
        "cross_split_duplicate_images_by_class": {s: dict(sorted(c.items()))
                                                  for s, c in sorted(per_class.items())},
        "conflicting_label_duplicate_groups": len(report["conflicting_label_duplicates"]),
        "near_duplicate_groups": len(near),
        "near_duplicate_images": sum(len(g["members"]) for g in near),
        "near_duplicate_cross_split_groups": sum(g["cross_split"] for g in near),
        "near_duplicate_conflicting_label_groups": sum(g["conflicting_labels"] for g in near),
        "masks": len(report["masks"]),
        "outside_csv_folder": len(report["outside_csv_folder"]),
        "masks_left_out": sum(is_mask_exclusion(r) for r in report["excluded"]),
        "excluded": len(report["excluded"]),
        "size_artefacts": len(report["size_artefacts"]),
        "patient_leaks": len(report["patient_leaks"]),
        "class_coverage": len(report["class_coverage"]),
        "skipped": len(report["skipped"]),
        "leakage_found": leakage,
    }

"""The data audit before the first epoch (`--audit`, on by default): the split data checked as `medclass audit` checks
it (data/audit.py), saved as RUN/audit.json. Unreadable images stop the run here, unless --skip-unreadable leaves
them out; leakage and artefacts are warned about, since the user may have reasons to keep them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from medclass.core.errors import DataWarning, MedclassError
from medclass.core.rundir import RunDir
from medclass.data import ImageDataset
from medclass.data.audit import audit_dataset
from medclass.data.splits import exclude
from medclass.training.config import TrainConfig
from medclass.training.distributed import is_global_zero
from medclass.training.prepare import check_class_coverage
from medclass.training.progress import report

FINDINGS = {"cross_split_duplicates": "exact-duplicate groups span splits (test images seen in training)",
            "conflicting_label_duplicates": "exact-duplicate groups carry different labels",
            "patient_leaks": "patients have images in more than one split",
            "masks": "files look like segmentation masks (binary pixels or a mask-like name without an image beside "
                     "it) and are trained on; mark them excluded in a --splits file if they are masks",
            "size_artefacts": "image sizes/modes differ by class (a shortcut the model can learn)"}


def audited(config: TrainConfig, dataset: ImageDataset, scanned: dict | None = None) -> tuple[ImageDataset, int]:
    """The dataset to train on after the audit, and how many unreadable images it left out. Only the rank that
    writes the run needs the audit's warnings and refusals: the others run it too only with --skip-unreadable, to
    leave out the same images. (When rank 0 refuses, the launcher ends the others: Lightning's never starts them,
    torchrun stops them, srun with --kill-on-bad-exit.) Images the split already decoded (`scanned`) are not
    decoded again."""
    writes = is_global_zero()
    if not config.audit or not (writes or config.skip_unreadable):
        return dataset, 0
    lines, unreadable = audit_before_training(dataset, config.run_dir, config.skip_unreadable, scanned, writes)
    for line in lines if writes else []:
        warnings.warn(line, DataWarning, stacklevel=3)
    if unreadable:
        dataset = without_unreadable(dataset, unreadable, RunDir(config.run_dir).excluded_file)
    return dataset, len(unreadable)


def audit_before_training(dataset: ImageDataset, run_dir: Path, skip_unreadable: bool = False,
                          scanned: dict | None = None, writes: bool = True) -> tuple[list[str], list[dict]]:
    """Audit the split data (saved as audit.json when `writes`): the warning lines of what it found, and the
    unreadable images (which stop the run unless `skip_unreadable`)."""
    found = audit_dataset(dataset, scanned=scanned)
    audit_file = RunDir(run_dir).audit_file
    if writes:
        audit_file.write_text(json.dumps(found, indent=2))
    if found["corrupt"] and not skip_unreadable:
        first = found["corrupt"][0]
        raise MedclassError(f"{len(found['corrupt'])} image(s) cannot be read, e.g. {first['path']}: "
                            f"{first['reason']}. Fix or remove them, or pass --skip-unreadable to train without "
                            f"them; all are listed in {audit_file}")
    summary = found["summary"]
    lines = [f"audit: {len(found[key])} {text}" for key, text in FINDINGS.items() if found[key]]
    if summary.get("near_duplicate_cross_split_groups"):
        lines.append(f"audit: {summary['near_duplicate_cross_split_groups']} near-duplicate groups span splits "
                     "(likely the same patient or scan; review them)")
    if summary.get("leakage_found"):
        lines.append(f"audit: details in {audit_file}; `medclass split --dedupe` removes duplicates")
    return lines, found["corrupt"]


def without_unreadable(dataset: ImageDataset, unreadable: list[dict], listing: Path) -> ImageDataset:
    """--skip-unreadable: the unreadable images are excluded (with their reason), each named, and listed in
    `listing` with the run's other exclusions (run_records.py writes it); a class that loses all its training or
    validation images still stops the run."""
    dataset = exclude(dataset, {item["path"]: f"unreadable: {item['reason']}" for item in unreadable})
    for item in unreadable:
        report(f"skipped unreadable image: {item['path']} ({item['reason']})")
    report(f"{len(unreadable)} unreadable image(s) left out; listed in {listing}")
    check_class_coverage(dataset)
    return dataset

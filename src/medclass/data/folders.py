"""Class folders: `ROOT/<class>/*.png` or `ROOT/{train,val,test}/<class>/*.png`.

Split folder names are matched case-insensitively, with the common aliases (Training/Testing, valid, validation).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medclass.data.base import DEFAULT_TASK, ImageDataset, Reader, Sample, read_sample_file
from medclass.data.dicom import dicom_patient_id
from medclass.data.images import is_dicom_file, list_images
from medclass.data.patients import PatientRule, patients_from_paths
from medclass.core.errors import DataError

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}


class FolderReader(Reader):
    name = "folders"
    description = "ROOT/<class>/*.png or ROOT/{train,val,test}/<class>/*.png"
    options = ("patient_pattern", "patient_from")

    def can_read(self, spec: str) -> bool:
        return Path(spec).is_dir()

    def read(self, spec: str, patient_pattern: str | None = None, patient_from: str | None = None) -> ImageDataset:
        return read_class_folders(Path(spec), PatientRule.parse(patient_pattern, patient_from))


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_class_folders(root: Path, patients: PatientRule | None = None) -> ImageDataset:
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder of class folders (ROOT/<class>/*.png), found a file")
    top = _class_dirs(root)
    split_dirs = {d: SPLIT_ALIASES[d.name.lower()] for d in top if d.name.lower() in SPLIT_ALIASES}
    if split_dirs and len(split_dirs) != len(top):
        others = [d.name for d in top if d not in split_dirs]
        raise DataError(f"{root}: mixes split folders ({', '.join(d.name for d in split_dirs)}) "
                        f"with other folders ({', '.join(others)}); expected only one layout")

    samples = []
    for split_dir, split in split_dirs.items() or [(root, None)]:
        for class_dir in _class_dirs(split_dir):
            samples += [Sample(source=str(p), labels={DEFAULT_TASK: class_dir.name}, split=split)
                        for p in list_images(class_dir)]
    if not samples:
        raise DataError(f"{root}: no images found; expected ROOT/<class>/*.png (or .jpg, .jpeg, .bmp, .tif) "
                        "or ROOT/{train,val,test}/<class>/...")
    samples = with_patients(samples, root, patients)
    classes = sorted({s.labels[DEFAULT_TASK] for s in samples})
    if len(classes) < 2:
        raise DataError(f"{root}: found only one class folder ({classes[0]}); a classifier needs at least two")
    return ImageDataset(name=root.name, samples=samples, tasks={DEFAULT_TASK: classes},
                        loader=read_sample_file, meta={"format": "folders", "path": str(root)})


def with_patients(samples: list[Sample], root: Path, rule: PatientRule | None) -> list[Sample]:
    """Patient ids from the rule when one is given (every file must match it), else DICOM PatientID for DICOM files."""
    if rule is not None:
        relative = [str(Path(s.source).relative_to(root)) for s in samples]
        ids = patients_from_paths(rule, relative, str(root))
    else:
        ids = [dicom_patient_id(Path(s.source)) if is_dicom_file(Path(s.source)) else None for s in samples]
    return [replace(s, patient=pid) for s, pid in zip(samples, ids)]

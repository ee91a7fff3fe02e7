"""Class folders: `ROOT/<class>/*.png` or `ROOT/{train,val,test}/<class>/*.png`.

Split folder names are matched case-insensitively, with the common aliases (Training/Testing, valid, validation).
"""

from __future__ import annotations

from pathlib import Path

from medclass.data.base import DEFAULT_TASK, ImageDataset, Reader, Sample
from medclass.data.dicom import dicom_patient_id
from medclass.data.images import is_dicom_file, list_images, read_image
from medclass.errors import DataError

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}


class FolderReader(Reader):
    name = "folders"

    def can_read(self, spec: str) -> bool:
        return Path(spec).is_dir()

    def read(self, spec: str, **options) -> ImageDataset:
        return read_class_folders(Path(spec))


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_class_folders(root: Path) -> ImageDataset:
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
            samples += [Sample(source=str(p), labels={DEFAULT_TASK: class_dir.name}, split=split,
                               patient=dicom_patient_id(p) if is_dicom_file(p) else None)
                        for p in list_images(class_dir)]
    if not samples:
        raise DataError(f"{root}: no images found; expected ROOT/<class>/*.png (or .jpg, .jpeg, .bmp, .tif) "
                        "or ROOT/{train,val,test}/<class>/...")
    classes = sorted({s.labels[DEFAULT_TASK] for s in samples})
    if len(classes) < 2:
        raise DataError(f"{root}: found only one class folder ({classes[0]}); a classifier needs at least two")
    return ImageDataset(name=root.name, samples=samples, tasks={DEFAULT_TASK: classes},
                        loader=lambda s: read_image(s.source),
                        meta={"format": "folders", "path": str(root)})

"""Nested class folders: `ROOT/<group>/<class>/...` (the Kaggle Multi Cancer layout, e.g. `Brain Cancer/brain_glioma`).

Tasks: "class" (class folder name, the default target) and "group" (the folder above it). A mapping YAML
(`{brain_glioma: {malignancy: malignant}, ...}`) adds one task per key it gives each class; a value `null`
(`breast_normal: {malignancy: null}`) means the class has no label for that task. Learn several with
`tasks="group,malignancy"`.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from medclass.data.base import ImageDataset, Reader, Sample, read_sample_file
from medclass.data.folders import SPLIT_ALIASES, with_patients
from medclass.data.images import is_image_file, list_images
from medclass.data.patients import PatientRule
from medclass.core.errors import DataError, read_yaml

CLASS_TASK, GROUP_TASK = "class", "group"
# A class folder holding patient or series folders (ROOT/<class>/<patient>/*.png) looks just like this layout;
# real group/class trees have tens of classes, patient trees usually hundreds of patients, so above this we decline.
MAX_CLASS_FOLDERS = 100


class NestedFolderReader(Reader):
    name = "nested-folders"
    description = "ROOT/<group>/<class>/*.png"
    options = ("mapping", "patient_pattern", "patient_from")
    path_options = ("mapping",)

    def can_read(self, spec: str) -> bool:
        return is_nested_layout(Path(spec))

    def read(self, spec: str, mapping: str | None = None, patient_pattern: str | None = None,
             patient_from: str | None = None) -> ImageDataset:
        return read_nested_folders(Path(spec), Path(mapping) if mapping else None,
                                   PatientRule.parse(patient_pattern, patient_from))


def subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_images(folder: Path, recursive: bool) -> bool:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return any(p.is_file() and is_image_file(p) for p in islice(files, 10_000))


def is_nested_layout(root: Path) -> bool:
    """True for ROOT/<group>/<class>/images; False for ROOT/<class>/ and ROOT/{train,val,test}/<class>/."""
    if not root.is_dir():
        return False
    groups = subfolders(root)
    if not groups or any(g.name.lower() in SPLIT_ALIASES or has_images(g, recursive=False) for g in groups):
        return False
    classes = [c for g in groups for c in subfolders(g)]
    if any(not subfolders(g) for g in groups) or len(classes) > MAX_CLASS_FOLDERS:
        return False
    if any(c.name.lower() in SPLIT_ALIASES for c in classes):  # ROOT/<class>/{train,test}: not ours
        return False
    return sum(has_images(c, recursive=True) for c in classes) >= 2


def read_nested_folders(root: Path, mapping: Path | None = None, patients: PatientRule | None = None) -> ImageDataset:
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected ROOT/<group>/<class>/*.png)")
    samples = [Sample(source=str(p), labels={CLASS_TASK: c.name, GROUP_TASK: g.name})
               for g in subfolders(root) for c in subfolders(g)
               for p in list_images(c)]
    if not samples:
        raise DataError(f"{root}: no images found; expected ROOT/<group>/<class>/*.png")
    samples = with_patients(samples, root, patients)
    tasks = {task: sorted({s.labels[task] for s in samples}) for task in (CLASS_TASK, GROUP_TASK)}
    meta = {"format": "nested-folders", "path": str(root)}
    if mapping is not None:
        samples, extra = apply_mapping(samples, load_mapping(mapping), mapping)
        tasks.update(extra)
        meta["mapping"] = str(mapping)
    return ImageDataset(name=root.name, samples=samples, tasks=tasks, target=CLASS_TASK,
                        loader=read_sample_file, meta=meta)


def load_mapping(path: Path) -> dict[str, dict[str, str | None]]:
    """Read `{class: {task: value}}`; every value becomes a class name (a string), or stays None: no label."""
    data = read_yaml(path, "mapping file", DataError)
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a mapping class -> {{task: value}}, e.g. "
                        f"'brain_glioma: {{malignancy: malignant}}'; found {type(data).__name__}")
    for name, entry in data.items():
        if not isinstance(entry, dict) or not entry:
            raise DataError(f"{path}: class {name!r}: expected {{task: value}}, found {entry!r}")
    return {str(name): {str(k): None if v is None else str(v) for k, v in entry.items()}
            for name, entry in data.items()}


def apply_mapping(samples: list[Sample], mapping: dict[str, dict[str, str | None]], path: Path):
    """Add the mapped tasks to every sample (a null value adds nothing); returns (samples, {task: classes})."""
    names = sorted({task for entry in mapping.values() for task in entry})
    clash = [t for t in names if t in (CLASS_TASK, GROUP_TASK)]
    if clash:
        raise DataError(f"{path}: task name(s) {', '.join(clash)} clash with the folder tasks class/group")
    for class_name in sorted({s.labels[CLASS_TASK] for s in samples}):
        entry = mapping.get(class_name)
        if entry is None:
            raise DataError(f"{path}: no entry for class {class_name!r}; every class folder must be mapped "
                            f"(classes in the file: {', '.join(mapping)})")
        absent = [t for t in names if t not in entry]
        if absent:  # null is a value ("no label"); a missing key is more likely a typo
            raise DataError(f"{path}: class {class_name!r}: expected a value for {', '.join(absent)}, found only "
                            f"{', '.join(entry)} (null is the value for 'no label')")
    mapped = [Sample(source=s.source, split=s.split, patient=s.patient, boxes=s.boxes,
                     labels={**s.labels, **{t: v for t, v in mapping[s.labels[CLASS_TASK]].items() if v is not None}})
              for s in samples]
    tasks = {t: sorted({s.labels[t] for s in mapped if t in s.labels}) for t in names}
    unlabelled = [t for t, classes in tasks.items() if not classes]
    if unlabelled:
        raise DataError(f"{path}: task(s) {', '.join(unlabelled)}: null for every class folder found; expected a "
                        "class name for at least one")
    return mapped, tasks

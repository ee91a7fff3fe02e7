"""CSV label files (ChestX-ray8/14 style): one row per image, or one row per bounding box.

Columns are found by name (override with image_col, label_col, patient_col, split_col). Image paths are relative to
the CSV's folder, or to `images/` beside it (the NIH layout `labels.csv` + `images/`), or to `images_dir`.
Rows naming the same image are merged into one sample: their labels are united and each row's box is kept.
The task is always called "label" (like every single-task reader), so training code never needs the column name;
it is multi-label (a tuple of class names per image) as soon as one image carries more than one label.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

from medclass.data.base import DEFAULT_TASK, Box, ImageDataset, Reader, Sample, read_sample_file
from medclass.data.folders import SPLIT_ALIASES
from medclass.data.patients import PatientRule
from medclass.errors import DataError, DataWarning

IMAGE_COLUMNS = ("filename", "image", "path", "Image Index")
LABEL_COLUMNS = ("label", "labels", "Finding Labels", "Finding Label")
PATIENT_COLUMNS = ("patient", "patient_id", "Patient ID")
SPLIT_COLUMNS = ("split",)
# (x0, y0, x1, y1) corners, or (x, y, width, height); the last is NIH's own BBox_List_2017.csv header.
BOX_COLUMNS = {"corners": ("xmin", "ymin", "xmax", "ymax"), "xywh": ("x", "y", "w", "h"),
               "nih_xywh": ("Bbox [x", "y", "w", "h]")}
SHOWN_MISSING = 5


class CsvReader(Reader):
    name = "csv"
    description = "a CSV label file"
    options = ("image_col", "label_col", "patient_col", "split_col", "patient_pattern", "patient_from",
               "images_dir", "label_sep")

    def can_read(self, spec: str) -> bool:
        return spec.lower().endswith(".csv")

    def read(self, spec: str, image_col: str | None = None, label_col: str | None = None,
             patient_col: str | None = None, split_col: str | None = None, patient_pattern: str | None = None,
             patient_from: str | None = None, images_dir: str | None = None, label_sep: str = "|") -> ImageDataset:
        path = Path(spec)
        if patient_col and patient_pattern:
            raise DataError(f"{path}: give the patient either as a column (--patient-col {patient_col}) or as a "
                            f"pattern on the image path (--patient-pattern), not both")
        header, rows = read_rows(path)
        rule = PatientRule.parse(patient_pattern, patient_from)
        # a pattern the user gave beats a patient column found only by its name
        patient = None if rule else pick_column(path, header, patient_col, PATIENT_COLUMNS, "patient",
                                                "--patient-col", False)
        layout = CsvLayout(
            path=path, image=pick_column(path, header, image_col, IMAGE_COLUMNS, "image", "--image-col"),
            label=pick_column(path, header, label_col, LABEL_COLUMNS, "label", "--label-col"), patient=patient,
            split=pick_column(path, header, split_col, SPLIT_COLUMNS, "split", "--split-col", False),
            boxes=box_columns(path, header), patients=rule, sep=label_sep)
        bases = [path.parent / images_dir] if images_dir else [path.parent, path.parent / "images"]
        return build_dataset(layout, merge_rows(layout, rows), bases)


@dataclass(frozen=True)
class CsvLayout:
    """Which column holds what in one CSV file."""

    path: Path
    image: str
    label: str
    patient: str | None
    split: str | None
    boxes: tuple[str, str, str, str] | None
    patients: PatientRule | None  # patient ids from the image path, when there is no patient column
    sep: str


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (file line number, row) pairs; the header is row 1, so numbers match a spreadsheet."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected a CSV label file)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows = [(number, row) for number, row in enumerate(reader, start=2)]
        header = [name for name in (reader.fieldnames or []) if name]
    if not header:
        raise DataError(f"{path}: empty file; expected a header row such as filename,label")
    if not rows:
        raise DataError(f"{path}: has a header ({', '.join(header)}) but no rows")
    return header, rows


def pick_column(path: Path, header: list[str], given: str | None, defaults: tuple[str, ...], what: str,
                flag: str, required: bool = True) -> str | None:
    if given:
        if given not in header:
            raise DataError(f"{path}: no column {given!r} (given as the {what} column); "
                            f"columns found: {', '.join(header)}")
        return given
    by_lower = {name.lower(): name for name in header}
    found = next((by_lower[d.lower()] for d in defaults if d.lower() in by_lower), None)
    if found is None and required:
        raise DataError(f"{path}: no {what} column; expected one of {', '.join(defaults)} (or pass {flag}); "
                        f"columns found: {', '.join(header)}")
    return found


def box_columns(path: Path, header: list[str]) -> tuple[str, str, str, str] | None:
    for names in BOX_COLUMNS.values():
        if all(name in header for name in names):
            return names
    corners = [name for name in BOX_COLUMNS["corners"] if name in header]
    if corners:  # a half-present corner set is a broken file, not a file without boxes
        missing = [name for name in BOX_COLUMNS["corners"] if name not in header]
        raise DataError(f"{path}: has box column(s) {', '.join(corners)} but not {', '.join(missing)}; "
                        f"columns found: {', '.join(header)}")
    return None


@dataclass
class ImageRow:
    """What the rows naming one image say about it, merged."""

    image: str
    row: int
    labels: list[str]
    patient: str | None
    split: str | None
    boxes: list[Box]


def merge_rows(layout: CsvLayout, rows: list[tuple[int, dict]]) -> list[ImageRow]:
    merged: dict[str, ImageRow] = {}
    for number, row in rows:
        item = parse_row(layout, number, row)
        first = merged.setdefault(item.image, item)
        if first is item:
            continue
        for field in ("patient", "split"):
            if getattr(first, field) != getattr(item, field):
                raise DataError(f"{layout.path}: rows {first.row} and {number} name the same image {item.image!r} "
                                f"with different {field} ({getattr(first, field)!r} vs {getattr(item, field)!r})")
        first.labels += [lab for lab in item.labels if lab not in first.labels]
        first.boxes += item.boxes
    return list(merged.values())


def parse_row(layout: CsvLayout, number: int, row: dict) -> ImageRow:
    image = cell(layout, number, row, layout.image)
    labels = [part.strip() for part in cell(layout, number, row, layout.label).split(layout.sep) if part.strip()]
    if not labels:
        raise DataError(f"{layout.path}: row {number}, column {layout.label}: expected a class name, "
                        f"found {row[layout.label]!r}")
    return ImageRow(image=image, row=number, labels=labels, patient=patient_of(layout, number, row, image),
                    split=split_of(layout, number, row), boxes=box_of(layout, number, row, "|".join(labels)))


def cell(layout: CsvLayout, number: int, row: dict, column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise DataError(f"{layout.path}: row {number}, column {column}: empty; expected a value")
    return value


def patient_of(layout: CsvLayout, number: int, row: dict, image: str) -> str | None:
    if layout.patient:
        return cell(layout, number, row, layout.patient)
    if layout.patients is None:
        return None
    patient = layout.patients.match(image)  # the path as the CSV gives it, relative to the image folder
    if patient is None:
        raise DataError(f"{layout.path}: row {number}, column {layout.image}: {layout.patients.text_of(image)!r} "
                        f"does not match {layout.patients.describe()}")
    return patient


def split_of(layout: CsvLayout, number: int, row: dict) -> str | None:
    if not layout.split:
        return None
    value = cell(layout, number, row, layout.split)
    if value.lower() not in SPLIT_ALIASES:
        raise DataError(f"{layout.path}: row {number}, column {layout.split}: expected train/val/test "
                        f"(or training/valid/validation/testing), found {value!r}")
    return SPLIT_ALIASES[value.lower()]


def box_of(layout: CsvLayout, number: int, row: dict, label: str) -> list[Box]:
    if layout.boxes is None:
        return []
    texts = [(row.get(name) or "").strip() for name in layout.boxes]
    if not any(texts):  # an image-level row in a file that also has boxes
        return []
    values = []
    for name, text in zip(layout.boxes, texts):
        try:
            values.append(float(text))
        except ValueError:
            raise DataError(f"{layout.path}: row {number}, column {name}: expected a number, "
                            f"found {text!r}") from None
    x0, y0, a, b = values
    x1, y1 = (a, b) if layout.boxes == BOX_COLUMNS["corners"] else (x0 + a, y0 + b)
    return [Box(label=label, x0=x0, y0=y0, x1=x1, y1=y1)]


def locate(image: str, bases: list[Path]) -> Path | None:
    return next((base / image for base in bases if (base / image).is_file()), None)


def build_dataset(layout: CsvLayout, items: list[ImageRow], bases: list[Path]) -> ImageDataset:
    found = [(item, locate(item.image, bases)) for item in items]
    missing = [{"row": item.row, "image": item.image, "reason": "file not found"}
               for item, where in found if where is None]
    looked = " and ".join(str(base) for base in bases)
    if len(missing) == len(items):
        raise DataError(f"{layout.path}: none of the {len(items)} images it lists exist; looked in {looked} "
                        f"(e.g. row {missing[0]['row']}: {missing[0]['image']})")
    if missing:
        rows = ", ".join(str(m["row"]) for m in missing[:SHOWN_MISSING])
        warnings.warn(f"{layout.path}: {len(missing)} of {len(items)} images not found in {looked}; skipped "
                      f"(rows {rows}{', ...' if len(missing) > SHOWN_MISSING else ''})", DataWarning, stacklevel=3)
    multi = any(len(item.labels) > 1 for item in items)
    samples = [Sample(source=str(where), split=item.split, patient=item.patient, boxes=tuple(item.boxes),
                      labels={DEFAULT_TASK: tuple(sorted(item.labels)) if multi else item.labels[0]})
               for item, where in found if where is not None]
    classes = sorted({name for item in items for name in item.labels})
    meta = {"format": "csv", "path": str(layout.path), "skipped": missing,
            "multi_label": [DEFAULT_TASK] if multi else [],
            "columns": {"image": layout.image, "label": layout.label, "patient": layout.patient,
                        "split": layout.split, "boxes": list(layout.boxes or [])}}
    return ImageDataset(name=f"{layout.path.parent.name}/{layout.path.name}", samples=samples,
                        tasks={DEFAULT_TASK: classes}, loader=read_sample_file, meta=meta)

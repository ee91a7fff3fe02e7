"""CSV label files (ChestX-ray8/14 style): one row per image, or one row per bounding box.

Columns are found by name (override with image_col, label_col, patient_col, split_col). Image paths are relative to
the CSV's folder, or to `images/` beside it (the NIH layout `labels.csv` + `images/`), or to `images_dir`.

The label column is the task "label" (like every single-task reader), so training code never needs the column name.
`tasks="organ,malignancy"` reads those columns instead, one task each, named by its column; an empty cell there
means no label for that task. A cell 'A|B' becomes a tuple of labels; `multilabel=True` declares every task
multi-label ("No Finding" is the empty tuple, not a class). Without it a task stays single-label, and
`check_single_label` (data/tasks.py) names the row of an image with several labels.

Rows naming the same image are merged into one sample. Rows that each carry a box (one row per box) and rows of a
multi-label file unite their labels; identical rows are merged with a warning; any other difference in labels is
an error naming both rows, because reading it as a second label would silently turn the task multi-label.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from medclass.data.base import DEFAULT_TASK, NO_FINDING, Box, ImageDataset, Reader, Sample, read_sample_file
from medclass.data.csv_file import read_csv_table
from medclass.data.folders import SPLIT_ALIASES
from medclass.data.patients import PatientRule
from medclass.data.tasks import task_names
from medclass.core.errors import DataError, DataWarning

IMAGE_COLUMNS = ("filename", "image", "path", "Image Index")
LABEL_COLUMNS = ("label", "labels", "Finding Labels", "Finding Label")
PATIENT_COLUMNS = ("patient", "patient_id", "Patient ID")
SPLIT_COLUMNS = ("split",)
# (x0, y0, x1, y1) corners, or (x, y, width, height); the last is NIH's own BBox_List_2017.csv header.
BOX_COLUMNS = {"corners": ("xmin", "ymin", "xmax", "ymax"), "xywh": ("x", "y", "w", "h"),
               "nih_xywh": ("Bbox [x", "y", "w", "h]")}
SHOWN_ROWS = 5  # row numbers listed in a warning before '...'
OUTSIDE = "outside"  # meta key: the images found outside the CSV's folder (outside_folder)


class CsvReader(Reader):
    name = "csv"
    description = "a CSV label file"
    options = ("image_col", "label_col", "patient_col", "split_col", "patient_pattern", "patient_from",
               "images_dir", "label_sep", "tasks", "multilabel")

    def can_read(self, spec: str) -> bool:
        return spec.lower().endswith(".csv")

    def read(self, spec: str, image_col: str | None = None, label_col: str | None = None,
             patient_col: str | None = None, split_col: str | None = None, patient_pattern: str | None = None,
             patient_from: str | None = None, images_dir: str | None = None, label_sep: str = "|",
             tasks: str | list[str] | None = None, multilabel: bool = False) -> ImageDataset:
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
            tasks=task_columns(path, header, label_col, tasks), patient=patient,
            split=pick_column(path, header, split_col, SPLIT_COLUMNS, "split", "--split-col", False),
            boxes=box_columns(path, header), patients=rule, sep=label_sep, multilabel=bool(multilabel),
            optional=tasks is not None)
        bases = [path.parent / images_dir] if images_dir else [path.parent, path.parent / "images"]
        return build_dataset(layout, merge_rows(layout, rows), bases)


@dataclass(frozen=True)
class CsvLayout:
    """Which column holds what in one CSV file, and how to read its label cells."""

    path: Path
    image: str
    tasks: dict[str, str]  # task name -> its label column, main task first
    patient: str | None
    split: str | None
    boxes: tuple[str, str, str, str] | None
    patients: PatientRule | None  # patient ids from the image path, when there is no patient column
    sep: str
    multilabel: bool = False  # every task is a set of findings; "No Finding" is the empty set
    optional: bool = False  # an empty label cell is "no label for this task" (--tasks), not an error


def task_columns(path: Path, header: list[str], label_col: str | None, tasks) -> dict[str, str]:
    """Task name -> label column: "label" -> the label column, or each column named in `tasks` under its own name."""
    if tasks is None:
        return {DEFAULT_TASK: pick_column(path, header, label_col, LABEL_COLUMNS, "label", "--label-col")}
    if label_col:
        raise DataError(f"{path}: give the label columns either as --tasks or as --label-col {label_col}, not both")
    names = task_names(tasks, str(path))
    missing = [name for name in names if name not in header]
    if missing:
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))} (named in --tasks); "
                        f"columns found: {', '.join(header)}")
    return {name: name for name in names}


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (row number, row) pairs; the header is row 1, so numbers match a spreadsheet. Encodings, repeated
    or unnamed columns and broken quoting: data/csv_file.py."""
    header, rows = read_csv_table(path, "CSV label file")
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
    row: int  # the first row naming it
    labels: dict[str, tuple[str, ...]]  # task -> sorted labels; a task without a label is absent
    patient: str | None
    split: str | None
    boxes: list[Box]
    boxed: bool  # every row naming the image carries a box (one row per box, as NIH's BBox_List)


def merge_rows(layout: CsvLayout, rows: list[tuple[int, dict]]) -> list[ImageRow]:
    merged: dict[str, ImageRow] = {}
    repeated = []  # rows that say again what an earlier row said
    for number, row in rows:
        item = parse_row(layout, number, row)
        first = merged.setdefault(item.image, item)
        if first is item:
            continue
        for field in ("patient", "split"):
            if getattr(first, field) != getattr(item, field):
                raise DataError(f"{layout.path}: rows {first.row} and {number} name the same image {item.image!r} "
                                f"with different {field} ({getattr(first, field)!r} vs {getattr(item, field)!r})")
        if item.labels == first.labels:
            if not item.boxes and not first.boxes:
                repeated.append(number)
        elif layout.multilabel or (first.boxed and item.boxes):  # findings of one image, a row each
            first.labels = united(first.labels, item.labels)
        else:
            raise conflict(layout, first, item)
        first.boxes += item.boxes
        first.boxed = first.boxed and bool(item.boxes)
    if repeated:
        many = len(repeated) > 1
        warnings.warn(f"{layout.path}: {len(repeated)} repeated row{'s' if many else ''} merged into the "
                      f"row{'s they repeat' if many else ' it repeats'} (row{'s' if many else ''} "
                      f"{row_list(repeated)})", DataWarning, stacklevel=3)
    return list(merged.values())


def united(first: dict[str, tuple[str, ...]], other: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    tasks = list(dict.fromkeys([*first, *other]))
    return {task: tuple(sorted({*first.get(task, ()), *other.get(task, ())})) for task in tasks}


def conflict(layout: CsvLayout, first: ImageRow, item: ImageRow) -> DataError:
    """The error for two rows giving one image different labels, naming the first task column they differ in."""
    task = next(t for t in layout.tasks if first.labels.get(t) != item.labels.get(t))
    return DataError(f"{layout.path}: rows {first.row} and {item.row} name the same image {item.image!r} with "
                     f"different labels in column {layout.tasks[task]} ({cell_text(first.labels.get(task))!r} vs "
                     f"{cell_text(item.labels.get(task))!r}); expected one label per image: correct one of the rows, "
                     "or pass --multilabel if each row adds findings of the image")


def cell_text(labels: tuple[str, ...] | None) -> str:
    """Labels as a cell writes them: '' for none, 'No Finding' for the empty set of findings."""
    if labels is None:
        return ""
    return "|".join(labels) or NO_FINDING


def row_list(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:SHOWN_ROWS])) + (", ..." if len(numbers) > SHOWN_ROWS else "")


def parse_row(layout: CsvLayout, number: int, row: dict) -> ImageRow:
    image = cell(layout, number, row, layout.image)
    labels = {task: found for task, column in layout.tasks.items()
              if (found := labels_in(layout, number, row, column)) is not None}
    if not labels:
        raise DataError(f"{layout.path}: row {number}: no label in any task column ({', '.join(layout.tasks)}); "
                        "expected at least one")
    boxes = box_of(layout, number, row, "|".join(next(iter(labels.values()))))
    return ImageRow(image=image, row=number, labels=labels, patient=patient_of(layout, number, row, image),
                    split=split_of(layout, number, row), boxes=boxes, boxed=bool(boxes))


def labels_in(layout: CsvLayout, number: int, row: dict, column: str) -> tuple[str, ...] | None:
    """A label cell as sorted labels; None for an empty cell where that means 'no label' (--tasks)."""
    text = (row.get(column) or "").strip()
    if not text and layout.optional:
        return None
    labels = tuple(sorted({part.strip() for part in text.split(layout.sep) if part.strip()}))
    if not labels:
        raise DataError(f"{layout.path}: row {number}, column {column}: expected a class name, found {text!r}")
    if layout.multilabel and any(label.lower() == NO_FINDING.lower() for label in labels):
        if len(labels) > 1:
            raise DataError(f"{layout.path}: row {number}, column {column}: expected findings or {NO_FINDING!r} "
                            f"alone, found {text!r}")
        return ()
    return labels


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


def outside_folder(csv_path: Path, found: list[tuple[ImageRow, Path | None]]) -> list[dict]:
    """{row, image, path, reason} of each image found outside the CSV's folder: by '..', an absolute path or a
    symbolic link pointing out. Legitimate in a CSV, so followed; the audit lists them, training says how many."""
    folder = os.path.abspath(csv_path.parent)
    real_folder = os.path.realpath(folder)
    real_dirs: dict[str, str] = {}  # a folder's real path, resolved once for all its images (NIH: 112,120)
    cwd, outside = os.getcwd(), []
    for item, where in found:
        if where is None:
            continue
        path = os.path.normpath(os.path.join(cwd, where))
        parent = os.path.dirname(path)
        if parent not in real_dirs:
            real_dirs[parent] = os.path.realpath(parent)
        real_parent = real_dirs[parent]
        real = os.path.realpath(path) if os.path.islink(path) else os.path.join(real_parent, os.path.basename(path))
        if not _within(path, folder):
            reason = "absolute path" if os.path.isabs(item.image) else "'..' leads out of the CSV's folder"
        elif not _within(real, real_folder):
            reason = f"symbolic link to {real}"
        else:
            continue
        outside.append({"row": item.row, "image": item.image, "path": real, "reason": reason})
    return outside


def _within(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def outside_lines(dataset: ImageDataset) -> list[str]:
    """One line saying how many images a CSV names outside its folder, with the first, for the user to check."""
    outside = dataset.meta.get(OUTSIDE) or []
    if not outside:
        return []
    first = outside[0]
    return [f"{len(outside)} image(s) listed in {dataset.meta['path']} lie outside its folder (../, absolute paths "
            f"or symbolic links), e.g. row {first['row']}: {first['image']} ({first['reason']}); followed; the "
            "audit lists them all"]


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
        warnings.warn(f"{layout.path}: {len(missing)} of {len(items)} images not found in {looked}; skipped "
                      f"(rows {row_list([m['row'] for m in missing])})", DataWarning, stacklevel=3)
    multilabel = tuple(layout.tasks) if layout.multilabel else ()
    # a task keeps tuples when one image has several labels, so that --positive FINDING can still pick one out
    as_tuples = set(multilabel) | {task for task in layout.tasks if any(len(i.labels.get(task, ())) > 1 for i in items)}
    samples = [Sample(source=str(where), split=item.split, patient=item.patient, boxes=tuple(item.boxes),
                      labels={task: value if task in as_tuples else value[0] for task, value in item.labels.items()})
               for item, where in found if where is not None]
    tasks = {task: sorted({name for item in items for name in item.labels.get(task, ())}) for task in layout.tasks}
    empty = [layout.tasks[task] for task, classes in tasks.items() if not classes]
    if empty:
        raise DataError(f"{layout.path}: column {', '.join(empty)} names no class in any row (every cell empty"
                        f"{' or ' + NO_FINDING if layout.multilabel else ''}); expected at least one class")
    meta = {"format": "csv", "path": str(layout.path), "skipped": missing, "multi_label": list(multilabel),
            OUTSIDE: outside_folder(layout.path, found),
            "rows": {str(where): item.row for item, where in found if where is not None},
            "columns": {"image": layout.image, "label": next(iter(layout.tasks.values())), "tasks": dict(layout.tasks),
                        "patient": layout.patient, "split": layout.split, "boxes": list(layout.boxes or [])}}
    return ImageDataset(name=f"{layout.path.parent.name}/{layout.path.name}", samples=samples, tasks=tasks,
                        target=next(iter(tasks)), loader=read_sample_file, meta=meta, multilabel=multilabel,
                        selected=tuple(tasks) if len(tasks) > 1 else ())

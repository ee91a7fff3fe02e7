"""Batch prediction over files: every input gets a row, in input order; an unreadable image gets its error instead
of vanishing. Images are decoded a batch at a time, the next batch while the network runs on this one, so memory
stays flat whatever the number of files.

Inputs are image files (DICOM included, with or without a suffix), folders (every image below them) and CSV lists
(a `path` column, or the first column; relative paths are read from the CSV's folder). A multi-frame DICOM file is
one input refused in its row unless frames are chosen (`select_frames`, `medclass predict --frames all|N`): then
each chosen frame is an input of its own (`FrameOf`) with its own row, and the CSV has a `frame` column.

Predictions CSVs (`medclass predict --out` and evaluation's predictions.csv) share one layout: a column group per
task, holding the true label (evaluation only), the prediction and one probability per class. With one task the
columns are `true, prediction, p_<class>...`; with several each is prefixed by its task, `organ:prediction`.
Class and task names become safe column names (`column_name`: letters, digits and `_`, so "no Mass" is
`p_no_Mass`); a name left empty or shared that way falls back to the class index (`p_3`). Beside every CSV,
`<name>.columns.json` (`column_guide`) gives each column's task and exact class name, and each task's kind,
classes and the decision rule (threshold and the rule and split that chose it) behind its `prediction` column.
A multilabel prediction lists the findings present, joined by '|'. A head with conformal prediction sets
(core/prediction_sets.py) has one more column after its probabilities, `prediction_set`: the set's classes joined by
'|'; heads without sets have none, so their layout is unchanged. Layers above add columns of their own from what
they attach to each row (`PredictionWriter(columns=...)`): `medclass predict --explain` the best box of each image's
explanation (explain/boxes.py BOX_COLUMNS), empty where none was found.

Each row is a `PredictionRow` holding the image's `Prediction` (inference/prediction.py), rendered here as cells.
`iter_predictions(on_batch=...)` hands each decoded batch (its images, the preprocessed tensor, the logits) to a
layer above, which attaches what it computes from them to the batch's rows without decoding anything again.

Every row's Prediction carries the input guard's answer (`extras["input_guard"]`, as `Predictor.predictions` gives
it; inference/guard.py), which the CSV shows in GUARD_COLUMNS after the task groups.
"""

from __future__ import annotations

import csv
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from tqdm import tqdm

from medclass.data.csv_file import read_csv_table
from medclass.data.images import is_dicom_file, list_images, read_image
from medclass.core.errors import DataError, MedclassError
from medclass.core.heads import MISSING, TaskHead, view_probabilities
from medclass.inference.prediction import Prediction, PredictionRow, predictions_from_probabilities
from medclass.inference.predictor import Predictor, with_assessments

if TYPE_CHECKING:
    from PIL import Image

PATH_COLUMNS = ("path", "filename", "file", "image")
FRAME_DESCRIPTION = "the frame of the file (1 = first, as DICOM numbers frames; --frames)"
GUARD_COLUMNS = {
    "in_distribution": "the input guard's answer: true, false (the image does not look like the training images), "
                       "'' when unknown (no guard fitted and no cheap input check fired)",
    "guard_score": "the input guard detector's score, flagged above its threshold ('' without a fitted guard)",
    "guard_reasons": "why the image was flagged, reasons joined by '; ' ('' when it was not)"}
SET_DESCRIPTION = ("the conformal prediction set: the classes, joined by '|' in class order, among which the true "
                   "class lies for the stated share of images; two or more mean the model cannot tell them apart "
                   "for this image")


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the image files they hold (recursively, sorted), CSV lists to the files
    they name. A listed file that does not exist is kept: its row reports it."""
    found = []
    for path in map(Path, inputs):
        if path.is_dir():
            images = list_images(path)
            if not images:
                raise MedclassError(f"{path}: folder holds no images (.png, .jpg, .jpeg, .bmp, .tif, .dcm)")
            found += images
        elif path.suffix.lower() == ".csv" and path.is_file():
            found += listed_files(path)
        elif path.exists():
            found.append(path)
        else:
            raise MedclassError(f"{path}: no such file or folder")
    return found


def listed_files(csv_path: Path) -> list[Path]:
    header, rows = read_csv_table(csv_path, "CSV list of images")
    column = next((c for c in header if c.lower() in PATH_COLUMNS), header[0] if header else None)
    if column is None:
        raise MedclassError(f"{csv_path}: empty CSV; expected a header with a 'path' column")
    paths = []
    for number, row in rows:
        value = row[column].strip()
        if not value:
            raise MedclassError(f"{csv_path}, row {number}: empty '{column}' cell; expected an image path")
        paths.append(csv_path.parent / value)
    return paths


class FrameOf(NamedTuple):
    """One frame of an image file as a prediction input: `number` counts from 1, as DICOM numbers frames."""

    path: Path
    number: int


def select_frames(paths: Sequence[Path], frames: str | None) -> list[Path | FrameOf]:
    """`--frames`: None keeps each file one input (a multi-frame DICOM then gets an error row saying to choose
    frames); "all" makes every frame of each file an input; a number N (from 1) takes frame N of every file. A
    file whose header cannot be read stays one input, so its row names the error."""
    if frames is None:
        return list(paths)
    number = frame_number(frames)
    if number is not None:
        return [FrameOf(path, number) for path in paths]
    return [FrameOf(path, n) for path in paths for n in range(1, _frame_count(path) + 1)]


def frame_number(frames: str) -> int | None:
    """The frame number of `--frames N` (None for "all"); anything else is refused with what is expected."""
    text = frames.strip().lower()
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise MedclassError(f"--frames {frames}: expected 'all' or a frame number from 1 (the first frame)")
    return int(text)


def _frame_count(path: Path) -> int:
    if not is_dicom_file(path):
        return 1
    from medclass.data.dicom import dicom_frame_count

    try:
        return dicom_frame_count(path)
    except DataError:
        return 1  # its row reports why it cannot be read


def read_input(item: Path | FrameOf) -> "Image.Image":
    """The image of one prediction input: a file, or one frame of it."""
    return read_image(item.path, frame=item.number) if isinstance(item, FrameOf) else read_image(item)


def input_cells(item) -> dict:
    """The row's `path` and `frame` (None unless frames were chosen) of one input."""
    return {"path": str(item.path), "frame": item.number} if isinstance(item, FrameOf) else \
        {"path": str(item), "frame": None}


def _decode(predictor: Predictor, paths: Sequence[Path | FrameOf]) -> tuple[torch.Tensor | None, list[str | None],
                                                                           list, list[list[str]]]:
    """One batch: the preprocessed images that could be read, each input's error (None when read), the images and
    their findings of the cheap input checks (computed here, in the decoding thread)."""
    images, errors = [], []
    for path in paths:
        try:
            images.append(read_input(path))
            errors.append(None)
        except DataError as exc:
            errors.append(str(exc))
        except MemoryError:  # this file's row says so; the rest of the batch goes on
            errors.append(f"{path}: not enough memory to decode it (close other programs or predict it alone)")
    return (predictor.preprocess(images) if images else None), errors, images, predictor.input_problems(images)


@dataclass(frozen=True)
class ReadBatch:
    """One batch of inputs as the network saw it, for `iter_predictions`'s `on_batch`: the rows of the inputs that
    could be read (in order), their images, the preprocessed tensor, the logits (views, images, outputs) and the
    probabilities (images x outputs, every head side by side, views averaged: the ones the rows report)."""

    rows: list[PredictionRow]
    images: list
    tensor: torch.Tensor
    logits: np.ndarray
    proba: np.ndarray


# What a layer above computes from a batch: one mapping per readable input, added to its row's `extras`.
BatchHook = Callable[[ReadBatch], Sequence[Mapping[str, Any]]]


def iter_predictions(predictor: Predictor, paths: Sequence[Path | FrameOf], batch_size: int = 32,
                     progress: bool = False, on_batch: BatchHook | None = None) -> Iterator[PredictionRow]:
    """A PredictionRow per input, in input order: its Prediction, or the error that kept it from one (frame: None
    unless the input is a `FrameOf`). `on_batch`: called with each batch that has a readable image
    (`ReadBatch`); what it returns for each readable input goes to that input's row's `extras`
    (`medclass.explain.explaining` attaches explanations so)."""
    batches = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    bar = tqdm(total=len(paths), unit="image", disable=not progress, leave=False)
    # one decoding thread: Pillow and torchvision release the GIL, so the next batch is read during this forward
    with ThreadPoolExecutor(max_workers=1) as pool, bar:
        pending = pool.submit(_decode, predictor, batches[0]) if batches else None
        for index in range(len(batches)):
            batch, errors, images, problems = pending.result()
            if index + 1 < len(batches):
                pending = pool.submit(_decode, predictor, batches[index + 1])
            outputs = predictor.forward_outputs(batch, problems) if batch is not None else None
            logits = outputs.logits if outputs is not None else None
            proba = view_probabilities(predictor.heads, logits) if logits is not None else None
            rows = rows_from_probabilities(predictor, batches[index], proba, errors)
            if outputs is not None:
                rows = with_guard_answers(rows, predictor.assess(outputs))
            if on_batch and images:
                rows = with_extras(rows, on_batch(ReadBatch([r for r in rows if r.error is None], images, batch,
                                                            logits, proba)))
            yield from rows
            bar.update(len(errors))


def with_guard_answers(rows: list[PredictionRow], answers: Sequence[dict]) -> list[PredictionRow]:
    """`rows` with each readable one's input guard answer in its Prediction's extras, in order."""
    assessed = iter(with_assessments([row.prediction for row in rows if row.error is None], answers))
    return [row if row.error else replace(row, prediction=next(assessed)) for row in rows]


def guard_cells(prediction: Prediction | None) -> list[str]:
    """One row's GUARD_COLUMNS cells (all '' for an unreadable image or a row without the guard's answer)."""
    answer = prediction.extras.get("input_guard") if prediction is not None else None
    if not answer:
        return [""] * len(GUARD_COLUMNS)
    flag, score = answer["in_distribution"], answer.get("score")
    return ["" if flag is None else str(bool(flag)).lower(), "" if score is None else f"{score:.6g}",
            "; ".join(answer["reasons"])]


def with_extras(rows: list[PredictionRow], extras: Sequence[Mapping[str, Any]]) -> list[PredictionRow]:
    """`rows` with each readable one's extras added, in order."""
    added = iter(extras)
    return [row if row.error else replace(row, extras={**row.extras, **next(added)}) for row in rows]


def rows_from_logits(predictor: Predictor, paths: Sequence[Path], logits: np.ndarray | None,
                     errors: Sequence[str | None]) -> list[PredictionRow]:
    """Rows of `paths`; `logits` (views, readable images, outputs) holds the images whose error is None, in order."""
    readable = logits is not None and logits.shape[1]
    proba = view_probabilities(predictor.heads, logits) if readable else None
    return rows_from_probabilities(predictor, paths, proba, errors)


def rows_from_probabilities(predictor: Predictor, paths: Sequence[Path], proba: np.ndarray | None,
                            errors: Sequence[str | None]) -> list[PredictionRow]:
    """Rows of `paths`; `proba` (readable images x outputs) holds the images whose error is None, in order."""
    predictions = iter(predictions_from_probabilities(predictor.heads, proba) if proba is not None else [])
    return [PredictionRow(**input_cells(path), prediction=None if error else next(predictions), error=error)
            for path, error in zip(paths, errors)]


def column_name(name: str) -> str:
    """A class or task name as a column-name part: runs of anything but letters, digits and '_' become one '_'."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")


def class_columns(head: TaskHead) -> list[str]:
    """The probability columns' names of one head (without task prefix), `p_<class>`, unique: a class whose safe
    name is empty or taken by another class gets its index instead."""
    names = [column_name(c) for c in head.classes]
    return [f"p_{n}" if n and names.count(n) == 1 and not n.isdigit() else f"p_{i}" for i, n in enumerate(names)]


def column_prefix(heads: Sequence[TaskHead], head: TaskHead) -> str:
    return "" if len(heads) == 1 else f"{column_name(head.name) or head.name}:"


def prediction_columns(heads: Sequence[TaskHead], truth: bool = False) -> list[tuple[str, dict]]:
    """(column name, what it holds) in CSV order, for every task's group."""
    columns = []
    for head in heads:
        prefix = column_prefix(heads, head)
        if truth:
            columns.append((f"{prefix}true", {"task": head.name, "holds": "the true label ('' when unlabelled)"}))
        decision = "the decision: " + head.describe_decision()
        columns.append((f"{prefix}prediction", {"task": head.name, "holds": decision}))
        columns += [(f"{prefix}{name}", {"task": head.name, "holds": "probability", "class": c, "class_index": i})
                    for i, (name, c) in enumerate(zip(class_columns(head), head.classes))]
        if head.prediction_sets is not None:  # only for heads with sets: other layouts stay as they were
            columns.append((f"{prefix}prediction_set", {"task": head.name, "holds": SET_DESCRIPTION + " ("
                                                        + head.prediction_sets.describe() + ")"}))
    return columns


def prediction_header(heads: Sequence[TaskHead], truth: bool = False) -> list[str]:
    return [name for name, _ in prediction_columns(heads, truth)]


def column_guide_path(csv_path: str | Path) -> Path:
    csv_path = Path(csv_path)
    return csv_path.with_name(f"{csv_path.stem}.columns.json")


def write_column_guide(csv_path: str | Path, heads: Sequence[TaskHead], truth: bool = False,
                       first: dict[str, str] | None = None, last: dict[str, str] | None = None) -> Path:
    """`<csv>.columns.json`: each column's task and exact class name, each task's decision rule. `first`/`last`:
    the columns before and after the task groups (e.g. path, error) with what they hold."""
    columns = [{"name": n, "holds": h} for n, h in (first or {}).items()]
    columns += [{"name": n, **info} for n, info in prediction_columns(heads, truth)]
    columns += [{"name": n, "holds": h} for n, h in (last or {}).items()]
    tasks = {h.name: {"kind": h.kind, "classes": list(h.classes), "positive_class": h.positive_class,
                      "threshold": h.threshold if h.kind != "multiclass" else None,
                      "threshold_source": h.threshold_source if h.kind != "multiclass" else "argmax",
                      "temperature": h.temperature, "decision": h.describe_decision()} for h in heads}
    path = column_guide_path(csv_path)
    path.write_text(json.dumps({"csv": Path(csv_path).name, "columns": columns, "tasks": tasks}, indent=2))
    return path


def prediction_cells(heads: Sequence[TaskHead], prediction: dict | None, proba: dict | None,
                     truth: dict | None = None, sets: dict | None = None) -> list[str]:
    """One row's cells in `prediction_header` order; prediction/proba None (an unreadable image) leaves them empty.
    `truth`: {task: text} for evaluation ('' where the image has no label for the task); `sets`: {task: the
    prediction set as text} of the heads with sets."""
    cells = []
    for head in heads:
        cells += [truth[head.name]] if truth is not None else []
        with_set = head.prediction_sets is not None
        if proba is None:
            cells += [""] * (1 + len(head.classes) + with_set)
            continue
        cells += [prediction[head.name], *(f"{v:.6f}" for v in proba[head.name])]
        cells += [(sets or {}).get(head.name) or ""] if with_set else []
    return cells


def truth_text(head: TaskHead, targets: np.ndarray) -> list[str]:
    """Encoded target columns of one head as text per image ('' where unlabelled)."""
    if head.kind == "multilabel":
        return ["" if (row == MISSING).any() else "|".join(c for c, on in zip(head.classes, row) if on)
                for row in targets]
    return ["" if t == MISSING else head.classes[t] for t in targets[:, 0]]


def value_cells(heads: Sequence[TaskHead], prediction: Prediction | None) -> list[str]:
    """One Prediction's cells in `prediction_header` order (None, an unreadable image: empty cells)."""
    if prediction is None:
        return prediction_cells(heads, None, None)
    return prediction_cells(heads, prediction.texts(), prediction.proba(),
                            sets={task.task: task.set_text for task in prediction})


class PredictionWriter:
    """The predictions CSV, written row by row as predictions arrive (so a long run keeps what it has done).
    `columns`: {name: what it holds} of columns after the tasks' groups, each row's cell taken from its `extras`
    ('' where it has none), e.g. explain/boxes.py BOX_DESCRIPTIONS for `medclass predict --explain`.
    `frames`: a `frame` column after `path` (inputs chosen by `select_frames`); without, the layout is unchanged."""

    def __init__(self, path: str | Path, heads: Sequence[TaskHead], columns: Mapping[str, str] | None = None,
                 frames: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.heads, self.columns, self.frames = heads, dict(columns or {}), frames
        self._file = open(self.path, "w", newline="")
        self._writer = csv.writer(self._file)
        first = {"path": "the input file"} | ({"frame": FRAME_DESCRIPTION} if frames else {})
        self._writer.writerow([*first, *prediction_header(heads), *GUARD_COLUMNS, *self.columns, "error"])
        write_column_guide(self.path, heads, first=first, last={
            **GUARD_COLUMNS, **self.columns, "error": "why the file could not be read ('' when it was)"})

    def write(self, row: PredictionRow) -> None:
        frame = [row.frame or ""] if self.frames else []
        extra = [row.extras.get(name, "") for name in self.columns]
        self._writer.writerow([row.path, *frame, *value_cells(self.heads, row.prediction),
                               *guard_cells(row.prediction), *extra, row.error or ""])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Batch prediction over files: every input gets a row, an unreadable image gets its error instead of vanishing.

Predictions CSVs (`medclass predict --out` and evaluation's predictions.csv) share one layout: a column group per
task, holding the true label (evaluation only), the prediction and one probability per class. With one task the
columns are `true, prediction, p_<class>...`; with several each is prefixed by its task, `organ:prediction`.
A multilabel prediction lists the findings present, joined by '|'.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from medclass.data.images import read_image
from medclass.errors import DataError
from medclass.heads import MISSING, TaskHead
from medclass.inference.predictor import Predictor, expand_inputs


def predict_files(run_dir: str | Path, inputs: Sequence[str | Path], batch_size: int = 64) -> tuple[Predictor, list]:
    """Rows of {path, prediction: {task: text}, proba: {task: [p per class]}, error} in input order."""
    predictor = Predictor.from_run(run_dir)
    paths = expand_inputs(inputs)
    rows, images, readable = [], [], []
    for path in paths:
        row = {"path": str(path), "prediction": None, "proba": None, "error": None}
        try:
            images.append(read_image(path))
            readable.append(len(rows))
        except DataError as exc:
            row["error"] = str(exc)
        rows.append(row)
    if images:
        proba = predictor.probabilities(images)
        names = {h.name: h.label_names(h.decide(proba[h.name])) for h in predictor.heads}
        for i, row_index in enumerate(readable):
            rows[row_index] |= {"prediction": {task: text[i] for task, text in names.items()},
                                "proba": {task: [float(v) for v in p[i]] for task, p in proba.items()}}
    return predictor, rows


def column_prefix(heads: Sequence[TaskHead], head: TaskHead) -> str:
    return "" if len(heads) == 1 else f"{head.name}:"


def prediction_header(heads: Sequence[TaskHead], truth: bool = False) -> list[str]:
    columns = []
    for head in heads:
        prefix = column_prefix(heads, head)
        columns += ([f"{prefix}true"] if truth else []) + [f"{prefix}prediction"]
        columns += [f"{prefix}p_{c}" for c in head.classes]
    return columns


def prediction_cells(heads: Sequence[TaskHead], prediction: dict | None, proba: dict | None,
                     truth: dict | None = None) -> list[str]:
    """One row's cells in `prediction_header` order; prediction/proba None (an unreadable image) leaves them empty.
    `truth`: {task: text} for evaluation ('' where the image has no label for the task)."""
    cells = []
    for head in heads:
        cells += [truth[head.name]] if truth is not None else []
        if proba is None:
            cells += [""] * (1 + len(head.classes))
            continue
        cells += [prediction[head.name], *(f"{v:.6f}" for v in proba[head.name])]
    return cells


def truth_text(head: TaskHead, targets: np.ndarray) -> list[str]:
    """Encoded target columns of one head as text per image ('' where unlabelled)."""
    if head.kind == "multilabel":
        return ["" if (row == MISSING).any() else "|".join(c for c, on in zip(head.classes, row) if on)
                for row in targets]
    return ["" if t == MISSING else head.classes[t] for t in targets[:, 0]]


def write_predictions(rows: list[dict], heads: Sequence[TaskHead], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", *prediction_header(heads), "error"])
        for row in rows:
            writer.writerow([row["path"], *prediction_cells(heads, row["prediction"], row["proba"]),
                             row["error"] or ""])

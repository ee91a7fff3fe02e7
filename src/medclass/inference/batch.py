"""Batch prediction over files: every input gets a row, an unreadable image gets its error instead of vanishing."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from medclass.data.images import read_image
from medclass.errors import DataError
from medclass.inference.predictor import Predictor, expand_inputs


def predict_files(run_dir: str | Path, inputs: Sequence[str | Path], batch_size: int = 64) -> tuple[Predictor, list]:
    """Rows of {path, prediction, proba, error} in input order."""
    predictor = Predictor.from_run(run_dir)
    paths = expand_inputs(inputs)
    rows, images, readable = [], [], []
    for path in paths:
        try:
            images.append(read_image(path))
            readable.append(len(rows))
            rows.append({"path": str(path), "prediction": None, "proba": None, "error": None})
        except DataError as exc:
            rows.append({"path": str(path), "prediction": None, "proba": None, "error": str(exc)})
    if images:
        proba = predictor.predict_proba(images)
        names = predictor.classes_[predictor.decide(proba)]
        for row_index, p, name in zip(readable, proba, names):
            rows[row_index] |= {"prediction": str(name), "proba": [float(v) for v in p]}
    return predictor, rows


def write_predictions(rows: list[dict], classes: list[str], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "prediction", *[f"p_{c}" for c in classes], "error"])
        for row in rows:
            probs = [f"{v:.6f}" for v in row["proba"]] if row["proba"] else [""] * len(classes)
            writer.writerow([row["path"], row["prediction"] or "", *probs, row["error"] or ""])

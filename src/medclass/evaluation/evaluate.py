"""`evaluate_run`: the run's model on a split of its own data (or on other labelled data), in three steps:
predict the split once (raw logits kept), score each task (with calibration and, when patients have several
images, patient-level numbers), write metrics.json, predictions.csv (its columns and decision rules in
predictions.columns.json), figures and report.html: as one set, which replaces the folder's old set whole
(evaluation/folder_set.py), so a crash mid-write never leaves new figures beside an old metrics.json."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from medclass.data import ImageDataset, open_dataset
from medclass.core.errors import MedclassError
from medclass.evaluation.calibration import calibration_events, calibration_report
from medclass.evaluation.folder_set import written_as_one_set
from medclass.evaluation.metrics import labelled_rows, task_metrics
from medclass.evaluation.patients import patient_level
from medclass.evaluation.plots import (plot_confidence, plot_confusion, plot_error_grid, plot_pr, plot_pr_findings,
                                       plot_reliability, plot_roc, plot_roc_findings)
from medclass.inference.split import SplitOutputs, predict_split
from medclass.evaluation.guard_report import guard_metrics
from medclass.evaluation.report import write_report
from medclass.evaluation.set_metrics import set_metrics
from medclass.evaluation.transfer import validation_gap
from medclass.core.heads import TaskHead, view_probabilities
from medclass.inference.batch import prediction_cells, prediction_header, truth_text, write_column_guide
from medclass.inference.predictor import Predictor
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset

ERRORS_SHOWN = 8
# The set `evaluate` writes, replaced as a whole (evaluation/folder_set.py); anything else in its folder is kept.
# Figures are FIGURE.png, or TASK_FIGURE.png when the model has several tasks.
EVALUATION_FILES = ("metrics.json", "predictions.csv", "predictions.columns.json", "report.html")
FIGURES = ("confusion_matrix", "roc_curve", "roc_curves", "pr_curve", "pr_curves", "confidence", "reliability",
           "confident_errors")


def evaluation_data(run: RunDir, data: str | None, split: str, reader_options: dict) -> ImageDataset:
    """The run's own data with the run's recorded split, or `data` (its `split` if it has splits, else all)."""
    if data is None:
        return run_dataset(run, split)
    dataset = open_dataset(data, **reader_options)
    return dataset.subset(split) if dataset.has_splits else dataset


def score_task(head: TaskHead, y: np.ndarray, proba: np.ndarray, decided: np.ndarray, n_boot: int = 1000,
               seed: int = 0, groups: np.ndarray | None = None) -> dict:
    """One task's metrics on the images labelled for it (y: its target columns, -1 rows already dropped)."""
    truth = y if head.kind == "multilabel" else y[:, 0]
    metrics = task_metrics(head.kind, truth, proba, decided, list(head.classes), head.positive_index, head.ordinal,
                           n_boot=n_boot, seed=seed, groups=groups)
    threshold = list(head.threshold) if head.kind == "multilabel" else head.threshold if head.kind == "binary" \
        else None
    return metrics | {"task": head.name, "kind": head.kind, "ordinal": head.ordinal, "threshold": threshold,
                      "threshold_source": head.threshold_source if threshold is not None else "argmax",
                      "decision": head.describe_decision()}


def evaluate_run(run_dir: str | Path, data: str | None = None, split: str = "test", out_dir: str | Path | None = None,
                 reader_options: dict | None = None, n_boot: int = 1000, seed: int = 0) -> tuple[dict, Path]:
    """Predict, score each task and write `metrics.json`, `predictions.csv`, figures and `report.html`.

    Returns (metrics, out_dir). One task: its metrics at the top level. Several: `tasks` maps each task to its
    metrics, and `mean_auc` is their mean AUC (what selected the checkpoint, unless one task was chosen)."""
    run = RunDir(run_dir).check()
    predictor = Predictor(run.artifact())
    dataset = evaluation_data(run, data, split, reader_options or {})
    outputs = predict_split(predictor, dataset, assess=True)
    fitted_here = data is None and split in ("train", "val")
    reference = None if fitted_here else validation_outputs(run, predictor)
    out = Path(out_dir) if out_dir else run.evaluation_dir(split)
    if run.path.absolute().is_relative_to(out.absolute()):
        raise MedclassError(f"--out {out}: holds the run {run.path}; the evaluation replaces its folder as a whole: "
                            f"give a folder of its own (default: {run.evaluation_dir(split)})")
    with written_as_one_set(out, is_evaluation_file) as staging:
        metrics = write_evaluation(staging, run, predictor, dataset, outputs, data, split, n_boot, seed, reference)
    return metrics, out


def validation_outputs(run: RunDir, predictor: Predictor) -> SplitOutputs | str:
    """The run's validation split, predicted, to set beside the split evaluated; or why it cannot be (a run whose
    data is not here, say, evaluated on other data)."""
    try:
        return predict_split(predictor, run_dataset(run, "val"))
    except MedclassError as exc:
        return f"validation split not scored: {exc}"


def write_evaluation(out: Path, run: RunDir, predictor: Predictor, dataset: ImageDataset, outputs: SplitOutputs,
                     data: str | None, split: str, n_boot: int, seed: int,
                     reference: SplitOutputs | str | None = None) -> dict:
    """Score each task and write the whole set (see `is_evaluation_file`) into `out`; returns the metrics.
    `reference`: the run's validation split predicted (or why it is not), to report how far its verdict carries."""
    heads = predictor.heads
    proba = outputs.probabilities(heads)
    decided = {h.name: h.decide(proba[h.name]) for h in heads}
    patients = outputs.patients
    sections, figures = {}, {}
    for head in heads:
        keep = labelled_rows(outputs.targets[head.name])
        if not keep.any():
            raise MedclassError(f"{dataset.name}: no image of split {split!r} has a label for task {head.name!r}")
        y, p, d = outputs.targets[head.name][keep], proba[head.name][keep], decided[head.name][keep]
        groups = patients[keep] if patients is not None else None
        section = score_task(head, y, p, d, n_boot, seed, groups) | {"unlabelled": int((~keep).sum())}
        # the run's own train split fitted the weights, its val split chose checkpoint, temperature and threshold
        section["fitted_on_this_split"] = data is None and split in ("train", "val")
        section["calibration"] = calibration_report(head, outputs.head_logits(head.name)[:, keep], y)
        if head.prediction_sets is not None:  # conformal sets: their coverage here (evaluation/set_metrics.py)
            section["prediction_sets"] = set_metrics(head, y, p)
        if isinstance(reference, SplitOutputs):
            section["validation_gap"] = validation_gap(head, reference, y, p, n_boot, seed, groups)
        elif reference:
            section["validation_gap"] = {"not_scored": reference}
        if groups is not None:
            section["patient_level"] = patient_level(head, y, p, groups, n_boot, seed)
        sections[head.name] = section
        figures[head.name] = task_figures(head, section, outputs, keep, p, out, len(heads) > 1)
    common = {"split": split, "data": data or f"{run.data_spec()} (the run's recorded split)",
              # rows of the data file the reader could not use (e.g. a CSV row whose image is missing), any split
              "skipped": dataset.meta.get("skipped", [])}
    if outputs.guard is not None:
        main = heads[0]
        keep = labelled_rows(outputs.targets[main.name])
        common["input_guard"] = guard_metrics(outputs.guard, main, outputs.targets[main.name][keep],
                                              decided[main.name][keep], keep)
    if len(heads) == 1:
        metrics = sections[heads[0].name] | common
    else:
        aucs = [m["auc"] for m in sections.values()]
        metrics = {"n": len(dataset), "tasks": sections, "mean_auc": float(np.nanmean(aucs)), **common}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    rows = prediction_rows(outputs, heads, proba, decided)
    write_prediction_rows(out / "predictions.csv", rows)
    write_column_guide(out / "predictions.csv", heads, truth=True, first={"source": "the image, as the data names it"})
    write_report(out / "report.html", run, predictor.artifact, sections, figures, common, rows, len(dataset))
    return metrics


def is_evaluation_file(name: str) -> bool:
    """Whether a file of that name in an evaluation folder is one of the set evaluate writes (of this or an
    earlier evaluation), rather than something else kept there."""
    stem, suffix = name.rsplit(".", 1) if "." in name else (name, "")
    return name in EVALUATION_FILES or (suffix == "png" and any(stem == f or stem.endswith(f"_{f}") for f in FIGURES))


def task_figures(head: TaskHead, metrics: dict, outputs: SplitOutputs, keep: np.ndarray, proba: np.ndarray,
                 out: Path, prefixed: bool) -> dict[str, Path]:
    """The figures of one task: decisions, ranking, confidence, calibration and its most confident errors."""
    prefix = f"{safe_name(head.name)}_" if prefixed else ""
    y = outputs.targets[head.name][keep]
    classes = list(head.classes)
    uncalibrated = view_probabilities([replace(head, temperature=1.0)], outputs.head_logits(head.name)[:, keep])
    figures = {}
    if head.kind == "multilabel":
        figures["ROC curves per finding"] = plot_roc_findings(y, proba, classes, out / f"{prefix}roc_curves.png",
                                                              thresholds=list(head.threshold))
        figures["Precision-recall curves per finding"] = plot_pr_findings(
            y, proba, classes, out / f"{prefix}pr_curves.png", thresholds=list(head.threshold))
        truth = y
    else:
        threshold = head.threshold if head.kind == "binary" else None
        figures["Confusion matrix"] = plot_confusion(metrics["confusion_matrix"], classes,
                                                     out / f"{prefix}confusion_matrix.png")
        figures["ROC curve"] = plot_roc(y[:, 0], proba, classes, head.positive_index, out / f"{prefix}roc_curve.png",
                                        threshold=threshold)
        figures["Precision-recall curve"] = plot_pr(y[:, 0], proba, classes, head.positive_index,
                                                    out / f"{prefix}pr_curve.png", threshold=threshold)
        truth = y[:, 0]
    figures["Confidence per class"] = plot_confidence(truth, proba, classes, out / f"{prefix}confidence.png",
                                                      thresholds=panel_thresholds(head))
    temperature = metrics["calibration"]["temperature"]
    curves = {"uncalibrated (T=1)": calibration_events(head.kind, y, uncalibrated)}
    if temperature != 1.0:
        curves[f"calibrated (T={temperature:.3g})"] = calibration_events(head.kind, y, proba)
    figures["Reliability diagram"] = plot_reliability(curves, out / f"{prefix}reliability.png")
    rows = np.flatnonzero(keep)
    chosen = confident_errors(head, y, proba)
    figures["Most confident errors"] = plot_error_grid([outputs.dataset.load_image(int(rows[i])) for i, _ in chosen],
                                                       [caption for _, caption in chosen],
                                                       out / f"{prefix}confident_errors.png")
    return figures


def panel_thresholds(head: TaskHead) -> list[float | None]:
    """Where the decision cuts each class's probability: a binary head's threshold on its positive class (and,
    the two summing to 1, one minus it on the other), each finding's own, none for an argmax."""
    if head.kind == "multilabel":
        return list(head.threshold)
    if head.kind == "binary":
        return [head.threshold if i == head.positive_index else 1 - head.threshold for i in range(2)]
    return [None] * len(head.classes)


def confident_errors(head: TaskHead, y: np.ndarray, proba: np.ndarray, k: int = ERRORS_SHOWN
                     ) -> list[tuple[int, str]]:
    """(row, caption) of the k wrong decisions the model was surest of. Single-label: ranked by the probability of
    the class it chose; multi-label: by how far a wrong finding's probability sits from its truth."""
    decided = head.decide(proba)
    if head.kind == "multilabel":
        wrong = np.argwhere(decided != y)
        distance = np.abs(proba[wrong[:, 0], wrong[:, 1]] - y[wrong[:, 0], wrong[:, 1]])
        order = np.argsort(-distance, kind="stable")[:k]
        return [(int(wrong[i, 0]), f"{head.classes[wrong[i, 1]]}: p={proba[wrong[i, 0], wrong[i, 1]]:.2f}\n"
                 f"truth: {'present' if y[wrong[i, 0], wrong[i, 1]] else 'absent'}") for i in order]
    wrong = np.flatnonzero(decided != y[:, 0])
    confidence = proba[wrong, decided[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")[:k]]
    return [(int(i), f"true: {head.classes[y[i, 0]]}\npredicted: {head.classes[decided[i]]}\n"
             f"p={proba[i, decided[i]]:.2f}") for i in order]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def prediction_rows(outputs: SplitOutputs, heads: list[TaskHead], proba: dict, decided: dict) -> list[list[str]]:
    """The per-image table (header first): source, then per task its decision, probabilities and truth."""
    names = {h.name: h.label_names(decided[h.name]) for h in heads}
    truth = {h.name: truth_text(h, outputs.targets[h.name]) for h in heads}
    sets = {h.name: ["|".join(s) for s in h.set_names(proba[h.name])] for h in heads if h.prediction_sets}
    rows = [["source", *prediction_header(heads, truth=True)]]
    for i, sample in enumerate(outputs.dataset.samples):
        row_truth = {task: text[i] for task, text in truth.items()}
        row_names = {task: text[i] for task, text in names.items()}
        row_proba = {task: p[i] for task, p in proba.items()}
        row_sets = {task: text[i] for task, text in sets.items()}
        rows.append([sample.source, *prediction_cells(heads, row_names, row_proba, row_truth, row_sets)])
    return rows


def write_prediction_rows(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)

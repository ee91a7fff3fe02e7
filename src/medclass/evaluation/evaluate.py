"""`evaluate_run`: the run's model on a split of its own data (or on other labelled data): metrics and a report section
per task."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from medclass.data import ImageDataset, open_dataset
from medclass.data.splits import load_splits
from medclass.errors import MedclassError
from medclass.evaluation.metrics import classification_metrics, labelled_rows, multilabel_metrics
from medclass.evaluation.plots import plot_confusion, plot_roc, plot_roc_findings
from medclass.evaluation.report import write_report
from medclass.heads import TaskHead, encode_targets, per_task
from medclass.inference.batch import prediction_cells, prediction_header, truth_text
from medclass.inference.predictor import Predictor
from medclass.training.config import TrainConfig


class DatasetImages:
    """A lazy, sliceable view of a dataset's images, so prediction decodes one batch at a time."""

    def __init__(self, dataset: ImageDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.dataset.load_image(i) for i in range(*index.indices(len(self)))]
        return self.dataset.load_image(index)


def evaluation_data(run_dir: Path, data: str | None, split: str, reader_options: dict) -> ImageDataset:
    """The run's own data with the run's recorded split, or `data` (its `split` if it has splits, else all)."""
    if data is None:
        config = TrainConfig.load(run_dir / "config.yaml")
        dataset = load_splits(open_dataset(config.data, **config.reader_options), run_dir / "splits.csv")
        return dataset.subset(split)
    dataset = open_dataset(data, **reader_options)
    return dataset.subset(split) if dataset.has_splits else dataset


def dataset_tasks(dataset: ImageDataset, heads: list[TaskHead]) -> list[str]:
    """The dataset's task each head is scored on: one head, the dataset's target (other data may name its task
    differently); several, the task of the head's own name."""
    if len(heads) == 1:
        return [dataset.target]
    absent = [h.name for h in heads if h.name not in dataset.tasks]
    if absent:
        raise MedclassError(f"{dataset.name}: has no task {', '.join(map(repr, absent))} of the model's "
                            f"({', '.join(h.name for h in heads)}); its tasks: {', '.join(dataset.tasks)}")
    return [h.name for h in heads]


def score_task(head: TaskHead, y: np.ndarray, proba: np.ndarray, decided: np.ndarray, n_boot: int,
               seed: int) -> dict:
    """One task's metrics on the images labelled for it (y: its target columns, -1 rows already dropped)."""
    if head.kind == "multilabel":
        metrics = multilabel_metrics(y, proba, decided, list(head.classes), n_boot=n_boot, seed=seed)
    else:
        metrics = classification_metrics(y[:, 0], proba, decided, list(head.classes), head.positive_index,
                                         n_boot=n_boot, seed=seed)
    threshold = list(head.threshold) if head.kind == "multilabel" else head.threshold if head.kind == "binary" \
        else None
    return metrics | {"task": head.name, "kind": head.kind, "threshold": threshold,
                      "decision": head.describe_decision()}


def evaluate_run(run_dir: str | Path, data: str | None = None, split: str = "test", out_dir: str | Path | None = None,
                 reader_options: dict | None = None, n_boot: int = 1000, seed: int = 0) -> tuple[dict, Path]:
    """Predict, score each task and write `metrics.json`, `predictions.csv` and `report.html` (a section per task).

    Returns (metrics, out_dir). One task: its metrics at the top level, as always. Several: `tasks` maps each task
    to its metrics, and `mean_auc` is their mean AUC (what selected the checkpoint, unless one task was chosen)."""
    run_dir = Path(run_dir)
    predictor = Predictor.from_run(run_dir)
    heads = predictor.heads
    dataset = evaluation_data(run_dir, data, split, reader_options or {})
    targets = per_task(heads, encode_targets(heads, dataset.samples, dataset_tasks(dataset, heads), dataset.name),
                       "targets")
    proba = predictor.probabilities(DatasetImages(dataset))
    decided = predictor.decisions(proba)
    out = Path(out_dir) if out_dir else run_dir / "evaluation" / split
    out.mkdir(parents=True, exist_ok=True)
    sections, figures = {}, {}
    for head in heads:
        keep = labelled_rows(targets[head.name])
        y, p, d = targets[head.name][keep], proba[head.name][keep], decided[head.name][keep]
        if not keep.any():
            raise MedclassError(f"{dataset.name}: no image of split {split!r} has a label for task {head.name!r}")
        sections[head.name] = score_task(head, y, p, d, n_boot, seed) | {"unlabelled": int((~keep).sum())}
        figures[head.name] = task_figures(head, sections[head.name], y, p, out, len(heads) > 1)
    own_data = predictor.artifact.provenance.get("data", "the run's data")
    common = {"split": split, "data": data or f"{own_data} (the run's recorded split)",
              # rows of the data file the reader could not use (e.g. a CSV row whose image is missing), any split
              "skipped": dataset.meta.get("skipped", [])}
    if len(heads) == 1:
        metrics = sections[heads[0].name] | common
    else:
        aucs = [m["auc"] for m in sections.values()]
        metrics = {"n": len(dataset), "tasks": sections, "mean_auc": float(np.nanmean(aucs)), **common}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_predictions(out / "predictions.csv", dataset, heads, targets, proba, decided)
    artifact = predictor.artifact
    info = {"run": str(run_dir), "model": artifact.model_name, "data": common["data"], "split": split,
            "images": str(len(dataset)), "tasks": ", ".join(f"{h.name} ({h.kind})" for h in heads),
            "input": f"{artifact.preprocessing.img_size} px, {artifact.preprocessing.in_chans} channel(s)",
            "test-time augmentation": ", ".join(artifact.tta) or "none"}
    if common["skipped"]:
        info["skipped rows"] = f"{len(common['skipped'])} row(s) of the data could not be used (listed in metrics.json)"
    write_report(sections, info, figures, {"Training curves": run_dir / "training_curves.png"}, out / "report.html")
    return metrics, out


def task_figures(head: TaskHead, metrics: dict, y: np.ndarray, proba: np.ndarray, out: Path,
                 prefixed: bool) -> dict[str, Path]:
    stem = f"{safe_name(head.name)}_" if prefixed else ""
    if head.kind == "multilabel":
        return {"ROC curves per finding": plot_roc_findings(y, proba, list(head.classes),
                                                            out / f"{stem}roc_curves.png")}
    classes = list(head.classes)
    confusion = plot_confusion(metrics["confusion_matrix"], classes, out / f"{stem}confusion_matrix.png")
    return {"Confusion matrix": confusion,
            "ROC curve": plot_roc(y[:, 0], proba, classes, head.positive_index, out / f"{stem}roc_curve.png")}


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _write_predictions(path: Path, dataset: ImageDataset, heads: list[TaskHead], targets: dict, proba: dict,
                       decided: dict) -> None:
    names = {h.name: h.label_names(decided[h.name]) for h in heads}
    truth = {h.name: truth_text(h, targets[h.name]) for h in heads}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", *prediction_header(heads, truth=True)])
        for i, sample in enumerate(dataset.samples):
            row_truth = {task: text[i] for task, text in truth.items()}
            row_names = {task: text[i] for task, text in names.items()}
            row_proba = {task: p[i] for task, p in proba.items()}
            writer.writerow([sample.source, *prediction_cells(heads, row_names, row_proba, row_truth)])

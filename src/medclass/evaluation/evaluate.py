"""`evaluate_run`: the run's model on a split of its own data (or on other labelled data), metrics + report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medclass.data import ImageDataset, open_dataset
from medclass.data.splits import load_splits
from medclass.errors import MedclassError
from medclass.evaluation.metrics import classification_metrics
from medclass.evaluation.plots import plot_confusion, plot_roc
from medclass.evaluation.report import write_report
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


def align_classes(dataset: ImageDataset, classes: list[str]) -> np.ndarray:
    """Class indices of `dataset` in the model's class order; refuses labels the model does not know."""
    unknown = sorted(set(dataset.classes) - set(classes))
    if unknown:
        raise MedclassError(f"{dataset.name}: has classes the model was not trained on: {', '.join(unknown)}; "
                            f"model classes: {', '.join(classes)}")
    lookup = {name: i for i, name in enumerate(classes)}
    return np.array([lookup[s.labels[dataset.target]] for s in dataset.samples])


def evaluate_run(run_dir: str | Path, data: str | None = None, split: str = "test", out_dir: str | Path | None = None,
                 reader_options: dict | None = None, n_boot: int = 1000, seed: int = 0) -> tuple[dict, Path]:
    """Predict, score and write `metrics.json`, `predictions.csv` and `report.html`. Returns (metrics, out_dir)."""
    run_dir = Path(run_dir)
    predictor = Predictor.from_run(run_dir)
    dataset = evaluation_data(run_dir, data, split, reader_options or {})
    classes = list(predictor.classes_)
    y_true = align_classes(dataset, classes)
    proba = predictor.predict_proba(DatasetImages(dataset))
    y_pred = predictor.decide(proba)
    artifact = predictor.artifact
    metrics = classification_metrics(y_true, proba, y_pred, classes, artifact.positive_index, n_boot=n_boot,
                                     seed=seed)
    own_data = artifact.provenance.get("data", "the run's data")
    metrics |= {"split": split, "data": data or f"{own_data} (the run's recorded split)",
                "threshold": artifact.threshold if artifact.is_binary else None,
                # rows of the data file the reader could not use (e.g. a CSV row whose image is missing), any split
                "skipped": dataset.meta.get("skipped", [])}

    out = Path(out_dir) if out_dir else run_dir / "evaluation" / split
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_predictions(out / "predictions.csv", dataset, classes, y_true, y_pred, proba)
    figures = {"Confusion matrix": plot_confusion(metrics["confusion_matrix"], classes, out / "confusion_matrix.png"),
               "ROC curve": plot_roc(y_true, proba, classes, artifact.positive_index, out / "roc_curve.png"),
               "Training curves": run_dir / "training_curves.png"}
    info = {"run": str(run_dir), "model": artifact.model_name, "data": metrics["data"], "split": split,
            "input": f"{artifact.preprocessing.img_size} px, {artifact.preprocessing.in_chans} channel(s)",
            "test-time augmentation": ", ".join(artifact.tta) or "none"}
    if metrics["skipped"]:
        info["skipped rows"] = f"{len(metrics['skipped'])} row(s) of the data could not be used (listed in metrics.json)"
    if artifact.is_binary:
        info["decision"] = f"{classes[artifact.positive_index]} when its probability >= {artifact.threshold:g}"
    write_report(metrics, info, figures, out / "report.html")
    return metrics, out


def _write_predictions(path: Path, dataset: ImageDataset, classes, y_true, y_pred, proba) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "true", "predicted", *[f"p_{c}" for c in classes]])
        for s, t, p, row in zip(dataset.samples, y_true, y_pred, proba):
            writer.writerow([s.source, classes[t], classes[p], *[f"{v:.6f}" for v in row]])

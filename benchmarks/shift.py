"""Defaults under shift: recipes x datasets x seeds, each scored on its test split, which for most shared datasets
comes from elsewhere than the training images (PneumoniaMNIST's test split is Kermany's separately collected test
folder; brain MRI ships its own Testing folder). Validation is always carved from the training images, as a user's
would be, so the table shows how far validation's verdict carries.

    python benchmarks/shift.py [--recipes generic,november,...] [--datasets pneumoniamnist,breastmnist,...]
                               [--models lite0,scratch] [--seeds 3] [--epochs 4] [--out runs/bench/shift] [--report]

Without --recipes it runs README_PLAN, the runs behind the README's tables (about 90 minutes here).

Each finished run appends one row to OUT/results.csv and its validation and test logits to OUT/logits/, so an
interrupted matrix resumes where it stopped and calibration rules are compared afterwards without retraining; the
comparison goes to OUT/calibration.csv (`--report` prints the tables from what is there).

Recipes (TrainConfig overrides):
- generic: the defaults with the preset's generic augmentation (`--modality other`), as every dataset trained
  before the data's modality became the default. november: the defaults before the recipe changed (batch 128, the
  architecture's own dropout, fp32, timm's TF-style classifier initialisation). generic+timm-init: that
  initialisation alone.
- modality: the dataset's --modality (augmentation and flips for that kind of image), the default where it held
  (PneumoniaMNIST, ChestMNIST, BreastMNIST: data/npz.py). modality+ls0: the same without label smoothing (it sets how confident the
  probabilities are, so the temperature validation fits).
- shift: configs/shift-robust.yaml (linear probing, then everything at a lower backbone learning rate; strong
  photometric augmentation), the literature's recipe for fine-tuning that holds under shift, with the modality.
Models: efficientnet_lite0 with its packaged ImageNet weights at 64 px (MedMNIST's 28-px images upsampled), and the
from-scratch default (model auto: smallcnn) at 28 px with `--model scratch`.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import REPO, data_roots, find_npz
from medclass.evaluation.calibration import (calibration_events, cross_validated_temperature,
                                             expected_calibration_error, fit_temperature)
from medclass.evaluation.metrics import labelled_rows, task_metrics
from medclass.inference.split import predict_split
from medclass.core.heads import TaskHead, view_probabilities
from medclass.inference.predictor import Predictor
from medclass.core.rundir import RunDir
from medclass.training import TrainConfig, train
from medclass.training.config import load_recipe
from medclass.data.run_data import run_dataset

NIH_PATIENT = r"^(\d{8})_"
# name: (a MedMNIST name, or where it is under a data root; reader options; modality)
DATASETS = {
    "pneumoniamnist": ("pneumoniamnist", {}, "xray"),
    "breastmnist": ("breastmnist", {}, "ultrasound"),
    "retinamnist": ("retinamnist", {}, "fundus"),
    "busi": ("busi_256/Dataset_BUSI_with_GT", {}, "ultrasound"),
    "brain_mri": ("brain_tumor_mri_224", {}, "mri"),
    "nih": ("nih_chestxray14_bbox_512/labels.csv", {"multilabel": True, "patient_pattern": NIH_PATIENT}, "xray"),
}
# "other": the preset's generic augmentation, which every dataset trained with before the data's modality became
# the default (a MedMNIST set names its own: data/npz.py)
GENERIC = {"modality": "other"}
NOVEMBER = GENERIC | dict(batch_size=128, drop_rate=None, precision="32-true", classifier_init="timm")
RECIPES = {
    "generic": GENERIC,
    "november": NOVEMBER,
    "generic+timm-init": GENERIC | {"classifier_init": "timm"},
    "modality": {"modality": "DATASET"},
    "modality+ls0": {"modality": "DATASET", "label_smoothing": 0.0},
    "shift": {"recipe": "configs/shift-robust.yaml", "modality": "DATASET"},
}
# fp32 throughout: on this machine's CPU `--precision auto` picks bf16 autocast, which runs EfficientNet-Lite0's
# depthwise convolutions 1.4-2.3x slower than fp32 (BreastMNIST, 4 epochs: 19 s vs 14 s)
MODELS = {"lite0": dict(model="efficientnet_lite0", pretrained=True, img_size=64, in_chans=3, precision="32-true"),
          # the from-scratch default trains for the default number of epochs, whatever --epochs says
          "scratch": dict(model="auto", img_size=28, precision="32-true", epochs=TrainConfig.epochs)}
FIELDS = ["dataset", "recipe", "model", "seed", "epochs", "minutes", "val_auc", "test_auc", "test_acc",
          "test_sensitivity", "test_specificity", "val_specificity", "temperature"]


def locate(name: str) -> str | None:
    where, _, _ = DATASETS[name]
    if where.endswith("mnist"):
        npz = find_npz(where)
        return str(npz) if npz else None
    return next((str(root / where) for root in data_roots() if (root / where).exists()), None)


@contextmanager
def classifier_init(kind: str | None):
    """November's fine-tuning kept timm's TF-style classifier init (`fresh_classifier_init` did not exist); a
    benchmark-only switch, not an option users should need."""
    from medclass.models import timm_models

    original = timm_models.fresh_classifier_init
    if kind == "timm":
        timm_models.fresh_classifier_init = lambda model: None
    try:
        yield
    finally:
        timm_models.fresh_classifier_init = original


def config_for(dataset: str, recipe: str, model: str, seed: int, epochs: int, out: Path) -> tuple[TrainConfig, str]:
    _, options, modality = DATASETS[dataset]
    overrides = dict(RECIPES[recipe])
    init = overrides.pop("classifier_init", None)
    if "recipe" in overrides:
        overrides = load_recipe(REPO / overrides.pop("recipe")) | overrides
    if overrides.get("modality") == "DATASET":
        overrides["modality"] = modality
    settings = dict(epochs=epochs, seed=seed, audit=False, reader_options=options) | MODELS[model]
    if overrides.get("finetune") == "two-stage":
        overrides["head_epochs"] = max(1, min(overrides.get("head_epochs", 1), settings["epochs"] - 1))
    return TrainConfig(data=locate(dataset), out=str(out), **(settings | overrides)), init


def split_scores(run: Path, split: str, logits_file: Path) -> dict:
    """The main task's numbers on one split at the model's own decision rule, and its raw logits saved."""
    predictor = Predictor(RunDir(run).artifact())
    outputs = predict_split(predictor, run_dataset(RunDir(run), split))
    head = predictor.heads[0]
    y = outputs.targets[head.name]
    keep = labelled_rows(y)
    logits, y = outputs.head_logits(head.name)[:, keep], y[keep]
    np.savez_compressed(logits_file, logits=logits, y=y, kind=head.kind, temperature=head.temperature,
                        threshold=np.asarray(head.threshold, dtype=float), positive=head.positive_index or 0)
    proba = outputs.probabilities([head])[head.name][keep]
    truth = y if head.kind == "multilabel" else y[:, 0]
    metrics = task_metrics(head.kind, truth, proba, head.decide(proba), list(head.classes), head.positive_index,
                           n_boot=0)
    return metrics | {"temperature": head.temperature}


def one_run(dataset: str, recipe: str, model: str, seed: int, epochs: int, out: Path) -> dict:
    name = f"{dataset}-{recipe}-{model}-s{seed}"
    run = out / "runs" / name
    if run.exists():  # an interrupted run of this cell, which left no row: start it again
        shutil.rmtree(run)
    config, init = config_for(dataset, recipe, model, seed, epochs, run)
    start = time.time()
    with classifier_init(init):
        train(config)
    minutes = (time.time() - start) / 60
    (out / "logits").mkdir(exist_ok=True)
    val = split_scores(run, "val", out / "logits" / f"{name}-val.npz")
    test = split_scores(run, "test", out / "logits" / f"{name}-test.npz")
    return {"dataset": dataset, "recipe": recipe, "model": model, "seed": seed, "epochs": config.epochs,
            "minutes": round(minutes, 2), "val_auc": val["auc"], "test_auc": test["auc"],
            "test_acc": test.get("accuracy", test.get("label_accuracy")),  # multi-label: over image-finding pairs
            "test_sensitivity": test.get("sensitivity", ""),
            "test_specificity": test.get("specificity", ""), "val_specificity": val.get("specificity", ""),
            "temperature": test["temperature"]}


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def report(rows: list[dict]) -> str:
    """Per model: mean test AUC (min-max over seeds) for each dataset x recipe, then the binary tasks' test
    specificity and sensitivity at the model's decision, and validation's AUC beside test's."""
    lines = []
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        datasets = [d for d in DATASETS if any(r["dataset"] == d for r in mine)]
        recipes = [k for k in RECIPES if any(r["recipe"] == k for r in mine)]
        for title, key in (("test AUC", "test_auc"), ("test specificity at the decision", "test_specificity"),
                           ("test sensitivity at the decision", "test_sensitivity"), ("val AUC", "val_auc")):
            cells = {(d, k): [float(r[key]) for r in mine if r["dataset"] == d and r["recipe"] == k and r[key]]
                     for d in datasets for k in recipes}
            if not any(cells.values()):
                continue
            lines += ["", f"{model}: {title}, mean (min-max) over seeds",
                      "| recipe | " + " | ".join(datasets) + " | mean over datasets |",
                      "|---" * (len(datasets) + 2) + "|"]
            for k in recipes:
                seeds = {len(cells[d, k]) for d in datasets if cells[d, k]}
                means = [statistics.mean(cells[d, k]) for d in datasets if cells[d, k]]
                overall = f"{statistics.mean(means):.3f}" if len(means) == len(datasets) else "-"
                lines.append(f"| {k} ({'/'.join(map(str, sorted(seeds)))} seeds) | " +
                             " | ".join(spread(cells[d, k]) for d in datasets) + f" | {overall} |")
    return "\n".join(lines)


def saved_head(npz) -> TaskHead:
    kind = str(npz["kind"])
    classes = tuple(str(i) for i in range(npz["logits"].shape[-1]))
    return TaskHead("main", kind, classes, positive_index=int(npz["positive"]) if kind == "binary" else None)


def test_ece(head: TaskHead, npz, temperature: float) -> float:
    proba = view_probabilities([replace(head, temperature=temperature)], npz["logits"])
    return expected_calibration_error(*calibration_events(head.kind, npz["y"], proba))


CALIBRATION_RULES = {
    "none (T=1)": lambda head, val: 1.0,
    "fitted on val": lambda head, val: fit_temperature(head, val["logits"], val["y"]),
    "fitted, kept if it holds out-of-fold": lambda head, val: cross_validated_temperature(head, val["logits"],
                                                                                          val["y"])[0],
    "fitted, never below 1": lambda head, val: max(1.0, fit_temperature(head, val["logits"], val["y"])),
    "out-of-fold and never below 1": lambda head, val: max(1.0, cross_validated_temperature(head, val["logits"],
                                                                                           val["y"])[0]),
}


CALIBRATION_FIELDS = ["run", "dataset", "rule", "temperature", "test_ece", "test_ece_at_1"]


def score_calibration(out: Path) -> None:
    """Every run's test ECE under each rule, from its saved logits, into OUT/calibration.csv (a text table that
    outlives the logits: `--report` reads it)."""
    rows = []
    for val_file in sorted((out / "logits").glob("*-val.npz")):
        test_file = val_file.with_name(val_file.name.replace("-val.npz", "-test.npz"))
        if not test_file.is_file():
            continue
        val, test = np.load(val_file), np.load(test_file)
        head, run = saved_head(val), val_file.name.removesuffix("-val.npz")
        plain = test_ece(head, test, 1.0)
        for rule, choose in CALIBRATION_RULES.items():
            temperature = choose(head, val)
            rows.append({"run": run, "dataset": run.split("-")[0], "rule": rule, "temperature": temperature,
                         "test_ece": test_ece(head, test, temperature), "test_ece_at_1": plain})
    if rows:
        with open(out / "calibration.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, CALIBRATION_FIELDS)
            writer.writeheader()
            writer.writerows(rows)


def calibration_report(out: Path) -> str:
    """Test ECE under each way of choosing the temperature on validation, over every run: mean per dataset, and
    in how many runs the rule made test ECE worse than no temperature at all."""
    score_calibration(out)
    rows = read_rows(out / "calibration.csv")
    if not rows:
        return ""
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in rows)]
    runs = len({r["run"] for r in rows})
    lines = [f"Test ECE (15 bins, top label) by how the temperature is chosen on validation, {runs} runs:",
             "| rule | " + " | ".join(datasets) + " | runs made worse than T=1 | largest increase |",
             "|---" * (len(datasets) + 3) + "|"]
    for rule in CALIBRATION_RULES:
        mine = [r for r in rows if r["rule"] == rule]
        increases = [float(r["test_ece"]) - float(r["test_ece_at_1"]) for r in mine]
        worse = [x for x in increases if x > 1e-9]
        lines.append(f"| {rule} | " + " | ".join(spread([float(r["test_ece"]) for r in mine if r["dataset"] == d])
                                                 for d in datasets) +
                     f" | {len(worse)} | {max(worse, default=0):.3f} |")
    return "\n".join(lines)


# What the README's tables hold: (datasets, recipes, models), each over --seeds; `main` without --recipes runs them
README_PLAN = [
    (",".join(DATASETS), "generic,modality,shift", "lite0"),
    ("pneumoniamnist", "november,generic+timm-init", "lite0"),
    ("pneumoniamnist", "generic,november", "scratch"),
    ("pneumoniamnist,breastmnist,retinamnist", "modality+ls0", "lite0"),
]


def run_matrix(datasets: str, recipes: str, models: str, seeds: int, epochs: int, out: Path) -> None:
    """Every dataset x model x recipe for seeds 0..seeds-1, seed by seed, skipping the cells results.csv has."""
    results = out / "results.csv"
    done = {(r["dataset"], r["recipe"], r["model"], r["seed"]) for r in read_rows(results)}
    for seed in range(seeds):
        for dataset in datasets.split(","):
            if locate(dataset) is None:
                print(f"shift: {dataset} skipped (not found in {', '.join(map(str, data_roots()))})")
                continue
            for model in models.split(","):
                for recipe in recipes.split(","):
                    if (dataset, recipe, model, str(seed)) not in done:
                        row = one_run(dataset, recipe, model, seed, epochs, out)
                        append_row(results, row)
                        print(row, flush=True)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=None, help="default: the README's plan (README_PLAN)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default="lite0")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/shift"))
    parser.add_argument("--report", action="store_true", help="print the tables from OUT/results.csv only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plan = README_PLAN if args.recipes is None else [(args.datasets, args.recipes, args.models)]
    for datasets, recipes, models in [] if args.report else plan:
        run_matrix(datasets, recipes, models, args.seeds, args.epochs, args.out)
    rows = read_rows(args.out / "results.csv")
    if not rows:
        return "shift: no runs"
    return f"Defaults under shift ({args.out / 'results.csv'}):" + report(rows) + "\n\n" + calibration_report(args.out)


if __name__ == "__main__":
    print(main())

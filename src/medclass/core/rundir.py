"""The run folder: one place that knows its layout, used by training, evaluation, thresholds, comparison and the CLI.

    RUN/config.yaml          the resolved training config (`config`) and what was resolved at run time (`resolved`)
    RUN/splits.csv           source,split,label,patient of every image of the data; those left out (duplicates,
                             segmentation masks, unreadable files) have split `excluded` and a reason
    RUN/excluded.csv         source,split,label,reason of every image left out (the split it had, if any); runs of
                             medclass before it listed unreadable images only, in unreadable.csv, without a row
                             in splits.csv
    RUN/model.safetensors    the model artefact (core/artifact.py); runs of medclass before format 3 hold
                             model.pt instead, which still loads
    RUN/model.onnx, ...      `medclass export RUN --format F`: the file each backend reads in a run folder (its
                             `run_file` in inference/backends.py `BACKENDS`; export/*.py write them): model.onnx
                             (with --int8 also model.int8.onnx and model.int8.json), model.ncnn.param (+ .bin, .json)
    RUN/history.csv          per-epoch metrics; RUN/training_curves.png their plot
    RUN/audit.json           the data audit before training
    RUN/skipped.csv          rows of the data the reader could not use (e.g. a CSV row whose file is missing)
    RUN/checkpoints/         Lightning checkpoints (best and last: `--resume` continues from last)
    RUN/calibration.json     temperature and operating points chosen on validation, with their validation numbers
    RUN/evaluation/SPLIT/    metrics.json, predictions.csv (+ predictions.columns.json), report.html and figures
                             of `medclass evaluate`, replaced as one set (evaluation/folder_set.py)
    RUN/comparisons/OTHERS_SPLIT/  `medclass compare RUN OTHER...` without --out: comparison.json, .csv, .md and
                             figures, in the first (reference) run's folder

It reads config.yaml as plain YAML, so evaluation and inference need nothing from training.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from medclass.core.artifact import ARTIFACT_NAME as ARTIFACT
from medclass.core.artifact import LEGACY_ARTIFACT, ModelArtifact
from medclass.core.errors import MedclassError

CONFIG = "config.yaml"
SPLITS = "splits.csv"
HISTORY = "history.csv"
CURVES = "training_curves.png"
AUDIT = "audit.json"
CALIBRATION = "calibration.json"
SKIPPED = "skipped.csv"
EXCLUSIONS = "excluded.csv"


class RunDir:
    """`data`: the run's own data, now at this place (a run or its data moved: another folder or machine); None:
    where config.yaml says it was. Other labelled data is not given here: evaluation opens it on its own."""

    def __init__(self, path: "str | Path | RunDir", data: str | None = None):
        self.path = path.path if isinstance(path, RunDir) else Path(path)
        self.data = data or (path.data if isinstance(path, RunDir) else None)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    config_file = property(lambda self: self.path / CONFIG)
    splits_file = property(lambda self: self.path / SPLITS)
    artifact_file = property(lambda self: self.path / ARTIFACT)  # where a run's artefact is (re)written
    history_file = property(lambda self: self.path / HISTORY)
    curves_file = property(lambda self: self.path / CURVES)
    audit_file = property(lambda self: self.path / AUDIT)
    calibration_file = property(lambda self: self.path / CALIBRATION)
    skipped_file = property(lambda self: self.path / SKIPPED)
    excluded_file = property(lambda self: self.path / EXCLUSIONS)

    def evaluation_dir(self, split: str) -> Path:
        return self.path / "evaluation" / split

    def comparison_dir(self, others: list[str | Path], split: str) -> Path:
        """Where `compare` writes when this run is the reference: named by the other runs' folders and the split."""
        return self.path / "comparisons" / f"{'+'.join(Path(o).name for o in others)}_{split}"

    def check(self) -> "RunDir":
        """A finished run: refuse anything else with the reason."""
        if not self.path.is_dir():
            raise MedclassError(f"{self.path}: no such run folder")
        if not self.saved_artifact():
            raise MedclassError(f"{self.path}: holds no {ARTIFACT} (not a finished medclass run; a stopped one "
                                "continues with `medclass train --out RUN --resume`)")
        return self

    def exported_file(self, run_file: str | None) -> Path | None:
        """RUN/`run_file`: where a runtime other than PyTorch reads its export, given as the backend's `run_file`
        (`BACKENDS.get(name).run_file`: core knows no backend); None for None (the torch backend reads the
        artefact)."""
        return self.path / run_file if run_file else None

    def saved_artifact(self) -> Path | None:
        """The artefact file this run holds: model.safetensors, else an older run's model.pt."""
        for path in (self.artifact_file, self.path / LEGACY_ARTIFACT):
            if path.is_file():
                return path
        return None

    def settings(self) -> dict:
        """config.yaml as written: {"config": ..., "resolved": ...}."""
        if not self.config_file.is_file():
            raise MedclassError(f"{self.config_file}: run config not found (is this a medclass run folder?)")
        return yaml.safe_load(self.config_file.read_text()) or {}

    def data_spec(self) -> str:
        """Where the run's data is read from: `data` when given, else the place training recorded."""
        return self.data or self.settings().get("config", {})["data"]

    def artifact(self) -> ModelArtifact:
        return ModelArtifact.load(self.check().saved_artifact())

    def audit(self) -> dict | None:
        return json.loads(self.audit_file.read_text()) if self.audit_file.is_file() else None

    def calibration(self) -> dict | None:
        return json.loads(self.calibration_file.read_text()) if self.calibration_file.is_file() else None


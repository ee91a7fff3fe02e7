"""Experiment loggers (`--logger`): history.csv is always written (training/history.py: HistoryWriter); TensorBoard or
MLflow log in addition when asked for, into the run folder (tensorboard/, mlruns/), so the run stays one folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from medclass.core.errors import MedclassError

LOGGERS = ("csv", "tensorboard", "mlflow")  # each but csv is the name of the package it needs


def check_logger_installed(kind: str) -> None:
    """Before anything is written: a missing package found after the data is prepared would cost that work."""
    if kind != "csv" and importlib.util.find_spec(kind) is None:
        raise MedclassError(f"--logger {kind} needs the {kind} package: pip install {kind} "
                            "(or pip install 'medclass[loggers]')")


def experiment_logger(kind: str, run_dir: Path):
    """The Lightning logger for `kind`, or False (csv: history.csv alone)."""
    if kind == "csv":
        return False
    check_logger_installed(kind)
    from lightning.pytorch import loggers  # only a run that trains needs Lightning

    if kind == "tensorboard":
        return loggers.TensorBoardLogger(save_dir=run_dir, name="tensorboard", version="")
    return loggers.MLFlowLogger(experiment_name="medclass", run_name=run_dir.name,
                                tracking_uri=(run_dir / "mlruns").resolve().as_uri())

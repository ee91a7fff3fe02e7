"""benchmarks/shift.py: the recipes it compares are the configs they claim to be, a run leaves a row and its
logits, an interrupted matrix resumes, and the calibration table reads the saved logits."""

import csv
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from medclass.models import timm_models
from tests.conftest import write_npz

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def shift(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("shift")
    yield module
    sys.modules.pop("shift", None)


def test_each_recipe_changes_what_it_names_and_nothing_else(shift, tmp_path, monkeypatch):
    monkeypatch.setattr(shift, "locate", lambda name: str(tmp_path / f"{name}.npz"))
    generic, _ = shift.config_for("pneumoniamnist", "generic", "lite0", 1, 4, tmp_path / "a")
    november, init = shift.config_for("pneumoniamnist", "november", "lite0", 1, 4, tmp_path / "b")
    assert init == "timm" and (november.batch_size, november.drop_rate) == (128, None)
    assert (generic.batch_size, generic.drop_rate, generic.epochs, generic.seed, generic.modality) == (32, 0.3, 4, 1, "other")
    robust, _ = shift.config_for("busi", "shift", "lite0", 0, 4, tmp_path / "c")
    assert (robust.finetune, robust.augment, robust.modality, robust.head_epochs) == ("two-stage", "strong",
                                                                                      "ultrasound", 1)
    scratch, _ = shift.config_for("breastmnist", "modality", "scratch", 0, 4, tmp_path / "d")
    assert scratch.model == "auto" and scratch.epochs == 30 and scratch.modality == "ultrasound"


def test_the_timm_initialisation_switch_is_undone_after_the_run(shift):
    original = timm_models.fresh_classifier_init
    with shift.classifier_init("timm"):
        assert timm_models.fresh_classifier_init is not original
    assert timm_models.fresh_classifier_init is original


def test_a_run_leaves_its_row_and_logits_and_the_matrix_resumes(shift, tmp_path, monkeypatch):
    npz = write_npz(tmp_path / "tiny.npz", shape=(16, 28, 28))
    monkeypatch.setattr(shift, "locate", lambda name: str(npz))
    monkeypatch.setitem(shift.MODELS, "scratch", dict(model="smallcnn", img_size=28, epochs=1))
    args = ["--datasets", "breastmnist", "--recipes", "generic", "--models", "scratch", "--seeds", "1",
            "--out", str(tmp_path / "out")]
    interrupted = tmp_path / "out" / "runs" / "breastmnist-generic-scratch-s0"
    interrupted.mkdir(parents=True)
    (interrupted / "config.yaml").write_text("config: {}\n")  # a run killed before it left a row
    text = shift.main(args)
    rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
    assert len(rows) == 1 and rows[0]["recipe"] == "generic" and 0 <= float(rows[0]["test_auc"]) <= 1
    saved = np.load(tmp_path / "out" / "logits" / "breastmnist-generic-scratch-s0-test.npz")
    assert saved["logits"].shape[1] == len(saved["y"]) == 8
    assert "| generic (1 seeds) |" in text and "runs made worse than T=1" in text
    shift.main(args)  # nothing left to run: no second row
    assert len(list(csv.DictReader(open(tmp_path / "out" / "results.csv")))) == 1

"""`medclass export`: ONNX next to the run, parity printed, int8 with its measured accuracy change."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from medclass.cli import app
from medclass.core.errors import MedclassError
from medclass.inference.split import DatasetImages
from medclass.inference import ModelArtifact, load_predictor
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset

runner = CliRunner()


def test_export_onnx_and_int8_from_a_run(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    result = runner.invoke(app, ["export", str(run), "--format", "onnx", "--int8"])
    assert result.exit_code == 0, result.output
    assert f"exported {run / 'model.onnx'}" in result.stdout and "max |probability diff|" in result.stdout
    assert "AUC" in result.stdout and "decisions changed" in result.stdout

    val = run_dataset(RunDir(run), "val")
    batch = DatasetImages(val)[0:len(val)]
    expected = load_predictor(run).predict_proba(batch)
    np.testing.assert_allclose(load_predictor(run, backend="onnx").predict_proba(batch), expected, atol=1e-4)
    int8 = load_predictor(run / "model.int8.onnx")  # the int8 file predicts alone too
    assert int8.heads == load_predictor(run).heads and np.abs(int8.predict_proba(batch) - expected).max() < 0.1

    report = json.loads((run / "model.int8.json").read_text())
    assert report["method"].startswith("static QDQ") and report["evaluated_on"]["split"] == "test"
    assert set(report["fp32"]["label"]) == set(report["int8"]["label"]) == {"auc", "accuracy"}
    assert 0 <= report["changed_decisions"]["label"] <= 1 and report["max_abs_prob_change"] >= 0
    assert report["megabytes"]["int8"] < report["megabytes"]["fp32"] / 2

    artifact = ModelArtifact.load(run)  # recalibrated after the export (as `medclass threshold` may)...
    artifact.heads = [replace(artifact.heads[0], temperature=artifact.heads[0].temperature * 2)]
    artifact.save(run)
    with pytest.raises(MedclassError, match="model.onnx: exported before the run's thresholds"):
        load_predictor(run, backend="onnx")  # ...so the stale export is refused, not silently used


def test_export_errors_are_one_line(trained_run, tmp_path):
    cases = [["export", str(tmp_path), "--format", "onnx"],  # no artefact here
             ["export", str(trained_run), "--format", "tflite", "--out", str(tmp_path / "m.onnx")]]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not (tmp_path / "m.onnx").exists()

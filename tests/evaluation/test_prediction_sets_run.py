"""Prediction sets through a run: training stores them in the artefact, which round-trips and whose header schema
refuses a malformed record naming the field; `medclass threshold --coverage` re-makes them without retraining;
predict and evaluate show them; an artefact without sets loads and predicts exactly as before."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medclass.cli import app
from medclass.core.errors import MedclassError
from medclass.core.rundir import RunDir
from medclass.inference import ModelArtifact, Predictor

runner = CliRunner()


@pytest.fixture
def run(youden_run, tmp_path):
    """A copy of the short binary run (trained with the default --coverage 0.9), free to change."""
    return shutil.copytree(youden_run, tmp_path / "run")


def images(run, n=4) -> list[Path]:
    """Files of the run's test split (a class-folder dataset: each sample's source is its file)."""
    paths = [Path(s.source) for s in _split(run, "test").samples[:n]]
    assert all(p.is_file() for p in paths)
    return paths


def _split(run, split):
    from medclass.data.run_data import run_dataset

    return run_dataset(RunDir(run), split)


def edited_header(path, edit):
    """Rewrite the medclass metadata of a safetensors artefact (as tests/inference/test_artifact_header.py)."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8:8 + length]), raw[8 + length:]
    meta = json.loads(header["__metadata__"]["medclass"])
    edit(meta["heads"][0]["prediction_sets"])
    header["__metadata__"]["medclass"] = json.dumps(meta)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


def test_training_stores_sets_that_round_trip_and_answer(run):
    artifact = ModelArtifact.load(run)
    sets = artifact.heads[0].prediction_sets
    assert sets is not None and sets.coverage == 0.9 and sets.score == "aps" and sets.split == "val"
    record = json.loads((run / "calibration.json").read_text())["tasks"]["label"]["prediction_sets"]
    assert record["coverage"] == 0.9 and record["images"] == sets.images and "validation" in record
    again = ModelArtifact.load(artifact.save(run / "again.safetensors"))
    assert again.heads == artifact.heads
    answers = Predictor(run).predictions(images(run))
    for answer in answers:
        task = answer["label"]
        assert task.prediction_set and set(task.prediction_set) <= {"benign", "malignant"}
        assert task.to_dict()["prediction_set"] == list(task.prediction_set)


@pytest.mark.parametrize("edit, expected", [
    (lambda s: s.update(coverage=2), "heads[0].prediction_sets.coverage must be a finite number in [0, 1]; got 2"),
    (lambda s: s.update(quantiles=["x"]), "heads[0].prediction_sets.quantiles[0] must be a finite number"),
    (lambda s: s.update(score="best"), "heads[0].prediction_sets.score must be one of"),
    (lambda s: s.pop("by_class"), "heads[0].prediction_sets.by_class is missing"),
    (lambda s: s.update(colour="red"), "prediction_sets.colour is not a field medclass knows here"),
    (lambda s: s.update(coverage=1.0), "heads[0]: prediction_sets.coverage must be a share strictly between 0 and 1"),
    (lambda s: s.update(by_class=True), "prediction_sets.quantiles: by class, one per class (2); got 1"),
])
def test_a_malformed_sets_record_is_refused_naming_the_field(run, edit, expected):
    artifact = ModelArtifact.load(run)
    artifact.heads = [replace(artifact.heads[0], prediction_sets=replace(artifact.heads[0].prediction_sets,
                                                                         by_class=False, quantiles=(0.5,)))]
    path = artifact.save(run / "edited.safetensors")
    edited_header(path, edit)
    with pytest.raises(MedclassError) as caught:
        ModelArtifact.load(path)
    assert str(caught.value).startswith(f"{path}: ") and expected in str(caught.value), str(caught.value)


def test_an_artefact_without_sets_loads_and_predicts_as_before(run, tmp_path):
    artifact = ModelArtifact.load(run)
    artifact.heads = [replace(h, prediction_sets=None) for h in artifact.heads]
    old = ModelArtifact.load(artifact.save(tmp_path / "old.safetensors"))
    assert "prediction_sets" not in old.metadata()["heads"][0]  # the header (and served version) as before sets
    assert old.heads[0].prediction_sets is None
    answer = Predictor(old).predictions(images(run, 1))[0]["label"]
    assert answer.prediction_set is None and "prediction_set" not in answer.to_dict()
    assert old.version() != ModelArtifact.load(run).version()  # the sets are part of what answers

    folder = tmp_path / "images"
    folder.mkdir()
    for path in images(run, 2):
        shutil.copy(path, folder / path.name)
    for model, out in ((tmp_path / "old.safetensors", "old.csv"), (run, "new.csv")):
        result = runner.invoke(app, ["predict", str(model), str(folder), "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    old_header = next(csv.reader(open(tmp_path / "old.csv")))
    new_rows = list(csv.DictReader(open(tmp_path / "new.csv")))
    assert "prediction_set" not in old_header
    assert [c for c in new_rows[0] if c != "prediction_set"] == old_header
    assert all(set(r["prediction_set"].split("|")) <= {"benign", "malignant"} and r["prediction_set"]
               for r in new_rows)
    guide = json.loads((tmp_path / "new.columns.json").read_text())
    assert any(c["name"] == "prediction_set" and "cannot tell them apart" in c["holds"] for c in guide["columns"])


def test_threshold_coverage_remakes_the_sets_without_retraining(run):
    weights = ModelArtifact.load(run).state_dict
    before = ModelArtifact.load(run).heads[0]
    result = runner.invoke(app, ["threshold", str(run), "--coverage", "0.95"])
    assert result.exit_code == 0, result.output
    after = ModelArtifact.load(run).heads[0]
    assert after.prediction_sets.coverage == 0.95 and before.prediction_sets.coverage == 0.9
    assert (after.threshold, after.threshold_source, after.temperature) == \
        (before.threshold, before.threshold_source, before.temperature)  # nothing else re-chosen
    assert all(np.array_equal(weights[k], v) for k, v in ModelArtifact.load(run).state_dict.items())
    method = "cross-conformal" if before.temperature != 1.0 else "split conformal"
    line = next(line for line in result.output.splitlines() if "prediction sets" in line)
    assert f"prediction sets 95% coverage ({method}, " in line and "val mean set size" in line
    record = json.loads((run / "calibration.json").read_text())["tasks"]["label"]["prediction_sets"]
    assert record["coverage"] == 0.95 and record["method"] == after.prediction_sets.method

    forced = runner.invoke(app, ["threshold", str(run), "--coverage", "0.6", "--mondrian", "--set-score", "raps"])
    assert forced.exit_code == 0, forced.output
    sets = ModelArtifact.load(run).heads[0].prediction_sets
    assert sets.by_class and sets.score == "raps" and len(sets.quantiles) == 2 and "Mondrian" in forced.output
    off = runner.invoke(app, ["threshold", str(run), "--coverage", "0"])
    assert off.exit_code == 0 and ModelArtifact.load(run).heads[0].prediction_sets is None
    refused = runner.invoke(app, ["threshold", str(run), "--coverage", "1.5"])
    assert refused.exit_code == 2 and "--coverage must be a share strictly between 0 and 1" in refused.output
    alone = runner.invoke(app, ["threshold", str(run), "--youden", "--mondrian"])
    assert alone.exit_code == 2 and "give --coverage C with them" in alone.output


def test_evaluate_writes_the_coverage_block_the_csv_column_and_the_report_section(run):
    result = runner.invoke(app, ["evaluate", str(run), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    assert "prediction sets" in result.output and "coverage per class" in result.output
    out = RunDir(run).evaluation_dir("test")
    block = json.loads((out / "metrics.json").read_text())["prediction_sets"]
    test = _split(run, "test")
    assert block["n"] == len(test) and block["target"] == 0.9 and block["interval"].startswith("Clopper-Pearson")
    low, high = block["coverage"]["ci"]
    assert low <= block["coverage"]["rate"] <= high and block["verdict"] in ("within", "above", "below")
    assert set(block["per_class"]) == {"benign", "malignant"} and 1 <= block["mean_size"] <= 2
    assert sum(b["n"] for b in block["per_class"].values()) == block["n"]
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    hits = [r["true"] in r["prediction_set"].split("|") for r in rows]
    assert np.mean(hits) == pytest.approx(block["coverage"]["rate"])
    report = (out / "report.html").read_text()
    assert "<h2>Prediction sets</h2>" in report and "the model cannot tell these apart for this image" in report

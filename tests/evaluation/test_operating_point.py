"""Operating points: the rules, and that the threshold chosen on validation is the one applied on test."""

import csv

import numpy as np
import pytest
from sklearn.metrics import roc_curve
from typer.testing import CliRunner

from medclass.cli import app
from medclass.core.errors import MedclassError
from medclass.evaluation import evaluate_run
from medclass.evaluation.operating_point import ThresholdRule, choose_threshold
from medclass.inference.split import DatasetImages
from medclass.inference.predictor import Predictor
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset


def _scores(seed=0, n=300):
    rng = np.random.default_rng(seed)
    positive = rng.uniform(size=n) < 0.3
    return positive, np.clip(0.25 * positive + rng.uniform(0, 0.75, n), 0, 1)


def test_rules_parse_and_bad_ones_are_named():
    assert ThresholdRule.parse("youden") == ThresholdRule("youden")
    assert ThresholdRule.parse("sensitivity:0.95") == ThresholdRule("sensitivity", 0.95)
    assert ThresholdRule.parse("0.3") == ThresholdRule("fixed", 0.3) and ThresholdRule.parse("argmax").value == 0.5
    for bad in ("sensitivity", "recall:0.9", "1.5", "sensitivity:x"):
        with pytest.raises(MedclassError, match="operating point"):
            ThresholdRule.parse(bad)


def test_youden_maximises_sensitivity_plus_specificity():
    positive, score = _scores()
    chosen = choose_threshold(positive, score, ThresholdRule("youden"))
    called = score >= chosen
    j = called[positive].mean() + (~called[~positive]).mean() - 1
    fpr, tpr, _ = roc_curve(positive, score)
    assert j == pytest.approx(np.max(tpr - fpr))


@pytest.mark.parametrize("target", [0.8, 0.95])
def test_target_sensitivity_is_reached_by_the_most_specific_threshold(target):
    positive, score = _scores(1)
    chosen = choose_threshold(positive, score, ThresholdRule("sensitivity", target))
    assert (score[positive] >= chosen).mean() >= target
    above = np.sort(np.unique(score[score > chosen]))[0]  # the next threshold up no longer reaches the target
    assert (score[positive] >= above).mean() < target


def test_target_specificity_is_kept_by_the_most_sensitive_threshold():
    positive, score = _scores(2)
    chosen = choose_threshold(positive, score, ThresholdRule("specificity", 0.9))
    assert (score[~positive] < chosen).mean() >= 0.9
    below = np.sort(np.unique(score[score < chosen]))[-1]
    assert (score[~positive] < below).mean() < 0.9


def _positive_proba(run, split):
    predictor = Predictor.from_run(run)
    dataset = run_dataset(RunDir(run), split)
    head = predictor.heads[0]
    proba = predictor.predict_proba(DatasetImages(dataset))[:, head.positive_index]
    truth = np.array([s.labels["label"] == head.positive_class for s in dataset.samples])
    return head, proba, truth, dataset


def test_the_threshold_chosen_on_validation_is_the_one_applied_on_test(youden_run, tmp_path):
    head, val_proba, val_truth, _ = _positive_proba(youden_run, "val")
    assert head.positive_class == "malignant"  # named like a disease: the default positive class
    fpr, tpr, thresholds = roc_curve(val_truth, val_proba, drop_intermediate=False)
    assert head.threshold == pytest.approx(min(thresholds[np.argmax(tpr - fpr)], 1.0))
    assert "Youden" in head.threshold_source and "val" in head.threshold_source

    metrics, out = evaluate_run(youden_run, split="test", out_dir=tmp_path / "eval", n_boot=20)
    assert metrics["threshold"] == head.threshold and "val" in metrics["threshold_source"]
    _, test_proba, test_truth, test = _positive_proba(youden_run, "test")
    rows = {r["source"]: r for r in csv.DictReader(open(out / "predictions.csv"))}
    for source, p in zip((s.source for s in test.samples), test_proba):
        assert (rows[source]["prediction"] == "malignant") == (p >= head.threshold)
    called = test_proba >= head.threshold
    assert metrics["sensitivity"] == pytest.approx(called[test_truth].mean())
    assert metrics["specificity"] == pytest.approx((~called[~test_truth]).mean())


def test_threshold_command_rechooses_on_validation_without_retraining(youden_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(youden_run, run)
    weights = (run / "model.safetensors").read_bytes()
    result = CliRunner().invoke(app, ["threshold", str(run), "--sensitivity", "0.9"])
    assert result.exit_code == 0, result.output
    head, val_proba, val_truth, _ = _positive_proba(run, "val")
    assert "sensitivity >= 0.9" in head.threshold_source
    assert (val_proba[val_truth] >= head.threshold).mean() >= 0.9
    assert "val sensitivity" in result.output and (run / "calibration.json").is_file()
    assert len((run / "model.safetensors").read_bytes()) == pytest.approx(len(weights), rel=0.01)

    refused = CliRunner().invoke(app, ["threshold", str(run), "--youden", "--value", "0.3"])
    assert refused.exit_code == 2 and "one of" in refused.output


def test_multiclass_tasks_refuse_an_operating_point(trained_run):
    result = CliRunner().invoke(app, ["threshold", str(trained_run), "--youden"])
    assert result.exit_code == 2 and "most probable class" in result.output


def test_a_finding_without_positives_on_validation_keeps_its_threshold():
    from medclass.evaluation.operating_point import tune_head
    from medclass.core.heads import TaskHead

    head = TaskHead("findings", "multilabel", ("Mass", "Hernia"), threshold=(0.5, 0.4))
    positive, score = _scores(3, 100)
    y = np.stack([positive.astype(int), np.zeros(100, int)], 1)
    tuned = tune_head(head, y, np.stack([score, score], 1), ThresholdRule("youden"), "val")
    assert tuned.threshold[0] == choose_threshold(positive, score, ThresholdRule("youden"))
    assert tuned.threshold[1] == 0.4 and "kept for Hernia" in tuned.threshold_source


def test_threshold_can_recalibrate_on_labelled_images_from_elsewhere(youden_run, binary_data, tmp_path):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(youden_run, run)
    result = CliRunner().invoke(app, ["threshold", str(run), "--data", str(binary_data), "--recalibrate",
                                      "--temperature-rule", "fitted", "--specificity", "0.9"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "calibration.json").read_text())
    n_images = sum(1 for _ in binary_data.rglob("*.png"))
    assert record["split"] == str(binary_data) and record["tasks"]["label"]["images"] == n_images
    head = RunDir(run).artifact().heads[0]
    assert str(binary_data) in head.threshold_source and f"{binary_data}: sensitivity" in result.output
    assert head.temperature != RunDir(youden_run).artifact().heads[0].temperature

    refused = CliRunner().invoke(app, ["threshold", str(run), "--value", "0.5", "--mapping", "m.yaml"])
    assert refused.exit_code == 2 and "apply to --data" in refused.output


def test_recalibrating_never_below_1_records_the_rule_and_the_fitted_value(youden_run, tmp_path):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(youden_run, run)
    result = CliRunner().invoke(app, ["threshold", str(run), "--recalibrate", "--temperature-rule", "no-sharpening",
                                      "--value", "0.5"])
    assert result.exit_code == 0, result.output
    chosen = json.loads((run / "calibration.json").read_text())["tasks"]["label"]["calibration"]
    assert chosen["chosen_by"]["rule"] == "no-sharpening"
    assert chosen["temperature"] == max(1.0, chosen["chosen_by"]["fitted"])
    assert RunDir(run).artifact().heads[0].temperature == chosen["temperature"]
    refused = CliRunner().invoke(app, ["threshold", str(run), "--recalibrate", "--temperature-rule", "lowest",
                                       "--value", "0.5"])
    assert refused.exit_code == 2 and "temperature_rule must be one of no-sharpening, fitted, out-of-fold" in \
        refused.output

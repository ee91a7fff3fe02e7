"""evaluate_run on a trained run: the split it scores, the files it writes."""

import json
from pathlib import Path

from medclass.evaluation import evaluate_run
from medclass.core.rundir import RunDir


def test_evaluate_scores_the_recorded_test_split_and_writes_a_report(trained_run, tmp_path):
    metrics, out = evaluate_run(trained_run, split="test", out_dir=tmp_path / "eval", n_boot=50)
    test_sources = [line.split(",")[0] for line in (trained_run / "splits.csv").read_text().splitlines()[1:]
                    if line.split(",")[1] == "test"]
    assert metrics["n"] == len(test_sources) == sum(map(sum, metrics["confusion_matrix"]))
    assert json.loads((out / "metrics.json").read_text())["auc"] == metrics["auc"]
    predicted = (out / "predictions.csv").read_text().splitlines()[1:]
    root = Path(RunDir(trained_run).settings()["config"]["data"])  # splits.csv names images from the data's root
    assert sorted(Path(line.split(",")[0]).relative_to(root).as_posix() for line in predicted) == sorted(test_sources)
    report = (out / "report.html").read_text()
    assert "Confusion matrix" in report and "ROC curve" in report and "data:image/png;base64," in report
    assert metrics["auc_kind"] == "macro one-vs-rest"


def test_report_is_self_contained_and_has_every_section(youden_run, tmp_path):
    import re

    metrics, out = evaluate_run(youden_run, split="test", out_dir=tmp_path / "eval", n_boot=50)
    report = (out / "report.html").read_text()
    for heading in ("Results: Task label (binary)", "Per class", "Calibration", "Data", "Model and training",
                    "Training curves", "Per-image predictions"):
        assert f">{heading}<" in report.replace("<h2>", ">").replace("<h3>", ">"), heading
    for figure in ("Confusion matrix", "ROC curve", "Precision-recall curve", "Confidence per class",
                   "Reliability diagram", "Most confident errors", "loss, accuracy and AUC per epoch"):
        assert f'alt="{figure}"' in report, figure
    for number in ("Sensitivity", "Specificity", "NPV", "PR-AUC", "ECE", "Brier", "macro avg", "weighted avg"):
        assert number in report
    assert "Youden&#x27;s J on the val split" in report and "split file" not in report
    assert 'name="viewport"' in report  # readable on a phone
    # nothing to fetch: every image inline, no script, no stylesheet or font from elsewhere
    assert not re.search(r'(src|href)="(?!data:|predictions\.csv)', report) and "<script" not in report
    assert report.count("data:image/png;base64,") == 7
    assert {"sensitivity", "specificity", "ppv", "npv", "pr_auc", "calibration"} <= set(metrics)
    assert metrics["calibration"]["calibrated"]["ece"] >= 0 and metrics["ci"]["resampled"] == "images"


def test_patients_with_several_images_get_patient_level_metrics_and_resampling(binary_data, tmp_path):
    """A CSV naming each image's patient (two images each): intervals resample patients, and a per-patient
    section scores the mean probability of each patient's images."""
    from medclass.training import TrainConfig, train

    rows = ["image,label,patient"]
    for cls in ("benign", "malignant"):
        for i, path in enumerate(sorted((binary_data / cls).glob("*.png"))):
            rows.append(f"{path},{cls},{cls}-{i // 2}")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    train(TrainConfig(data=str(labels), out=str(run), model="smallcnn", epochs=2, batch_size=16, audit=False))
    metrics, out = evaluate_run(run, split="test", n_boot=30)
    patient = metrics["patient_level"]
    assert metrics["ci"]["resampled"] == "patients"
    assert patient["patients"] == metrics["n"] // 2 and patient["n"] == patient["patients"]
    assert patient["patients_with_disagreeing_labels"] == 0
    assert "Per patient" in (out / "report.html").read_text()


def test_ordinal_grades_are_scored_by_quadratic_weighted_kappa(demo_data, binary_data, tmp_path):
    import pytest

    from medclass.core.errors import MedclassError
    from medclass.training import TrainConfig, train

    train(TrainConfig(data=str(demo_data), out=str(tmp_path / "run"), model="smallcnn", epochs=1, batch_size=16,
                      ordinal=True, audit=False))
    metrics, out = evaluate_run(tmp_path / "run", n_boot=20)
    assert metrics["ordinal"] and -1 <= metrics["kappa_quadratic"] <= 1 and "kappa_quadratic" in metrics["ci"]
    assert "Quadratic-weighted kappa" in (out / "report.html").read_text()
    with pytest.raises(MedclassError, match="ordinal"):
        train(TrainConfig(data=str(binary_data), out=str(tmp_path / "binary"), ordinal=True, epochs=1))
    assert not (tmp_path / "binary").exists()


def test_a_report_on_the_validation_split_warns_that_it_chose_the_operating_point(youden_run, tmp_path):
    metrics, out = evaluate_run(youden_run, split="val", out_dir=tmp_path / "val", n_boot=10)
    assert metrics["fitted_on_this_split"] and "these numbers are optimistic" in (out / "report.html").read_text()
    metrics, out = evaluate_run(youden_run, split="test", out_dir=tmp_path / "test", n_boot=10)
    assert not metrics["fitted_on_this_split"] and "Nothing was tuned" in (out / "report.html").read_text()


def test_evaluate_prints_the_per_class_table_of_scikit_learns_classification_report():
    import numpy as np
    import pytest
    from sklearn.metrics import classification_report

    from medclass.evaluation.metrics import task_metrics
    from medclass.evaluation.summary import classification_report_lines

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    decided = np.where(rng.uniform(size=90) < 0.7, y, rng.integers(0, 3, 90))
    proba = np.eye(3)[decided] * 0.6 + 0.4 / 3
    classes = ["benign", "malignant", "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)"]
    metrics = task_metrics("multiclass", y, proba, decided, classes, n_boot=0) | {"kind": "multiclass"}
    expected = classification_report(y, decided, output_dict=True, zero_division=0)
    lines = classification_report_lines(metrics)
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    rows = {line.rsplit(None, 4)[0].strip(): line.split()[-4:] for line in lines[1:] if len(line.split()) >= 5}
    rows["accuracy"] = next(line.split()[-2:] for line in lines if line.startswith("accuracy"))
    assert len(rows) == 6  # three classes, accuracy, macro avg, weighted avg
    for i, name in enumerate(classes):
        shown = next(v for k, v in rows.items() if name.startswith(k.rstrip("…")))
        want = expected[str(i)]
        assert [float(v) for v in shown] == pytest.approx([want["precision"], want["recall"], want["f1-score"],
                                                           want["support"]], abs=5e-5)
    for avg in ("macro avg", "weighted avg"):
        want = expected[avg]
        assert [float(v) for v in rows[avg]] == pytest.approx([want["precision"], want["recall"], want["f1-score"],
                                                               want["support"]], abs=5e-5)
    assert float(rows["accuracy"][0]) == pytest.approx(expected["accuracy"], abs=5e-5)


def test_the_test_split_is_set_beside_validation_and_validation_is_not_set_beside_itself(youden_run, tmp_path):
    from medclass.evaluation.summary import summary_lines

    metrics, out = evaluate_run(youden_run, split="test", out_dir=tmp_path / "test", n_boot=50)
    gap = metrics["validation_gap"]
    calibration = json.loads(RunDir(youden_run).calibration_file.read_text())["tasks"]["label"]
    assert gap["val_images"] == calibration["images"] and gap["auc"] == metrics["auc"]
    assert gap["val_specificity"] == calibration["operating_point"]["specificity"]
    assert gap["auc_gap_ci"][0] <= gap["auc_gap"] <= gap["auc_gap_ci"][1]
    assert any(line.strip().startswith("validation -> here: validation AUC") for line in summary_lines(metrics))
    assert "Validation and this split" in (out / "report.html").read_text()
    val_metrics, _ = evaluate_run(youden_run, split="val", out_dir=tmp_path / "val", n_boot=50)
    assert "validation_gap" not in val_metrics and val_metrics["auc"] == gap["val_auc"]


def test_other_data_is_set_beside_validation_or_says_why_not(youden_run, binary_data, tmp_path):
    import shutil

    metrics, _ = evaluate_run(youden_run, data=str(binary_data), out_dir=tmp_path / "other", n_boot=50)
    assert metrics["validation_gap"]["val_images"] > 0
    moved = tmp_path / "run-without-its-data"
    shutil.copytree(youden_run, moved)
    config = RunDir(moved).config_file
    config.write_text(config.read_text().replace(str(binary_data), str(tmp_path / "gone")))
    metrics, _ = evaluate_run(moved, data=str(binary_data), out_dir=tmp_path / "other2", n_boot=50)
    assert "not there" in metrics["validation_gap"]["not_scored"]

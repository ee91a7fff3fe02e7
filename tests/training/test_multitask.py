"""Several tasks, one model: a generated Multi Cancer layout (organ + malignancy) trained, evaluated and predicted
from the CLI and the Python API; labels missing for a task; a multi-label CSV with patients."""

import csv
import json

import numpy as np
import yaml
from typer.testing import CliRunner

from medclass.cli import app
from medclass.data.demo import generate_demo_data
from medclass.inference import ModelArtifact, Predictor
from medclass.training.history import read_history

runner = CliRunner()


def invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_two_task_model_trains_evaluates_and_predicts_both_tasks(multi_cancer, tmp_path):
    data, mapping = multi_cancer
    run = tmp_path / "run"
    invoke(["train", "--data", data, "--mapping", mapping, "--tasks", "organ,malignancy", "--out", run,
            "--epochs", 3, "--batch-size", 16, "--task-weights", "malignancy=2", "--no-audit"])
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert [t["name"] for t in resolved["resolved"]["tasks"]] == ["organ", "malignancy"]
    assert resolved["config"]["task_weights"] == {"malignancy": 2.0}
    artifact = ModelArtifact.load(run)
    assert [(h.name, h.kind, h.classes) for h in artifact.heads] == [
        ("organ", "multiclass", ("Brain", "Breast", "Lung")), ("malignancy", "binary", ("benign", "malignant"))]
    assert artifact.model_kwargs["task_outputs"] == [3, 2]
    history = read_history(run / "history.csv")
    assert all({"val_auc_organ", "val_auc_malignancy"} <= set(r) for r in history)
    assert all(abs(r["val_auc"] - (r["val_auc_organ"] + r["val_auc_malignancy"]) / 2) < 1e-6 for r in history)

    printed = invoke(["evaluate", run, "--n-boot", 20])
    assert "task organ (multiclass" in printed and "task malignancy (binary" in printed
    metrics = json.loads((run / "evaluation" / "test" / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"organ", "malignancy"}
    n_test = sum(1 for line in (run / "splits.csv").read_text().splitlines() if ",test," in line)
    assert metrics["tasks"]["organ"]["n"] == metrics["tasks"]["malignancy"]["n"] == n_test
    assert metrics["tasks"]["organ"]["auc_kind"] == "macro one-vs-rest"
    assert metrics["tasks"]["malignancy"]["positive_class"] == "malignant"
    report = (run / "evaluation" / "test" / "report.html").read_text()
    assert "Task organ (multiclass)" in report and "Task malignancy (binary)" in report
    assert report.count("Confusion matrix") >= 2
    with open(run / "evaluation" / "test" / "predictions.csv") as f:
        header = next(csv.reader(f))
    assert header[:3] == ["source", "organ:true", "organ:prediction"] and "malignancy:p_malignant" in header

    images = sorted((data / "Lung Cancer" / "lung_malignant").glob("*.png"))[:3]
    out_csv = tmp_path / "predictions.csv"
    printed = invoke(["predict", run, *images, "--out", out_csv])
    assert printed.count("organ=") == 3 and "malignancy:malignant=" in printed
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == [str(p) for p in images]
    assert {r["organ:prediction"] for r in rows} <= {"Brain", "Breast", "Lung"}
    assert all(abs(float(r["malignancy:p_benign"]) + float(r["malignancy:p_malignant"]) - 1) < 1e-5 for r in rows)

    predictor = Predictor.from_run(run)
    proba, labels = predictor.predict_proba(images), predictor.predict(images)
    assert set(proba) == set(labels) == {"organ", "malignancy"} and proba["organ"].shape == (3, 3)
    assert [r["organ:prediction"] for r in rows] == labels["organ"].tolist()
    np.testing.assert_allclose(proba["malignancy"][:, 1], [float(r["malignancy:p_malignant"]) for r in rows],
                               atol=1e-6)


def test_missing_labels_are_left_out_of_their_task_and_one_task_can_choose_the_checkpoint(multi_cancer, tmp_path):
    data, mapping = multi_cancer
    partial = tmp_path / "mapping.yaml"  # lung images: organ known, malignancy unknown
    entries = yaml.safe_load(mapping.read_text())
    entries["lung_benign"]["malignancy"] = entries["lung_malignant"]["malignancy"] = None
    partial.write_text(yaml.safe_dump(entries))
    run = tmp_path / "run"
    invoke(["train", "--data", data, "--mapping", partial, "--tasks", "organ,malignancy", "--out", run,
            "--epochs", 2, "--batch-size", 16, "--monitor-task", "malignancy", "--no-audit"])
    assert all(r["val_auc"] == r["val_auc_malignancy"] for r in read_history(run / "history.csv"))
    invoke(["evaluate", run, "--n-boot", 0])
    metrics = json.loads((run / "evaluation" / "test" / "metrics.json").read_text())
    test_lung = sum(1 for line in (run / "splits.csv").read_text().splitlines()
                    if ",test," in line and "Lung Cancer" in line)
    assert test_lung > 0 and metrics["tasks"]["malignancy"]["unlabelled"] == test_lung
    assert metrics["tasks"]["malignancy"]["n"] + test_lung == metrics["tasks"]["organ"]["n"]


def nih_like(root, n_patients=24):
    """A ChestX-ray14-like labels.csv: 'A|B' findings, 'No Finding', file names <8-digit patient>_<k>.png."""
    demo = generate_demo_data(root / "phantoms", n_per_class=n_patients, size=32, seed=5)
    findings = {"normal": "No Finding", "benign": "Mass", "malignant": "Mass|Shadowing"}
    (root / "images").mkdir(parents=True)
    rows = ["Image Index,Finding Labels"]
    for p in range(n_patients):
        for k, label in enumerate(findings):
            name = f"{p:08d}_{k:03d}.png"
            (root / "images" / name).write_bytes((demo / label / f"{label}_{p:04d}.png").read_bytes())
            rows.append(f"{name},{findings[label]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_multilabel_csv_trains_every_finding_with_a_patient_split_and_evaluates_per_finding(tmp_path):
    labels = nih_like(tmp_path / "nih")
    run = tmp_path / "run"
    invoke(["train", "--data", labels, "--multilabel", "--patient-pattern", r"^(\d{8})_", "--out", run,
            "--epochs", 2, "--batch-size", 16, "--no-audit"])
    artifact = ModelArtifact.load(run)
    assert [(h.kind, h.classes) for h in artifact.heads] == [("multilabel", ("Mass", "Shadowing"))]
    with open(run / "splits.csv") as f:
        rows = list(csv.DictReader(f))
    splits_of = {}
    for row in rows:
        splits_of.setdefault(row["patient"], set()).add(row["split"])
    assert len(splits_of) == 24 and all(len(s) == 1 for s in splits_of.values())
    printed = invoke(["evaluate", run, "--n-boot", 20])
    assert "AUC macro" in printed and "AUC micro" in printed
    table = [line.split() for line in printed.splitlines() if line.startswith(("Mass ", "Shadowing "))]
    # the classification_report-shaped table (precision, recall, f1-score, positives), then the AUC table
    assert [line[0] for line in table] == ["Mass", "Shadowing"] * 2
    assert "micro avg" in printed and "macro avg" in printed
    metrics = json.loads((run / "evaluation" / "test" / "metrics.json").read_text())
    assert set(metrics["per_finding"]) == {"Mass", "Shadowing"} and "auc_ci" in metrics["per_finding"]["Mass"]
    positives = sum(1 for r in rows if r["split"] == "test" and "Mass" in r["label"])
    assert metrics["per_finding"]["Mass"]["positives"] == positives
    predictor = Predictor.from_run(run)
    decided = predictor.predict([tmp_path / "nih" / "images" / "00000000_000.png"])
    assert decided.shape == (1, 2) and set(decided.ravel()) <= {0, 1}

"""train → evaluate → predict through the CLI, and one-line errors for bad input."""

import csv
import json

import numpy as np
from typer.testing import CliRunner

from medclass.cli import app

runner = CliRunner()


def test_train_evaluate_predict(demo_data, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(demo_data), "--model", "smallcnn", "--epochs", "1",
                                 "--batch-size", "16", "--img-size", "24", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "best val AUC" in result.output

    result = runner.invoke(app, ["evaluate", str(run), "--json", "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"accuracy", "balanced_accuracy", "auc", "f1_macro", "f1_weighted", "confusion_matrix",
            "per_class"} <= set(metrics)

    folder = tmp_path / "incoming"
    folder.mkdir()
    for c in ("normal", "malignant"):
        (folder / f"{c}.png").write_bytes((demo_data / c / f"{c}_0001.png").read_bytes())
    (folder / "broken.png").write_text("not an image")
    result = runner.invoke(app, ["predict", str(run), str(folder), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 1  # the unreadable file is reported, the others still predicted
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["broken.png", "malignant.png", "normal.png"]
    assert rows[0]["error"] and not rows[0]["prediction"]
    probs = np.array([[float(r[f"p_{c}"]) for c in ("benign", "malignant", "normal")] for r in rows[1:]])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)


def test_bad_input_gives_one_line_error(tmp_path):
    cases = [["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")],
             ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")],
             ["evaluate", str(tmp_path)],
             ["predict", str(tmp_path), str(tmp_path / "x.png")]]
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 4, 4)))
    cases.append(["train", "--data", str(tmp_path / "wrong.npz"), "--out", str(tmp_path / "r")])
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(tmp_path) in lines[0], lines


def test_models_lists_the_registry():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "resnet18_small" in result.output and "smallcnn" in result.output

"""`medclass compare`: runs on the same test images, with paired tests of the AUC difference."""

import json

import pytest
from typer.testing import CliRunner

from medclass.cli import app
from medclass.training import TrainConfig, train


@pytest.fixture(scope="module")
def two_runs_one_split(binary_data, youden_run, tmp_path_factory):
    """A second model on the split the youden run used (its splits.csv), and a third on a split of its own."""
    root = tmp_path_factory.mktemp("compare")
    other = root / "other_model"
    train(TrainConfig(data=str(binary_data), out=str(other), model="smallcnn", epochs=2, batch_size=16, seed=1,
                      splits=str(youden_run / "splits.csv"), audit=False, head="mlp"))
    resplit = root / "own_split"
    train(TrainConfig(data=str(binary_data), out=str(resplit), model="smallcnn", epochs=1, batch_size=16, seed=7,
                      audit=False, group_duplicates=False))
    return youden_run, other, resplit


def test_compare_prints_both_paired_tests_on_the_shared_test_images(two_runs_one_split, tmp_path):
    first, second, _ = two_runs_one_split
    result = CliRunner().invoke(app, ["compare", str(first), str(second), "--n-boot", "200", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "DeLong" in result.output and "paired bootstrap" in result.output and "p = " in result.output
    saved = json.loads((tmp_path / "comparison.json").read_text())
    task = saved["tasks"]["label"]
    delong = task["versus_first"][str(second)]["delong"]
    aucs = [task["runs"][str(r)]["auc"] for r in (first, second)]
    assert delong["auc_a"] == pytest.approx(aucs[0]) and delong["auc_b"] == pytest.approx(aucs[1])
    assert delong["difference"] == pytest.approx(aucs[1] - aucs[0]) and 0 <= delong["p_value"] <= 1
    assert saved["images"] == task["n"] == sum(1 for line in (first / "splits.csv").read_text().splitlines()
                                                if ",test," in line)


def test_compare_refuses_runs_scored_on_different_images(two_runs_one_split):
    first, _, resplit = two_runs_one_split
    result = CliRunner().invoke(app, ["compare", str(first), str(resplit)])
    assert result.exit_code == 2 and "different test images" in result.output and "--splits" in result.output


def test_compare_on_other_data_scores_every_run_on_it(two_runs_one_split, binary_data):
    first, _, resplit = two_runs_one_split
    result = CliRunner().invoke(app, ["compare", str(first), str(resplit), "--data", str(binary_data), "--n-boot",
                                      "50", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["images"] == 80


def test_compare_shows_per_class_numbers_and_writes_a_table_and_figures(two_runs_one_split):
    """compare printed AUC and accuracy only, and wrote nothing without --out."""
    import csv

    first, second, _ = two_runs_one_split
    result = CliRunner().invoke(app, ["compare", str(first), str(second), "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    assert "P      R     F1" in result.output and "macro avg" in result.output
    out = first / "comparisons" / f"{second.name}_test"
    assert f"in {out}" in result.output
    rows = list(csv.reader(open(out / "comparison.csv")))
    assert rows[0] == ["task", "class", "number", first.name, second.name]
    saved = json.loads((out / "comparison.json").read_text())["tasks"]["label"]["runs"]
    f1 = {r[1]: r[3:] for r in rows if r[2] == "f1"}
    assert set(f1) == {"benign", "malignant"}
    assert float(f1["malignant"][1]) == pytest.approx(saved[str(second)]["per_class"]["malignant"]["f1"])
    assert "| class |" in (out / "comparison.md").read_text()
    for figure in ("f1_per_class.png", "roc_curves.png"):
        assert (out / figure).stat().st_size > 1000, figure

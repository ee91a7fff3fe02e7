"""`medclass benchmark medmnist` on a tiny MedMNIST-layout file: the table, the record, and its refusals."""

import json

import numpy as np
from typer.testing import CliRunner

from medclass.harness.medmnist import Member, choose_ensemble, score
from medclass.cli import app
from tests.conftest import write_npz

runner = CliRunner()


def test_benchmark_prints_the_table_and_records_the_ensemble(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCLASS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data" / "tinymnist").mkdir(parents=True)
    write_npz(tmp_path / "data" / "tinymnist" / "tinymnist.npz", shape=(24, 28, 28))
    result = runner.invoke(app, ["benchmark", "medmnist", "--datasets", "tinymnist", "--root", str(tmp_path / "data"),
                                 "--minutes", "0.05", "--out", str(tmp_path / "bench")])
    assert result.exit_code == 0, result.output
    assert "MedMNIST v2 ResNet-18 (28) ACC / AUC" in result.output and "| tinymnist | " in result.output
    record = json.loads((tmp_path / "bench" / "tinymnist" / "benchmark.json").read_text())
    assert "auto seed 0" in [m["name"] for m in record["members"]]
    choice = {c["name"]: c["val_log_loss"] for c in record["choice"]}
    assert record["model"] in choice and choice[record["model"]] == min(choice.values())
    assert 0 <= record["accuracy"] <= 1 and record["ci"]["auc"][0] <= record["ci"]["auc"][1]


def test_missing_files_and_bad_budgets_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["benchmark", "medmnist", "--datasets", "breastmnist", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "breastmnist.npz not found in " + str(tmp_path) in result.output
    result = runner.invoke(app, ["benchmark", "medmnist", "--minutes", "0"])
    assert result.exit_code == 2 and "--minutes must be > 0; got 0" in result.output


def test_final_model_is_chosen_on_validation_among_every_combination_of_parts():
    y = np.array([0, 0, 1, 1, 0, 1])
    good = np.array([[.9, .1], [.8, .2], [.3, .7], [.2, .8], [.6, .4], [.45, .55]])
    noise = np.array([[.4, .6], [.3, .7], [.6, .4], [.7, .3], [.5, .5], [.5, .5]])
    member = lambda name, proba: Member(name, proba, lambda: proba, 1.0)
    seeds = [member("seed 0", good), member("seed 1", good)]
    chosen, _ = choose_ensemble({"CNN seed": seeds, "features": [member("features", noise)]}, y, positive=1)
    assert chosen.name == "2 CNN seeds averaged" and chosen.seconds == 2.0  # the noisy features lower val AUC
    np.testing.assert_allclose(chosen.predict_test(), good)
    chosen, _ = choose_ensemble({"CNN seed": [member("seed 0", noise)], "features": [member("features", good)]}, y,
                             positive=1)
    assert chosen.name != "seed 0" and chosen.val_auc == 1.0
    chosen, _ = choose_ensemble({"CNN seed": [], "features": [member("features", noise)]}, y, positive=1)
    assert chosen.name == "features"
    # parts that each make one confident mistake, on different images, are best together
    a = np.array([[.1, .9], [.8, .2], [.2, .8], [.2, .8], [.8, .2], [.2, .8]])
    b = np.array([[.8, .2], [.1, .9], [.2, .8], [.2, .8], [.8, .2], [.2, .8]])
    chosen, _ = choose_ensemble({"CNN seed": [member("a", a)], "fine-tuned seed": [member("b", b)]}, y, 1)
    alone = member("a", a)
    score(alone, y, 1)
    assert chosen.name == "a + b" and chosen.val_log_loss < 0.45 < alone.val_log_loss
    np.testing.assert_allclose(chosen.predict_test(), (a + b) / 2)
    # a weak third part is left out of the strong pair rather than averaged into every combination
    chosen, candidates = choose_ensemble({"CNN seed": [member("a", a)], "fine-tuned seed": [member("b", b)],
                                          "features": [member("noise", noise)]}, y, 1)
    assert len(candidates) == 7 and "a + b + noise" in [c.name for c in candidates]
    assert chosen.name == "a + b"
    # a perfect ranking whose probabilities all sit below 0.5 (argmax: class 0 for all) loses to a calibrated
    # model that ranks one pair wrong: log loss decides, not AUC, since the table reports the argmax's ACC too
    squashed = np.array([[1 - p, p] for p in (.05, .1, .4, .45, .2, .35)])
    calibrated = np.array([[1 - p, p] for p in (.1, .2, .8, .9, .4, .3)])
    chosen, _ = choose_ensemble({"CNN seed": [member("squashed", squashed)],
                              "fine-tuned seed": [member("calibrated", calibrated)]}, y, 1)
    assert chosen.name == "calibrated" and chosen.val_auc < 1
    assert (chosen.val_proba.argmax(1) == y).mean() > (squashed.argmax(1) == y).mean()

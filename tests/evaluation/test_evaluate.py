"""evaluate_run on a trained run: the split it scores, the files it writes."""

import json

from medclass.evaluation import evaluate_run


def test_evaluate_scores_the_recorded_test_split_and_writes_a_report(trained_run, tmp_path):
    metrics, out = evaluate_run(trained_run, split="test", out_dir=tmp_path / "eval", n_boot=50)
    test_sources = [line.split(",")[0] for line in (trained_run / "splits.csv").read_text().splitlines()[1:]
                    if line.split(",")[1] == "test"]
    assert metrics["n"] == len(test_sources) == sum(map(sum, metrics["confusion_matrix"]))
    assert json.loads((out / "metrics.json").read_text())["auc"] == metrics["auc"]
    predicted = (out / "predictions.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",")[0] for line in predicted) == sorted(test_sources)
    report = (out / "report.html").read_text()
    assert "Confusion matrix" in report and "ROC curve" in report and "data:image/png;base64," in report
    assert metrics["auc_kind"] == "macro one-vs-rest"

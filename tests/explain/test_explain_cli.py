"""`medclass localize-eval` end to end on a tiny demo run."""

import csv
import json

from typer.testing import CliRunner

from medclass.cli import app

runner = CliRunner()


def test_localize_eval_scores_the_runs_test_split_with_attached_boxes(trained_run, demo_data, tmp_path):
    out = tmp_path / "loc"
    result = runner.invoke(app, ["localize-eval", str(trained_run), str(demo_data), "--boxes",
                                 str(demo_data / "boxes.csv"), "--out", str(out), "--seed", "3", "--overlays", "2"])
    assert result.exit_code == 0, result.output
    assert "| class | n | gradcam IoBB>0.1 |" in result.output and "otsu pointing" in result.output
    assert "| overall |" in result.output and "Wang" not in result.output  # not NIH findings
    saved = json.loads((out / "localization.json").read_text())
    assert saved["seed"] == 3 and set(saved["scores"]) == {"gradcam", "gradcam/random", "otsu", "otsu/random"}
    assert saved["settings"]["otsu_polarity"] == "auto" and saved["methods"] == ["gradcam", "otsu"]
    tested = {row["source"] for row in csv.DictReader(open(trained_run / "splits.csv")) if row["split"] == "test"}
    boxed_in_test = sum(1 for s in tested if "normal" not in s)
    assert saved["n_images"] == boxed_in_test > 0  # only the run's test images with a lesion
    assert saved["scores"]["gradcam"]["overall"]["n"] == boxed_in_test
    assert len(list((out / "overlays").glob("*.png"))) == 4  # two pairs, gradcam and otsu


def test_localize_eval_reads_boxes_from_other_data_a_csv_with_box_columns(trained_run, demo_data, tmp_path):
    """Data other than the run's: every boxed image counts, whatever split the run gave it."""
    labels = tmp_path / "labels.csv"
    rows = list(csv.DictReader(open(demo_data / "boxes.csv")))
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows([[str(demo_data / r["filename"]), r["label"], r["xmin"], r["ymin"], r["xmax"], r["ymax"]]
                          for r in rows])
    result = runner.invoke(app, ["localize-eval", str(trained_run), str(labels), "--method", "gradcam++,otsu",
                                 "--polarity", "dark", "--out", str(tmp_path / "loc"), "--overlays", "0"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "loc" / "localization.json").read_text())
    assert saved["n_images"] == len(rows) and set(saved["scores"]) >= {"gradcam++", "gradcam++/random"}


def test_localize_eval_without_boxes_or_with_an_unknown_method_says_so(trained_run, demo_data, tmp_path):
    result = runner.invoke(app, ["localize-eval", str(trained_run), str(demo_data), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "no image in the run's test split has a bounding box; expected box columns" in result.output
    result = runner.invoke(app, ["localize-eval", str(trained_run), str(demo_data), "--boxes",
                                 str(demo_data / "boxes.csv"), "--method", "gradcam,scorecam"])
    assert result.exit_code == 2 and "--method gradcam,scorecam: expected a comma-separated list of gradcam" \
        in result.output
    empty = tmp_path / "boxes.csv"
    empty.write_text("filename,label\nbenign/benign_0000.png,benign\n")
    result = runner.invoke(app, ["localize-eval", str(trained_run), str(demo_data), "--boxes", str(empty)])
    assert result.exit_code == 2 and "boxes.csv: no box columns; expected xmin,ymin,xmax,ymax" in result.output
    stranger = tmp_path / "other.csv"
    stranger.write_text("filename,label,xmin,ymin,xmax,ymax\nelsewhere/x.png,benign,1,1,5,5\n")
    result = runner.invoke(app, ["localize-eval", str(trained_run), str(demo_data), "--boxes", str(stranger)])
    assert result.exit_code == 2 and "other.csv: none of its 1 images is in" in result.output

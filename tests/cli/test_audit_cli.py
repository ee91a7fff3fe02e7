"""`medclass audit` through typer's CliRunner, on tiny class folders written to tmp_path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medclass.cli import app

runner = CliRunner()


def pattern(seed: int) -> np.ndarray:
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((64, 64), Image.Resampling.NEAREST))


def write_split_folders(root, leak: bool):
    """train/test with two classes; with `leak`, one test image is a copy of a training image."""
    for split in ("train", "test"):
        for label, offset in (("a", 0), ("b", 50)):
            for k in range(5):
                (root / split / label).mkdir(parents=True, exist_ok=True)
                seed = offset + k + (100 if split == "test" else 0)
                Image.fromarray(pattern(seed)).save(root / split / label / f"{k}.png")
    if leak:
        Image.fromarray(pattern(0)).save(root / "test" / "a" / "copy_of_train_a0.png")
    return root


@pytest.fixture
def leaky(tmp_path):
    return write_split_folders(tmp_path / "leaky", leak=True)


@pytest.fixture
def clean(tmp_path):
    return write_split_folders(tmp_path / "clean", leak=False)


def test_json_goes_to_stdout_alone_and_has_the_keys(leaky):
    result = runner.invoke(app, ["audit", str(leaky), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"corrupt", "duplicates", "cross_split_duplicates", "conflicting_label_duplicates", "near_duplicates",
            "masks", "size_artefacts", "patient_leaks", "summary"} <= set(report)
    assert report["summary"]["cross_split_duplicate_images"] == {"test": 1, "train": 1}
    assert "decoded" in result.stderr  # progress stays on stderr


def test_progress_is_one_summary_line_when_not_on_a_terminal(leaky, tmp_path):
    result = runner.invoke(app, ["audit", str(leaky), "--out", str(tmp_path / "a.json")])
    decoded = [line for line in result.stderr.splitlines() if "decoded" in line]
    assert len(decoded) == 1 and decoded[0].startswith("audit: decoded 21/21 images in "), result.stderr


def test_classes_missing_from_a_split_and_patients_per_split_are_reported(clean):
    shutil.rmtree(clean / "test" / "b")  # b now has no test image
    result = runner.invoke(app, ["audit", str(clean), "--patient-pattern", r"^(\d)\.png$"])
    assert result.exit_code == 0, result.output
    assert "classes missing from a split or too small to split: 1" in result.stdout
    assert "class 'b' has no test image (train 5, test 0)" in result.stdout
    header, *rows = [line.split() for line in result.stdout.splitlines()[2:5]]
    assert header == ["split", "a", "b", "total", "patients"]
    assert rows == [["train", "5", "5", "10", "5"], ["test", "5", "0", "5", "5"]]


def test_text_report_by_default(leaky):
    result = runner.invoke(app, ["audit", str(leaky)])
    assert result.exit_code == 0
    assert "cross-split duplicate groups: 1" in result.stdout
    assert "leakage found: YES" in result.stdout


def test_strict_fails_only_when_leakage_is_found(leaky, clean):
    assert runner.invoke(app, ["audit", str(leaky), "--strict"]).exit_code == 1
    assert runner.invoke(app, ["audit", str(clean), "--strict"]).exit_code == 0


def test_out_writes_the_json_report(clean, tmp_path):
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", str(clean), "--out", str(out)])
    assert result.exit_code == 0
    assert json.loads(out.read_text())["summary"]["leakage_found"] is False


def test_missing_path_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "nowhere"
    result = runner.invoke(app, ["audit", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and str(missing) in result.stderr


def test_a_class_table_per_task(tmp_path):
    lines = ["filename,organ,malignancy,split"]
    for i in range(8):
        Image.fromarray(pattern(i)).save(tmp_path / f"{i}.png")
        malignancy = "" if i == 7 else "benign" if i < 4 else "malignant"
        lines.append(f"{i}.png,{'liver' if i % 2 else 'lung'},{malignancy},{'train' if i < 6 else 'test'}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["audit", str(tmp_path / "labels.csv"), "--tasks", "organ,malignancy"])
    assert result.exit_code == 0, result.output
    text = result.stdout.splitlines()
    assert text[0].endswith("8 images, target 'organ' (tasks learned: organ, malignancy)")
    assert [line.split() for line in text[2:5]] == [["split", "liver", "lung", "total"], ["train", "3", "3", "6"],
                                                     ["test", "1", "1", "2"]]
    assert text[6:11] == ["task 'malignancy' (binary):"] + text[7:10] + ["1 image(s) without a label for 'malignancy'"]
    assert [line.split() for line in text[7:10]] == [["split", "benign", "malignant", "total"],
                                                     ["train", "4", "2", "6"], ["test", "0", "1", "1"]]
    assert "  - task 'malignancy': class 'benign' has no test image (train 4, test 0)" in text
    report = json.loads(runner.invoke(app, ["audit", str(tmp_path / "labels.csv"), "--tasks", "organ,malignancy",
                                            "--json"]).stdout)
    assert report["tasks"]["malignancy"]["unlabelled"] == 1 and report["tasks"]["organ"]["kind"] == "binary"

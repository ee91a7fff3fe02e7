"""CSV files as people save them, through the CLI: a latin-1 label file trains and audits under its right class
names; broken ones (duplicate headers, an undecodable byte, a cell past the field limit) end in one line, exit 2."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from medclass.cli import app

runner = CliRunner()
CLASSES = {"bénin": "benign", "malin": "malignant"}  # accented names -> the demo's class folders


def latin1_data(demo_data, root, encoding="latin-1"):
    """12 demo images per class in accented folders, listed by a latin-1 labels.csv, and one image from outside
    the CSV's folder (by '../')."""
    lines = ["filename,label"]
    for name, demo in CLASSES.items():
        (root / "data" / name).mkdir(parents=True)
        for k in range(1, 13):
            shutil.copy(demo_data / demo / f"{demo}_{k:04d}.png", root / "data" / name / f"é_{k}.png")
            lines.append(f"{name}/é_{k}.png,{name}")
    shutil.copy(demo_data / "benign" / "benign_0013.png", root / "outside.png")
    lines.append("../outside.png,bénin")
    path = root / "data" / "labels.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def one_line_error(result, *parts):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, lines
    assert all(part in lines[0] for part in parts), lines[0]


def test_a_latin1_csv_trains_and_audits_under_its_accented_class_names(demo_data, tmp_path):
    csv = latin1_data(demo_data, tmp_path)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(csv), "--model", "smallcnn", "--epochs", "1",
                                 "--batch-size", "8", "--img-size", "16", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "read as cp1252" in result.stderr
    assert "1 image(s) listed in" in result.stderr and "lie outside its folder" in result.stderr
    assert json.loads((run / "audit.json").read_text())["classes"] == ["bénin", "malin"]

    result = runner.invoke(app, ["audit", str(csv)])
    assert result.exit_code == 0, result.output
    assert "split  bénin  malin" in result.stdout
    assert "images outside the CSV's folder (followed): 1" in result.stdout
    assert "row 26: ../outside.png: '..' leads out of the CSV's folder" in result.stdout


@pytest.mark.parametrize("content,parts", [
    (b"filename,label,label\na.png,x,y\n", ("column name 'label' appears more than once (columns 2, 3)",)),
    (b"filename,label\na\x81.png,x\n", ("not UTF-8 (byte 0x81 at line 2", "iconv")),
    (b"filename,label\na.png,\"" + b"x" * 140_000 + b"\"\n", ("row 2: a cell of more than 131,072 characters",)),
], ids=["duplicate-header", "undecodable-byte", "huge-cell"])
def test_a_broken_csv_ends_train_audit_and_predict_in_one_line(trained_run, tmp_path, content, parts):
    csv = tmp_path / "labels.csv"
    csv.write_bytes(content)
    for args in (["train", "--data", str(csv), "--out", str(tmp_path / "r")], ["audit", str(csv)],
                 ["predict", str(trained_run), str(csv)]):
        one_line_error(runner.invoke(app, args), str(csv), *parts)

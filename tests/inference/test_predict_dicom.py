"""`medclass predict` over DICOM as PACS exports it: a broken file gets its error in its row and the batch goes on;
pydicom's own test files (many encoders) all get a row; multi-frame files are predicted frame by frame."""

import csv
import os

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_files
from typer.testing import CliRunner

from medclass.cli import app
from tests.data.test_dicom import _dataset, _write
from tests.data.test_dicom_robustness import _bytes, _raw

runner = CliRunner()


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _predict(run, *args):
    result = runner.invoke(app, ["predict", str(run), *map(str, args), "--quiet"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_one_broken_dicom_in_a_folder_gets_its_row_and_every_other_row_is_written(trained_run, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    for i in range(40):  # more than one batch, the broken file in the first
        Image.fromarray(np.full((24, 24), i * 5, np.uint8)).save(folder / f"img_{i:02d}.png")
    broken = _dataset(np.zeros((2, 2), np.uint16))
    _raw(broken, 0x00280008, "IS", b"1A")  # badVR.dcm: a non-numeric NumberOfFrames
    (folder / "img_00_broken.dcm").write_bytes(_bytes(broken))
    result = _predict(trained_run, folder, "--out", tmp_path / "out.csv")
    rows = _rows(tmp_path / "out.csv")
    assert len(rows) == 41 and result.exit_code == 1
    failed = [r for r in rows if r["error"]]
    assert [r["path"] for r in failed] == [str(folder / "img_00_broken.dcm")]
    assert "(0028,0008) NumberOfFrames is '1A'" in failed[0]["error"] and "Traceback" not in result.output
    assert all(r["prediction"] for r in rows if not r["error"])


def test_every_bundled_pydicom_test_file_gets_a_row_without_a_traceback(trained_run, tmp_path):
    files = [f for f in get_testdata_files() if os.path.isfile(f)]
    assert len(files) > 150
    result = _predict(trained_run, *files, "--out", tmp_path / "out.csv", "--batch-size", "64")
    rows = _rows(tmp_path / "out.csv")
    assert [r["path"] for r in rows] == files
    assert "Traceback" not in result.output and "force" not in result.output
    assert all("\n" not in r["error"] for r in rows)
    predicted = {os.path.basename(r["path"]) for r in rows if r["prediction"]}
    # the PACS syntaxes decode: JPEG Lossless (Process 14), JPEG-LS, 12-bit JPEG Extended, JPEG 2000
    assert {"SC_rgb_jpeg_gdcm.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPGExtended.dcm", "GDCMJ2K_TextGBR.dcm",
            "MR_small_jp2klossless.dcm"} <= predicted


def test_frames_all_predicts_one_row_per_frame_and_without_it_the_row_says_so(trained_run, tmp_path):
    frames = np.stack([np.full((8, 8), v, np.uint16) for v in (0, 500, 1000)]).reshape(24, 8)
    multi = _dataset(frames, NumberOfFrames=3)
    multi.Rows = 8
    path = _write(tmp_path, "cine.dcm", multi)
    single = _write(tmp_path, "one.dcm", _dataset(np.arange(64, dtype=np.uint16).reshape(8, 8)))
    plain = _predict(trained_run, path, single, "--out", tmp_path / "plain.csv")
    rows = _rows(tmp_path / "plain.csv")
    assert "frame" not in rows[0] and "has 3 frames" in rows[0]["error"] and "--frames all" in rows[0]["error"]
    assert rows[1]["prediction"] and plain.exit_code == 1

    _predict(trained_run, path, single, "--frames", "all", "--out", tmp_path / "all.csv")
    rows = _rows(tmp_path / "all.csv")
    assert [(os.path.basename(r["path"]), r["frame"]) for r in rows] == \
        [("cine.dcm", "1"), ("cine.dcm", "2"), ("cine.dcm", "3"), ("one.dcm", "1")]
    assert all(r["prediction"] and not r["error"] for r in rows)

    picked = _predict(trained_run, path, single, "--frames", "2", "--out", tmp_path / "two.csv")
    rows = _rows(tmp_path / "two.csv")
    assert [r["frame"] for r in rows] == ["2", "2"] and rows[0]["prediction"]
    assert "has 1 frame(s); frame 2 was asked for" in rows[1]["error"] and picked.exit_code == 1
    # the second frame's probabilities are those of frame 2 in --frames all
    assert rows[0]["p_benign"] == _rows(tmp_path / "all.csv")[1]["p_benign"]


@pytest.mark.parametrize("value", ["0", "first", "-1"])
def test_a_bad_frames_value_is_refused_with_what_is_expected(trained_run, tmp_path, value):
    path = _write(tmp_path, "one.dcm", _dataset(np.zeros((4, 4), np.uint16)))
    result = runner.invoke(app, ["predict", str(trained_run), str(path), "--frames", value])
    assert result.exit_code != 0 and "expected 'all' or a frame number from 1" in result.output

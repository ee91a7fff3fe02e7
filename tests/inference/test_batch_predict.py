"""Prediction over files (CSV lists, DICOM without a suffix, streaming batches, many processes) and `sample`."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from typer.testing import CliRunner

from medclass.cli import app
from medclass.data.images import read_image
from medclass.core.errors import MedclassError
from medclass.inference import Predictor
from medclass.inference.batch import expand_inputs, iter_predictions
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset
from tests.training.test_ddp import child_environment

runner = CliRunner()


def write_dicom_without_suffix(path, pixels: np.ndarray) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    dcmwrite(path, ds, enforce_file_format=True)


def test_a_csv_list_keeps_its_order_and_reports_missing_and_unreadable_files(trained_run, demo_data, tmp_path):
    listed = ["malignant/malignant_0003.png", "normal/normal_0001.png", "gone.png", "benign/benign_0002.png"]
    (tmp_path / "list.csv").write_text("path,note\n" + "".join(f"{p},x\n" for p in listed))
    for p in listed:
        if p != "gone.png":
            (tmp_path / p).parent.mkdir(exist_ok=True)
            (tmp_path / p).write_bytes((demo_data / p).read_bytes())
    predictor = Predictor.from_run(trained_run)
    paths = expand_inputs([tmp_path / "list.csv"])
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == listed
    rows = list(iter_predictions(predictor, paths, batch_size=2))
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert "gone.png" in rows[2]["error"] and rows[2]["proba"] is None
    # streamed two at a time, the same probabilities as one call on the readable images
    readable = [p for p in paths if p.exists()]
    expected = predictor.predict_proba([read_image(p) for p in readable])
    got = np.array([r["proba"]["label"] for r in rows if not r["error"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_file_too_big_for_memory_gets_its_row_and_the_batch_goes_on(trained_run, demo_data, monkeypatch):
    from medclass.inference import batch

    paths = sorted(demo_data.rglob("*.png"))[:3]
    real_read = batch.read_input

    def read_short_of_memory(path):
        if path == paths[1]:
            raise MemoryError()
        return real_read(path)

    monkeypatch.setattr(batch, "read_input", read_short_of_memory)
    rows = list(iter_predictions(Predictor.from_run(trained_run), paths))
    assert [bool(r["error"]) for r in rows] == [False, True, False]
    assert "not enough memory" in rows[1]["error"] and str(paths[1]) in rows[1]["error"]


def test_an_empty_cell_in_a_csv_list_is_named(tmp_path):
    (tmp_path / "list.csv").write_text("path\na.png\n\n ,\n")
    with pytest.raises(MedclassError, match=r"list.csv, row 3: empty 'path' cell"):
        expand_inputs([tmp_path / "list.csv"])


def test_paths_pil_images_arrays_and_a_dicom_without_suffix_predict_alike(trained_run, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (40, 40)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "scan.png")
    write_dicom_without_suffix(tmp_path / "1.2.840.99", pixels)
    predictor = Predictor.from_run(trained_run)
    from_pil = predictor.predict_proba([Image.fromarray(pixels)])
    for item in (tmp_path / "scan.png", pixels, tmp_path / "1.2.840.99"):
        np.testing.assert_allclose(predictor.predict_proba([item]), from_pil, atol=1e-6)


def test_sample_draws_only_test_images_and_the_seed_draws_them_again(trained_run, tmp_path):
    test_sources = {s.source for s in run_dataset(RunDir(trained_run), "test").samples}
    result = runner.invoke(app, ["sample", str(trained_run), "--n", "5", "--seed", "7", "--out",
                                 str(tmp_path / "grid.png")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "->" in line]
    assert len(lines) == 5 and "seed 7" in result.output
    names = {line.split("\t")[0] for line in lines}
    assert names <= {s.rsplit("/", 1)[-1] for s in test_sources}
    assert Image.open(tmp_path / "grid.png").size[0] > 200
    again = runner.invoke(app, ["sample", str(trained_run), "--n", "5", "--seed", "7", "--out",
                                str(tmp_path / "again.png")])
    assert [line for line in again.output.splitlines() if "->" in line] == lines


def test_two_processes_write_one_csv_in_input_order_equal_to_one_process(trained_run, demo_data, tmp_path):
    files = sorted(demo_data.rglob("*.png"))[:13]  # odd: the distributed sampler pads one share
    (tmp_path / "broken.png").write_text("not an image")
    inputs = [str(f) for f in files[:6]] + [str(tmp_path / "broken.png")] + [str(f) for f in files[6:]]
    single = runner.invoke(app, ["predict", str(trained_run), *inputs, "--out", str(tmp_path / "one.csv"), "--quiet"])
    assert single.exit_code == 1  # the broken file
    command = [sys.executable, "-m", "medclass", "predict", str(trained_run), *inputs, "--out",
               str(tmp_path / "two.csv"), "--devices", "2", "--accelerator", "cpu", "--batch-size", "4"]
    done = subprocess.run(command, capture_output=True, text=True, env=child_environment(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = list(csv.DictReader(open(tmp_path / "one.csv")))
    two = list(csv.DictReader(open(tmp_path / "two.csv")))
    assert [r["path"] for r in two] == inputs
    assert two[6]["error"] and not two[6]["prediction"]
    for a, b in zip(one, two):
        assert a["prediction"] == b["prediction"] and a["error"] == b["error"]
        for key in ("p_benign", "p_malignant", "p_normal"):
            assert a[key] == b[key] or abs(float(a[key]) - float(b[key])) < 1e-5


def test_predict_explain_writes_an_overlay_per_readable_image_for_the_class_it_answers(trained_run, demo_data,
                                                                                       tmp_path):
    inputs = [str(demo_data / "malignant" / "malignant_0004.png"), str(demo_data / "benign" / "benign_0005.png")]
    (tmp_path / "broken.png").write_text("not an image")
    for method in ("gradcam", "otsu"):
        folder = tmp_path / method
        result = runner.invoke(app, ["predict", str(trained_run), *inputs, str(tmp_path / "broken.png"), "--out",
                                     str(tmp_path / f"{method}.csv"), "--explain", method, "--explain-dir",
                                     str(folder)])
        assert result.exit_code == 1, result.output  # the broken file, reported; the others explained
        predicted = list(csv.DictReader(open(tmp_path / f"{method}.csv")))
        explained = list(csv.DictReader(open(folder / "explanations.csv")))
        assert [r["path"] for r in explained] == inputs
        for p, e in zip(predicted, explained):
            assert e["class"] == p["prediction"] and e["method"] == method
            assert abs(float(e["probability"]) - float(p[f"p_{e['class']}"])) < 1e-5
            assert Image.open(e["overlay"]).size[0] >= 256 and float(e["x1"]) > float(e["x0"])
    refused = runner.invoke(app, ["predict", str(trained_run), inputs[0], "--explain", "magic"])
    assert refused.exit_code == 2 and "--explain must be one of" in refused.stderr


def test_predict_otsu_boxes_take_the_runs_modality_and_go_to_the_csv(trained_run, demo_data, tmp_path):
    """A run trained with --modality ultrasound: Otsu boxes dark lesions without --polarity; --polarity wins; the
    best box (original pixels) and its score are in the --out CSV, as the Python result holds them."""
    import shutil

    from medclass.explain import explain
    from medclass.inference import ModelArtifact

    run = shutil.copytree(trained_run, tmp_path / "ultrasound")
    artifact = ModelArtifact.load(run)
    artifact.modality = "ultrasound"
    artifact.save(run)
    image = demo_data / "malignant" / "malignant_0004.png"
    for flags, polarity in (([], "dark"), (["--polarity", "bright"], "bright")):
        out, folder = tmp_path / f"{polarity}.csv", tmp_path / polarity
        result = runner.invoke(app, ["predict", str(run), str(image), "--out", str(out), "--explain", "otsu",
                                     "--explain-dir", str(folder), *flags])
        assert result.exit_code == 0, result.output
        assert f"explanations (otsu, polarity {polarity})" in result.output
        row, = csv.DictReader(open(out))
        explained, = csv.DictReader(open(folder / "explanations.csv"))
        assert explained["polarity"] == polarity
        expected = explain(Predictor(run), [str(image)], "otsu", polarity=None if not flags else polarity)[0]
        assert expected.polarity == polarity
        best = expected.boxes[0]
        assert [float(row[f"box_{k}"]) for k in ("x0", "y0", "x1", "y1")] == pytest.approx(best.corners(), abs=0.05)
        assert float(row["box_score"]) == pytest.approx(best.score, rel=1e-3)
        assert 0 <= best.x0 < best.x1 <= 32 and 0 <= best.y0 < best.y1 <= 32
    refused = runner.invoke(app, ["predict", str(run), str(image), "--polarity", "dark"])
    assert refused.exit_code == 2 and "--polarity shape(s) explanations: add --explain METHOD" in refused.output
    refused = runner.invoke(app, ["predict", str(run), str(image), "--explain", "otsu", "--polarity", "dim"])
    assert refused.exit_code == 2 and "--polarity must be one of auto, dark, bright; got 'dim'" in refused.output


def test_probability_columns_are_safe_names_and_the_guide_keeps_the_class_names(tmp_path):
    """ChestX-ray "Mass vs rest": a class named "no Mass" made a column `p_no Mass`; the CSV says nothing of the
    threshold behind its `prediction` column."""
    import json

    from medclass.core.heads import TaskHead
    from medclass.inference.batch import PredictionWriter, column_guide_path

    mass = TaskHead("label", "binary", ("no Mass", "Mass"), positive_index=1, threshold=0.31,
                    threshold_source="sensitivity:0.9 on val")
    clash = TaskHead("Finding Labels", "multiclass", ("a b", "a-b", "ünï", "3"))
    out = tmp_path / "predictions.csv"
    with PredictionWriter(out, [mass, clash]):
        pass
    header = next(csv.reader(open(out)))
    assert header == ["path", "label:prediction", "label:p_no_Mass", "label:p_Mass", "Finding_Labels:prediction",
                      "Finding_Labels:p_0", "Finding_Labels:p_1", "Finding_Labels:p_n", "Finding_Labels:p_3",
                      "in_distribution", "guard_score", "guard_reasons", "error"]
    assert all(" " not in column for column in header)
    guide = json.loads(column_guide_path(out).read_text())
    assert column_guide_path(out).name == "predictions.columns.json"
    assert [c["name"] for c in guide["columns"]] == header
    by_name = {c["name"]: c for c in guide["columns"]}
    assert by_name["label:p_no_Mass"]["class"] == "no Mass" and by_name["Finding_Labels:p_1"]["class"] == "a-b"
    assert guide["tasks"]["label"]["threshold"] == 0.31
    assert "sensitivity:0.9 on val" in by_name["label:prediction"]["holds"]

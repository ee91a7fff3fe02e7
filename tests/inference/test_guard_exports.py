"""The input guard through the exports: ONNX Runtime and ncnn flag the same images as PyTorch (the graphs output
the pooled features, the guard's tensors travel beside them), old or incomplete exports are refused by name, and
the predictions CSV and the printed lines show each image's answer."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medclass.cli import app
from medclass.core.artifact import ModelArtifact
from medclass.core.errors import MedclassError
from medclass.export.common import guard_file
from medclass.inference import load_predictor
from medclass.inference.batch import GUARD_COLUMNS, column_guide_path

SCORE_TOLERANCE = 1e-3  # relative guard score difference allowed between a runtime and PyTorch (features: 1e-5)


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory):
    """A copy of the tiny guarded run: these tests export into it and change its artefact."""
    return shutil.copytree(trained_run, tmp_path_factory.mktemp("guarded") / "run")


@pytest.fixture(scope="module")
def inputs(demo_data, tmp_path_factory):
    """Four training-like images and four foreign ones: noise, a blank image, a colour photo, a 10:1 image."""
    folder = tmp_path_factory.mktemp("inputs")
    for k, path in enumerate(sorted(demo_data.rglob("*.png"))[::11][:4]):
        shutil.copy(path, folder / f"demo_{k}.png")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    photo = np.stack([xx * 5, yy * 5, 255 - xx * 5], -1).clip(0, 255).astype(np.uint8)  # a colourful gradient
    foreign = {"noise": Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)),
               "blank": Image.new("L", (32, 32), 7), "photo": Image.fromarray(photo),
               "wide": Image.fromarray(rng.integers(0, 256, (20, 200), dtype=np.uint8))}
    for name, image in foreign.items():
        image.save(folder / f"foreign_{name}.png")
    return folder


def predicted(run_path, inputs, out, backend: str) -> tuple[list[dict], str]:
    result = CliRunner().invoke(app, ["predict", str(run_path), str(inputs), "--out", str(out), "--backend", backend])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(open(out))), result.stdout


def same_answers(reference: list[dict], got: list[dict]) -> None:
    assert [r["path"] for r in got] == [r["path"] for r in reference]
    assert [r["in_distribution"] for r in got] == [r["in_distribution"] for r in reference]
    np.testing.assert_allclose([float(g["guard_score"]) for g in got], [float(r["guard_score"]) for r in reference],
                               rtol=SCORE_TOLERANCE, atol=1e-7)


def test_onnx_and_ncnn_flag_the_images_torch_flags(run, inputs, tmp_path):
    torch_rows, printed = predicted(run, inputs, tmp_path / "torch.csv", "torch")
    flags = {r["path"].rsplit("/", 1)[1]: r["in_distribution"] for r in torch_rows}
    assert all(flag == "false" for name, flag in flags.items() if name.startswith("foreign_")), flags
    assert "true" in flags.values() and all(r["guard_score"] for r in torch_rows)
    assert {line.split("\t")[0].rsplit("/", 1)[1] for line in printed.splitlines() if "FLAGGED: " in line} == \
        {name for name, flag in flags.items() if flag == "false"}
    blank = next(r for r in torch_rows if r["path"].endswith("foreign_blank.png"))
    assert "blank" in blank["guard_reasons"] or "constant" in blank["guard_reasons"], blank["guard_reasons"]
    assert CliRunner().invoke(app, ["export", str(run), "--format", "onnx"]).exit_code == 0
    assert guard_file(run / "model.onnx").name == "model.onnx.guard.safetensors"
    assert guard_file(run / "model.onnx").is_file()
    same_answers(torch_rows, predicted(run, inputs, tmp_path / "onnx.csv", "onnx")[0])
    pytest.importorskip("pnnx", reason="the ncnn extra (pip install 'medclass[ncnn]') is not installed")
    exported = CliRunner().invoke(app, ["export", str(run), "--format", "ncnn"])
    assert exported.exit_code == 0, exported.output
    assert "max |feature diff|" in exported.stdout and (run / "model.ncnn.guard.safetensors").is_file()
    same_answers(torch_rows, predicted(run, inputs, tmp_path / "ncnn.csv", "ncnn")[0])


def test_the_csv_has_the_guard_columns_described(run, inputs, tmp_path):
    rows, _ = predicted(run, inputs, tmp_path / "p.csv", "torch")
    header = list(rows[0])
    assert header[-4:] == [*GUARD_COLUMNS, "error"] and header.index("in_distribution") > header.index("prediction")
    guide = {c["name"]: c["holds"] for c in json.loads(column_guide_path(tmp_path / "p.csv").read_text())["columns"]}
    assert all(guide[name] == holds for name, holds in GUARD_COLUMNS.items())
    unguarded = ModelArtifact.load(run)
    unguarded.guard, unguarded.guard_tensors = None, {}
    bare = tmp_path / "bare"
    bare.mkdir()
    unguarded.save(bare / "model.safetensors")
    rows, _ = predicted(bare / "model.safetensors", inputs, tmp_path / "bare.csv", "torch")
    demo = [r for r in rows if "demo_" in r["path"]]
    assert all(r["in_distribution"] == "" and r["guard_score"] == "" for r in demo)
    blank = next(r for r in rows if r["path"].endswith("foreign_blank.png"))
    assert blank["in_distribution"] == "false" and blank["guard_score"] == "" and blank["guard_reasons"]


def old_style_onnx(artifact: ModelArtifact, path) -> None:
    """An ONNX export as medclass wrote it before the features output: the logits alone."""
    import onnx

    model = artifact.build_model().eval()
    size, chans = artifact.preprocessing.img_size, artifact.preprocessing.in_chans
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(2, chans, size, size),), str(path), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"medclass": json.dumps(artifact.metadata())})
    onnx.save(proto, str(path))


def test_an_export_without_features_is_refused_for_a_guard_that_reads_them(run, inputs, tmp_path):
    from medclass.export.common import write_guard_file

    artifact = ModelArtifact.load(run)
    old = tmp_path / "old.onnx"
    old_style_onnx(artifact, old)
    write_guard_file(artifact, old)
    images = sorted(inputs.glob("demo_*.png"))
    with pytest.raises(MedclassError, match="old.onnx: exported without the pooled features.*export again"):
        load_predictor(old).predictions(images)
    artifact.guard, artifact.guard_tensors = None, {}
    old_style_onnx(artifact, old)  # the same export of an unguarded model still predicts
    answers = load_predictor(old).predictions(images)
    assert len(answers) == 4 and not answers[0].extras["input_guard"]["fitted"]


def test_a_missing_guard_file_is_named(run, tmp_path):
    from medclass.export.onnx import export_onnx

    out = export_onnx(ModelArtifact.load(run), tmp_path / "alone.onnx").path
    guard_file(out).unlink()
    with pytest.raises(MedclassError, match=r"alone\.onnx\.guard\.safetensors: not found.*knn"):
        load_predictor(out)
    pytest.importorskip("pnnx", reason="the ncnn extra (pip install 'medclass[ncnn]') is not installed")
    from medclass.export.ncnn import export_ncnn

    param = export_ncnn(ModelArtifact.load(run), tmp_path / "alone.ncnn.param").path
    (tmp_path / "alone.ncnn.guard.safetensors").unlink()
    with pytest.raises(MedclassError, match=r"alone\.ncnn\.guard\.safetensors: not found"):
        load_predictor(param)


def test_an_export_older_than_the_guard_is_refused(run, tmp_path):
    from medclass.export.onnx import export_onnx

    export_onnx(run)
    artifact = ModelArtifact.load(run)
    artifact.guard = {**artifact.guard, "threshold": artifact.guard["threshold"] * 2}  # as a refitted guard
    artifact.save(run)
    try:
        with pytest.raises(MedclassError, match="model.onnx: exported before .*input guard changed"):
            load_predictor(run, backend="onnx")
    finally:
        artifact.guard = {**artifact.guard, "threshold": artifact.guard["threshold"] / 2}
        artifact.save(run)

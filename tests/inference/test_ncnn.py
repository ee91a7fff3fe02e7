"""ncnn export: every convolutional backbone predicts the same through ncnn (fp32, Winograd) as through PyTorch, the
export's files alone carry what prediction needs, and what ncnn cannot run is refused by name."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medclass.cli import app
from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead
from medclass.inference import ModelArtifact, Predictor, load_predictor
from medclass.export.ncnn import export_ncnn
from medclass.models import list_models
from tests.inference.test_onnx import PARITY, THREE_CLASSES, artifact_for, images

pytest.importorskip("pnnx", reason="the ncnn extra (pip install 'medclass[ncnn]') is not installed")
NOT_CONVERTED = {"vit_tiny_patch16_224": "Tensor.reshape"}  # operations ncnn has no layer for


def spread(artifact: ModelArtifact) -> ModelArtifact:
    """The classifier's weights scaled so that logits spread with std 3: random networks give near-uniform
    probabilities, which would hide differences."""
    model = artifact.build_model().eval()
    size, chans = artifact.preprocessing.img_size, artifact.preprocessing.in_chans
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        logits = model(torch.randn(4, chans, size, size, generator=torch.Generator().manual_seed(5)))
        classifier.weight.mul_(3 / (logits - classifier.bias).std())
    artifact.state_dict = model.state_dict()
    return artifact


@pytest.mark.parametrize("name", list_models())
def test_every_convolutional_model_predicts_the_same_through_ncnn(name, tmp_path):
    artifact = spread(artifact_for(name, THREE_CLASSES))
    if name in NOT_CONVERTED:
        with pytest.raises(MedclassError, match="not a loadable ncnn model"):
            export_ncnn(artifact, tmp_path / "model.param")
        return
    result = export_ncnn(artifact, tmp_path / "model.param")
    assert result.max_prob_diff <= PARITY
    batch = images(5, 48)
    torch_proba = Predictor(artifact).predict_proba(batch)
    predictor = load_predictor(result.path, threads=2)
    assert predictor.backend.name == "ncnn"
    assert np.abs(torch_proba - predictor.predict_proba(batch)).max() <= PARITY, name
    assert torch_proba.max() - torch_proba.min() > 0.1  # probabilities far from uniform: the comparison can fail


def test_a_run_exports_and_predicts_through_ncnn_from_the_cli(tmp_path):
    heads = [TaskHead("malignancy", "binary", ("benign", "malignant"), 1, 0.3, "val, youden")]
    artifact = spread(artifact_for("resnet18_small", heads, in_chans=1))
    artifact.save(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tmp_path), "--format", "ncnn"])
    assert result.exit_code == 0, result.output
    assert "model.ncnn.param" in result.output and "max |probability diff|" in result.output
    parameters = sum(p.numel() for p in artifact.build_model().parameters())
    assert (tmp_path / "model.ncnn.bin").stat().st_size > 3 * parameters  # 4 bytes each: fp32, not pnnx's fp16
    assert json.loads((tmp_path / "model.ncnn.json").read_text())["medclass"]["heads"][0]["threshold"] == 0.3
    gray = [image[..., 0] for image in images(4, 40)]
    expected = Predictor(artifact).predict_proba(gray)
    assert np.abs(load_predictor(tmp_path, backend="ncnn").predict_proba(gray) - expected).max() <= PARITY
    result = runner.invoke(app, ["export", str(tmp_path), "--format", "ncnn", "--int8"])
    assert result.exit_code == 2 and "--int8 and --opset are options of --format onnx" in result.output


def test_ncnn_backend_asks_for_an_export_and_refuses_stale_or_missing_files(tmp_path):
    artifact = artifact_for("smallcnn", THREE_CLASSES)
    artifact.save(tmp_path)
    with pytest.raises(MedclassError, match=f"medclass export {tmp_path} --format ncnn"):
        load_predictor(tmp_path, backend="ncnn")
    export_ncnn(tmp_path)
    artifact.heads = [TaskHead("label", "multiclass", ("a", "b", "c"), temperature=2.0)]  # retuned after export
    artifact.save(tmp_path)
    with pytest.raises(MedclassError, match="exported before the run's thresholds"):
        load_predictor(tmp_path, backend="ncnn")
    (tmp_path / "model.ncnn.json").unlink()
    with pytest.raises(MedclassError, match="model.ncnn.json: not found"):
        load_predictor(tmp_path / "model.ncnn.param")
    (tmp_path / "model.ncnn.bin").unlink()
    with pytest.raises(MedclassError, match="model.ncnn.bin: not found"):
        load_predictor(tmp_path / "model.ncnn.param")
    with pytest.raises(MedclassError, match="an ncnn model is named NAME.param"):
        export_ncnn(artifact, tmp_path / "model.ncnn")


def test_single_images_run_on_a_threaded_copy_with_the_same_logits(tmp_path):
    artifact = spread(artifact_for("resnet18_small", THREE_CLASSES))
    backend = load_predictor(export_ncnn(artifact, tmp_path / "model.param").path, threads=2).backend
    batch = Predictor(artifact).preprocess(images(4, 48)).numpy()
    together = backend(batch)
    assert backend._threaded_net is None  # a full batch runs on the single-threaded workers alone
    one_by_one = np.concatenate([backend(batch[i:i + 1]) for i in range(len(batch))])
    assert backend._threaded_net is not backend.net
    assert np.abs(together - one_by_one).max() <= 1e-4
    assert together.std() > 1  # spread-out logits: the comparison can fail

"""ONNX export: every registered backbone predicts the same through ONNX Runtime as through PyTorch, and the .onnx
file alone carries what prediction needs."""

import shutil

import numpy as np
import pytest
import torch

from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead
from medclass.export.onnx import OnnxBackend, export_onnx
from medclass.inference import ModelArtifact, Predictor, load_predictor
from medclass.models import create_model, list_models, model_entry
from medclass.core.preprocessing import Preprocessing

PARITY = 1e-4  # largest probability difference allowed between ONNX Runtime and PyTorch


def images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """RGB images with structure (a bright blob on a gradient), so left and right differ and hflip TTA matters."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        cy, cx = rng.integers(0, size, 2)
        blob = 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (size / 4) ** 2)
        pixels = blob[..., None] + xx[..., None] * 40 / size + rng.normal(0, 20, (size, size, 3))
        out.append(np.clip(pixels, 0, 255).astype(np.uint8))
    return out


def artifact_for(name: str, heads: list[TaskHead], in_chans: int = 3, **kwargs) -> ModelArtifact:
    size = max(model_entry(name).min_input, 32)
    torch.manual_seed(0)
    outputs = [h.outputs for h in heads]
    model_kwargs = kwargs | ({"task_outputs": outputs} if len(heads) > 1 else {})
    model = create_model(name, sum(outputs), in_chans, **model_kwargs).eval()
    return ModelArtifact(name, heads, Preprocessing(size, in_chans, (0.5,) * in_chans, (0.25,) * in_chans),
                         model.state_dict(), tta=["hflip"], model_kwargs=model_kwargs)


THREE_CLASSES = [TaskHead("label", "multiclass", ("a", "b", "c"))]


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_predicts_the_same_through_onnx_runtime(name, tmp_path):
    artifact = artifact_for(name, THREE_CLASSES)
    result = export_onnx(artifact, tmp_path / "model.onnx")
    assert result.max_prob_diff <= PARITY
    batch = images(3, 48)
    torch_proba = Predictor(artifact).predict_proba(batch)
    onnx_proba = load_predictor(result.path).predict_proba(batch)
    assert np.abs(torch_proba - onnx_proba).max() <= PARITY, (name, result.exporter)


def test_several_tasks_round_trip_through_the_onnx_file_alone(tmp_path):
    heads = [TaskHead("organ", "multiclass", ("Brain", "Breast", "Lung"), temperature=1.7),
             TaskHead("malignancy", "binary", ("benign", "malignant"), 1, 0.3, "val, youden"),
             TaskHead("findings", "multilabel", ("Mass", "Nodule"), threshold=(0.2, 0.7))]
    artifact = artifact_for("resnet18_small", heads, in_chans=1, head="mlp")
    artifact.provenance = {"data": "multi.csv", "seed": 3}
    exported = export_onnx(artifact, tmp_path / "run" / "model.onnx").path
    alone = tmp_path / "elsewhere" / "classifier.onnx"  # no run folder, no safetensors beside it
    alone.parent.mkdir()
    shutil.copy(exported, alone)
    predictor = load_predictor(alone)
    read = predictor.artifact
    assert (read.heads, read.preprocessing, read.tta, read.model_name, read.provenance, read.state_dict) == (
        heads, artifact.preprocessing, ["hflip"], "resnet18_small", {"data": "multi.csv", "seed": 3}, {})
    batch = [b[..., 0] for b in images(5, 40, seed=1)]
    torch_predictor = Predictor(artifact)
    expected, got = torch_predictor.predict_proba(batch), predictor.predict_proba(batch)
    for task in ("organ", "malignancy", "findings"):
        assert np.abs(expected[task] - got[task]).max() <= PARITY
    decided = predictor.predict(batch)
    assert decided["findings"].shape == (5, 2) and set(decided["malignancy"]) <= {"benign", "malignant"}
    with pytest.raises(MedclassError, match="explanations need the torch backend"):
        predictor.model
    with pytest.raises(MedclassError, match="carries no PyTorch weights"):
        read.build_model()


def test_dynamic_batch_and_both_input_types(tmp_path):
    artifact = artifact_for("smallcnn", THREE_CLASSES)
    backend = OnnxBackend(export_onnx(artifact, tmp_path / "m.onnx").path, threads=1)
    model = artifact.build_model()
    for n in (1, 5):
        x = torch.randn(n, 3, 32, 32)
        with torch.no_grad():
            reference = model(x).numpy()
        for batch in (x, x.numpy()):
            logits = backend(batch)
            assert logits.shape == (n, 3) and logits.dtype == np.float32
            np.testing.assert_allclose(logits, reference, atol=1e-5)


def test_onnx_backend_asks_for_an_export_and_refuses_foreign_files(tmp_path):
    artifact_for("smallcnn", THREE_CLASSES).save(tmp_path)
    with pytest.raises(MedclassError, match=f"medclass export {tmp_path} --format onnx"):
        load_predictor(tmp_path, backend="onnx")
    assert load_predictor(tmp_path).backend.name == "torch"
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(MedclassError, match="junk.onnx: not a loadable ONNX model"):
        load_predictor(tmp_path / "junk.onnx")
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), str(plain), dynamo=False)
    with pytest.raises(MedclassError, match="plain.onnx: ONNX model without medclass metadata"):
        load_predictor(plain)
    with pytest.raises(MedclassError, match="backend must be one of torch, onnx"):
        load_predictor(tmp_path, backend="tensorrt")

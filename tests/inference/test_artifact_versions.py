"""Artefacts written by an older medclass keep loading and predicting exactly as they did."""

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from torch.nn import functional as F

from medclass.core.heads import TaskHead
from medclass.inference import ModelArtifact, Predictor
from medclass.models import create_model
from medclass.core.preprocessing import Preprocessing



def fitted_smallcnn(n_classes: int, width: int) -> torch.nn.Module:
    """A small model whose outputs differ from image to image (brightness decides the class)."""
    torch.manual_seed(1)
    model = create_model("smallcnn", n_classes, 1, width=width, drop_rate=0.3)
    x = torch.rand(64, 1, 16, 16)
    y = (x.mean((1, 2, 3)) * n_classes).long().clamp(max=n_classes - 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(model((x - 0.5) / 0.5), y).backward()
        opt.step()
    return model.eval()


def write_format_1(path, model, classes: list[str], threshold: float) -> None:
    """The payload medclass's format-1 writer saved (ModelArtifact.save up to commit 1a0ecb2), key for key: one
    task's classes, positive_index and threshold beside the weights; no head list."""
    torch.save({"model_name": "smallcnn", "classes": classes, "task": "label",
                "positive_index": 1 if len(classes) == 2 else None, "threshold": threshold, "tta": ["hflip"],
                "model_kwargs": {"width": model.features[0][0].out_channels, "drop_rate": 0.3, "head": "linear"},
                "provenance": {"written_by": "tests: format 1"}, "format": "medclass-model", "format_version": 1,
                "preprocessing": {"img_size": 16, "in_chans": 1, "mean": [0.5], "std": [0.5],
                                  "interpolation": "bilinear"},
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}, path)


def format_1_prediction(model, images, classes, threshold):
    """What format 1 meant: resize to 16 px, scale to [-1, 1], softmax averaged over the image and its mirror;
    binary: the positive class (index 1) where its probability >= threshold, else the argmax."""
    x = torch.stack([Preprocessing(16, 1, (0.5,), (0.5,)).eval_transform()(Image.fromarray(i)) for i in images])
    with torch.no_grad():
        proba = torch.stack([model(v).softmax(1) for v in (x, x.flip(-1))]).mean(0).numpy()
    index = (proba[:, 1] >= threshold).astype(int) if len(classes) == 2 else proba.argmax(1)
    return proba, [classes[i] for i in index]


def test_format_1_artefacts_load_as_one_head_and_predict_as_format_1_did(tmp_path):
    rng = np.random.default_rng(0)
    levels = np.array([20, 60, 100, 150, 200, 240])
    images = list(np.clip(levels[:, None, None] + rng.normal(0, 25, (6, 20, 20)), 0, 255).astype(np.uint8))
    for classes, width, threshold in ((["benign", "malignant"], 8, 0.6), (["a", "b", "c"], 4, 0.5)):
        model = fitted_smallcnn(len(classes), width)
        path = tmp_path / f"{len(classes)}.pt"
        write_format_1(path, model, classes, threshold)
        proba, labels = format_1_prediction(model, images, classes, threshold)
        predictor = Predictor(path)
        np.testing.assert_allclose(predictor.predict_proba(images), proba, rtol=0, atol=1e-6)
        assert predictor.predict(images).tolist() == labels
        if len(classes) == 2:
            assert len(set(labels)) == 2  # the threshold is exercised on both sides
            binary = ModelArtifact.load(path)
            assert binary.heads == [TaskHead("label", "binary", ("benign", "malignant"), 1, 0.6)]
            assert (binary.classes, binary.positive_index, binary.threshold) == (classes, 1, 0.6)
            resaved = binary.save(tmp_path / "resaved.safetensors")  # saved again: format 3, same predictions
            assert safe_open(resaved, "pt").metadata()["format_version"] == "3"
            np.testing.assert_array_equal(Predictor(resaved).predict_proba(images), predictor.predict_proba(images))


def test_two_task_artefact_round_trip_keeps_heads_and_outputs(tmp_path):
    heads = [TaskHead("organ", "multiclass", ("Brain", "Breast", "Lung")),
             TaskHead("malignancy", "binary", ("benign", "malignant"), 1, 0.3),
             TaskHead("findings", "multilabel", ("Mass", "Nodule"), threshold=(0.2, 0.7))]
    kwargs = {"width": 4, "head": "mlp", "drop_rate": 0.0, "task_outputs": [3, 2, 2]}
    model = create_model("smallcnn", 7, 1, **kwargs).eval()
    artifact = ModelArtifact("smallcnn", heads, Preprocessing(16, 1, (0.5,), (0.5,)), model.state_dict(),
                             model_kwargs=kwargs)
    loaded = ModelArtifact.load(artifact.save(tmp_path))
    assert loaded.heads == heads and loaded.heads[2].threshold == (0.2, 0.7)
    images = [np.full((16, 16), v, np.uint8) for v in (10, 120, 250)]
    proba = Predictor(loaded).predict_proba(images)
    assert set(proba) == {"organ", "malignancy", "findings"}
    assert [p.shape for p in proba.values()] == [(3, 3), (3, 2), (3, 2)]
    np.testing.assert_allclose(proba["organ"].sum(1), 1, atol=1e-6)  # softmax per single-label head
    assert not np.allclose(proba["findings"].sum(1), 1)  # a sigmoid per finding


def test_modality_and_description_are_kept_and_older_format_3_files_load_without_them(tmp_path):
    model = create_model("smallcnn", 2, 1)
    artifact = ModelArtifact.single_task("smallcnn", ["benign", "malignant"], Preprocessing(16, 1, (0.5,), (0.5,)),
                                         model.state_dict(), positive_index=1, modality="ultrasound",
                                         description="BUSI benign vs malignant, research only")
    loaded = ModelArtifact.load(artifact.save(tmp_path / "new.safetensors"))
    assert (loaded.modality, loaded.description) == ("ultrasound", "BUSI benign vs malignant, research only")
    older = {k: v for k, v in artifact.metadata().items() if k not in ("modality", "description")}
    before = ModelArtifact.from_metadata(older, model.state_dict(), "older.safetensors")
    assert (before.modality, before.description) == (None, "")

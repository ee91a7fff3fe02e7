"""Artefacts written by an older medclass keep loading and predicting exactly as they did."""

import json
from pathlib import Path

import numpy as np

from medclass.heads import TaskHead
from medclass.inference import ModelArtifact, Predictor
from medclass.models import create_model
from medclass.transforms import Preprocessing

FIXTURES = Path(__file__).parent.parent / "fixtures" / "artifact_v1"


def test_format_1_artefacts_load_as_one_head_and_predict_what_they_predicted():
    images = list(np.load(FIXTURES / "inputs.npz")["images"])
    expected = json.loads((FIXTURES / "expected.json").read_text())
    for name in ("binary", "multiclass"):
        payload = __import__("torch").load(FIXTURES / f"{name}.pt", weights_only=True)
        assert payload["format_version"] == 1 and "heads" not in payload  # really the old format
        predictor = Predictor(FIXTURES / f"{name}.pt")
        np.testing.assert_allclose(predictor.predict_proba(images), expected[name]["proba"], rtol=0, atol=1e-6)
        assert predictor.predict(images).tolist() == expected[name]["predict"]
    binary = ModelArtifact.load(FIXTURES / "binary.pt")
    assert binary.heads == [TaskHead("label", "binary", ("benign", "malignant"), 1, 0.6)]
    assert (binary.classes, binary.positive_index, binary.threshold) == (["benign", "malignant"], 1, 0.6)


def test_a_format_1_artefact_saved_again_is_format_2_and_predicts_the_same(tmp_path):
    images = list(np.load(FIXTURES / "inputs.npz")["images"])
    old = ModelArtifact.load(FIXTURES / "binary.pt")
    path = old.save(tmp_path / "model.pt")
    assert __import__("torch").load(path, weights_only=True)["format_version"] == 2
    np.testing.assert_array_equal(Predictor(path).predict_proba(images), Predictor(old).predict_proba(images))


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

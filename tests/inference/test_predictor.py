"""The artefact and Predictor: stored preprocessing, column order, binary thresholds, safe loading."""

import numpy as np
import pytest
import torch
from PIL import Image

from medclass.core.errors import MedclassError
from medclass.inference import ModelArtifact, Predictor
from medclass.core.preprocessing import Preprocessing


def test_predict_proba_follows_classes_and_accepts_paths_or_images(trained_run, demo_data):
    predictor = Predictor.from_run(trained_run)
    paths = sorted((demo_data / "benign").glob("*.png"))[:3]
    proba = predictor.predict_proba(paths)
    assert proba.shape == (3, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert list(predictor.classes_) == ["benign", "malignant", "normal"]
    as_images = predictor.predict_proba([Image.open(p) for p in paths])
    assert np.allclose(proba, as_images, atol=1e-6)
    assert set(predictor.predict(paths)) <= set(predictor.classes_)


def test_preprocessing_is_the_one_trained_with(trained_run):
    artifact = ModelArtifact.load(trained_run)
    assert artifact.preprocessing == Preprocessing(32, 1, (0.5,), (0.5,))
    assert artifact.tta == ["hflip"] and artifact.positive_index is None


def test_batched_preprocessing_equals_the_eval_transform_image_by_image(trained_run, demo_data):
    """Predictor.preprocess normalises a stacked batch once: the numbers must be eval_transform's exactly."""
    predictor = Predictor.from_run(trained_run)
    images = [Image.open(p) for p in sorted(demo_data.rglob("*.png"))[:5]]
    one_by_one = torch.stack([predictor.artifact.preprocessing.eval_transform()(image) for image in images])
    assert torch.equal(predictor.preprocess(images), one_by_one)


def _binary_predictor(threshold: float) -> Predictor:
    model_state = __import__("medclass.models", fromlist=["create_model"]).create_model("smallcnn", 2, 1).state_dict()
    artifact = ModelArtifact.single_task("smallcnn", ["benign", "malignant"], Preprocessing(16, 1, (0.5,), (0.5,)),
                             model_state, positive_index=1, threshold=threshold)
    return Predictor(artifact)


def test_binary_decision_thresholds_the_positive_probability():
    proba = np.array([[0.4, 0.6], [0.95, 0.05], [0.15, 0.85]])
    assert list(_binary_predictor(0.5).decide(proba)) == [1, 0, 1]
    assert list(_binary_predictor(0.7).decide(proba)) == [0, 0, 1]  # argmax would call row 0 malignant


def test_foreign_or_missing_artifacts_are_refused(tmp_path):
    with pytest.raises(MedclassError, match="no model artefact here"):
        ModelArtifact.load(tmp_path)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(MedclassError, match="not a medclass model artefact"):
        ModelArtifact.load(tmp_path)


def test_artifact_round_trip_keeps_everything_needed_to_predict(tmp_path):
    from medclass.models import create_model

    model = create_model("resnet18_small", 2, 1, drop_rate=0.3).eval()
    artifact = ModelArtifact.single_task("resnet18_small", ["normal", "pneumonia"], Preprocessing(28, 1, (0.5,), (0.5,)),
                             model.state_dict(), positive_index=1, threshold=0.3, tta=["hflip"],
                             model_kwargs={"drop_rate": 0.3}, provenance={"data": "x.npz"})
    loaded = ModelArtifact.load(artifact.save(tmp_path))
    assert (loaded.classes, loaded.threshold, loaded.tta, loaded.model_kwargs) == (
        ["normal", "pneumonia"], 0.3, ["hflip"], {"drop_rate": 0.3})
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(loaded.build_model()(x), model(x), atol=1e-6)


def test_a_prediction_value_holds_each_tasks_label_probabilities_and_rule(tmp_path):
    """Findings stay a tuple (a finding named 'A|B' is one finding), the CSV's text and the server's JSON are
    renderings of the value, and the decisions agree with `predict`."""
    from medclass.core.heads import TaskHead
    from medclass.inference.batch import PredictionWriter, rows_from_logits
    from medclass.models import create_model

    heads = [TaskHead("organ", "multiclass", ("lung", "liver")),
             TaskHead("findings", "multilabel", ("Mass", "A|B", "Nodule"), threshold=(0.0, 0.0, 1.0),
                      threshold_source="chosen on val", temperature=2.0)]
    artifact = ModelArtifact("smallcnn", heads, Preprocessing(16, 1, (0.5,), (0.5,)),
                             create_model("smallcnn", 5, 1).state_dict())
    predictor = Predictor(artifact)
    images = [np.full((20, 20), v, np.uint8) for v in (10, 200)]
    values = predictor.predictions(images)
    organ, findings = values[0]["organ"], values[0]["findings"]
    assert organ.label == predictor.predict(images)["organ"][0] and organ.threshold_source == "argmax"
    assert findings.label == ("Mass", "A|B") and findings.text == "Mass|A|B" and findings.calibrated
    assert list(findings.probabilities) == ["Mass", "A|B", "Nodule"]
    np.testing.assert_allclose(findings.values(), predictor.predict_proba(images)["findings"][0], atol=1e-6)
    served = values[0].to_dict()["tasks"]["findings"]
    assert served == {"label": ["Mass", "A|B"], "probabilities": dict(findings.probabilities),
                      "threshold": {"Mass": 0.0, "A|B": 0.0, "Nodule": 1.0}, "threshold_source": "chosen on val",
                      "calibrated": True}
    proba = predictor.probabilities(images)
    with pytest.warns(DeprecationWarning, match="renamed Predictor.decide_per_task"):
        old = predictor.decisions(proba)
    assert all(np.array_equal(old[t], d) for t, d in predictor.decide_per_task(proba).items())
    row, broken = rows_from_logits(predictor, ["a.png", "b.png"], predictor.logits(images[:1]), [None, "unreadable"])
    assert row.prediction.tasks == values[0].tasks and broken.prediction is None and broken["error"] == "unreadable"
    with PredictionWriter(tmp_path / "p.csv", heads) as writer:
        writer.write(row)
    cells = (tmp_path / "p.csv").read_text().splitlines()[1].split(",")
    assert cells[0] == "a.png" and cells[4] == "Mass|A|B" and cells[-1] == ""

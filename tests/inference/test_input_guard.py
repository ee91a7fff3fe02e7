"""The input guard: fitted after training, stored in the artefact, applied by the Predictor; the cheap checks; old
artefacts without a guard."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medclass.core.artifact import ModelArtifact
from medclass.core.errors import MedclassError
from medclass.inference.detectors import DETECTORS, Classifier
from medclass.inference.guard import NOT_FITTED, fit_guard
from medclass.inference.input_checks import ImageStats, input_problems
from medclass.inference.predictor import Predictor


def foreign_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    return {"noise": Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
            "blank": Image.new("L", (32, 32), 7),
            "wide": Image.fromarray(rng.integers(0, 256, (40, 400), dtype=np.uint8))}


def demo_images(data, n=6):
    return [Image.open(p) for p in sorted(data.rglob("*.png"))[:n]]


@pytest.mark.parametrize("name", DETECTORS.names())
def test_every_detector_scores_far_features_higher(name):
    """On generated features, which (as a network's do) fill a few directions of their space: features off those
    directions score above the threshold, which accepts the asked share of the validation features."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(4, 16))

    def features(n):
        return (rng.normal(size=(n, 4)) @ basis + 0.05 * rng.normal(size=(n, 16))).astype(np.float32)

    train = torch.from_numpy(features(300))
    labels = torch.from_numpy((np.arange(300) % 2).astype(np.int64))
    weight = torch.from_numpy((rng.normal(size=(2, 4)) @ basis).astype(np.float32))
    bias = torch.zeros(2)
    val = features(200)
    far = (3 * rng.normal(size=(50, 16))).astype(np.float32)

    def logits(x):
        return x @ weight.numpy().T + bias.numpy()

    guard = fit_guard(name, train, labels, Classifier(weight, bias), lambda g: g.scores(val, logits(val)),
                      ImageStats(colour_trained=False), accept=0.9)
    assert guard.record["val_accepted"] == pytest.approx(0.9, abs=0.01)
    if DETECTORS.get(name).uses == "features":  # the logit-based baselines see only the logits' confidence
        assert (guard.scores(far, logits(far)) > guard.threshold).mean() >= 0.9


def test_guard_travels_in_the_artefact(trained_run, tmp_path, demo_data):
    artifact = ModelArtifact.load(trained_run)
    assert artifact.guard["detector"] == "knn" and artifact.guard_tensors
    copy = ModelArtifact.load(artifact.save(tmp_path / "copy.safetensors"))
    images = demo_images(demo_data) + list(foreign_images().values())
    first, again = Predictor(artifact).predictions(images), Predictor(copy).predictions(images)
    assert [p.extras["input_guard"] for p in first] == [p.extras["input_guard"] for p in again]
    described = ModelArtifact.load(trained_run, weights=False)  # a description alone still carries the guard
    assert described.guard == artifact.guard and set(described.guard_tensors) == set(artifact.guard_tensors)


def test_foreign_images_are_flagged_and_named(trained_run, demo_data):
    predictor = Predictor(ModelArtifact.load(trained_run))
    answers = {name: p.extras["input_guard"]
               for name, p in zip(foreign_images(), predictor.predictions(list(foreign_images().values())))}
    assert all(a["fitted"] and a["in_distribution"] is False for a in answers.values())
    assert any("colour picture" in r for r in answers["noise"]["reasons"])
    assert any("blank or near-constant" in r for r in answers["blank"]["reasons"])
    assert any("aspect ratio 10.0:1" in r for r in answers["wide"]["reasons"])
    assert answers["noise"]["score"] > answers["noise"]["threshold"]
    own = [p.extras["input_guard"] for p in predictor.predictions(demo_images(demo_data, 12))]
    assert all(not a["reasons"] or "score" in a["reasons"][0] for a in own)  # no cheap check fires on its own
    assert max(a["score"] for a in own) < answers["noise"]["score"]


def test_artefact_without_guard_predicts_and_says_so(trained_run, tmp_path, demo_data):
    artifact = ModelArtifact.load(trained_run)
    artifact.guard, artifact.guard_tensors = None, {}
    old = ModelArtifact.load(artifact.save(tmp_path / "old.safetensors"))
    predictor = Predictor(old)
    plain, blank = predictor.predictions([demo_images(demo_data, 1)[0], foreign_images()["blank"]])
    assert plain.extras["input_guard"] == {"fitted": False, "in_distribution": None, "reasons": [],
                                           "message": NOT_FITTED}
    assert blank.extras["input_guard"]["in_distribution"] is False  # the cheap checks still run
    assert old.version() != ModelArtifact.load(trained_run).version()  # the guard is part of what answers


def test_damaged_guard_is_refused(trained_run, tmp_path):
    artifact = ModelArtifact.load(trained_run)
    artifact.guard = dict(artifact.guard, accept=2)
    path = artifact.save(tmp_path / "bad.safetensors")
    with pytest.raises(MedclassError, match="guard.accept"):
        ModelArtifact.load(path)
    artifact.guard = dict(ModelArtifact.load(trained_run).guard)
    artifact.guard_tensors = {}
    with pytest.raises(MedclassError, match="tensors bank are missing"):
        Predictor(ModelArtifact.load(artifact.save(tmp_path / "no_tensors.safetensors")))


def test_cheap_checks():
    grey = ImageStats(colour_trained=False, max_aspect=1.0)
    rng = np.random.default_rng(1)
    scan = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8))
    assert input_problems(scan, grey) == []
    assert input_problems(scan.convert("RGB"), grey) == []  # a grey image saved as RGB is no colour photo
    photo = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert input_problems(photo, ImageStats(colour_trained=True)) == []
    assert "colour picture" in input_problems(photo, grey)[0]
    assert input_problems(Image.fromarray(rng.integers(0, 256, (64, 160), dtype=np.uint8)), grey) == []  # 2.5:1
    wide_training = ImageStats(colour_trained=False, max_aspect=3.0)
    assert input_problems(Image.fromarray(rng.integers(0, 256, (40, 160), dtype=np.uint8)), wide_training) == []
    sixteen = Image.fromarray(np.full((32, 32), 1000, np.uint16).astype(np.int32), mode="I")
    assert "blank" in input_problems(sixteen, grey)[0]


def test_guard_none_and_evaluation(demo_data, tmp_path, trained_run):
    from medclass.evaluation.evaluate import evaluate_run
    from medclass.training import TrainConfig, train

    metrics, out = evaluate_run(trained_run, out_dir=tmp_path / "eval", n_boot=20)
    guard = metrics["input_guard"]
    assert guard["fitted"] and guard["detector"] == "knn"
    assert guard["accepted"]["n"] == guard["images"] and 0 <= guard["accepted"]["rate"] <= 1
    assert guard["error_rate_flagged"]["n"] + guard["error_rate_accepted"]["n"] == guard["images"]
    assert "Input guard" in (out / "report.html").read_text()
    run = tmp_path / "unguarded"
    train(TrainConfig(data=str(demo_data), out=str(run), model="smallcnn", epochs=1, batch_size=16, seed=0,
                      guard="none"))
    assert ModelArtifact.load(run).guard is None

"""Temperature scaling and the calibration numbers: ECE and Brier against their definitions and scikit-learn."""

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from medclass.evaluation.calibration import (brier_score, calibrated, calibration_events, calibration_report,
                                             expected_calibration_error, fit_temperature)
from medclass.core.heads import TaskHead, view_probabilities
from medclass.inference.predictor import Predictor


def _overconfident(seed=0, n=2000, k=3, scale=6.0):
    """Logits whose softmax is the true class probability at temperature `scale`: the model states far more
    certainty than it has (as a long-trained network does)."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.0, (n, k))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    return (scale * true_logits)[None], y[:, None]  # one view


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model():
    logits, y = _overconfident()
    head = TaskHead("grade", "multiclass", ("a", "b", "c"))
    t = fit_temperature(head, logits, y)
    assert t == pytest.approx(6.0, rel=0.15)  # recovers the over-confidence factor
    report = calibration_report(replace(head, temperature=t), logits, y)
    assert report["calibrated"]["ece"] < 0.5 * report["uncalibrated"]["ece"]
    assert report["calibrated"]["brier"] < report["uncalibrated"]["brier"]
    argmax = view_probabilities([head], logits).argmax(1)
    assert np.array_equal(argmax, view_probabilities([replace(head, temperature=t)], logits).argmax(1))


def test_multilabel_temperature_is_fitted_on_the_sigmoids():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, (3000, 2))
    y = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z))).astype(int)
    head = TaskHead("findings", "multilabel", ("x", "y"))
    assert fit_temperature(head, (4 * z)[None], y) == pytest.approx(4.0, rel=0.15)
    assert calibrated(head, (4 * z)[None], y)[0].temperature == pytest.approx(4.0, rel=0.15)


def _underconfident(n: int, seed: int = 0):
    """Logits at a third of the true scale: the model is surer than it says (as label smoothing leaves it)."""
    logits, y = _overconfident(seed, n=n, scale=1.0)
    return logits / 3, y


def test_the_temperature_rules_differ_where_they_should():
    head = TaskHead("grade", "multiclass", ("a", "b", "c"))
    logits, y = _underconfident(3000)
    fitted, record = calibrated(head, logits, y, "fitted")
    assert fitted.temperature == pytest.approx(1 / 3, rel=0.15) and record == {"rule": "fitted",
                                                                             "fitted": fitted.temperature}
    soft, record = calibrated(head, logits, y, "no-sharpening")
    assert soft.temperature == 1.0 and record["fitted"] == fitted.temperature
    kept, record = calibrated(head, logits, y, "out-of-fold")  # a real effect holds on unseen folds
    assert record["kept"] and kept.temperature == fitted.temperature
    held = record["held_out_nll"]
    assert held["fold temperatures"] < held["temperature 1"]


def test_out_of_fold_keeps_temperature_1_when_the_fit_is_noise():
    """A calibrated model on 30 validation images: whatever temperature fits them fits their noise, and on the
    folds it did not see it does worse than none."""
    head = TaskHead("label", "binary", ("a", "b"), positive_index=1)
    refused = 0
    for seed in range(20):
        logits, y = _overconfident(seed, n=30, k=2, scale=1.0)  # calibrated at temperature 1
        chosen, record = calibrated(head, logits, y, "out-of-fold")
        assert chosen.temperature == (record["fitted"] if record["kept"] else 1.0)
        refused += not record["kept"]
    assert refused >= 10, refused  # most such fits are refused


def test_ece_of_a_calibrated_forecaster_is_small_and_of_a_constant_one_is_its_gap():
    rng = np.random.default_rng(2)
    stated = rng.uniform(size=20000)
    outcome = (rng.uniform(size=stated.size) < stated).astype(float)
    assert expected_calibration_error(stated, outcome) < 0.02
    assert expected_calibration_error(np.full(1000, 0.9), np.r_[np.ones(600), np.zeros(400)]) == pytest.approx(0.3)


def test_brier_matches_scikit_learn_and_its_definition():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (200, 1))
    p1 = rng.uniform(size=200)
    proba = np.stack([1 - p1, p1], 1)
    assert brier_score("binary", y, proba, 1) == pytest.approx(brier_score_loss(y[:, 0], p1))
    assert brier_score("binary", y, proba, 0) == pytest.approx(brier_score_loss(y[:, 0] == 0, 1 - p1))
    y3 = rng.integers(0, 3, (200, 1))
    proba3 = rng.dirichlet([1, 1, 1], 200)
    expected = np.mean([np.sum((proba3[i] - np.eye(3)[y3[i, 0]]) ** 2) for i in range(200)])
    assert brier_score("multiclass", y3, proba3) == pytest.approx(expected)


def test_calibration_events_are_top_label_for_single_label_tasks():
    proba = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    confidence, correct = calibration_events("binary", np.array([[0], [0], [1]]), proba)
    assert confidence.tolist() == [0.7, 0.8, 0.6] and correct.tolist() == [1, 0, 0]


def test_the_predictor_applies_the_stored_temperature(trained_run):
    predictor = Predictor.from_run(trained_run)
    images = [np.full((32, 32), v, dtype=np.uint8) for v in (40, 120, 200)]
    logits = predictor.logits(images)
    assert logits.shape == (predictor.views, 3, 3)
    expected = view_probabilities(predictor.heads, logits)
    assert np.allclose(predictor.predict_proba(images), expected, atol=1e-6)
    hotter = replace(predictor.heads[0], temperature=predictor.heads[0].temperature * 5)
    assert not np.allclose(view_probabilities([hotter], logits), expected)

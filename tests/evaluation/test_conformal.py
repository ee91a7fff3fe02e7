"""Conformal prediction sets: the guarantee holds on exchangeable generated data (marginal and, for every class of an
imbalanced set, Mondrian), the finite-sample quantile and its +inf case, the tie and binary conventions, and the
cross-conformal calibration on validation folds."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead
from medclass.core.prediction_sets import (PredictionSets, class_quantiles, conformal_quantile, label_scores,
                                           minimum_images, quantile_rank, set_mask, true_label_scores)
from medclass.evaluation.calibration import fit_temperature
from medclass.evaluation.conformal import fit_sets, folds_of, imbalance, set_summary_lines, tuned_sets

COVERAGE = 0.9


def generated(rng, n: int, priors=(0.25, 0.25, 0.25, 0.25), signal=(1.0, 1.0, 1.0, 1.0)):
    """n exchangeable (probabilities, class) pairs: a class drawn by `priors`, logits N(0, 1) plus `signal` on the
    true class (a weak model: about 60% right at signal 1 over 4 classes, so the quantile is no tie at 0)."""
    y = rng.choice(len(priors), n, p=priors)
    z = rng.normal(size=(n, len(priors)))
    z[np.arange(n), y] += np.asarray(signal)[y]
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), y


def covered(proba, y, quantiles, score="aps"):
    return set_mask(proba, quantiles, score)[np.arange(len(y)), y]


@pytest.mark.parametrize("score", ["aps", "raps", "lac"])
def test_marginal_coverage_holds_over_many_exchangeable_splits(score):
    rng = np.random.default_rng(0)
    n_cal, n_test, trials = 200, 500, 300
    coverages = []
    for _ in range(trials):
        proba, y = generated(rng, n_cal + n_test)
        q = conformal_quantile(true_label_scores(proba[:n_cal], y[:n_cal], score), COVERAGE)
        coverages.append(covered(proba[n_cal:], y[n_cal:], q, score).mean())
    mean = float(np.mean(coverages))
    # the guarantee: 1 - alpha <= E[coverage] <= 1 - alpha + 1/(n+1) (continuous scores); 3 standard errors of
    # the mean over trials as slack (about 0.0015 each)
    slack = 3 * np.std(coverages) / math.sqrt(trials)
    assert COVERAGE - slack <= mean <= COVERAGE + 1 / (n_cal + 1) + slack, (mean, slack)


def test_mondrian_covers_every_class_of_an_imbalanced_set_where_marginal_does_not():
    rng = np.random.default_rng(1)
    priors, signal = (0.8, 0.15, 0.05), (2.5, 1.0, 0.5)  # the rare classes are also the hard ones
    n_cal, n_test, trials = 1500, 3000, 60
    marginal, mondrian = [], []
    for _ in range(trials):
        proba, y = generated(rng, n_cal + n_test, priors, signal)
        scores = true_label_scores(proba[:n_cal], y[:n_cal])
        test_p, test_y = proba[n_cal:], y[n_cal:]
        q_all = conformal_quantile(scores, COVERAGE)
        q_class = class_quantiles(scores, y[:n_cal], 3, COVERAGE)
        marginal.append([covered(test_p, test_y, q_all)[test_y == c].mean() for c in range(3)])
        mondrian.append([covered(test_p, test_y, q_class)[test_y == c].mean() for c in range(3)])
    marginal, mondrian = np.mean(marginal, 0), np.mean(mondrian, 0)
    assert (mondrian >= COVERAGE - 0.01).all(), mondrian
    assert marginal[2] < COVERAGE - 0.05, marginal  # the rare class under-covered by one quantile for all
    assert imbalance(np.repeat([0, 1, 2], [80, 15, 5]), 3)[0] and not imbalance(np.repeat([0, 1], [50, 40]), 2)[0]


def test_the_quantile_is_the_finite_sample_order_statistic_and_inf_when_too_few_images():
    scores = np.arange(1, 100) / 100  # 99 scores: the ceil(100 * 0.9) = 90th smallest
    assert quantile_rank(99, 0.9) == 90 and conformal_quantile(scores, 0.9) == pytest.approx(0.90)
    assert minimum_images(0.9) == 9 and minimum_images(0.95) == 19
    assert conformal_quantile(scores[:8], 0.9) == math.inf and conformal_quantile([], 0.9) == math.inf
    assert conformal_quantile(scores[:9], 0.9) == scores[8]
    proba = np.array([[0.7, 0.2, 0.1]])
    assert set_mask(proba, math.inf).all()  # every label in the set, and the record says so
    sets = PredictionSets(0.9, (math.inf,))
    assert sets.unbounded == (0,) and sets.to_dict()["quantiles"] == [None]
    assert PredictionSets.from_dict(sets.to_dict()) == sets


def test_aps_ties_enter_together_whatever_the_class_order_and_sets_are_never_empty():
    proba = np.array([[0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [1 / 3, 1 / 3, 1 / 3]])
    scores = label_scores(proba)
    assert scores[0].tolist() == pytest.approx([0, 0, 0.8]) and scores[1].tolist() == pytest.approx([0.8, 0, 0])
    assert (scores[2] == 0).all()
    assert (label_scores(proba[:, ::-1])[:, ::-1] == scores).all()
    rng = np.random.default_rng(2)
    random_p, _ = generated(rng, 500)
    assert set_mask(random_p, 0.0).sum(1).min() == 1  # the top label scores 0: always in
    raps = label_scores(proba, "raps")
    assert raps[0].tolist() == pytest.approx([0, 0, 0.8 + 0.01])  # rank 2: one step past k_reg = 1


def test_binary_sets_are_the_more_probable_class_or_both():
    proba = np.array([[0.9, 0.1], [0.45, 0.55], [0.3, 0.7]])
    head = TaskHead("t", "binary", ("benign", "malignant"), prediction_sets=PredictionSets(0.9, (0.6,)))
    assert head.set_names(proba) == [("benign",), ("benign", "malignant"), ("malignant",)]


def fake_logits(rng, n, classes=3, temperature=2.0):
    """(1 view, n images, classes) logits of an overconfident model (its true temperature `temperature`)."""
    proba, y = generated(rng, n, (1 / classes,) * classes, (1.5,) * classes)
    return (np.log(proba) * temperature)[None].astype(np.float32), y[:, None]


def test_a_calibrated_head_is_cross_conformal_and_an_uncalibrated_one_split():
    rng = np.random.default_rng(3)
    logits, y = fake_logits(rng, 300)
    plain = TaskHead("t", "multiclass", ("a", "b", "c"))
    head = replace(plain, temperature=fit_temperature(plain, logits, y))  # as calibrated() fits it on all of val
    tuned, record = fit_sets(head, logits, y, 0.9, rule="fitted")
    assert record["method"].startswith("cross-conformal: 5 folds of the 300 validation images")
    folds = record["fold_temperatures"]  # each fitted on 4/5 of the images: near the full one, never it
    assert len(folds) == 5 and all(0.85 < t / head.temperature < 1.15 and t != head.temperature for t in folds)
    assert tuned.temperature == head.temperature and tuned.prediction_sets.images == 300 and not tuned.prediction_sets.by_class
    assert record["validation"]["coverage"] >= 0.88 and 1 <= record["validation"]["mean_size"] <= 3
    _, record = fit_sets(plain, logits, y, 0.9, rule="fitted")
    assert record["method"].startswith("split conformal on all 300") and "fold_temperatures" not in record
    forced, record = fit_sets(head, logits, y, 0.9, rule="fitted", by_class=True)
    assert forced.prediction_sets.by_class and len(forced.prediction_sets.quantiles) == 3
    assert record["by_class_rule"].startswith("asked for")


def test_folds_keep_each_patient_whole_and_balance_the_classes():
    y = np.repeat([0, 1], [60, 40])
    patients = np.array([f"p{i // 2}" for i in range(100)])  # two images each
    fold = folds_of(y, patients)
    assert all(len(set(fold[patients == p])) == 1 for p in set(patients))
    assert sorted(np.bincount(fold).tolist()) == [20] * 5
    assert all(abs((y[fold == k] == 1).mean() - 0.4) <= 0.1 for k in range(5))
    assert folds_of(np.array([0, 1, 0]), None).max() == 2  # fewer images than folds: one each


def test_too_few_images_are_reported_and_put_the_label_in_every_set():
    rng = np.random.default_rng(4)
    logits, y = fake_logits(rng, 40)
    y[:, 0] = np.where(np.arange(40) < 5, 2, y[:, 0] % 2)  # class c: 5 images, fewer than the 9 that 0.9 needs
    head, record = fit_sets(TaskHead("t", "multiclass", ("a", "b", "c")), logits, y, 0.9, rule=None)
    assert head.prediction_sets.by_class and record["in_every_set"] == ["c"] and record["minimum_images"] == 9
    assert head.set_membership(np.array([[0.98, 0.01, 0.01]]))[0, 2]
    lines = set_summary_lines({"tasks": {"t": {"prediction_sets": record}}})
    assert "needs 9 per class" in lines[0] and "c in every set" in lines[0]


def test_tuning_keeps_removes_or_remakes_the_stored_sets():
    rng = np.random.default_rng(5)
    logits, y = fake_logits(rng, 120)
    head, _ = fit_sets(TaskHead("t", "multiclass", ("a", "b", "c"), temperature=2.0), logits, y, 0.9, rule="fitted")
    kept, record = tuned_sets(head, logits, y, None, calibrated_now=False, rule="fitted")
    assert kept == head and "kept" in record
    off, record = tuned_sets(head, logits, y, 0, calibrated_now=False, rule="fitted")
    assert off.prediction_sets is None and "off" in record
    remade, record = tuned_sets(head, logits, y, None, calibrated_now=True, rule="fitted")
    assert remade.prediction_sets.coverage == 0.9 and "validation" in record
    findings = TaskHead("f", "multilabel", ("x", "y"))
    assert tuned_sets(findings, logits[:, :, :2], y, 0.9, calibrated_now=True, rule="fitted") == (findings, None)
    with pytest.raises(MedclassError, match="single-label"):
        TaskHead("f", "multilabel", ("x", "y"), prediction_sets=PredictionSets(0.9, (0.5,)))
    with pytest.raises(MedclassError, match="one per class"):
        TaskHead("t", "binary", ("a", "b"), prediction_sets=PredictionSets(0.9, (0.5,) * 3, by_class=True))

"""Every reported metric against scikit-learn on generated predictions, and the bootstrap intervals' behaviour."""

import numpy as np
import pytest
from sklearn import metrics as skm

from medclass.evaluation.bootstrap import resample_indices
from medclass.evaluation.metrics import auc_score, task_metrics


def _binary(seed=0, n=200):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    return y, np.stack([1 - p1, p1], 1)


def _multiclass(seed=2, n=90, k=3):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k)
    proba = rng.dirichlet([1] * k, len(y))
    proba[np.arange(len(y)), y] += 0.5
    return y, proba / proba.sum(1, keepdims=True)


def test_binary_auc_scores_the_positive_column():
    y, proba = _binary()
    assert auc_score(y, proba, 1) == skm.roc_auc_score(y, proba[:, 1])
    assert auc_score(y, proba, 0) == skm.roc_auc_score(y == 0, proba[:, 0])


def test_auc_undefined_is_nan_not_an_exception():
    assert np.isnan(auc_score(np.zeros(5, int), np.full((5, 2), 0.5), 1))


@pytest.mark.parametrize("positive", [0, 1])
def test_binary_metrics_match_scikit_learn(positive):
    y, proba = _binary(1)
    decided = np.where(proba[:, positive] >= 0.4, positive, 1 - positive)
    m = task_metrics("binary", y, proba, decided, ["a", "b"], positive, n_boot=0)
    truth, called = y == positive, decided == positive
    assert m["sensitivity"] == pytest.approx(skm.recall_score(truth, called))
    assert m["specificity"] == pytest.approx(skm.recall_score(~truth, ~called))
    assert m["ppv"] == pytest.approx(skm.precision_score(truth, called))
    assert m["npv"] == pytest.approx(skm.precision_score(~truth, ~called))
    assert m["f1"] == pytest.approx(skm.f1_score(truth, called))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, decided))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, decided))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(truth, proba[:, positive]))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(truth, proba[:, positive]))
    assert m["positive_class"] == ["a", "b"][positive] and m["prevalence"] == pytest.approx(truth.mean())
    assert np.sum(m["confusion_matrix"]) == len(y) and m["per_class"]["b"]["support"] == int((y == 1).sum())


def test_multiclass_and_ordinal_metrics_match_scikit_learn():
    y, proba = _multiclass()
    decided = proba.argmax(1)
    m = task_metrics("multiclass", y, proba, decided, ["g0", "g1", "g2"], ordinal=True, n_boot=0)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, decided))
    assert m["kappa_quadratic"] == pytest.approx(skm.cohen_kappa_score(y, decided, weights="quadratic"))
    for avg in ("macro", "weighted"):
        assert m[f"f1_{avg}"] == pytest.approx(skm.f1_score(y, decided, average=avg))
        assert m[f"precision_{avg}"] == pytest.approx(skm.precision_score(y, decided, average=avg))
        assert m[f"recall_{avg}"] == pytest.approx(skm.recall_score(y, decided, average=avg))
    assert m["per_class"]["g1"]["recall"] == pytest.approx(skm.recall_score(y == 1, decided == 1))
    assert "kappa_quadratic" not in task_metrics("multiclass", y, proba, decided, ["a", "b", "c"], n_boot=0)


def test_multilabel_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=(150, 4)) < [0.1, 0.3, 0.5, 0.2]).astype(int)
    proba = np.clip(0.4 * y + rng.uniform(0, 0.6, y.shape), 0, 1)
    decided = (proba >= 0.5).astype(int)
    m = task_metrics("multilabel", y, proba, decided, list("abcd"), n_boot=0)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, proba, average="macro"))
    assert m["auc_micro"] == pytest.approx(skm.roc_auc_score(y, proba, average="micro"))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, proba, average="macro"))
    assert m["pr_auc_micro"] == pytest.approx(skm.average_precision_score(y, proba, average="micro"))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, decided, average="macro"))
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, decided))
    assert m["per_finding"]["c"]["auc"] == pytest.approx(skm.roc_auc_score(y[:, 2], proba[:, 2]))


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_interval_contains_the_estimate_and_narrows_with_more_images(kind):
    widths = []
    for n in (120, 1200):
        y, proba = _binary(4, n) if kind == "binary" else _multiclass(4, n)
        m = task_metrics(kind, y, proba, proba.argmax(1), [str(c) for c in range(proba.shape[1])],
                         1 if kind == "binary" else None, n_boot=300, seed=0)
        for key in ("auc", "accuracy", "balanced_accuracy"):
            low, high = m["ci"][key]
            assert low <= m[key] <= high, (key, n)
        widths.append(m["ci"]["auc"][1] - m["ci"]["auc"][0])
    assert widths[1] < widths[0] / 2  # ~1/sqrt(10) as wide with 10x the images


def test_bootstrap_is_seeded_and_stratified():
    y = np.array([0] * 90 + [1] * 10)
    draws = list(resample_indices(y, 20, seed=5))
    assert all(np.sum(y[idx] == 1) == 10 and len(idx) == 100 for idx in draws)
    assert all(np.array_equal(a, b) for a, b in zip(draws, resample_indices(y, 20, seed=5)))


def test_patient_resampling_keeps_a_patients_images_together():
    y = np.repeat([0, 1, 0, 1, 0, 1], 3)
    patients = np.repeat(list("abcdef"), 3)
    for idx in resample_indices(y, 30, seed=1, groups=patients):
        drawn = patients[idx]
        assert all(np.sum(drawn == p) % 3 == 0 for p in set(drawn))


def test_interval_by_patient_is_wider_when_images_repeat_a_patient():
    y, proba = _binary(6, 100)
    copies = 5  # each patient's image seen 5 times: not 500 independent observations
    y5, proba5 = np.repeat(y, copies), np.repeat(proba, copies, 0)
    patients = np.repeat(np.arange(100), copies)
    by_image = task_metrics("binary", y5, proba5, proba5.argmax(1), ["n", "p"], 1, n_boot=300)["ci"]["auc"]
    by_patient = task_metrics("binary", y5, proba5, proba5.argmax(1), ["n", "p"], 1, n_boot=300,
                              groups=patients)["ci"]
    assert by_patient["resampled"] == "patients"
    assert by_patient["auc"][1] - by_patient["auc"][0] > 1.5 * (by_image[1] - by_image[0])


def _assert_intervals_are_scikit_learns(metrics, strata, scorers, n_boot, seed, groups=None):
    """Each `scorers[key](idx)` (scikit-learn on one resample's rows) over the resamples `resample_indices` draws:
    their percentile interval is the one task_metrics reports."""
    draws = {key: [] for key in scorers}
    for idx in resample_indices(strata, n_boot, seed=seed, groups=groups):
        for key, score in scorers.items():
            draws[key].append(score(idx))
    for key, values in draws.items():
        expected = [np.percentile(values, 2.5), np.percentile(values, 97.5)]
        assert metrics["ci"][key] == pytest.approx(expected, abs=1e-12), key


@pytest.mark.parametrize("grouped", [False, True])
def test_bootstrap_intervals_equal_scikit_learn_on_every_resample(grouped):
    """The vectorised bootstrap (counts per row) draws the resamples `resample_indices` draws with the same seed and
    scores each as scikit-learn does; tied scores and patients drawn whole included."""
    y, proba = _multiclass(5, 150)
    proba = np.round(proba, 2)
    proba /= proba.sum(1, keepdims=True)
    groups = np.arange(len(y)) // 2 if grouped else None
    decided = proba.argmax(1)
    m = task_metrics("multiclass", y, proba, decided, ["g0", "g1", "g2"], ordinal=True, n_boot=80, seed=7,
                     groups=groups)
    _assert_intervals_are_scikit_learns(m, y, {
        "auc": lambda i: skm.roc_auc_score(y[i], proba[i], multi_class="ovr"),
        "f1_macro": lambda i: skm.f1_score(y[i], decided[i], average="macro"),
        "kappa_quadratic": lambda i: skm.cohen_kappa_score(y[i], decided[i], weights="quadratic"),
        "balanced_accuracy": lambda i: skm.balanced_accuracy_score(y[i], decided[i])}, 80, 7, groups)

    yb, pb = _binary(8, 160)
    pb = np.round(pb, 1)
    called = (pb[:, 1] >= 0.5).astype(int)
    mb = task_metrics("binary", yb, pb, called, ["n", "p"], 1, n_boot=80, seed=7, groups=groups)
    _assert_intervals_are_scikit_learns(mb, yb, {
        "auc": lambda i: skm.roc_auc_score(yb[i], pb[i, 1]),
        "pr_auc": lambda i: skm.average_precision_score(yb[i], pb[i, 1]),
        "specificity": lambda i: skm.recall_score(yb[i] == 0, called[i] == 0)}, 80, 7, groups)


def test_multilabel_bootstrap_intervals_equal_scikit_learn_on_every_resample():
    rng = np.random.default_rng(9)
    y = (rng.uniform(size=(120, 3)) < [0.1, 0.4, 0.6]).astype(int)
    proba = np.round(np.clip(0.4 * y + rng.uniform(0, 0.6, y.shape), 0, 1), 2)
    decided = (proba >= 0.5).astype(int)
    m = task_metrics("multilabel", y, proba, decided, list("abc"), n_boot=60, seed=2)
    _assert_intervals_are_scikit_learns(m, y.any(1), {
        "auc_micro": lambda i: skm.roc_auc_score(y[i], proba[i], average="micro"),
        "pr_auc": lambda i: skm.average_precision_score(y[i], proba[i], average="macro"),
        "f1_micro": lambda i: skm.f1_score(y[i], decided[i], average="micro"),
        "subset_accuracy": lambda i: skm.accuracy_score(y[i], decided[i])}, 60, 2)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_auc_and_accuracy_equal_medmnists_own_evaluator(kind):
    """MedMNIST's published numbers come from medmnist.evaluator: the same AUC and (argmax / 0.5) accuracy."""
    evaluator = pytest.importorskip("medmnist.evaluator")
    y, proba = _binary(10) if kind == "binary" else _multiclass(10, 120, 4)
    task = "binary-class" if kind == "binary" else "multi-class"
    decided = (proba[:, 1] >= 0.5).astype(int) if kind == "binary" else proba.argmax(1)
    m = task_metrics(kind, y, proba, decided, [str(c) for c in range(proba.shape[1])],
                     1 if kind == "binary" else None, n_boot=0)
    assert m["auc"] == pytest.approx(evaluator.getAUC(y[:, None], proba, task), abs=1e-12)
    assert m["accuracy"] == pytest.approx(evaluator.getACC(y[:, None], proba, task), abs=1e-12)

"""Paired comparison of two models on the same images: DeLong against scikit-learn and the bootstrap, both tests'
behaviour on identical, clearly different and equally good models, grouped resampling, compare_auc's shapes."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medclass.evaluation.bootstrap import resample_indices
from medclass.evaluation.paired import compare_auc, delong_test, paired_bootstrap
from medclass.evaluation.weighted import weighted_auc


def _auc(y, p):
    return roc_auc_score(y, p)


def _weighted_auc(weights, y, p):
    return weighted_auc(weights, y == 1, p)


def _two_models(seed=0, n=300, gain_b=1.0):
    """Labels and two correlated scores (a shared difficulty term), model B `gain_b` times as separating."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    shared = rng.normal(size=n)
    return y, y + shared + rng.normal(size=n), gain_b * y + shared + rng.normal(size=n)


def test_delong_aucs_are_sklearns_and_its_se_matches_the_bootstrap_spread():
    y, a, b = _two_models(1, gain_b=1.3)
    result = delong_test(y, a, b)
    assert result["auc_a"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result["auc_b"] == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result["difference"] == pytest.approx(result["auc_b"] - result["auc_a"])
    assert result["n"] == 300 and result["positives"] == int(y.sum())
    spread = np.std([_auc(y[i], b[i]) - _auc(y[i], a[i]) for i in resample_indices(y, 400, seed=1)])
    assert result["se"] == pytest.approx(spread, rel=0.2)


def test_delong_with_tied_scores_still_gives_sklearns_auc():
    y, a, b = _two_models(2, n=120)
    a, b = np.round(a), np.round(b, 1)  # a: a handful of distinct values, many ties across classes
    result = delong_test(y.astype(bool), a, b)
    assert result["auc_a"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result["auc_b"] == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result["se"] > 0


def test_identical_models_differ_by_nothing_with_p_one():
    y, a, _ = _two_models(3, n=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        delong = delong_test(y, a, a)
    assert delong["difference"] == 0 and delong["se"] == 0 and delong["z"] == 0 and delong["p_value"] == 1.0
    assert delong["ci"] == [0.0, 0.0]
    boot = paired_bootstrap(y, a, a, _weighted_auc, y, n_boot=100)
    assert boot["difference"] == 0 and boot["p_value"] == 1.0 and boot["ci"] == [0.0, 0.0]


def test_a_clearly_better_model_is_detected_by_both_tests():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    noise, good = rng.normal(size=300), y + 0.3 * rng.normal(size=300)
    delong = delong_test(y, noise, good)
    boot = paired_bootstrap(y, noise, good, _weighted_auc, y, n_boot=300)
    assert delong["p_value"] < 0.001 and delong["ci"][0] > 0 and delong["z"] > 0
    assert boot["p_value"] < 0.001 and boot["ci"][0] > 0
    assert boot["difference"] == pytest.approx(delong["difference"])
    assert {"method", "a", "b", "difference", "ci", "p_value", "n_boot", "n"} <= boot.keys()
    swapped = delong_test(y, good, noise)
    assert swapped["difference"] == pytest.approx(-delong["difference"]) and swapped["p_value"] == delong["p_value"]


def test_equally_good_models_are_not_called_different():
    y, a, b = _two_models(2)  # seed checked: DeLong p = 0.88, bootstrap p = 0.87
    assert delong_test(y, a, b)["p_value"] > 0.05
    assert paired_bootstrap(y, a, b, _weighted_auc, y, n_boot=200)["p_value"] > 0.05
    # and DeLong's false-positive rate stays near 5% (6 of these 100 seeds; 5.0% over 200)
    p_values = np.array([delong_test(*_two_models(seed))["p_value"] for seed in range(100)])
    assert np.mean(p_values < 0.05) <= 0.1


def test_grouped_bootstrap_draws_whole_patients():
    """Five copies of each case are one patient's five images: they carry one case's information, not five, so
    resampling patients must give an interval at least as wide as pretending the 300 rows are independent."""
    y, a, b = _two_models(5, n=60, gain_b=1.3)
    y, a, b, groups = (np.repeat(v, 5) for v in (y, a, b, np.arange(60)))
    rows = paired_bootstrap(y, a, b, _weighted_auc, y, n_boot=200, seed=1)
    patients = paired_bootstrap(y, a, b, _weighted_auc, y, n_boot=200, seed=1, groups=groups)
    assert patients["difference"] == rows["difference"]
    assert np.diff(patients["ci"])[0] >= np.diff(rows["ci"])[0]


def test_compare_auc_reports_the_documented_tests_per_task_kind():
    rng = np.random.default_rng(6)
    n = 90
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, (2, n)), 0, 1)
    binary = compare_auc(y, np.stack([1 - p1[0], p1[0]], 1), np.stack([1 - p1[1], p1[1]], 1), "binary", 1, 50)
    assert binary.keys() == {"delong", "bootstrap"}
    assert binary["delong"]["auc_a"] == pytest.approx(binary["bootstrap"]["a"])

    y3 = np.repeat([0, 1, 2], 30)
    pa, pb = rng.dirichlet([1, 1, 1], (2, n))
    multiclass = compare_auc(y3, pa, pb, "multiclass", None, 50)
    assert multiclass.keys() == {"bootstrap"}
    assert multiclass["bootstrap"]["a"] == pytest.approx(roc_auc_score(y3, pa, multi_class="ovr"))

    ym = (rng.uniform(size=(n, 4)) < 0.3).astype(int)
    ym[:, 3] = 0  # a finding without positives: left out of the macro, not scored 0.5
    qa, qb = rng.uniform(size=(2, n, 4))
    multilabel = compare_auc(ym, qa, qb, "multilabel", None, 50, groups=np.arange(n) // 2)
    assert multilabel.keys() == {"bootstrap"}
    expected = np.mean([roc_auc_score(ym[:, j], qa[:, j]) for j in range(3)])
    assert multilabel["bootstrap"]["a"] == pytest.approx(expected)
    assert np.isfinite(multilabel["bootstrap"]["p_value"]) and multilabel["bootstrap"]["n_boot"] == 50


def test_one_class_labels_are_refused():
    with pytest.raises(ValueError, match="both classes"):
        delong_test(np.ones(20, int), np.arange(20.0), np.arange(20.0))
    with pytest.raises(ValueError, match="both classes"):
        compare_auc(np.zeros(10, int), np.full((10, 2), 0.5), np.full((10, 2), 0.5), "binary", 1, 10)

"""medclass's conformal arithmetic agrees with mapie's split-conformal classifier (1.x) on the same generated data.

Conventions, and how the comparison aligns them:
- mapie's APS calibration score is randomised: the cumulated probability up to and including the true class, minus
  U * p(true class), U ~ Uniform(0, 1). medclass's is the non-randomised U = 1 form (the probability of the classes
  strictly more probable). mapie is handed a random state whose uniform draws are all 1, which makes its scores ours.
- At prediction, mapie's `include_last_label=True` (its default) keeps the class whose cumulated probability first
  crosses the quantile; medclass keeps each class whose score (the cumulated probability before it) is <= the
  quantile: the same set, except when a class's score equals the quantile exactly (then medclass includes it), which
  continuous generated probabilities never produce on fresh images.
- Both quantiles are the ceil((n + 1)(1 - alpha))-th smallest score (mapie: numpy's "lower" quantile at that
  rank / n); mapie adds a 1e-8 tolerance when it compares scores, medclass none.
- LAC (1 - p) needs no alignment.
"""

from __future__ import annotations

import numpy as np
import pytest

from medclass.core.prediction_sets import conformal_quantile, set_mask, true_label_scores

classification = pytest.importorskip("mapie.classification", reason="mapie is not installed (the dev extra has it)")
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402


class GivenProbabilities(ClassifierMixin, BaseEstimator):
    """A 'fitted' classifier whose input is its own probabilities, so mapie sees exactly what medclass does."""

    def fit(self, X, y):
        self.classes_ = np.arange(np.asarray(X).shape[1])
        return self

    def predict_proba(self, X):
        return np.asarray(X)

    def predict(self, X):
        return np.asarray(X).argmax(1)


class AlwaysOne(np.random.RandomState):
    """mapie's APS draws U for its randomised score; U = 1 is medclass's non-randomised score."""

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.ones(size)


def generated(seed: int, n: int, classes: int = 5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    z = rng.normal(size=(n, classes))
    z[np.arange(n), y] += 1.2
    p = np.exp(z)
    return p / p.sum(1, keepdims=True), y


@pytest.mark.parametrize("score", ["aps", "lac"])
@pytest.mark.parametrize("coverage, n_cal", [(0.9, 300), (0.8, 97), (0.95, 1000)])
def test_scores_quantile_and_sets_match_mapie(score, coverage, n_cal):
    cal_p, cal_y = generated(n_cal, n_cal)
    test_p, _ = generated(n_cal + 1, 2000)
    mapie = classification.SplitConformalClassifier(GivenProbabilities().fit(cal_p, cal_y), confidence_level=coverage,
                                                    conformity_score=score, prefit=True, random_state=AlwaysOne(0))
    mapie.conformalize(cal_p, cal_y)
    ours = true_label_scores(cal_p, cal_y, score)
    np.testing.assert_allclose(np.sort(np.ravel(mapie.conformity_scores)), np.sort(ours), atol=1e-12)
    q = conformal_quantile(ours, coverage)
    fitted_quantiles = getattr(getattr(mapie._mapie_classifier, "conformity_score_function_", None), "quantiles_",
                               None)
    if fitted_quantiles is not None:  # mapie's learned state (not part of its documented interface)
        assert float(np.ravel(fitted_quantiles)[0]) == pytest.approx(q, abs=1e-12)
    _, sets = mapie.predict_set(test_p)
    assert (sets[:, :, 0] == set_mask(test_p, q, score)).all()

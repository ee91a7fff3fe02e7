"""Calibration: temperature scaling fitted on validation (Guo et al. 2017), and the numbers that show it worked.

One temperature per task divides its logits before the softmax (sigmoid for multi-label): it leaves every argmax and
every 0.5 decision unchanged and makes the probabilities say how often the model is right. It is fitted on the
validation split by minimising the negative log-likelihood of the probabilities the Predictor reports (the mean over
test-time views), stored in the artefact, and applied by every prediction.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from sklearn.metrics import brier_score_loss

from medclass.core.heads import TaskHead, view_probabilities
from medclass.evaluation.rules import TEMPERATURE_RULES  # noqa: F401  (imported from here too)

N_BINS = 15
MIN_T, MAX_T = 0.05, 20.0


def fit_temperature(head: TaskHead, logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the NLL of `head`'s view-averaged probabilities on labelled rows.

    logits: (views, images, head outputs); y: the head's target columns (-1 = no label)."""
    keep = (y >= 0).all(1) if head.kind != "multilabel" else np.ones(len(y), bool)
    z = torch.as_tensor(np.asarray(logits, dtype=np.float32)[:, keep])
    target = torch.as_tensor(y[keep])
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def nll():
        optimizer.zero_grad()
        t = log_t.exp()
        if head.kind == "multilabel":
            p = torch.sigmoid(z / t).mean(0).clamp(1e-7, 1 - 1e-7)
            known = target >= 0
            loss = -(target * p.log() + (1 - target) * (1 - p).log())[known].mean()
        else:
            p = torch.softmax(z / t, -1).mean(0).clamp_min(1e-12)
            loss = -p.log().gather(1, target[:, :1]).mean()
        loss.backward()
        return loss

    if len(target):
        optimizer.step(nll)
    return float(np.clip(log_t.detach().exp().item(), MIN_T, MAX_T))




def calibrated(head: TaskHead, logits: np.ndarray, y: np.ndarray, rule: str = "no-sharpening"
               ) -> tuple[TaskHead, dict]:
    """`head` with the temperature `rule` chooses on these labelled rows, and how it was chosen:
    fitted — the NLL minimum; out-of-fold — that, kept only when it holds on folds it was not fitted on
    (`cross_validated_temperature`), else 1; no-sharpening — the NLL minimum but never below 1, since a temperature
    below 1 makes every probability surer, which a shifted test set punishes."""
    plain = replace(head, temperature=1.0)
    if rule == "out-of-fold":
        temperature, record = cross_validated_temperature(plain, logits, y)
    else:
        fitted = fit_temperature(plain, logits, y)
        temperature = max(fitted, 1.0) if rule == "no-sharpening" else fitted
        record = {"fitted": fitted}
    return replace(head, temperature=temperature), {"rule": rule, **record}


def calibration_events(kind: str, y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stated probability, whether it came true) per event. Single-label: the top class's probability and whether
    it is the true class (top-label calibration). Multi-label: every image-finding probability and the finding."""
    if kind == "multilabel":
        return proba.ravel(), y.ravel().astype(float)
    return proba.max(1), (proba.argmax(1) == y[:, 0]).astype(float)


def reliability_bins(prob: np.ndarray, outcome: np.ndarray, n_bins: int = N_BINS) -> tuple[np.ndarray, ...]:
    """Equal-width bins over [0, 1] (1.0 falls in the last): per non-empty bin the mean predicted probability,
    the observed frequency of the outcome and the number of events."""
    prob, outcome = np.asarray(prob, dtype=float), np.asarray(outcome, dtype=float)
    index = np.clip(np.digitize(prob, np.linspace(0, 1, n_bins + 1)[1:-1]), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    filled = counts > 0
    mean_pred = np.bincount(index, weights=prob, minlength=n_bins)[filled] / counts[filled]
    observed = np.bincount(index, weights=outcome, minlength=n_bins)[filled] / counts[filled]
    return mean_pred, observed, counts[filled]


def expected_calibration_error(confidence: np.ndarray, outcome: np.ndarray, n_bins: int = N_BINS) -> float:
    """Sum over the reliability diagram's bins of |mean stated probability - observed frequency|, weighted by bin
    size."""
    if not len(confidence):
        return float("nan")
    mean_pred, observed, counts = reliability_bins(confidence, outcome, n_bins)
    return float(np.sum(counts * np.abs(mean_pred - observed)) / counts.sum())


def brier_score(kind: str, y: np.ndarray, proba: np.ndarray, positive_index: int | None = None) -> float:
    """Binary: scikit-learn's Brier score of the positive class's probability. Multiclass: the mean over images of
    the squared distance to the one-hot truth (Brier's original form). Multi-label: the mean over image-finding
    pairs."""
    if kind == "binary":
        return float(brier_score_loss(y[:, 0] == positive_index, proba[:, positive_index]))
    if kind == "multilabel":
        return float(np.mean((proba - y) ** 2))
    onehot = np.eye(proba.shape[1])[y[:, 0]]
    return float(np.mean(np.sum((proba - onehot) ** 2, 1)))


def calibration_report(head: TaskHead, logits: np.ndarray, y: np.ndarray) -> dict:
    """ECE and Brier score of `head`'s probabilities at temperature 1 and at its own temperature."""
    result = {"temperature": head.temperature}
    for name, h in (("uncalibrated", replace(head, temperature=1.0)), ("calibrated", head)):
        proba = view_probabilities([h], logits)
        result[name] = {"ece": expected_calibration_error(*calibration_events(head.kind, y, proba)),
                        "brier": brier_score(head.kind, y, proba, head.positive_index)}
    return result


def held_out_nll(head: TaskHead, logits: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of `head`'s view-averaged probabilities on labelled rows (multi-label: over the
    known image-finding pairs)."""
    proba = np.clip(view_probabilities([head], logits), 1e-7, 1 - 1e-7)
    if head.kind == "multilabel":
        known = y >= 0
        return float(-(y * np.log(proba) + (1 - y) * np.log(1 - proba))[known].mean())
    keep = (y >= 0).all(1)
    return float(-np.log(proba[keep, y[keep, 0]]).mean())


def cross_validated_temperature(head: TaskHead, logits: np.ndarray, y: np.ndarray, folds: int = 5,
                                seed: int = 0) -> tuple[float, dict]:
    """The temperature fitted on all of validation, kept only when fitting it on part of validation lowers the
    NLL of the part it did not see (summed over `folds` stratified folds); else 1. A temperature that only fits
    noise in a small validation split then stays out, instead of sharpening or flattening every later answer.

    Returns (temperature, record: the fitted value, held-out NLL at temperature 1 and at the fold temperatures)."""
    fitted = fit_temperature(replace(head, temperature=1.0), logits, y)
    strata = y.any(1) if head.kind == "multilabel" else y[:, 0]
    fold_of = np.empty(len(y), int)
    rng = np.random.default_rng(seed)
    for value in np.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == value))
        fold_of[rows] = np.arange(len(rows)) % folds
    plain = tuned = 0.0
    for k in range(min(folds, len(y))):
        fit, held = fold_of != k, fold_of == k
        if not held.any() or not fit.any():
            continue
        t = fit_temperature(replace(head, temperature=1.0), logits[:, fit], y[fit])
        plain += held_out_nll(replace(head, temperature=1.0), logits[:, held], y[held]) * held.sum()
        tuned += held_out_nll(replace(head, temperature=t), logits[:, held], y[held]) * held.sum()
    kept = tuned < plain
    return (fitted if kept else 1.0), {"fitted": fitted, "kept": bool(kept), "folds": folds,
                                        "held_out_nll": {"temperature 1": plain / len(y),
                                                         "fold temperatures": tuned / len(y)}}

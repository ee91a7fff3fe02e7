"""Conformal prediction sets calibrated on the validation split (core/prediction_sets.py holds the arithmetic).

The validation split already chose the head's temperature (evaluation/calibration.py). Scores computed at that
temperature would have seen their own labels through it, so when the head is calibrated the scores are
**cross-conformal**: the validation images are cut into K = 5 folds (whole patients to a fold where patients have
several images, stratified by class), and each fold's scores come from probabilities at the temperature the same
rule fits on the other folds; the pooled scores of all validation images give the quantile(s), and predictions
apply the head's full-validation temperature. A temperature is one number fitted on thousands of labels, so the
fold temperatures sit close to the full one; the benchmark (benchmarks/coverage.py) measures the coverage this
gives on test splits. (Vovk's cross-conformal guarantee in the worst case is 1 - 2 alpha; a fitted scalar is far
from that worst case.) A head at temperature 1 fitted nothing on validation: its scores are plain **split
conformal** over every validation image.

Sets are **Mondrian** (one quantile per true class) when the validation classes are imbalanced, the smallest
class holding fewer than half the images of the largest: a marginal 90% would otherwise be met by covering the
common class at 95% and the rare one (often the disease) at 70%. Balanced classes get one marginal quantile, which
needs fewer images per class. Either can be asked for (`by_class`). Which was used, how and on how many images is
stored with the sets and in RUN/calibration.json.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead, view_probabilities
from medclass.core.prediction_sets import (DEFAULT_SCORE, SCORES, PredictionSets, check_coverage,
                                           check_requested_coverage, class_quantiles, conformal_quantile,
                                           minimum_images, true_label_scores)
from medclass.core.rundir import RunDir
from medclass.evaluation.calibration import calibrated

FOLDS = 5
IMBALANCED = 0.5  # Mondrian by default when the smallest class has under this share of the largest's images


def check_set_request(coverage: float | None, score: str | None = None) -> None:
    """`coverage`: None (keep the stored sets), 0 (no sets) or a share in (0, 1); `score` one of SCORES."""
    check_requested_coverage(coverage)
    if score is not None and score not in SCORES:
        raise MedclassError(f"--set-score must be one of {', '.join(SCORES)}; got {score!r}")


def imbalance(y: np.ndarray, n_classes: int) -> tuple[bool, str]:
    """Whether the calibration classes are imbalanced (IMBALANCED), and the counts that say so."""
    counts = np.bincount(np.asarray(y).ravel(), minlength=n_classes)
    smallest, largest = int(counts.min()), int(counts.max())
    imbalanced = smallest < IMBALANCED * largest
    return imbalanced, (f"smallest class {smallest} images, {'under' if imbalanced else 'at least'} half of the "
                        f"largest ({largest})")


def folds_of(y: np.ndarray, groups: np.ndarray | None, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Each image's fold: whole groups (patients) to a fold, groups shuffled within their first image's class and
    dealt round-robin, so folds match in size and class mix. Fewer groups than folds: one fold per group."""
    y = np.asarray(y).ravel()
    keys = np.asarray(groups) if groups is not None else np.arange(len(y))
    unique, first, group_of = np.unique(keys, return_index=True, return_inverse=True)
    rng = np.random.default_rng(seed)
    fold_of_group = np.empty(len(unique), dtype=np.int64)
    dealt = 0
    for label in np.unique(y[first]):
        members = rng.permutation(np.flatnonzero(y[first] == label))
        fold_of_group[members] = (dealt + np.arange(len(members))) % min(folds, len(unique))
        dealt += len(members)
    return fold_of_group[group_of.ravel()]


def calibration_scores(head: TaskHead, logits: np.ndarray, y: np.ndarray, rule: str | None, score: str,
                       groups: np.ndarray | None = None, folds: int = FOLDS, seed: int = 0
                       ) -> tuple[np.ndarray, dict]:
    """The true class's score of every calibration image, and how they were made ({method, temperature_rule,
    fold_temperatures}). `rule`: the temperature rule that calibrated `head` (None, or a head at temperature 1:
    split conformal)."""
    n, where = len(y), f"{len(y)} validation images"
    if rule is None or head.temperature == 1.0:
        proba = view_probabilities([head], logits)
        return true_label_scores(proba, y[:, 0], score), {
            "method": f"split conformal on all {where}, at temperature 1 (nothing was fitted on them)"}
    fold_of = folds_of(y[:, 0], groups, folds, seed)
    used = int(fold_of.max()) + 1 if n else 0
    if used < 2:
        proba = view_probabilities([head], logits)
        return true_label_scores(proba, y[:, 0], score), {
            "method": f"split conformal on {where}, too few to cross-fit the temperature: scored at the temperature "
                      "fitted on them", "temperature_rule": rule}
    scores, temperatures = np.empty(n), []
    for k in range(used):
        held = fold_of == k
        fold_head, _ = calibrated(head, logits[:, ~held], y[~held], rule)
        temperatures.append(fold_head.temperature)
        scores[held] = true_label_scores(view_probabilities([fold_head], logits[:, held]), y[held, 0], score)
    grouped = " grouped by patient" if groups is not None else ""
    return scores, {"method": f"cross-conformal: {used} folds of the {where}{grouped}, each fold scored at the "
                              f"temperature rule {rule!r} fitted on the other folds; sets use the full-validation "
                              f"temperature {head.temperature:.3g}",
                    "temperature_rule": rule, "fold_temperatures": temperatures}


def set_statistics(members: np.ndarray, y: np.ndarray) -> dict:
    """Mean set size, share of one-class sets and the share of images whose set holds their class."""
    if not len(members):
        return {"mean_size": float("nan"), "singletons": float("nan"), "coverage": float("nan")}
    sizes = members.sum(1)
    return {"mean_size": float(sizes.mean()), "singletons": float((sizes == 1).mean()),
            "coverage": float(members[np.arange(len(y)), np.asarray(y).ravel()].mean())}


def fit_sets(head: TaskHead, logits: np.ndarray, y: np.ndarray, coverage: float, *, rule: str | None,
             groups: np.ndarray | None = None, by_class: bool | None = None, score: str = DEFAULT_SCORE,
             source: str = "val", seed: int = 0) -> tuple[TaskHead, dict]:
    """`head` with prediction sets at `coverage` calibrated on these labelled images (logits: (views, images,
    outputs); y: the head's target column), and the record for calibration.json. `by_class` None: Mondrian when
    the classes are imbalanced. Multilabel heads are refused (they get no sets)."""
    if head.kind == "multilabel":
        raise MedclassError(f"task {head.name!r}: prediction sets apply to single-label tasks; it is multilabel")
    check_coverage(coverage)
    imbalanced, counts = imbalance(y[:, 0], len(head.classes))
    chosen = imbalanced if by_class is None else by_class
    why = f"auto: {counts}" if by_class is None else f"asked for ({counts})"
    scores, how = calibration_scores(head, logits, y, rule, score, groups, seed=seed)
    quantiles = class_quantiles(scores, y[:, 0], len(head.classes), coverage) if chosen else \
        np.array([conformal_quantile(scores, coverage)])
    sets = PredictionSets(coverage, tuple(quantiles), score, bool(chosen), how["method"], int(len(y)), source)
    head = replace(head, prediction_sets=sets)
    unbounded = [head.classes[i] for i in sets.unbounded] if chosen else (list(head.classes) if sets.unbounded
                                                                         else [])
    members = sets.members(view_probabilities([head], logits))
    record = sets.to_dict() | {k: v for k, v in how.items() if k != "method"} | {
        "by_class_rule": why, "in_every_set": unbounded, "minimum_images": minimum_images(coverage),
        "validation": set_statistics(members, y[:, 0])}
    return head, record


def tuned_sets(head: TaskHead, logits: np.ndarray, y: np.ndarray, coverage: float | None, *, calibrated_now: bool,
               rule: str | None, groups: np.ndarray | None = None, source: str = "val", by_class: bool | None = None,
               score: str | None = None) -> tuple[TaskHead, dict | None]:
    """What tuning does to `head`'s sets: coverage None keeps them (recalibrated now: made again at their stored
    coverage, score and kind, since they belong to the old temperature); 0 removes them; a share makes them.
    Returns the head and the record (None when nothing is said: a multilabel head, or no sets kept as none)."""
    stored = head.prediction_sets
    if head.kind == "multilabel":
        return head, None
    if coverage == 0:
        return replace(head, prediction_sets=None), {"off": "no prediction sets (coverage 0)"}
    if coverage is None:
        if stored is None:
            return head, None
        if not calibrated_now:
            return head, stored.to_dict() | {"kept": "stored sets kept (not made again this time)"}
        coverage, by_class, score = stored.coverage, stored.by_class if by_class is None else by_class, \
            score or stored.score
    return fit_sets(head, logits, y, coverage, rule=rule, groups=groups, by_class=by_class,
                    score=score or DEFAULT_SCORE, source=source)


def recorded_temperature_rule(run: RunDir, default: str) -> str:
    """The rule that chose the run's stored temperatures, so fold temperatures are fitted alike: as the last
    recalibration recorded it (calibration.json), else as the sets last made recorded it, else the run's config."""
    record = run.calibration() or {}
    for task in record.get("tasks", {}).values():
        rule = task.get("calibration", {}).get("chosen_by", {}).get("rule") or \
            (task.get("prediction_sets") or {}).get("temperature_rule")
        if rule:
            return rule
    config = run.settings().get("config", {}) if run.config_file.is_file() else {}
    return config.get("temperature_rule") or default


def set_summary_lines(record: dict) -> list[str]:
    """One line per task with sets: target, method, validation mean set size (calibration.json's record)."""
    lines = []
    for task, info in record.get("tasks", {}).items():
        sets = info.get("prediction_sets")
        if not sets:
            continue
        if "off" in sets:
            lines.append(f"task {task}: {sets['off']}")
            continue
        method = "cross-conformal" if sets["method"].startswith("cross") else "split conformal"
        kind = "Mondrian" if sets["by_class"] else "marginal"
        line = f"task {task}: prediction sets {sets['coverage']:.0%} coverage ({method}, {kind}, " \
               f"{sets['score'].upper()}, {sets['images']} images)"
        if "kept" in sets:
            lines.append(line + ": kept")
            continue
        val = sets["validation"]
        line += f": val mean set size {val['mean_size']:.2f}, {val['singletons']:.0%} one-class sets"
        if sets["in_every_set"]:
            line += (f"; too few images for a finite quantile (needs {sets['minimum_images']} per "
                     f"{'class' if sets['by_class'] else 'task'}): {', '.join(sets['in_every_set'])} in every set")
        lines.append(line)
    return lines

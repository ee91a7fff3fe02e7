"""Whether validation's verdict carries to the split being evaluated.

A run's validation split is carved from its training images; the checkpoint, temperature and operating point are
all chosen there. A test folder shipped from another source (another hospital, scanner, age group) can differ from
it: PneumoniaMNIST's validation AUC .99 against .94-.98 on its test split, where a specificity of .95 chosen on
validation gave .74. `validation_gap` scores the run's validation split with the same model and decision rule and
puts the AUC gap, with a bootstrap interval, beside what was chosen there and how it holds here.
"""

from __future__ import annotations

import numpy as np

from medclass.evaluation.bootstrap import bootstrap_draws, percentile_interval
from medclass.evaluation.calibration import calibration_events, expected_calibration_error
from medclass.evaluation.metrics import labelled_rows, task_statistics
from medclass.inference.split import SplitOutputs
from medclass.core.heads import TaskHead

LEVEL = 0.95


def split_draws(head: TaskHead, y: np.ndarray, proba: np.ndarray, n_boot: int, seed: int,
                groups: np.ndarray | None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The headline numbers of one task on labelled rows, and their bootstrap draws."""
    truth = y if head.kind == "multilabel" else y[:, 0]
    statistics, strata = task_statistics(head.kind, truth, proba, head.decide(proba), list(head.classes),
                                         head.positive_index, head.ordinal)
    point = {k: float(v[0]) for k, v in statistics(np.ones((1, len(y)))).items()}
    return point, bootstrap_draws(statistics, strata, n_boot, seed, groups)


def validation_gap(head: TaskHead, val: SplitOutputs, y: np.ndarray, proba: np.ndarray, n_boot: int, seed: int,
                   groups: np.ndarray | None = None) -> dict | None:
    """This split's AUC minus validation's, with a percentile interval from independent bootstraps of the two
    (resampled as each split's metrics are: by class, and by patient when patients are known); validation's
    sensitivity, specificity and ECE at the model's own decision and temperature beside this split's.

    y, proba: this split's labelled rows. None when validation has no labelled image for the task."""
    val_y = val.targets[head.name]
    keep = labelled_rows(val_y)
    if not keep.any() or n_boot < 1:
        return None
    val_y, val_proba = val_y[keep], val.probabilities([head])[head.name][keep]
    val_groups = val.patients[keep] if val.patients is not None else None
    val_point, val_draws = split_draws(head, val_y, val_proba, n_boot, seed + 1, val_groups)
    point, draws = split_draws(head, y, proba, n_boot, seed, groups)
    gap_ci = percentile_interval(draws["auc"] - val_draws["auc"], LEVEL)
    result = {"val_images": int(len(val_y)), "val_auc": val_point["auc"],
              "val_auc_ci": percentile_interval(val_draws["auc"], LEVEL), "auc": point["auc"],
              "auc_gap": point["auc"] - val_point["auc"], "auc_gap_ci": gap_ci, "level": LEVEL, "n_boot": n_boot,
              "shifted": bool(gap_ci and gap_ci[1] < 0),
              "val_ece": expected_calibration_error(*calibration_events(head.kind, val_y, val_proba)),
              "ece": expected_calibration_error(*calibration_events(head.kind, y, proba))}
    if head.kind == "binary":
        result |= {f"{where}{name}": source[name] for where, source in (("val_", val_point), ("", point))
                   for name in ("sensitivity", "specificity")}
    return result


def gap_lines(gap: dict) -> list[str]:
    """What `evaluate` prints about the gap: the numbers, then, when this split scores clearly below validation,
    that what validation chose may not hold here, and what to do about it."""
    ci = gap["auc_gap_ci"]
    interval = f" ({gap['level']:.0%} CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else ""
    lines = [f"validation AUC {gap['val_auc']:.4f} on {gap['val_images']} images, here {gap['auc']:.4f}: "
             f"{gap['auc_gap']:+.4f}{interval}"]
    if not gap["shifted"]:
        return lines
    held = [f"ECE {gap['val_ece']:.3f} -> {gap['ece']:.3f}"]
    if "specificity" in gap:
        held = [f"sensitivity {gap['val_sensitivity']:.3f} -> {gap['sensitivity']:.3f}",
                f"specificity {gap['val_specificity']:.3f} -> {gap['specificity']:.3f}"] + held
    return lines + ["below validation beyond chance: these images are not like the validation images, and the "
                    "temperature and operating point chosen there may not transfer",
                    f"at the model's own decision, validation -> here: {', '.join(held)}",
                    "choose them on labelled images from this source instead: "
                    "medclass threshold RUN --data DIR --recalibrate ..."]

"""How far validation's verdict carries: the AUC gap with its interval, and the warning when the split evaluated
scores clearly below validation."""

from types import SimpleNamespace

import numpy as np

from medclass.inference.split import SplitOutputs
from medclass.evaluation.transfer import gap_lines, validation_gap
from medclass.core.heads import TaskHead, view_probabilities

HEAD = TaskHead("label", "binary", ("normal", "pneumonia"), positive_index=1)


def outputs(y: np.ndarray, separation: float, seed: int) -> SplitOutputs:
    """Binary logits whose positive-class margin grows with the label by `separation` (plus unit noise)."""
    rng = np.random.default_rng(seed)
    margin = separation * (y - 0.5) + rng.normal(size=len(y))
    logits = np.stack([-margin / 2, margin / 2], 1)[None].astype(np.float32)
    samples = [SimpleNamespace(patient=None) for _ in y]
    return SplitOutputs([HEAD], SimpleNamespace(samples=samples), logits, {"label": y[:, None]})


def gap_between(val_separation: float, test_separation: float, test_seed: int = 2) -> dict:
    y = np.arange(400) % 2
    val, test = outputs(y, val_separation, 1), outputs(y, test_separation, test_seed)
    proba = view_probabilities([HEAD], test.logits)
    return validation_gap(HEAD, val, y[:, None], proba, n_boot=300, seed=0)


def test_a_test_split_clearly_below_validation_is_called_shifted_with_what_moved():
    gap = gap_between(6.0, 1.5)
    assert gap["auc"] < gap["val_auc"] and gap["auc_gap_ci"][1] < 0 and gap["shifted"]
    assert gap["auc_gap"] == gap["auc"] - gap["val_auc"]
    assert gap["val_images"] == 400 and gap["val_specificity"] > gap["specificity"]
    text = " ".join(gap_lines(gap))
    assert "may not transfer" in text and "specificity" in text and "medclass threshold RUN --data" in text


def test_the_same_images_get_an_interval_around_zero_and_no_warning():
    gap = gap_between(3.0, 3.0, test_seed=1)  # validation scored twice: only the bootstrap differs
    assert gap["auc_gap"] == 0
    low, high = gap["auc_gap_ci"]
    assert low < 0 < high and not gap["shifted"]
    assert len(gap_lines(gap)) == 1 and "may not transfer" not in gap_lines(gap)[0]


def test_the_interval_widens_when_validation_is_small():
    y = np.arange(400) % 2
    test = outputs(y, 1.5, 2)  # AUC near .85: far from the ceiling a perfectly separated sample sits at
    proba = view_probabilities([HEAD], test.logits)
    small_val = outputs(y[:20], 1.5, 1)
    large_val = outputs(y, 1.5, 1)
    widths = [np.diff(validation_gap(HEAD, v, y[:, None], proba, 300, 0)["auc_gap_ci"])[0]
              for v in (small_val, large_val)]
    assert widths[0] > 1.5 * widths[1]

"""Report figures: each writes a readable PNG; the numbers drawn on them (operating point, row shares,
reliability bins) against scikit-learn or by hand."""

import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix

from medclass.evaluation.plots import (normalise_rows, operating_point, plot_confidence, plot_confusion,
                                       plot_error_grid, plot_pr, plot_pr_findings, plot_reliability, plot_roc,
                                       plot_roc_findings, reliability_bins)

FINDINGS = [f"finding {j}" for j in range(14)]


def _png(path, min_side=200):
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= min_side
        return image.size


def _binary(seed=0, n=120):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0, 1)
    return y, np.stack([1 - p1, p1], 1)


def _multiclass(seed=1, n=90, k=3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += 0.4
    return y, proba / proba.sum(1, keepdims=True)


def _multilabel(seed=2, n=80, k=14):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, k)) < 0.25).astype(int)
    y[:, 3] = 0  # a finding with no positive image: no curve, no failure
    return y, np.clip(0.4 * y + rng.uniform(0, 0.6, (n, k)), 0, 1)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.77, 1.01])
def test_operating_point_matches_confusion_matrix(threshold):
    y, proba = _binary()
    tn, fp, fn, tp = confusion_matrix(y, proba[:, 1] >= threshold, labels=[0, 1]).ravel()
    fpr, tpr, precision = operating_point(y, proba[:, 1], threshold)
    assert fpr == pytest.approx(fp / (fp + tn)) and tpr == pytest.approx(tp / (tp + fn))
    assert precision == pytest.approx(tp / (tp + fp)) if tp + fp else np.isnan(precision)


def test_operating_point_undefined_rates_are_nan():
    fpr, tpr, precision = operating_point(np.ones(4, int), np.array([0.1, 0.2, 0.3, 0.4]), 0.9)
    assert np.isnan(fpr) and tpr == 0 and np.isnan(precision)


def test_row_normalisation_sums_to_one_and_keeps_an_empty_row_zero():
    cm = [[5, 3, 2], [0, 0, 0], [1, 0, 9]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shares = normalise_rows(cm)
    np.testing.assert_allclose(shares.sum(1), [1, 0, 1])
    np.testing.assert_array_equal(shares[1], 0)
    assert shares[0, 0] == 0.5


def test_confusion_two_panels(tmp_path):
    width, height = _png(plot_confusion([[5, 3, 2], [0, 0, 0], [1, 0, 9]], ["a", "b", "c"], tmp_path / "cm.png"))
    assert width > 1.5 * height


@pytest.mark.parametrize("plot", [plot_roc, plot_pr])
def test_binary_curves_with_and_without_operating_point(tmp_path, plot):
    y, proba = _binary()
    _png(plot(y, proba, ["normal", "pneumonia"], 1, tmp_path / "plain.png"))
    _png(plot(y, proba, ["normal", "pneumonia"], 1, tmp_path / "marked.png", threshold=0.42))
    _png(plot(y, proba, ["normal", "pneumonia"], None, tmp_path / "default_positive.png", threshold=0.5))


@pytest.mark.parametrize("plot", [plot_roc, plot_pr])
def test_multiclass_curves_and_a_class_without_images(tmp_path, plot):
    y, proba = _multiclass()
    _png(plot(y, proba, ["a", "b", "c"], None, tmp_path / "ovr.png"))
    y[y == 2] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _png(plot(y, proba, ["a", "b", "c"], None, tmp_path / "missing.png"))
        _png(plot(np.zeros(6, int), np.full((6, 2), 0.5), ["a", "b"], 1, tmp_path / "one_class.png", threshold=0.5))


@pytest.mark.parametrize("plot", [plot_roc_findings, plot_pr_findings])
def test_findings_curves_with_thresholds(tmp_path, plot):
    y, proba = _multilabel()
    _png(plot(y, proba, FINDINGS, tmp_path / "plain.png"))
    _png(plot(y, proba, FINDINGS, tmp_path / "marked.png", thresholds=[0.5] * len(FINDINGS)))


def test_confidence_single_label_and_multilabel(tmp_path):
    y, proba = _multiclass()
    width, _ = _png(plot_confidence(y, proba, ["a", "b", "c"], tmp_path / "single.png"))
    y_ml, proba_ml = _multilabel()
    width_ml, height_ml = _png(plot_confidence(y_ml, proba_ml, FINDINGS, tmp_path / "multi.png"))
    assert width_ml > width and height_ml > 3 * 200  # 14 findings: four columns, four rows


def test_reliability_bins_match_calibration_curve_and_the_count_histogram():
    rng = np.random.default_rng(4)
    prob = rng.uniform(0, 1, 500)
    prob[:2] = [0.0, 1.0]
    outcome = (rng.uniform(size=500) < prob).astype(int)
    mean_pred, observed, counts = reliability_bins(prob, outcome, n_bins=10)
    true_freq, pred_mean = calibration_curve(outcome, prob, n_bins=10)
    np.testing.assert_allclose(observed, true_freq)
    np.testing.assert_allclose(mean_pred, pred_mean)
    np.testing.assert_array_equal(counts, np.histogram(prob, bins=10, range=(0, 1))[0])


def test_reliability_bin_edges_follow_the_count_histogram_and_empty_bins_are_left_out():
    """An edge value goes to the bin above, as in the count panel's histogram (calibration_curve puts it below)."""
    mean_pred, observed, counts = reliability_bins(np.array([0.5, 0.5, 0.95, 1.0]), np.array([1, 0, 1, 1]), 10)
    np.testing.assert_allclose(mean_pred, [0.5, 0.975])
    np.testing.assert_allclose(observed, [0.5, 1.0])
    np.testing.assert_array_equal(counts, [2, 2])


def test_reliability_diagram(tmp_path):
    rng = np.random.default_rng(5)
    conf = rng.uniform(0.34, 1, 300)
    correct = (rng.uniform(size=300) < conf ** 2).astype(int)
    curves = {"before calibration (T=1)": (conf, correct), "after (T=1.84)": (conf ** 1.5, correct),
              "empty": (np.array([]), np.array([]))}
    _png(plot_reliability(curves, tmp_path / "reliability.png", n_bins=15))


def test_error_grid_empty_and_five_images(tmp_path):
    _png(plot_error_grid([], [], tmp_path / "none.png"), min_side=100)
    rng = np.random.default_rng(6)
    images = [rng.integers(0, 256, (32, 32), dtype=np.uint8), rng.uniform(size=(24, 32, 3)),
              Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)),
              Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).convert("P"),
              rng.integers(0, 256, (16, 16, 1), dtype=np.uint8)]
    captions = [f"true: normal\npredicted: pneumonia (0.9{i})\nperson{i}_virus.jpeg" for i in range(5)]
    width, height = _png(plot_error_grid(images, captions, tmp_path / "errors.png"))
    assert width > height  # four columns, two rows
    with pytest.raises(ValueError, match="caption"):
        plot_error_grid(images, captions[:2], tmp_path / "bad.png")


BLOOD = ["basophil", "eosinophil", "erythroblast",
         "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
         "neutrophil", "platelet"]


def _kept_figures(monkeypatch):
    """The figures a plot function draws, kept open after it saves them."""
    import medclass.evaluation.plots as plots

    kept = []
    monkeypatch.setattr(plots.plt, "close", kept.append)
    return kept


def _inside(fig, artist) -> bool:
    box = artist.get_window_extent(fig.canvas.get_renderer())
    return box.x0 >= -1 and box.y0 >= -1 and box.x1 <= fig.bbox.x1 + 1 and box.y1 <= fig.bbox.y1 + 1


def test_long_class_names_are_shortened_on_the_axes_and_spelt_out_in_a_key(tmp_path, monkeypatch):
    """BloodMNIST's 67-character class name ran off the confusion matrix and squeezed its cells."""
    kept = _kept_figures(monkeypatch)
    cm = np.eye(len(BLOOD), dtype=int) * 5 + 1
    _png(plot_confusion(cm.tolist(), BLOOD, tmp_path / "cm.png"))
    y, proba = _multiclass(k=len(BLOOD), n=160)
    plot_confidence(y, proba, BLOOD, tmp_path / "confidence.png")
    plot_roc(y, proba, BLOOD, None, tmp_path / "roc.png")
    for fig in kept:
        fig.canvas.draw()
        shown = [t for ax in fig.axes for t in (*ax.get_xticklabels(), *ax.get_yticklabels(), ax.title)]
        legends = [t for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        assert all(len(t.get_text()) <= 20 for ax in fig.axes for t in (*ax.get_xticklabels(), *ax.get_yticklabels()))
        assert not any("metamyelocytes" in t.get_text() for t in shown + legends)
        class_labels = [t for t in shown + legends if t.get_text()[:2] in {f"{i} " for i in range(len(BLOOD))}]
        assert class_labels and all(_inside(fig, t) for t in class_labels + fig.texts)
        key = "\n".join(t.get_text() for t in fig.texts).replace("\n    ", " ")
        assert "3 = immature granulocytes(myelocytes, metamyelocytes and promyelocytes)" in key
    matrix = kept[0].axes[0]
    assert matrix.get_window_extent().width > 0.25 * kept[0].bbox.width  # the cells keep their room


def test_confidence_histogram_marks_the_operating_point(tmp_path, monkeypatch):
    kept = _kept_figures(monkeypatch)
    y, proba = _binary()
    plot_confidence(y, proba, ["benign", "malignant"], tmp_path / "c.png", thresholds=[0.7, 0.3])
    lines = [line for line in kept[0].axes[1].get_lines() if line.get_linestyle() == "--"]
    assert len(lines) == 1 and lines[0].get_xdata()[0] == pytest.approx(0.3)
    assert "operating point 0.30" in [t.get_text() for t in kept[0].axes[1].get_legend().get_texts()]

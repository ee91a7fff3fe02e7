"""Figures for the report: confusion matrix, ROC and precision-recall curves with the operating point, confidence
histograms, reliability diagram and a grid of the most confident errors (matplotlib, headless)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402

from medclass.evaluation.calibration import N_BINS, reliability_bins  # noqa: E402
from medclass.evaluation.metrics import decision_rates  # noqa: E402

ROC_AXES = {"xlabel": "1 - specificity (false positive rate)", "ylabel": "sensitivity (true positive rate)"}
PR_AXES = {"xlabel": "recall (sensitivity)", "ylabel": "precision (positive predictive value)"}
LABEL_CHARS = 16  # longer class names are shortened on axes and legends, and spelt out in a key under the figure
KEY_LINE_INCHES = 0.17


def short_labels(classes: list[str], limit: int = LABEL_CHARS) -> tuple[list[str], list[str]]:
    """(labels, key): names that fit as they are; when one does not (BloodMNIST's "immature granulocytes(myelocytes,
    metamyelocytes and promyelocytes)"), every class is numbered and a long name cut, "3 immature gran…", and the
    key lists the full names of those cut ("3 = immature granulocytes(...)")."""
    if all(len(c) <= limit for c in classes):
        return list(classes), []
    labels, key = [], []
    for i, name in enumerate(classes):
        cut = len(name) > limit
        labels.append(f"{i} {name[:limit - 1].rstrip()}…" if cut else f"{i} {name}")
        key += [f"{i} = {name}"] if cut else []
    return labels, key


def _save(fig: plt.Figure, path: Path, key: list[str] | None = None) -> Path:
    """Lay out and write the figure; `key` (from short_labels): lines of full class names under it."""
    if key:
        width, height = fig.get_size_inches()
        lines = [line for entry in key for line in textwrap.wrap(entry, max(30, int(width * 15)),
                                                                 subsequent_indent="    ")]
        extra = KEY_LINE_INCHES * (len(lines) + 1)
        fig.set_size_inches(width, height + extra)
        fig.text(0.01, 0.01, "\n".join(lines), fontsize=8, va="bottom", ha="left")
        bottom = extra / (height + extra)
        if fig.get_layout_engine() is None:
            fig.tight_layout(rect=(0, bottom, 1, 1))
        else:  # constrained layout: keep the key's strip free
            fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
    elif fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _legend(ax: plt.Axes, **kwargs) -> None:
    """A legend only when something is labelled (a task with one class present draws no curve)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def normalise_rows(cm: list[list[int]] | np.ndarray) -> np.ndarray:
    """Each true-class row as shares summing to 1, so small classes read as clearly as large ones; a class with
    no images keeps a row of zeros instead of NaNs (and no division warning)."""
    cm = np.asarray(cm, dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path) -> Path:
    """Counts and row-normalised shares side by side: the counts show the sample sizes, the shares show each true
    class's sensitivity on the diagonal whatever the class balance."""
    labels, key = short_labels(classes)
    size = 2.5 + 0.6 * len(classes)
    fig, (ax_counts, ax_shares) = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    ConfusionMatrixDisplay(np.asarray(cm), display_labels=labels).plot(ax=ax_counts, cmap="Blues", colorbar=False,
                                                                       xticks_rotation=30)
    ConfusionMatrixDisplay(normalise_rows(cm), display_labels=labels).plot(
        ax=ax_shares, cmap="Blues", colorbar=False, xticks_rotation=30, values_format=".2f",
        im_kw={"vmin": 0, "vmax": 1})
    for ax in (ax_counts, ax_shares):
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax_counts.set_title("Counts (rows: true class)")
    ax_shares.set_title("Share of each true class (rows sum to 1)")
    return _save(fig, path, key)


def operating_point(y_true_binary: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(false positive rate, true positive rate, precision) when images with score >= threshold are called
    positive: where the decision the model ships with sits on its ROC and PR curves. A rate with an empty
    denominator (no negatives, no positives, nothing called positive) is NaN."""
    rates = decision_rates(y_true_binary, np.asarray(scores) >= threshold)
    return 1 - rates["specificity"], rates["sensitivity"], rates["ppv"]


def _shown(classes: list[str], positive_index: int | None) -> list[int]:
    """Binary: only the positive class, the one the decision is about. Multi-class: every class one-vs-rest."""
    return [positive_index if positive_index is not None else 1] if len(classes) == 2 else list(range(len(classes)))


def _mark_roc(ax: plt.Axes, truth: np.ndarray, scores: np.ndarray, threshold: float, color, name: str = "") -> None:
    fpr, tpr, _ = operating_point(truth, scores, threshold)
    ax.plot(fpr, tpr, "o", color=color, markeredgecolor="black", markersize=8,
            label=f"{name}operating point {threshold:.2f}: sens {tpr:.2f}, spec {1 - fpr:.2f}")


def _mark_pr(ax: plt.Axes, truth: np.ndarray, scores: np.ndarray, threshold: float, color, name: str = "") -> None:
    _, recall, precision = operating_point(truth, scores, threshold)
    ax.plot(recall, precision, "o", color=color, markeredgecolor="black", markersize=8,
            label=f"{name}operating point {threshold:.2f}: recall {recall:.2f}, precision {precision:.2f}")


def plot_roc(y_true: np.ndarray, proba: np.ndarray, classes: list[str], positive_index: int | None,
             path: Path, threshold: float | None = None) -> Path:
    """Binary: one curve for the positive class, with the operating point of `threshold` when given (what the
    deployed decision achieves, not only what the scores could). Multi-class: one-vs-rest curve per class."""
    labels, key = short_labels(classes)
    fig, ax = plt.subplots(figsize=(5, 5))
    for i in _shown(classes, positive_index):
        truth = np.asarray(y_true) == i
        if len(np.unique(truth)) == 2:
            display = RocCurveDisplay.from_predictions(truth, proba[:, i], name=labels[i], ax=ax)
            if threshold is not None and len(classes) == 2:
                _mark_roc(ax, truth, proba[:, i], threshold, display.line_.get_color())
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(**ROC_AXES, title="ROC curve" + (" (one-vs-rest)" if len(classes) > 2 else ""))
    _legend(ax, fontsize="small", loc="lower right")
    return _save(fig, path, key)


def plot_pr(y_true: np.ndarray, proba: np.ndarray, classes: list[str], positive_index: int | None,
            path: Path, threshold: float | None = None) -> Path:
    """Precision-recall: unlike ROC it shows how many positive calls are right at the prevalence of this data set,
    which is what a rare finding needs. Binary: the positive class against the prevalence (a model without skill),
    with the operating point of `threshold` when given. Multi-class: one-vs-rest curve per class."""
    labels, key = short_labels(classes)
    fig, ax = plt.subplots(figsize=(5, 5))
    for i in _shown(classes, positive_index):
        truth = np.asarray(y_true) == i
        if len(np.unique(truth)) == 2:
            display = PrecisionRecallDisplay.from_predictions(truth, proba[:, i], name=labels[i], ax=ax)
            if len(classes) == 2:
                ax.axhline(truth.mean(), ls="--", color="grey", label=f"no skill (prevalence {truth.mean():.2f})")
                if threshold is not None:
                    _mark_pr(ax, truth, proba[:, i], threshold, display.line_.get_color())
    ax.set(**PR_AXES, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
           title="Precision-recall curve" + (" (one-vs-rest)" if len(classes) > 2 else ""))
    _legend(ax, fontsize="small", loc="lower left")
    return _save(fig, path, key)


def _findings_curves(y: np.ndarray, proba: np.ndarray, findings: list[str], ax: plt.Axes, display_cls, mark,
                     thresholds: list[float] | None) -> None:
    """One curve per finding with positive and negative images (the others have no curve), marked at its
    threshold when given."""
    for j, name in enumerate(findings):
        if 0 < y[:, j].sum() < len(y):
            display = display_cls.from_predictions(y[:, j], proba[:, j], name=name, ax=ax)
            if thresholds is not None:
                mark(ax, y[:, j], proba[:, j], thresholds[j], display.line_.get_color(), f"{name}: ")


def plot_roc_findings(y: np.ndarray, proba: np.ndarray, findings: list[str], path: Path,
                      thresholds: list[float] | None = None) -> Path:
    """A multi-label task: one ROC curve per finding that has positive and negative images, each marked at its
    operating point when `thresholds` (one per finding) are given."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5) if thresholds is None else (7, 7))
    _findings_curves(y, proba, findings, ax, RocCurveDisplay, _mark_roc, thresholds)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(**ROC_AXES, title="ROC curve per finding")
    _legend(ax, fontsize="small" if thresholds is None else "x-small")
    return _save(fig, path)


def plot_pr_findings(y: np.ndarray, proba: np.ndarray, findings: list[str], path: Path,
                     thresholds: list[float] | None = None) -> Path:
    """A multi-label task: one precision-recall curve per finding that has positive and negative images (findings
    are often rare, where ROC flatters), each marked at its operating point when `thresholds` are given."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5) if thresholds is None else (7, 7))
    _findings_curves(y, proba, findings, ax, PrecisionRecallDisplay, _mark_pr, thresholds)
    ax.set(**PR_AXES, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title="Precision-recall curve per finding")
    _legend(ax, fontsize="small" if thresholds is None else "x-small")
    return _save(fig, path)


def _grid(n: int, columns: int, panel: tuple[float, float]) -> tuple[plt.Figure, list[plt.Axes]]:
    """At most `columns` panels a row; the spare panels of the last row are hidden."""
    cols = max(1, min(columns, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False,
                             layout="constrained")  # room for multi-line titles, which tight_layout misjudges
    axes = list(axes.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def plot_confidence(y: np.ndarray, proba: np.ndarray, classes: list[str], path: Path,
                    thresholds: list[float | None] | None = None) -> Path:
    """Per class (or finding), the predicted probability of that class for images of it against images without it:
    well separated histograms mean a threshold can tell them apart, overlap shows where errors come from. Each
    histogram shows shares of its group, so a rare class stays visible. `y`: class indices or a 0/1 matrix.
    `thresholds`: per panel, where the decision cuts that probability (a line marks it), or None (argmax)."""
    y = np.asarray(y)
    bins = np.linspace(0, 1, 21)
    labels, key = short_labels(classes)
    fig, axes = _grid(len(classes), 4, (3.2, 2.5))
    for j, (ax, name) in enumerate(zip(axes, labels)):
        has = y[:, j] == 1 if y.ndim == 2 else y == j
        for group, label, color in ((has, "with", "tab:red"), (~has, "without", "tab:blue")):
            scores = proba[group, j]
            if len(scores):
                ax.hist(scores, bins=bins, weights=np.full(len(scores), 1 / len(scores)), alpha=0.5, color=color,
                        label=f"{label} (n={len(scores)})")
        if thresholds is not None and thresholds[j] is not None:
            ax.axvline(thresholds[j], color="black", ls="--", lw=1.2, label=f"operating point {thresholds[j]:.2f}")
        ax.set_xlim(0, 1)
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel(f"P({name})", fontsize="small")
        ax.set_ylabel("share of images", fontsize="small")
        ax.tick_params(labelsize="x-small")
        _legend(ax, fontsize="x-small")
    fig.suptitle("Predicted probability: images with the class vs without" + (
        "" if thresholds is None or any(t is not None for t in thresholds) else " (decision: the most probable class)"))
    return _save(fig, path, key)


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, n_bins: int = N_BINS) -> Path:
    """Reliability diagram: does a predicted 80 % come true 80 % of the time? One line per curve (e.g. before
    and after temperature scaling) over the non-empty bins, and below it how many events each bin holds, since a
    bin of three images says little."""
    fig, (ax, ax_counts) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, height_ratios=(3, 1))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    edges = np.linspace(0, 1, n_bins + 1)
    for name, (prob, outcome) in curves.items():
        if len(prob) == 0:
            continue
        mean_pred, observed, _ = reliability_bins(prob, outcome, n_bins)
        (line,) = ax.plot(mean_pred, observed, "o-", label=f"{name} (n={len(prob)})")
        ax_counts.hist(np.clip(prob, 0, 1), bins=edges, histtype="step", color=line.get_color(), linewidth=1.5)
    ax.set(ylabel="observed frequency", xlim=(0, 1), ylim=(-0.02, 1.02), title="Reliability diagram")
    _legend(ax, fontsize="small", loc="upper left")
    ax_counts.set(xlabel="predicted probability", ylabel="events per bin")
    return _save(fig, path)


def plot_error_grid(images: list, captions: list[str], path: Path, columns: int = 4,
                    title: str = "Most confident errors", colors: list[str] | None = None) -> Path:
    """Thumbnails with captions (true class, prediction, confidence, file) so a reader can see what the model gets
    wrong most confidently (or, with `colors` per caption, a sample of right and wrong answers). With no images the
    figure says so rather than the report missing a picture."""
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} image(s) but {len(captions)} caption(s)")
    if not images:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.text(0.5, 0.5, "no errors", ha="center", va="center", fontsize="large")
        ax.axis("off")
        ax.set_title(title)
        return _save(fig, path)
    fig, axes = _grid(len(images), columns, (2.6, 3.0))
    for ax, image, caption, color in zip(axes, images, captions, colors or ["black"] * len(images)):
        if isinstance(image, Image.Image) and image.mode not in ("L", "I", "I;16", "F", "RGB", "RGBA"):
            image = image.convert("RGB")  # a palette image's values are indices, not intensities
        pixels = np.asarray(image)
        grey = pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] == 1)
        ax.imshow(pixels.squeeze(-1) if pixels.ndim == 3 and grey else pixels, cmap="gray" if grey else None)
        ax.set_title(caption, fontsize="x-small", color=color)
        ax.axis("off")
    fig.suptitle(title)
    return _save(fig, path)


def plot_class_bars(values: dict[str, list[float]], classes: list[str], path: Path, title: str,
                    ylabel: str = "F1") -> Path:
    """One group of bars per class, one bar per run (`values`: run -> a number per class): which model wins
    where, e.g. the minority class one model never finds."""
    labels, key = short_labels(classes)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 + len(classes) * (0.35 * len(values) + 0.5)), 4))
    width = 0.8 / len(values)
    x = np.arange(len(classes))
    for k, (run, numbers) in enumerate(values.items()):
        bars = ax.bar(x + (k - (len(values) - 1) / 2) * width, numbers, width, label=run)
        ax.bar_label(bars, fmt="%.2f", fontsize="x-small", padding=1)
    ax.set_xticks(x, labels, rotation=30 if len(classes) > 3 else 0, ha="right" if len(classes) > 3 else "center")
    ax.set(ylabel=ylabel, ylim=(0, 1.1), title=title)
    _legend(ax, fontsize="small", loc="upper right")
    return _save(fig, path, key)


def plot_roc_runs(truth: np.ndarray, scores: dict[str, np.ndarray], path: Path, positive_class: str) -> Path:
    """A binary task: each run's ROC curve of the positive class on the same images."""
    fig, ax = plt.subplots(figsize=(5, 5))
    if len(np.unique(truth)) == 2:
        for run, score in scores.items():
            RocCurveDisplay.from_predictions(truth, score, name=run, ax=ax)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(**ROC_AXES, title=f"ROC curves, {positive_class[:30]} (same images)")
    _legend(ax, fontsize="small", loc="lower right")
    return _save(fig, path)

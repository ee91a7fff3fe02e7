"""Figures for the report: confusion matrix and ROC curves (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay  # noqa: E402


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path) -> Path:
    size = 2.5 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ConfusionMatrixDisplay(np.array(cm), display_labels=classes).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                        xticks_rotation=30)
    ax.set_title("Confusion matrix (rows: true class)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(y_true: np.ndarray, proba: np.ndarray, classes: list[str], positive_index: int | None,
             path: Path) -> Path:
    """Binary: one curve for the positive class. Multi-class: one-vs-rest curve per class."""
    fig, ax = plt.subplots(figsize=(5, 5))
    shown = [positive_index if positive_index is not None else 1] if len(classes) == 2 else range(len(classes))
    for i in shown:
        if len(np.unique(y_true == i)) == 2:
            RocCurveDisplay.from_predictions(y_true == i, proba[:, i], name=classes[i], ax=ax)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (true positive rate)",
           title="ROC curve" + (" (one-vs-rest)" if len(classes) > 2 else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc_findings(y: np.ndarray, proba: np.ndarray, findings: list[str], path: Path) -> Path:
    """A multi-label task: one ROC curve per finding that has positive and negative images."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for j, name in enumerate(findings):
        if 0 < y[:, j].sum() < len(y):
            RocCurveDisplay.from_predictions(y[:, j], proba[:, j], name=name, ax=ax)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (true positive rate)",
           title="ROC curve per finding")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

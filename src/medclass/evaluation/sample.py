"""`medclass sample`: a random batch of a run's held-out TEST images, every task predicted next to its truth.

A look at a model's answers is only worth something on images it never trained or tuned on; drawing from the
training images (as many notebooks do) shows memorised answers. The seed is reported, so the batch can be drawn again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from medclass.inference.split import dataset_tasks
from medclass.core.heads import TaskHead
from medclass.inference.batch import rows_from_logits
from medclass.inference.predictor import Predictor
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset

CORRECT, WRONG = "#1a7f37", "#cf222e"


@dataclass
class SampledImage:
    source: str
    image: Image.Image
    truth: dict[str, str]  # task -> true label as text ('' unlabelled; multilabel: findings joined by '|')
    prediction: dict[str, str]
    proba: dict[str, list[float]]


def truth_label(value) -> str:
    if value is None:
        return ""
    return "|".join(value) if isinstance(value, (tuple, list)) else str(value)


def sample_test_images(run: str | Path | RunDir, n: int = 16, seed: int | None = None,
                       predictor: Predictor | None = None) -> tuple[list[SampledImage], int]:
    """`n` images drawn at random from the run's test split, predicted; returns them and the seed used."""
    run = RunDir(run)
    predictor = predictor or Predictor(run.artifact())
    dataset = run_dataset(run, "test")
    seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else seed
    chosen = np.random.default_rng(seed).choice(len(dataset), size=min(n, len(dataset)), replace=False)
    images = [dataset.load_image(int(i)) for i in chosen]
    logits = predictor.forward(predictor.preprocess(images))
    tasks = dict(zip((h.name for h in predictor.heads), dataset_tasks(dataset, predictor.heads)))
    sampled = []
    for i, image, row in zip(chosen, images, rows_from_logits(predictor, [""] * len(images), logits,
                                                              [None] * len(images))):
        sample = dataset.samples[int(i)]
        truth = {head: truth_label(sample.labels.get(task)) for head, task in tasks.items()}
        sampled.append(SampledImage(sample.source, image, truth, row.prediction.texts(), row.prediction.proba()))
    return sampled, seed


def answer_text(head: TaskHead, item: SampledImage, named: bool) -> str:
    """'benign -> malignant 0.82' (true -> predicted, with the probability of the predicted class or findings)."""
    predicted = item.prediction[head.name]
    proba = dict(zip(head.classes, item.proba[head.name]))
    if head.kind == "multilabel":
        shown = ", ".join(f"{c} {proba[c]:.2f}" for c in predicted.split("|") if c) or "none"
    else:
        shown = f"{predicted} {proba[predicted]:.2f}"
    truth = item.truth[head.name] or ("none" if head.kind == "multilabel" else "?")
    mark = "ok" if item.truth[head.name] == predicted else "WRONG"
    return f"{head.name + ': ' if named else ''}{truth} -> {shown} [{mark}]"


def sample_lines(heads: list[TaskHead], sampled: list[SampledImage]) -> list[str]:
    named = len(heads) > 1
    return [f"{Path(item.source).name}\t" + "\t".join(answer_text(h, item, named) for h in heads) for item in sampled]


def save_sample_grid(heads: list[TaskHead], sampled: list[SampledImage], path: Path, seed: int) -> Path:
    """The batch as a labelled image grid: true -> predicted per task, green when every task is right."""
    from medclass.evaluation.plots import plot_error_grid

    named = len(heads) > 1
    captions = ["\n".join([Path(item.source).name[-28:], *(answer_text(h, item, named) for h in heads)])
                for item in sampled]
    colors = [CORRECT if all(item.truth[h.name] == item.prediction[h.name] for h in heads) else WRONG
              for item in sampled]
    return plot_error_grid([item.image for item in sampled], captions, path, columns=4, colors=colors,
                           title=f"Random test images (seed {seed}): true -> predicted")

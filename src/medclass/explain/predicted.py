"""Explanations of a Predictor's answers: `explain(predictor, images, method)` (what `Predictor.explain` was), and
`explaining(predictor, options)`, which attaches them to `iter_predictions`' rows batch by batch.

The class explained follows the Predictor's answer (test-time views averaged, calibrated), and the probability an
explanation shows is the one the Predictor reports.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from medclass.core.heads import view_probabilities
from medclass.explain.explainer import EXPLAINERS, Explainer, Explanation, ModelParts, build_explainer
from medclass.explain.options import ExplainOptions
from medclass.inference.batch import BatchHook, ReadBatch
from medclass.inference.predictor import ImageInput, Predictor


def explainer_for(predictor: Predictor, options: ExplainOptions) -> Explainer:
    """The Explainer of `options.method` over the Predictor's model (a method using the network needs the torch
    backend: `Predictor.model` says so otherwise)."""
    artifact = predictor.artifact
    network = predictor.model if EXPLAINERS.get(options.method).uses_network else None
    parts = ModelParts(heads=tuple(predictor.heads), preprocessing=artifact.preprocessing, network=network,
                       model_name=artifact.model_name)
    return build_explainer(parts, options)


def resolved_options(method: str | ExplainOptions, polarity: str | None, modality: str | None) -> ExplainOptions:
    """`method` as ExplainOptions (a name takes `polarity`), the polarity decided by the model's modality when unset."""
    options = method if isinstance(method, ExplainOptions) else ExplainOptions(method, polarity)
    return options.resolved(modality)


def explain(predictor: Predictor, images: Sequence[ImageInput], method: str | ExplainOptions = "gradcam",
            task: str | None = None, class_name: str | None = None, polarity: str | None = None,
            proba: np.ndarray | None = None, batch: torch.Tensor | None = None) -> list[Explanation]:
    """One `Explanation` per image, heatmap and boxes at the image's own size; each box (`Explanation.boxes`, best
    first) holds x0, y0, x1, y1 in the image's own pixels and its score.

    `method`: an `ExplainOptions` (method, polarity, CAM box threshold) or a method's name: a CAM of the network
    (gradcam, gradcam++, ... see `medclass.explain.explainer.method_names`; torch backend) for `task`/`class_name`
    (default: the main task; a binary task's positive class, a multiclass task's predicted class, a multilabel
    task's most probable finding), or "otsu": the classic boxes of Otsu's threshold, labelled with the prediction
    they sit beside. `polarity` (with a name): dark/bright/auto; unset, the one of the model's modality
    (ultrasound: dark). `proba`: the images' probabilities (every head side by side), and `batch`: their
    preprocessed batch, when the caller has them."""
    options = resolved_options(method, polarity, predictor.artifact.modality)
    explainer = explainer_for(predictor, options)
    pictures = [predictor.to_image(item) for item in images]
    if batch is None and (proba is None or explainer.uses_network):
        batch = predictor.preprocess(pictures)
    if proba is None:
        proba = view_probabilities(predictor.heads, predictor.forward(batch))
    return explainer.explain(pictures, batch=batch, proba=proba, task=task, class_name=class_name)


def explaining(predictor: Predictor, options: ExplainOptions) -> BatchHook:
    """An `iter_predictions` `on_batch` that explains each readable image with `options` from the batch as decoded
    and predicted: its row's extras get `explanation`, `image` and the best box's cells (explain/boxes.py
    BOX_COLUMNS, for `PredictionWriter(columns=BOX_DESCRIPTIONS)`)."""
    from medclass.explain.boxes import BOX_COLUMNS, best_box_cells

    options = options.resolved(predictor.artifact.modality)
    explainer = explainer_for(predictor, options)

    def attach(batch: ReadBatch) -> list[Mapping[str, Any]]:
        explained = explainer.explain(batch.images, batch=batch.tensor, proba=batch.proba)
        return [{"explanation": e, "image": image, **dict(zip(BOX_COLUMNS, best_box_cells(e.boxes)))}
                for e, image in zip(explained, batch.images)]

    return attach

"""Class activation maps of any task and class of a medclass model, computed by pytorch-grad-cam.

The explained output is one column of the model's concatenated logits: the head's offset plus the class index.
Defaults follow what a reader of the prediction asks about: a binary head's positive class, a multiclass head's
predicted class, a multi-label head's most probable finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import (EigenCAM, EigenGradCAM, GradCAM, GradCAMElementWise, GradCAMPlusPlus, HiResCAM,
                              LayerCAM, XGradCAM)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from medclass.core.errors import MedclassError
from medclass.explain.boxes import ScoredBox, cam_boxes
from medclass.explain.options import CAM_METHOD_NAMES, CAM_THRESHOLD
from medclass.core.heads import TaskHead, output_slices, probabilities
from medclass.core.architectures import cam_target_layer
from medclass.core.preprocessing import Preprocessing

# One forward and one backward pass each (no per-channel re-runs, as Score-CAM or Ablation-CAM need).
CAM_METHODS = dict(zip(CAM_METHOD_NAMES, (GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, EigenCAM,
                                         EigenGradCAM, GradCAMElementWise)))


@dataclass
class Explanation:
    """One image's explanation of one output. `heatmap`: [0, 1], the original image's size (H, W), or None for the
    classic Otsu boxes, which use no model; `boxes`: regions in original pixels, best first; `peak`: (x, y) of the
    heatmap's maximum (Otsu: the best box's centre) in original pixels; `polarity`: Otsu's side of the threshold."""

    heatmap: np.ndarray | None
    task: str
    class_name: str
    output_index: int
    probability: float
    method: str
    boxes: list[ScoredBox] = field(default_factory=list)
    peak: tuple[float, float] = (0.0, 0.0)
    polarity: str | None = None

    @property
    def caption(self) -> str:
        return f"{self.method}: {self.task} = {self.class_name} (p={self.probability:.2f})"

    def to_dict(self) -> dict:
        """Everything but the heatmap, as plain JSON values: the server's answer."""
        return {"method": self.method, "task": self.task, "class": self.class_name,
                "probability": round(self.probability, 6), "boxes": [box.to_dict() for box in self.boxes],
                "peak": [round(v, 1) for v in self.peak], **({"polarity": self.polarity} if self.polarity else {})}


def explained_output(heads: Sequence[TaskHead], proba: np.ndarray, task: str | None = None,
                     class_name: str | None = None) -> tuple[TaskHead, int, int]:
    """(head, class index, output index) to explain for one image given its probabilities (all heads side by
    side). `task` None: the head owning `class_name`, else the main task."""
    head = pick_head(heads, task, class_name)
    offset = output_slices(heads)[heads.index(head)].start
    if class_name is not None:
        if class_name not in head.classes:
            raise MedclassError(f"class {class_name!r} is not a class of task {head.name!r}; classes: "
                                f"{', '.join(head.classes)}")
        index = head.classes.index(class_name)
    elif head.kind == "binary":
        index = head.positive_index
    else:
        index = int(np.argmax(proba[offset:offset + head.outputs]))
    return head, index, offset + index


def pick_head(heads: Sequence[TaskHead], task: str | None, class_name: str | None) -> TaskHead:
    if task is not None:
        found = next((h for h in heads if h.name == task), None)
        if found is None:
            raise MedclassError(f"no task {task!r} in this model; tasks: {', '.join(h.name for h in heads)}")
        return found
    if class_name is not None:
        found = next((h for h in heads if class_name in h.classes), None)
        if found is None:
            raise MedclassError(f"class {class_name!r} is not a class of any task of this model; classes: "
                                f"{', '.join(c for h in heads for c in h.classes)}")
        return found
    return heads[0]


def token_reshape(model: nn.Module, side: int):
    """Vision transformers' layers output tokens (B, N, C): the patch tokens as a (B, C, rows, cols) map."""
    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3:
            return tokens
        patch = model.patch_embed.patch_size
        rows, cols = math.ceil(side / patch[0]), math.ceil(side / patch[1])
        grid = tokens[:, getattr(model, "num_prefix_tokens", 0):]
        return grid.reshape(grid.shape[0], rows, cols, grid.shape[-1]).permute(0, 3, 1, 2)

    return reshape


def cam_maps(model: nn.Module, batch: torch.Tensor, output_indices: Sequence[int], method: str = "gradcam",
             layer: nn.Module | None = None, model_name: str | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Heatmaps (N, H, W) in [0, 1] at the batch's size, one per image for its output index, and the logits.

    The model is left as it was: hooks removed, training mode and parameter gradients restored."""
    if method not in CAM_METHODS:
        raise MedclassError(f"unknown CAM method {method!r}; available: {', '.join(CAM_METHODS)}")
    if layer is None:
        if model_name is None:
            raise MedclassError("cam_maps needs the target layer or the model's registered name")
        layer = cam_target_layer(model_name, model)
    was_training = model.training
    saved_grads = {p: p.grad for p in model.parameters()}
    # An input that needs gradients makes every activation need one, even in a frozen model.
    batch = batch.detach().clone().requires_grad_(True)
    cam = CAM_METHODS[method](model, [layer], token_reshape(model, batch.shape[-1]))
    try:
        with torch.enable_grad():
            maps = cam(batch, [ClassifierOutputTarget(int(i)) for i in output_indices])
        logits = cam.outputs.detach()
    finally:  # not `with cam`: its __exit__ swallows an IndexError
        cam.activations_and_grads.release()
        cam.outputs = None  # drop the graph
        model.train(was_training)
        for parameter, grad in saved_grads.items():
            parameter.grad = grad
    return np.clip(np.nan_to_num(maps.astype(np.float32)), 0, 1), logits


def explain_cam(model: nn.Module, heads: Sequence[TaskHead], preprocessing: Preprocessing,
                images: Sequence[Image.Image], method: str = "gradcam", task: str | None = None,
                class_name: str | None = None, model_name: str | None = None, layer: nn.Module | None = None,
                box_threshold: float = CAM_THRESHOLD, batch_size: int = 16) -> list[Explanation]:
    """Explain each image's output for (task, class_name) (defaults: see the module docstring) with `method`.

    The target layer is the registered model's (`model_name`, core/architectures.py `cam_target_layer`) unless
    `layer` is given. Heatmaps and boxes come back at each image's original size.
    """
    heads = list(heads)
    explanations, was_training = [], model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            explanations += explain_batch(model, heads, preprocessing, images[start:start + batch_size], method,
                                          task, class_name, model_name, layer, box_threshold)
    finally:
        model.train(was_training)
    return explanations


def explain_batch(model, heads, preprocessing, chunk, method, task, class_name, model_name, layer, box_threshold):
    """explain_cam for one batch."""
    batch = torch.stack([preprocessing.eval_transform()(image) for image in chunk])
    return cam_explanations(model, heads, preprocessing, chunk, batch, method, None, task, class_name, model_name,
                            layer, box_threshold)


def cam_explanations(model: nn.Module, heads: Sequence[TaskHead], preprocessing: Preprocessing,
                     pictures: Sequence[Image.Image], batch: torch.Tensor, method: str, proba: np.ndarray | None = None,
                     task: str | None = None, class_name: str | None = None, model_name: str | None = None,
                     layer: nn.Module | None = None, box_threshold: float = CAM_THRESHOLD) -> list[Explanation]:
    """The CAM explanation of each picture from its preprocessed `batch`, at the picture's own size: the one CAM
    path of `explain_cam` and `Predictor.explain`.

    `proba` (images x outputs, every head side by side): the probabilities to report, and to take each image's
    default class from (a Predictor passes its own: test-time views averaged, calibrated). None: the network's,
    read from the CAM pass itself, with a forward beforehand only when the class to explain depends on them."""
    batch = batch.to(next(model.parameters()).device)
    if proba is None and class_name is None and pick_head(heads, task, class_name).kind != "binary":
        with torch.no_grad():
            proba = probabilities(heads, model(batch)).cpu().numpy()
    rows = proba if proba is not None else [None] * len(pictures)  # a fixed class needs no probabilities
    targets = [explained_output(heads, row, task, class_name) for row in rows]
    maps, logits = cam_maps(model, batch, [t[2] for t in targets], method, layer, model_name)
    if proba is None:
        proba = probabilities(heads, logits).cpu().numpy()
    return [to_explanation(picture, heatmap, preprocessing, head, index, output, float(row[output]), method,
                           box_threshold)
            for picture, heatmap, row, (head, index, output) in zip(pictures, maps, proba, targets)]


def heatmap_to_original(heatmap: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """An input-size heatmap at the original image's (width, height): the input squashed the image to a square, so
    a plain resize per axis undoes it."""
    return np.clip(cv2.resize(heatmap, tuple(original_size), interpolation=cv2.INTER_LINEAR), 0, 1)


def to_explanation(image: Image.Image, heatmap: np.ndarray, preprocessing: Preprocessing, head: TaskHead,
                   index: int, output: int, probability: float, method: str, box_threshold: float) -> Explanation:
    """An input-size heatmap brought back to the original image: resized per axis, boxes scaled per axis."""
    width, height = image.size
    original = heatmap_to_original(heatmap, (width, height))
    boxes = [ScoredBox(*preprocessing.to_original(box.corners(), (width, height)), box.score, head.classes[index])
             for box in cam_boxes(heatmap, box_threshold)]
    y, x = np.unravel_index(int(np.argmax(original)), original.shape)
    return Explanation(original, head.name, head.classes[index], output, probability, method, boxes,
                       (x + 0.5, y + 0.5))

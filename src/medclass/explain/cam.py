"""Class activation maps of any task and class of a medclass model, computed by pytorch-grad-cam: `CamExplainer`.

The explainer is built once over a network: it finds the target layer then (the registered architecture's, or
the one given) and keeps it; each pass hooks that layer for the pass alone and leaves the network as it was, so a
served model's forwards between explanations record nothing. Which output is explained: explain/targets.py.
The method names and their pytorch-grad-cam classes are registered by explain/methods/cams.py (`args`:
cam_class).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import cv2
import numpy as np
import pytorch_grad_cam
import torch
from PIL import Image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from medclass.core.architectures import cam_target_layer
from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead, probabilities
from medclass.core.preprocessing import Preprocessing
from medclass.explain.boxes import ScoredBox, cam_boxes
from medclass.explain.explainer import EXPLAINERS, Explainer, Explanation, ModelParts, Target
from medclass.explain.options import CAM_THRESHOLD, ExplainOptions
from medclass.explain.targets import explained_output, needs_probabilities, pick_head  # noqa: F401  (old home)

# The registered CAMs (at import): name -> pytorch-grad-cam class.
CAM_METHODS = {name: getattr(pytorch_grad_cam, entry.args["cam_class"]) for name, entry in EXPLAINERS
               if "cam_class" in entry.args}


class CamExplainer(Explainer):
    """A CAM method (`options.method`) over `parts.network`, computed by pytorch-grad-cam's `cam_class` (None:
    the one the method was registered with); its boxes take the pixels reaching `options.box_threshold` x the
    heatmap's maximum."""

    uses_network = True

    def __init__(self, parts: ModelParts, options: ExplainOptions, cam_class: str | None = None):
        super().__init__(parts, options)
        cam_class = cam_class or EXPLAINERS.get(self.method).args.get("cam_class")
        if cam_class is None:
            raise MedclassError(f"unknown CAM method {self.method!r}; available: {', '.join(CAM_METHODS)}")
        self.cam_class = getattr(pytorch_grad_cam, cam_class)
        self.model = parts.network
        self.layer = parts.layer
        if self.layer is None:
            if parts.model_name is None:
                raise MedclassError("a CAM needs the target layer or the model's registered name")
            self.layer = cam_target_layer(parts.model_name, self.model)

    def explain(self, pictures: Sequence[Image.Image], *, batch: torch.Tensor | None = None,
                proba: np.ndarray | None = None, task: str | None = None,
                class_name: str | None = None) -> list[Explanation]:
        """Without `proba`, the network's probabilities come from the CAM pass itself, with a forward beforehand
        only when the class to explain depends on them. A Predictor passes its own (test-time views averaged,
        calibrated), so the class explained and the probability shown are those it answers."""
        heads = self.heads
        batch = (self.preprocess(pictures) if batch is None else batch).to(next(self.model.parameters()).device)
        if proba is None and needs_probabilities(heads, task, class_name):
            with torch.no_grad():
                proba = probabilities(heads, self.model(batch)).cpu().numpy()
        rows = proba if proba is not None else [None] * len(pictures)  # a fixed class needs no probabilities
        targets = [explained_output(heads, row, task, class_name) for row in rows]
        maps, logits = self.maps(batch, [t.output for t in targets])
        if proba is None:
            proba = probabilities(heads, logits).cpu().numpy()
        return [to_explanation(picture, heatmap, target, float(row[target.output]),
                               preprocessing=self.parts.preprocessing, method=self.method,
                               box_threshold=self.options.box_threshold)
                for picture, heatmap, row, target in zip(pictures, maps, proba, targets)]

    def explain_images(self, images: Sequence[Image.Image], *, task: str | None = None,
                       class_name: str | None = None, batch_size: int = 16) -> list[Explanation]:
        """In eval mode (dropout off, BatchNorm's running statistics), the network's mode restored after."""
        was_training = self.model.training
        self.model.eval()
        try:
            return super().explain_images(images, task=task, class_name=class_name, batch_size=batch_size)
        finally:
            self.model.train(was_training)

    def maps(self, batch: torch.Tensor, output_indices: Sequence[int]) -> tuple[np.ndarray, torch.Tensor]:
        """Heatmaps (N, H, W) in [0, 1] at the batch's size, one per image for its output index, and the logits.

        The model is left as it was: hooks removed, training mode and parameter gradients restored."""
        # An input that needs gradients makes every activation need one, even in a frozen model.
        batch = batch.detach().clone().requires_grad_(True)
        with self._hooked(batch.shape[-1]) as cam:
            with torch.enable_grad():
                maps = cam(batch, [ClassifierOutputTarget(int(i)) for i in output_indices])
            logits = cam.outputs.detach()
        return np.clip(np.nan_to_num(maps.astype(np.float32)), 0, 1), logits

    @contextmanager
    def _hooked(self, side: int) -> Iterator:
        """pytorch-grad-cam's object for one pass, its hooks on the target layer; released after, whatever
        happens (not `with cam`: its __exit__ swallows an IndexError)."""
        model = self.model
        was_training = model.training
        saved_grads = {p: p.grad for p in model.parameters()}
        cam = self.cam_class(model, [self.layer], token_reshape(model, side))
        try:
            yield cam
        finally:
            cam.activations_and_grads.release()
            cam.outputs = None  # drop the graph
            model.train(was_training)
            for parameter, grad in saved_grads.items():
                parameter.grad = grad


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


def cam_maps(model: nn.Module, batch: torch.Tensor, output_indices: Sequence[int], method: str = "gradcam", *,
             layer: nn.Module | None = None, model_name: str | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """`CamExplainer.maps` of a bare network: heatmaps at the batch's size and the logits."""
    parts = ModelParts(heads=(), preprocessing=None, network=model, model_name=model_name, layer=layer)
    return CamExplainer(parts, ExplainOptions(method)).maps(batch, output_indices)


def explain_cam(model: nn.Module, heads: Sequence[TaskHead], preprocessing: Preprocessing,
                images: Sequence[Image.Image], method: str = "gradcam", *, task: str | None = None,
                class_name: str | None = None, model_name: str | None = None, layer: nn.Module | None = None,
                box_threshold: float = CAM_THRESHOLD, batch_size: int = 16) -> list[Explanation]:
    """Explain each image's output for (task, class_name) with `method`: `CamExplainer.explain_images` of a bare
    network. The target layer is the registered model's (`model_name`) unless `layer` is given."""
    parts = ModelParts(heads=tuple(heads), preprocessing=preprocessing, network=model, model_name=model_name,
                       layer=layer)
    explainer = CamExplainer(parts, ExplainOptions(method, box_threshold=box_threshold))
    return explainer.explain_images(images, task=task, class_name=class_name, batch_size=batch_size)


def heatmap_to_original(heatmap: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """An input-size heatmap at the original image's (width, height): the input squashed the image to a square, so
    a plain resize per axis undoes it."""
    return np.clip(cv2.resize(heatmap, tuple(original_size), interpolation=cv2.INTER_LINEAR), 0, 1)


def to_explanation(image: Image.Image, heatmap: np.ndarray, target: Target, probability: float, *,
                   preprocessing: Preprocessing, method: str, box_threshold: float) -> Explanation:
    """An input-size heatmap brought back to the original image: resized per axis, boxes scaled per axis."""
    head, index, output = target
    width, height = image.size
    original = heatmap_to_original(heatmap, (width, height))
    boxes = [ScoredBox(*preprocessing.to_original(box.corners(), (width, height)), box.score, head.classes[index])
             for box in cam_boxes(heatmap, box_threshold)]
    y, x = np.unravel_index(int(np.argmax(original)), original.shape)
    return Explanation(original, head.name, head.classes[index], output, probability, method, boxes,
                       (x + 0.5, y + 0.5))

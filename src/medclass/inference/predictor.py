"""Predictor: the scikit-learn-shaped Python API over a model artefact.

Explanations of its answers are in the explain layer: `medclass.explain.explain(predictor, images, method)`.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from PIL import Image

from medclass.data.images import read_image
from medclass.core.errors import MedclassError
from medclass.core.heads import per_task, view_probabilities
from medclass.core.artifact import ModelArtifact
from medclass.inference.backends import Backend, TorchBackend
from medclass.inference.guard import InputGuard, assessments
from medclass.inference.input_checks import ImageStats, input_problems
from medclass.inference.prediction import Prediction, predictions_from_logits

ImageInput = str | Path | Image.Image | np.ndarray
T = TypeVar("T")


def prefetched(load: Callable[..., T], items: Sequence) -> Iterator[T]:
    """load(item) for each item, in order, the next one computed in a thread while the caller works on this one:
    decoding and preprocessing (Pillow and torch release the GIL) overlap the network's forward pass."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, items[0]) if len(items) else None
        for index in range(len(items)):
            ready = pending.result()
            if index + 1 < len(items):
                pending = pool.submit(load, items[index + 1])
            yield ready


def finite_logits(logits: np.ndarray, model_name: str) -> np.ndarray:
    """`logits` (views, images, outputs), refused when any is NaN or infinite: the probabilities computed from them
    would be NaN, and a NaN compared with a threshold still gives a label."""
    finite = np.isfinite(logits).all(axis=(0, 2))
    if not finite.all():
        raise MedclassError(f"model {model_name!r}: the network's outputs are not finite (NaN or infinite) for "
                            f"{int((~finite).sum())} of {len(finite)} image(s); no probabilities are given (damaged "
                            "weights, or inputs the network overflows on)")
    return logits


@dataclass(frozen=True)
class NetworkOutputs:
    """What one pass over some images gives: the logits of every view (views, images, outputs), the pooled
    features of the first view (images, D) where the input guard reads them (else None), and each image's
    findings of the cheap input checks."""

    logits: np.ndarray
    features: np.ndarray | None
    problems: list[list[str]]

    def take(self, start: int, stop: int) -> "NetworkOutputs":
        """The images [start, stop) of these outputs."""
        features = None if self.features is None else self.features[start:stop]
        return NetworkOutputs(self.logits[:, start:stop], features, self.problems[start:stop])

    @staticmethod
    def join(parts: Sequence["NetworkOutputs"], views: int, width: int) -> "NetworkOutputs":
        if not parts:
            return NetworkOutputs(np.zeros((views, 0, width), dtype=np.float32), None, [])
        features = None if parts[0].features is None else np.concatenate([p.features for p in parts])
        return NetworkOutputs(np.concatenate([p.logits for p in parts], 1), features,
                              [found for p in parts for found in p.problems])


def with_assessments(predictions: list[Prediction], answers: Sequence[dict]) -> list[Prediction]:
    """`predictions` with each image's input guard answer in its extras (`input_guard`)."""
    return [replace(p, extras={**p.extras, "input_guard": a}) for p, a in zip(predictions, answers)]


class Predictor:
    """Predict with a trained medclass model.

    One task: `predict_proba` returns an array whose columns follow `classes_`, `predict` the class names (for a
    multilabel task: a 0/1 matrix, one column per finding in `classes_`, as scikit-learn's multi-label estimators).
    Several tasks: both return a dict keyed by task name holding those same per-task answers, and `classes_` is a
    dict too. Binary tasks decide by thresholding the positive class's probability at the stored operating
    threshold, never by an argmax over a single output. `predictions` gives each image's whole answer as a
    `Prediction` value (labels, probabilities by class, thresholds), what the command line and the server render.
    """

    def __init__(self, artifact: ModelArtifact | str | Path, device: str = "cpu", batch_size: int = 64,
                 backend: Backend | None = None):
        self.artifact = artifact if isinstance(artifact, ModelArtifact) else ModelArtifact.load(artifact)
        self.batch_size = batch_size
        self.backend = backend or TorchBackend(self.artifact.build_model(), device)
        self.transform = self.artifact.preprocessing.eval_transform()
        self._load = self.artifact.preprocessing.load_transform()
        self._normalise = self.artifact.preprocessing.normalise_transform()
        self.heads = self.artifact.heads
        self.multi_task = len(self.heads) > 1
        classes = {h.name: np.array(h.classes) for h in self.heads}
        self.classes_ = classes if self.multi_task else classes[self.heads[0].name]
        meta = self.artifact.guard
        self.guard = InputGuard.from_metadata(meta, self.artifact.guard_tensors, self.artifact.model_name) \
            if meta else None
        # without a fitted guard the cheap checks still run: a one-channel model counts as grayscale-trained
        self.image_stats = self.guard.stats if self.guard else ImageStats(self.artifact.preprocessing.in_chans == 3)

    @cached_property
    def version(self) -> str:
        """What a server reports as this model's version: `ModelArtifact.version` of the network the backend runs
        (the artefact's weights, or an export's graph and weights)."""
        return self.artifact.version(self.backend.network_bytes())

    @classmethod
    def from_run(cls, run_dir: str | Path, **kwargs) -> "Predictor":
        return cls(ModelArtifact.load(run_dir), **kwargs)

    def to_image(self, item: ImageInput) -> Image.Image:
        """A path (DICOM too), a Pillow image or a pixel array as the Pillow image the preprocessing reads."""
        if isinstance(item, Image.Image):
            return item
        if isinstance(item, np.ndarray):
            return Image.fromarray(item)
        return read_image(item)

    @property
    def views(self) -> int:
        """Test-time views per image: the image itself, plus its mirror image with flip TTA."""
        return 1 + sum(name == "hflip" for name in self.artifact.tta)

    @property
    def model(self) -> torch.nn.Module:
        """The network itself (torch backend only): what explanations differentiate through."""
        if not isinstance(self.backend, TorchBackend):
            raise MedclassError(f"the {self.backend.name} backend runs no PyTorch network; explanations need the "
                                "torch backend")
        return self.backend.model

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """The batch the network sees: each image decoded and resized, then the batch normalised, by the model's own
        preprocessing (the same numbers as `transform` image by image)."""
        return self._normalise(torch.stack([self._load(self.to_image(item)) for item in images]))

    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Raw logits of every test-time view of a preprocessed batch: (views, images, outputs)."""
        views = [batch] + [batch.flip(-1) for name in self.artifact.tta if name == "hflip"]
        return finite_logits(np.stack([self.backend(v) for v in views]), self.artifact.model_name)

    def forward_outputs(self, batch: torch.Tensor, problems: list[list[str]]) -> NetworkOutputs:
        """`forward`, plus the first view's pooled features when the input guard reads them."""
        if self.guard is None or not self.guard.uses_features:
            return NetworkOutputs(self.forward(batch), None, problems)
        if not hasattr(self.backend, "with_features"):
            raise MedclassError(f"the {self.backend.name} backend gives no features for the input guard")
        first, features = self.backend.with_features(batch)
        views = [first] + [self.backend(batch.flip(-1)) for name in self.artifact.tta if name == "hflip"]
        return NetworkOutputs(finite_logits(np.stack(views), self.artifact.model_name), features, problems)

    def input_problems(self, images: Sequence[Image.Image]) -> list[list[str]]:
        """Each decoded image's findings of the cheap input checks (inference/input_checks.py)."""
        return [input_problems(image, self.image_stats) for image in images]

    def outputs(self, images: Sequence[ImageInput], assess: bool = True) -> NetworkOutputs:
        """One pass over `images` in batches: logits, and with `assess` what the input guard reads (features,
        the cheap checks' findings)."""
        def load(start: int):
            decoded = [self.to_image(item) for item in images[start:start + self.batch_size]]
            problems = self.input_problems(decoded) if assess else [[] for _ in decoded]
            return self._normalise(torch.stack([self._load(image) for image in decoded])), problems

        batches = prefetched(load, range(0, len(images), self.batch_size))
        # `images` may decode lazily (evaluation's DatasetImages)
        out = [self.forward_outputs(batch, problems) if assess else NetworkOutputs(self.forward(batch), None,
                                                                                   problems)
               for batch, problems in batches]
        return NetworkOutputs.join(out, self.views, sum(h.outputs for h in self.heads))

    def logits(self, images: Sequence[ImageInput]) -> np.ndarray:
        """The model's raw outputs before any temperature, softmax or sigmoid: (views, n_images, outputs), the heads'
        outputs side by side. What calibration is fitted on; `probabilities` is computed from them."""
        return self.outputs(images, assess=False).logits

    def assess(self, outputs: NetworkOutputs) -> list[dict]:
        """Each image's input guard answer (inference/guard.py `assessments`) from one pass's outputs."""
        main = outputs.logits[0][:, :self.heads[0].outputs]
        return assessments(self.guard, outputs.problems, outputs.features, main)

    def probabilities(self, images: Sequence[ImageInput]) -> dict[str, np.ndarray]:
        """{task: probabilities (n_images, its classes)} for every task, whatever their number: each view's
        probabilities at the task's calibrated temperature, averaged over the views."""
        return per_task(self.heads, view_probabilities(self.heads, self.logits(images)))

    def decide_per_task(self, proba: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{task: decisions} from {task: probabilities}, whatever the number of tasks: class indices (binary:
        thresholded; multiclass: argmax) or a 0/1 finding matrix."""
        return {h.name: h.decide(proba[h.name]) for h in self.heads}

    def decisions(self, proba: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Renamed `decide_per_task`; this name goes in the next release."""
        warnings.warn("Predictor.decisions is renamed Predictor.decide_per_task", DeprecationWarning, stacklevel=2)
        return self.decide_per_task(proba)

    def predict_proba(self, images: Sequence[ImageInput]) -> np.ndarray | dict[str, np.ndarray]:
        """One task: probabilities (n_images, n_classes), columns in `classes_` order. Several: a dict of them."""
        return self._one_or_all(self.probabilities(images))

    def decide(self, proba: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """`decide_per_task` for what `predict_proba` returned, in the same shape."""
        by_task = proba if isinstance(proba, dict) else {self.heads[0].name: proba}
        return self._one_or_all(self.decide_per_task(by_task))

    def predict(self, images: Sequence[ImageInput]) -> np.ndarray | dict[str, np.ndarray]:
        """Class names per image (multilabel: the 0/1 finding matrix); several tasks: a dict of them."""
        decided = self.decide_per_task(self.probabilities(images))
        labels = {h.name: decided[h.name] if h.kind == "multilabel" else np.array(h.classes)[decided[h.name]]
                  for h in self.heads}
        return self._one_or_all(labels)

    def predictions(self, images: Sequence[ImageInput]) -> list[Prediction]:
        """Each image's whole answer: per task its label (multilabel: the findings present), its probability of
        every class, the threshold and where it came from, and whether the probabilities are calibrated."""
        outputs = self.outputs(images)
        return with_assessments(predictions_from_logits(self.heads, outputs.logits), self.assess(outputs))

    def _one_or_all(self, by_task: dict):
        return by_task if self.multi_task else by_task[self.heads[0].name]

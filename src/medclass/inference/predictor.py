"""Predictor: the scikit-learn-shaped Python API over a model artefact."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from medclass.data.images import list_images, read_image
from medclass.errors import MedclassError
from medclass.inference.artifact import ModelArtifact

ImageInput = str | Path | Image.Image | np.ndarray


class Predictor:
    """Predict with a trained medclass model.

    `classes_` fixes the column order of `predict_proba`. Binary tasks decide by thresholding the positive
    class's probability at the stored operating threshold, never by an argmax over a single output.
    """

    def __init__(self, artifact: ModelArtifact | str | Path, device: str = "cpu", batch_size: int = 64):
        self.artifact = artifact if isinstance(artifact, ModelArtifact) else ModelArtifact.load(artifact)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = self.artifact.build_model().to(self.device)
        self.transform = self.artifact.preprocessing.eval_transform()
        self.classes_ = np.array(self.artifact.classes)

    @classmethod
    def from_run(cls, run_dir: str | Path, **kwargs) -> "Predictor":
        return cls(ModelArtifact.load(run_dir), **kwargs)

    def _to_image(self, item: ImageInput) -> Image.Image:
        if isinstance(item, Image.Image):
            return item
        if isinstance(item, np.ndarray):
            return Image.fromarray(item)
        return read_image(item)

    @torch.no_grad()
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device)
        views = [batch] + [batch.flip(-1) for name in self.artifact.tta if name == "hflip"]
        return torch.stack([self.model(v).softmax(1) for v in views]).mean(0)

    def predict_proba(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Class probabilities, shape (n_images, n_classes), columns in `classes_` order."""
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            batch = torch.stack([self.transform(self._to_image(item)) for item in chunk])
            out.append(self._forward(batch).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class index per row: threshold on the positive column for binary tasks, argmax otherwise."""
        if self.artifact.is_binary:
            positive = self.artifact.positive_index
            return np.where(proba[:, positive] >= self.artifact.threshold, positive, 1 - positive)
        return proba.argmax(1)

    def predict(self, images: Sequence[ImageInput]) -> np.ndarray:
        return self.classes_[self.decide(self.predict_proba(images))]


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the image files they hold (recursively, sorted)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            images = list_images(path)
            if not images:
                raise MedclassError(f"{path}: folder holds no images (.png, .jpg, .jpeg, .bmp, .tif)")
            found += images
        elif path.exists():
            found.append(path)
        else:
            raise MedclassError(f"{path}: no such file or folder")
    return found

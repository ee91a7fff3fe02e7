"""After tuning, before the artefact is written: the input guard (inference/guard.py) fitted on the trained
network's features of the training images, its threshold chosen on the validation split, stored in the artefact.

The training images are read as the Predictor reads any image (no augmentation), at most `MAX_FIT_IMAGES` of them
(a seeded random subset of a larger split: the detectors' statistics settle long before); the validation split is
scored whole, up to the same bound.
"""

from __future__ import annotations

import numpy as np
import torch

from medclass.core.architectures import main_classifier
from medclass.core.artifact import ModelArtifact
from medclass.core.heads import encode_targets
from medclass.data import ImageDataset
from medclass.inference.detectors import Classifier
from medclass.inference.guard import InputGuard, fit_guard
from medclass.inference.input_checks import ImageStats
from medclass.inference.predictor import Predictor
from medclass.inference.split import DatasetImages, dataset_tasks

MAX_FIT_IMAGES = 20_000
STATS_IMAGES = 200  # training images whose colour and shape the cheap checks compare with


class Sampled:
    """A sliceable view of some of a dataset's images (by index), decoded on demand."""

    def __init__(self, dataset: ImageDataset, indices: np.ndarray):
        self.images, self.indices = DatasetImages(dataset), indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.images[int(i)] for i in self.indices[index]]
        return self.images[int(self.indices[index])]


def sample_indices(n: int, most: int, seed: int = 0) -> np.ndarray:
    if n <= most:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, most, replace=False))


def network_features(predictor: Predictor, images) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features (n, D), the main task's logits (n, C)) of the first view of each image."""
    feats, logits = [], []
    width = predictor.heads[0].outputs
    for start in range(0, len(images), predictor.batch_size):
        batch = predictor.preprocess(images[start:start + predictor.batch_size])
        out, features = predictor.backend.with_features(batch)
        logits.append(out[:, :width])
        feats.append(features)
    return np.concatenate(feats), np.concatenate(logits)


def main_labels(dataset: ImageDataset, predictor: Predictor, indices: np.ndarray) -> np.ndarray:
    """The main task's class index of each sampled image (-1: no label; a multilabel main task: 0, one class)."""
    head = predictor.heads[0]
    if head.kind == "multilabel":
        return np.zeros(len(indices), dtype=np.int64)
    samples = [dataset.samples[int(i)] for i in indices]
    task = dataset_tasks(dataset, predictor.heads)[0]
    return encode_targets([head], samples, [task], dataset.name)[:, 0].astype(np.int64)


def training_features(predictor: Predictor, train_data: ImageDataset):
    """What a detector is fitted on: the pooled features and main-task labels of the (sampled) labelled training
    images, and the main task's linear classifier (detectors.Classifier, or None for an MLP head)."""
    chosen = sample_indices(len(train_data), MAX_FIT_IMAGES)
    features, _ = network_features(predictor, Sampled(train_data, chosen))
    labels = main_labels(train_data, predictor, chosen)
    labelled = labels >= 0
    weights = main_classifier(predictor.backend.model, predictor.heads[0].outputs)
    return features[labelled], labels[labelled], Classifier(*weights) if weights else None


def guard_for(artifact: ModelArtifact, train_data: ImageDataset, val_data: ImageDataset, detector: str,
              accept: float, device: str = "cpu") -> InputGuard:
    """The input guard of `artifact`'s network, fitted on `train_data` and thresholded on `val_data`."""
    predictor = Predictor(artifact, device=device)
    features, labels, classifier = training_features(predictor, train_data)
    val = Sampled(val_data, sample_indices(len(val_data), MAX_FIT_IMAGES))
    val_features, val_logits = network_features(predictor, val)
    stats_images = Sampled(train_data, sample_indices(len(train_data), STATS_IMAGES))
    stats = ImageStats.measure(stats_images[0:len(stats_images)])
    return fit_guard(detector, torch.from_numpy(features), torch.from_numpy(labels), classifier,
                     lambda guard: guard.scores(val_features, val_logits), stats, accept)


def add_guard(artifact: ModelArtifact, guard: InputGuard | None) -> None:
    """Store `guard` (None: none) in the artefact: its description in the metadata, its tensors beside the weights."""
    artifact.guard = guard.to_metadata() if guard else None
    artifact.guard_tensors = dict(guard.tensors) if guard else {}


def guard_summary(guard: InputGuard) -> str:
    record = guard.record
    return (f"input guard: {guard.detector} on {record['train_images']} training images; threshold "
            f"{guard.threshold:.4g} accepts {record['val_accepted']:.1%} of {record['val_images']} validation images")

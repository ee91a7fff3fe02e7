"""The input guard: does an image look like the images this model was trained on?

After training, a detector (inference/detectors.py, from pytorch-ood) is fitted on the training images' pooled
features and its threshold chosen on the validation split so that `accept` (default 95%) of the in-distribution
validation images pass. It is stored in the artefact: its tensors beside the weights (core/artifact.py), its
description and threshold in the metadata (`InputGuard.to_metadata`), so every prediction path (the Predictor,
`medclass predict`, the server, the ONNX and ncnn exports) assesses each image the same way. The cheap checks of
inference/input_checks.py come first and are named in the answer.

An artefact without a guard (trained before it existed, or with `--guard none`) still predicts; its answers say
that no guard is fitted, and only the cheap checks run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Sequence

import numpy as np

from medclass.core.errors import MedclassError
from medclass.inference.detectors import DETECTORS, DetectorEntry, score_with
from medclass.inference.input_checks import ImageStats

if TYPE_CHECKING:
    import torch

DEFAULT_ACCEPT = 0.95
NOT_FITTED = "no input guard is fitted for this model (it was trained without one); only the cheap checks ran"
FOREIGN = "this image does not look like the images this model was trained on"


@dataclass
class InputGuard:
    """A fitted detector and its threshold: scores above `threshold` are flagged as out of distribution.
    `record`: how it was fitted (images, validation acceptance), for reports."""

    detector: str
    threshold: float
    accept: float
    stats: ImageStats
    tensors: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)

    @property
    def entry(self) -> DetectorEntry:
        return DETECTORS.get(self.detector)

    @property
    def uses_features(self) -> bool:
        return self.entry.uses == "features"

    @cached_property
    def _built(self):
        return self.entry.build(self.tensors, self.params)

    def scores(self, features: np.ndarray | None, logits: np.ndarray) -> np.ndarray:
        """Scores of images from their pooled features (N, D) and the main task's raw logits (N, C)."""
        return score_with(self.entry, self._built, features, logits)

    def to_metadata(self) -> dict:
        return {"detector": self.detector, "threshold": float(self.threshold), "accept": float(self.accept),
                "params": dict(self.params), "stats": self.stats.to_dict(), "record": dict(self.record),
                "tensors": sorted(self.tensors)}

    @classmethod
    def from_metadata(cls, meta: dict, tensors: dict, source: str) -> "InputGuard":
        """The guard from its metadata and its tensors (`ModelArtifact.guard_tensors`); `source` names the file in
        errors."""
        if meta["detector"] not in DETECTORS:
            raise MedclassError(f"{source}: guard.detector {meta['detector']!r} is not one this medclass knows "
                                f"({', '.join(DETECTORS.names())}); upgrade medclass")
        missing = sorted(set(meta.get("tensors", [])) - set(tensors))
        if missing:
            raise MedclassError(f"{source}: the input guard's tensors {', '.join(missing)} are missing (damaged "
                                "artefact, or an export's guard file not beside it)")
        return cls(meta["detector"], meta["threshold"], meta["accept"], ImageStats.from_dict(meta["stats"]), dict(tensors),
                   meta.get("params", {}), meta.get("record", {}))


def assessments(guard: InputGuard | None, problems: Sequence[list[str]], features: np.ndarray | None,
                main_logits: np.ndarray) -> list[dict]:
    """Each image's `input_guard` answer: {fitted, in_distribution, score, threshold, detector, reasons, message}.
    `problems`: each image's cheap-check findings; `main_logits` (N, C): the main task's logits of view 0."""
    if guard is None:
        return [{"fitted": False, "in_distribution": False if found else None, "reasons": list(found),
                 "message": (FOREIGN + ": " + "; ".join(found)) if found else NOT_FITTED} for found in problems]
    scores = guard.scores(features, main_logits) if len(problems) else np.zeros(0)
    answers = []
    for score, found in zip(scores, problems):
        reasons = list(found)
        if score > guard.threshold:
            reasons.append(f"{guard.detector} score {score:.4g} above the threshold {guard.threshold:.4g} that "
                           f"{guard.accept:.0%} of the validation images stay below")
        answers.append({"fitted": True, "in_distribution": not reasons, "score": float(score),
                        "threshold": float(guard.threshold), "detector": guard.detector, "reasons": reasons,
                        "message": FOREIGN + ": " + "; ".join(reasons) if reasons else "in distribution"})
    return answers


def check_accept(accept: float) -> None:
    if not 0.5 <= accept < 1:
        raise MedclassError(f"--guard-accept must be in [0.5, 1), the share of validation images the input guard "
                            f"accepts; got {accept}")


def fit_guard(detector: str, features: torch.Tensor, labels: torch.Tensor, classifier, val_scores_of,
              stats: ImageStats, accept: float = DEFAULT_ACCEPT) -> InputGuard:
    """A guard fitted on training `features` (N, D) and main-task `labels` (N,), its threshold the `accept`
    quantile of the validation scores that `val_scores_of(guard)` computes; `classifier`: the main task's last
    linear layer (detectors.Classifier) or None."""
    entry = DETECTORS.get(detector)
    check_accept(accept)
    if entry.needs_linear_head and classifier is None:
        raise MedclassError(f"the {detector} input guard needs a linear classifier on the pooled features; this "
                            "model's main head is not one (use --head linear, or another --guard)")
    if entry.uses == "features" and len(features) < 2:
        raise MedclassError(f"the {detector} input guard needs training images to fit on; got {len(features)}")
    tensors, params = entry.fit(features, labels, classifier)
    guard = InputGuard(detector, float("inf"), accept, stats, tensors, params)
    scores = np.asarray(val_scores_of(guard), dtype=np.float64)
    if not len(scores):
        raise MedclassError("the input guard's threshold is chosen on the validation split, which has no images")
    guard.threshold = float(np.quantile(scores, accept, method="higher"))
    guard.record = {"train_images": int(len(features)), "val_images": int(len(scores)),
                    "val_accepted": float(np.mean(scores <= guard.threshold))}
    return guard

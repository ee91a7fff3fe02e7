"""Out-of-distribution detectors of the input guard, from the `pytorch-ood` package: medclass fits them on the
network's pooled features (or logits) and stores what they fitted as plain tensors, never a pickled object.

Each detector is one `DetectorEntry` in `DETECTORS`: how to fit it on the training images' features and labels
(returning the tensors to store), and how to rebuild the pytorch-ood object from those tensors. Scores follow
pytorch-ood's convention: higher means more unlike the training images.

Why these five: MSP (the maximum softmax probability, Hendrycks & Gimpel 2017) is the baseline every benchmark
reports; Energy (Liu et al. 2020) reads the logits too; Mahalanobis (Lee et al. 2018), ViM (Wang et al. 2022) and
KNN (Sun et al. 2022) read the feature space, where the medical OOD benchmarks (Cao et al. 2020, OpenMIBOOD 2025)
find far-out inputs much easier to catch. `benchmarks/ood.py` measures them on the shared data and chose the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from medclass.core.errors import MedclassError
from medclass.core.registry import Registry

if TYPE_CHECKING:
    import torch

DEFAULT_DETECTOR = "knn"  # chosen by benchmarks/ood.py (README, "Input guard")
KNN_BANK = 5000  # training images a KNN guard keeps (a random, seeded subset of a larger training split)
KNN_K = 50
VIM_DIM = 64


@dataclass(frozen=True)
class Classifier:
    """The main task's last linear layer on the pooled features (what ViM reads): weight (C, D), bias (C,)."""

    weight: torch.Tensor
    bias: torch.Tensor


@dataclass(frozen=True)
class DetectorEntry:
    """`fit(features, labels, classifier) -> (tensors, params)`; `build(tensors, params)` -> a pytorch-ood detector
    with `predict_features` (uses "features") or `predict_logits` (uses "logits")."""

    name: str
    description: str
    uses: str
    fit: Callable[..., tuple[dict, dict]]
    build: Callable[[dict, dict], object]
    needs_linear_head: bool = False
    params: dict = field(default_factory=dict)


DETECTORS: Registry[DetectorEntry] = Registry("input guard detector")


def _msp(tensors: dict, params: dict):
    from pytorch_ood.detector import MaxSoftmax

    return MaxSoftmax(None)


def _energy(tensors: dict, params: dict):
    from pytorch_ood.detector import EnergyBased

    return EnergyBased(None)


def _fit_nothing(features, labels, classifier) -> tuple[dict, dict]:
    return {}, {}


def _fit_mahalanobis(features, labels, classifier) -> tuple[dict, dict]:
    from pytorch_ood.detector import Mahalanobis

    detector = Mahalanobis(None).fit_features(features, contiguous(labels))
    return {"mu": detector.mu, "precision": detector.precision}, {}


def _mahalanobis(tensors: dict, params: dict):
    from pytorch_ood.detector import Mahalanobis

    detector = Mahalanobis(None)
    detector.mu, detector.precision = tensors["mu"], tensors["precision"]
    return detector


def _fit_vim(features, labels, classifier: Classifier | None) -> tuple[dict, dict]:
    from pytorch_ood.detector import ViM

    d = min(VIM_DIM, features.shape[1] // 2)  # the principal subspace must leave a residual to measure
    detector = ViM(None, d, classifier.weight, classifier.bias).fit_features(features, labels)
    import torch

    return ({"w": detector.w, "b": detector.b, "principal_subspace": detector.principal_subspace,
             "alpha": torch.tensor([detector.alpha])}, {"d": detector.d})


def _vim(tensors: dict, params: dict):
    from pytorch_ood.detector import ViM

    detector = ViM(None, params["d"], tensors["w"], tensors["b"])
    detector.principal_subspace, detector.alpha = tensors["principal_subspace"], float(tensors["alpha"][0])
    return detector


def _fit_knn(features, labels, classifier) -> tuple[dict, dict]:
    import torch

    if len(features) > KNN_BANK:
        keep = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))[:KNN_BANK]
        features = features[keep.sort().values]
    k = min(KNN_K, len(features))
    return {"bank": features.contiguous()}, {"k": k}


def _knn(tensors: dict, params: dict):
    import torch
    from pytorch_ood.detector import KNN

    bank = tensors["bank"]
    # the neighbour index is rebuilt from the stored bank: sklearn's fitted tree would need pickle
    return KNN(None, k=params["k"]).fit_features(bank, torch.zeros(len(bank), dtype=torch.long))


def contiguous(labels: torch.Tensor) -> torch.Tensor:
    """Class labels renumbered 0..C-1 over the classes present (Mahalanobis wants every class it counts to occur)."""
    import torch

    return torch.unique(labels, return_inverse=True)[1]


for _entry in (
        DetectorEntry("msp", "maximum softmax probability of the main task (the baseline)", "logits", _fit_nothing,
                      _msp),
        DetectorEntry("energy", "energy score: -logsumexp of the main task's logits", "logits", _fit_nothing,
                      _energy),
        DetectorEntry("mahalanobis", "distance to the nearest class centre of the training features, shared "
                      "covariance", "features", _fit_mahalanobis, _mahalanobis),
        DetectorEntry("vim", "virtual-logit matching: the feature's residual outside the training principal "
                      "subspace against the energy", "features", _fit_vim, _vim, needs_linear_head=True),
        DetectorEntry("knn", f"distance to the {KNN_K}th nearest training feature (unit-normalised)", "features",
                      _fit_knn, _knn)):
    DETECTORS.register(_entry.name, _entry)


def detector_names() -> list[str]:
    return DETECTORS.names()


def score_with(entry: DetectorEntry, detector, features: np.ndarray | None, logits: np.ndarray) -> np.ndarray:
    """Scores (higher: more unusual) of a built detector on features (N, D) or the main task's logits (N, C)."""
    import torch

    with torch.no_grad():
        if entry.uses == "features":
            if features is None:
                raise MedclassError(f"the {entry.name} input guard needs the network's features, which this "
                                    "backend does not give (an export made before the guard: export again)")
            out = detector.predict_features(torch.as_tensor(np.asarray(features, dtype=np.float32)))
        else:
            out = detector.predict_logits(torch.as_tensor(np.asarray(logits, dtype=np.float32)))
    return out.double().cpu().numpy()

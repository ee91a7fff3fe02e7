"""Inference: the model artefact, the Predictor over it and the backends that run its network."""

from medclass.core.artifact import ModelArtifact
from medclass.inference.backends import NcnnBackend, OnnxBackend, TorchBackend
from medclass.inference.loading import load_predictor
from medclass.inference.predictor import Predictor

__all__ = ["ModelArtifact", "NcnnBackend", "OnnxBackend", "Predictor", "TorchBackend", "load_predictor"]

"""Inference: the model artefact and the Predictor over it."""

from medclass.inference.artifact import ModelArtifact
from medclass.inference.predictor import Predictor, load_predictor

__all__ = ["ModelArtifact", "Predictor", "load_predictor"]

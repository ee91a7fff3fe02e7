"""Training: `train(TrainConfig(...))` fits a model with PyTorch Lightning and writes a run folder."""

from medclass.training.config import TrainConfig
from medclass.training.fit import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]

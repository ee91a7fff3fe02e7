"""The imbalance options' names (training/imbalance.py implements them), here without PyTorch so that TrainConfig,
and so `medclass --help`, can offer them cheaply."""

SAMPLERS = ("none", "weighted", "oversample")
LOSSES = ("ce", "focal")
CLASS_WEIGHTS = ("none", "balanced")

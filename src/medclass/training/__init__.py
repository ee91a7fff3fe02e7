"""Training: `train(TrainConfig(...))` fits a model with PyTorch Lightning and writes a run folder."""

from medclass.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str):
    # train and TrainResult import Lightning and timm: loaded on first use, so that reading TrainConfig (the CLI
    # builds `medclass train`'s options from it at every start) does not pay for them
    if name in ("TrainResult", "train"):
        from medclass.training import fit

        return getattr(fit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

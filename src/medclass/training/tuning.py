"""After training, before the artefact is written: its temperatures and operating points chosen on the validation
split (evaluation/tuning.py does the choosing, as `medclass threshold` does later), so the run saves one tuned
artefact instead of saving, reloading and saving it again."""

from __future__ import annotations

from medclass.core.artifact import ModelArtifact
from medclass.data import ImageDataset
from medclass.evaluation.tuning import tune_artifact
from medclass.inference.predictor import Predictor
from medclass.inference.split import predict_split
from medclass.training.config import TrainConfig
from medclass.training.guard import add_guard, guard_for, guard_summary
from medclass.training.speed import on_gpu


def tune_on_validation(artifact: ModelArtifact, val_data: ImageDataset, config: TrainConfig) -> dict:
    """Calibrate (--calibrate, by --temperature-rule), choose the operating point (--operating-point) and make the
    prediction sets (--coverage) of `artifact`'s heads on its predictions of `val_data`, which the Predictor makes
    exactly as it will after the artefact is loaded (views, preprocessing, batches); returns the record for
    calibration.json."""
    predictor = Predictor(artifact, device="cuda" if on_gpu(config.accelerator) else "cpu")
    return tune_artifact(artifact, predict_split(predictor, val_data), config.operating_point, config.calibrate,
                         temperature_rule=config.temperature_rule, coverage=config.coverage)


def fit_run_guard(artifact: ModelArtifact, train_data: ImageDataset, val_data: ImageDataset,
                  config: TrainConfig) -> str:
    """Fit the input guard `config.guard` of `artifact` (none: store none) and say what it is, in one line."""
    if config.guard == "none":
        add_guard(artifact, None)
        return "input guard: none (--guard none); only the cheap input checks run"
    guard = guard_for(artifact, train_data, val_data, config.guard, config.guard_accept,
                      "cuda" if on_gpu(config.accelerator) else "cpu")
    add_guard(artifact, guard)
    return guard_summary(guard)

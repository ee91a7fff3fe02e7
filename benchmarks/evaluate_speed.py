"""How long `medclass evaluate` takes, and where the time goes, on every BUSI image (780, three classes): a ResNet-18
at 128 px trained for one epoch (the speed of evaluation does not depend on how good the model is), evaluated with
`--data BUSI` as a user would, 1000 bootstrap resamples. The whole command is timed in a fresh process (imports
included); its phases are timed in this one. The reference, measured in the same run on the same resamples, is
the bootstrap evaluation did before: scikit-learn called once per resample and metric.

    python benchmarks/evaluate_speed.py [--busi DIR] [--n-boot 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from common import REPO, out_dir
from medclass.data import open_dataset
from medclass.evaluation.bootstrap import resample_indices
from medclass.evaluation.evaluate import evaluate_run, task_figures
from medclass.evaluation.metrics import task_metrics
from medclass.inference.split import predict_split
from medclass.inference.predictor import Predictor
from medclass.training import TrainConfig, train
from transfer import find_busi


def per_resample_sklearn(y: np.ndarray, proba: np.ndarray, decided: np.ndarray, n_boot: int) -> dict:
    """The reference: each resample's headline numbers from scikit-learn, one call per resample and metric."""
    draws = {"auc": [], "accuracy": [], "balanced_accuracy": [], "f1_macro": [], "f1_weighted": []}
    for idx in resample_indices(y, n_boot, seed=0):
        yi, pi, di = y[idx], proba[idx], decided[idx]
        draws["auc"].append(skm.roc_auc_score(yi, pi, multi_class="ovr"))
        draws["accuracy"].append(skm.accuracy_score(yi, di))
        draws["balanced_accuracy"].append(skm.balanced_accuracy_score(yi, di))
        for avg in ("macro", "weighted"):
            draws[f"f1_{avg}"].append(skm.f1_score(yi, di, average=avg, zero_division=0))
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in draws.items()}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def measure(busi: Path, out: Path, n_boot: int) -> str:
    run = out / "resnet18"
    train(TrainConfig(data=str(busi), out=str(run), model="resnet18", img_size=128, epochs=1, seed=0, augment="none"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "medclass", "evaluate", str(run), "--data", str(busi), "--n-boot", str(n_boot),
               "--out", str(out / "cli")]
    _, cli_seconds = timed(subprocess.run, command, env=env, check=True, capture_output=True)

    predictor, load_seconds = timed(Predictor, run / "model.safetensors")
    dataset = open_dataset(str(busi))
    outputs, predict_seconds = timed(predict_split, predictor, dataset)
    head = predictor.heads[0]
    proba = outputs.probabilities()[head.name]
    y, decided = outputs.targets[head.name][:, 0], head.decide(proba)
    metrics, score_seconds = timed(task_metrics, head.kind, y, proba, decided, list(head.classes), n_boot=n_boot)
    reference, reference_seconds = timed(per_resample_sklearn, y, proba, decided, n_boot)
    largest = max(abs(a - b) for k, bounds in reference.items() for a, b in zip(bounds, metrics["ci"][k]))
    _, whole_seconds = timed(evaluate_run, run, data=str(busi), out_dir=out / "inprocess", n_boot=n_boot)
    section = metrics | {"calibration": {"temperature": head.temperature}}
    keep = np.ones(len(y), bool)
    (out / "figures").mkdir()
    _, figure_seconds = timed(task_figures, head, section, outputs, keep, proba, out / "figures", False)
    rows = [("`medclass evaluate RUN --data BUSI` (fresh process, imports included)", cli_seconds),
            ("the same in this process (`evaluate_run`)", whole_seconds),
            ("  load the model", load_seconds),
            (f"  predict {len(dataset)} images (decode, preprocess, 2 views)", predict_seconds),
            (f"  metrics with {n_boot} bootstrap resamples", score_seconds),
            ("  figures", figure_seconds),
            (f"reference: the same {n_boot} resamples, scikit-learn per resample", reference_seconds)]
    table = "\n".join(f"| {name} | {seconds:.1f} |" for name, seconds in rows)
    return (f"Evaluation speed: ResNet-18 at 128 px on {len(dataset)} BUSI images, {n_boot} resamples, "
            f"{os.cpu_count()} CPUs:\n\n| step | seconds |\n|---|---|\n{table}\n\n"
            f"Bootstrap: {reference_seconds / score_seconds:.0f}x faster than per-resample scikit-learn; largest "
            f"difference of an interval end {largest:.1e} (same resamples, same numbers).")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busi", type=Path, default=None)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    busi = args.busi or find_busi()
    if busi is None:
        return "evaluate: skipped (BUSI not found)"
    return measure(busi, out_dir("runs/bench", "evaluate"), args.n_boot)


if __name__ == "__main__":
    print(main())

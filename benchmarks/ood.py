"""The input guard's detectors (inference/detectors.py: msp, energy, mahalanobis, vim, knn) on images unlike the
training data, for briefly trained models of BreastMNIST (the official npz) and BUSI (breast ultrasound).

Each dataset, two models: EfficientNet-Lite0 with the packaged ImageNet weights fine-tuned end to end for a few
epochs on CPU (fp32, seed 0, the default recipe otherwise), and the same backbone frozen under a linear classifier;
trained by `medclass.training.train` on the data read by medclass's own readers. Every detector is fitted as
training/guard.py fits the guard (`network_features` of the training split, labels from `main_labels`, the main
task's linear layer for ViM) and scores the in-distribution test split and each foreign source. Foreign images
are given whole to the Predictor, which resizes them with the model's own preprocessing, as an upload would be:
other MedMNIST sets, brain MRI, NIH chest X-rays, blood-cell JPEGs, the other breast-ultrasound set (the same
modality: a *near* source), and generated images (uniform noise, constant images, smooth colour noise, stripes,
plasma fractals). At most `PER_SOURCE` images per source, seeded.

AUROC: foreign = positive, scored by the detector (higher: more unusual), scikit-learn's roc_auc_score.
FPR@95: the share of foreign images accepted at the threshold that accepts 95% of the in-distribution test images.
The default detector is chosen from these numbers by `choose_default` (the rule is printed with the table).

    python benchmarks/ood.py [--epochs 5] [--per-source 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from common import data_roots, find_npz, out_dir
from medclass.core.rundir import RunDir
from medclass.data import open_dataset
from medclass.data.run_data import run_dataset
from medclass.evaluation import evaluate_run
from medclass.inference.detectors import DEFAULT_DETECTOR, DETECTORS, score_with
from medclass.inference.predictor import Predictor
from medclass.training import TrainConfig, train
from medclass.training.guard import Sampled, network_features, training_features

DETECTOR_ORDER = ("msp", "energy", "mahalanobis", "vim", "knn")
# shown beside them, never chosen: a registered detector rebuilt with other parameters (KNN_K is 50 whatever the bank)
VARIANTS = {"knn k=1": ("knn", {"k": 1})}
COLUMNS = DETECTOR_ORDER + tuple(VARIANTS)
PER_SOURCE = 300
SYNTHETIC = 200  # generated images per generated source
FAR_GOAL = 0.99
# fp32: on this CPU bf16 autocast runs Lite0's depthwise convolutions slower (benchmarks/shift.py)
LITE0 = dict(model="efficientnet_lite0", pretrained=True, in_chans=3, precision="32-true", seed=0, audit=False)


def find(where: str) -> Path | None:
    return next((root / where for root in data_roots() if (root / where).exists()), None)


# --- foreign sources: name -> (how far, what, a function giving at most n images as a user would upload them) ---

def npz_test(name: str):
    def images(n: int, rng) -> list:
        path = find_npz(name)
        test = open_dataset(str(path)).subset("test")
        return [test.load_image(int(i)) for i in np.sort(rng.choice(len(test), min(n, len(test)), replace=False))]
    return images


def files(pattern: str):
    def images(n: int, rng) -> list:
        found = sorted(p for root in data_roots() for p in glob.glob(str(root / pattern)))
        return [found[i] for i in np.sort(rng.choice(len(found), min(n, len(found)), replace=False))]
    return images


def folder_dataset(where: str):
    def images(n: int, rng) -> list:
        dataset = open_dataset(str(find(where)))
        return [dataset.load_image(int(i)) for i in np.sort(rng.choice(len(dataset), min(n, len(dataset)),
                                                                       replace=False))]
    return images


def uniform_noise(n: int, rng) -> list:
    return [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(n)]


def constant(n: int, rng) -> list:
    # half grey levels, half random colours
    return [Image.fromarray(np.full((224, 224, 3), rng.integers(0, 256) if i % 2 else rng.integers(0, 256, 3),
                                    dtype=np.uint8)) for i in range(n)]


def smooth_colour(n: int, rng) -> list:
    """Low-frequency colour noise: a 4-16 px random colour grid upsampled bicubically to 224 px."""
    out = []
    for _ in range(n):
        side = int(rng.integers(4, 17))
        small = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        out.append(small.resize((224, 224), Image.BICUBIC))
    return out


def stripes(n: int, rng) -> list:
    """Sinusoidal gratings, random frequency, angle, phase and (half of them) colour."""
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    out = []
    for i in range(n):
        freq, angle, phase = rng.uniform(2, 30), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        colour = rng.uniform(0.3, 1, 3) if i % 2 else np.ones(3)
        out.append(Image.fromarray((255 * wave[..., None] * colour).astype(np.uint8)))
    return out


def plasma(n: int, rng) -> list:
    """Plasma-fractal-like 1/f^beta noise (spectral synthesis), grayscale or colour, 224 px."""
    fy, fx = np.meshgrid(np.fft.fftfreq(224), np.fft.fftfreq(224), indexing="ij")
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1
    out = []
    for i in range(n):
        beta = rng.uniform(1.5, 3.0)
        channels = []
        for _ in range(3 if i % 2 else 1):
            spectrum = (rng.normal(size=(224, 224)) + 1j * rng.normal(size=(224, 224))) / radius ** (beta / 2)
            field = np.real(np.fft.ifft2(spectrum))
            channels.append((field - field.min()) / (np.ptp(field) + 1e-12))
        array = np.stack(channels, -1) if len(channels) == 3 else channels[0]
        out.append(Image.fromarray((255 * array).astype(np.uint8)))
    return out


SOURCES = {  # name: (what, modality, images(n, rng))
    "PneumoniaMNIST": ("PneumoniaMNIST test, chest X-ray, 28 px", "x-ray", npz_test("pneumoniamnist")),
    "RetinaMNIST": ("RetinaMNIST test, colour fundus, 28 px", "fundus", npz_test("retinamnist")),
    "BloodMNIST JPEG": ("BloodMNIST test JPEGs, colour microscopy, 28 px",
                        "microscopy", files("bloodmnist_partial/Blood Cells Sample Images/*.jpg")),
    "brain MRI": ("brain tumour MRI Testing, 224 px", "mri", folder_dataset("brain_tumor_mri_224/Testing")),
    "NIH chest X-ray": ("NIH ChestX-ray14 box subset, 512 px", "x-ray", files("nih_chestxray14_bbox_512/images/*")),
    "BUSI": ("BUSI, all classes, 256 px", "ultrasound", folder_dataset("busi_256/Dataset_BUSI_with_GT")),
    "BreastMNIST": ("BreastMNIST test, 28 px (made from BUSI)", "ultrasound", npz_test("breastmnist")),
    "uniform noise": ("uniform RGB noise, 224 px", "generated", uniform_noise),
    "constant": ("constant grey or colour, 224 px", "generated", constant),
    "smooth colour noise": ("bicubic-upsampled 4-16 px colour noise, 224 px", "generated", smooth_colour),
    "stripes": ("sinusoidal gratings, grey or colour, 224 px", "generated", stripes),
    "plasma fractal": ("1/f^beta spectral noise, grey or colour, 224 px", "generated", plasma),
}
GENERATED = {"uniform noise", "constant", "smooth colour noise", "stripes", "plasma fractal"}


# full: the default end-to-end fine-tuning, `--epochs`; frozen: the ImageNet backbone kept, a linear classifier
# trained on its cached features (`--finetune frozen --augment none`), FROZEN_EPOCHS
FROZEN_EPOCHS = 20
TRAINING = {"fine-tuned": dict(finetune="full"), "frozen": dict(finetune="frozen", augment="none")}


def models() -> dict:
    """name: (data spec, modality, TrainConfig settings, the foreign sources it is scored on, training)."""
    breast, busi = find_npz("breastmnist"), find("busi_256/Dataset_BUSI_with_GT")
    out = {}
    for training in TRAINING:
        if breast:
            out[f"BreastMNIST {training}"] = (str(breast), "ultrasound", dict(img_size=64),
                                              [s for s in SOURCES if s != "BreastMNIST"], training)
        if busi:
            out[f"BUSI {training}"] = (str(busi), "ultrasound", dict(img_size=128),
                                       [s for s in SOURCES if s != "BUSI"], training)
    return out


def available(source: str) -> bool:
    if source in GENERATED:
        return True
    checks = {"PneumoniaMNIST": lambda: find_npz("pneumoniamnist"), "RetinaMNIST": lambda: find_npz("retinamnist"),
              "BreastMNIST": lambda: find_npz("breastmnist"),
              "BloodMNIST JPEG": lambda: find("bloodmnist_partial/Blood Cells Sample Images"),
              "brain MRI": lambda: find("brain_tumor_mri_224/Testing"),
              "NIH chest X-ray": lambda: find("nih_chestxray14_bbox_512/images"),
              "BUSI": lambda: find("busi_256/Dataset_BUSI_with_GT")}
    return checks[source]() is not None


# --- measures ---

def auroc(id_scores: np.ndarray, foreign: np.ndarray) -> float:
    scores = np.concatenate([id_scores, foreign])
    if not np.all(np.isfinite(scores)):
        return float("nan")
    return float(roc_auc_score(np.r_[np.zeros(len(id_scores)), np.ones(len(foreign))], scores))


def fpr_at_95(id_scores: np.ndarray, foreign: np.ndarray) -> float:
    """Share of foreign images accepted when the threshold accepts (at least) 95% of the in-distribution images;
    tied scores are accepted together (scikit-learn's ROC with in-distribution as the positive class)."""
    scores = np.concatenate([id_scores, foreign])
    if not np.all(np.isfinite(scores)):
        return float("nan")
    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(id_scores)), np.zeros(len(foreign))], -scores)
    return float(fpr[np.searchsorted(tpr, 0.95, side="left")])


def fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3f}"


# --- one model ---

def train_model(name: str, data: str, settings: dict, epochs: int, out: Path) -> tuple[Path, float]:
    run = out / name.replace(" ", "-")
    start = time.time()
    train(TrainConfig(data=data, out=str(run), epochs=epochs, **LITE0, **settings))
    return run, time.time() - start


def measure(name: str, run: Path, sources: list[str], per_source: int) -> dict:
    """Every detector's scores of the model's test split and of each source; the fit as training/guard.py's."""
    predictor = Predictor(RunDir(run).artifact())
    train_data, val_data, test_data = (run_dataset(RunDir(run), split) for split in ("train", "val", "test"))
    features, labels, classifier = training_features(predictor, train_data)
    sets = {"val": network_features(predictor, Sampled(val_data, np.arange(len(val_data)))),
            "test": network_features(predictor, Sampled(test_data, np.arange(len(test_data))))}
    counts = {"train": len(labels), "val": len(val_data), "test": len(test_data)}
    for source in sources:
        rng = np.random.default_rng(sum(map(ord, source)))  # seeded per source
        images = SOURCES[source][2](SYNTHETIC if source in GENERATED else per_source, rng)
        sets[source] = network_features(predictor, images)
        counts[source] = len(images)
    scores, fit_notes = {}, {}
    for detector in DETECTOR_ORDER:
        entry = DETECTORS.get(detector)
        try:
            tensors, params = entry.fit(torch.from_numpy(features), torch.from_numpy(labels),
                                        classifier)
            built = entry.build(tensors, params)
            scores[detector] = {key: score_with(entry, built, f, lg) for key, (f, lg) in sets.items()}
            for variant, (base, changed) in VARIANTS.items():
                if base == detector:
                    rebuilt = entry.build(tensors, params | changed)
                    scores[variant] = {key: score_with(entry, rebuilt, f, lg) for key, (f, lg) in sets.items()}
        except Exception as error:  # reported as measured, never patched
            fit_notes[detector] = f"{type(error).__name__}: {error}"
    return {"name": name, "scores": scores, "counts": counts, "notes": fit_notes,
            "covariance": covariance_condition(features, labels),
            "dim": int(features.shape[1]), "classes": len(predictor.heads[0].classes)}


def covariance_condition(features: np.ndarray, labels: np.ndarray) -> str:
    """What pytorch-ood's Mahalanobis inverts: the class-centred scatter matrix (not divided by N) + 1e-6 I; its
    rank and condition number, measured in float64."""
    centred = np.concatenate([features[labels == c] - features[labels == c].mean(0) for c in np.unique(labels)])
    singular = np.linalg.svd(centred.astype(np.float64), compute_uv=False)
    eigen = np.zeros(features.shape[1])
    eigen[:len(singular)] = singular ** 2
    eigen += 1e-6
    rank = int(np.sum(singular > singular[0] * 1e-10))
    return (f"scatter matrix rank {rank} of {features.shape[1]}, largest eigenvalue {eigen.max():.3g}, condition "
            f"number {eigen.max() / eigen.min():.2g} (inverted in float32)")


def rows_for(result: dict, sources: list[str]) -> dict:
    """detector -> source -> (auroc, fpr95), plus mean over sources and the val-threshold acceptance."""
    table = {}
    for detector, by in result["scores"].items():
        test = by["test"]
        cells = {s: (auroc(test, by[s]), fpr_at_95(test, by[s])) for s in sources}
        threshold = np.quantile(by["val"], 0.95, method="higher") if np.all(np.isfinite(by["val"])) else np.nan
        table[detector] = {"cells": cells, "mean_auroc": float(np.mean([c[0] for c in cells.values()])),
                           "mean_fpr": float(np.mean([c[1] for c in cells.values()])),
                           "val_test_accept": float(np.mean(test <= threshold)),
                           "val_foreign_accept": float(np.mean([np.mean(by[s] <= threshold) for s in sources]))}
    return table


def is_far(model_modality: str, source: str) -> bool:
    return SOURCES[source][1] != model_modality


def choose_default(tables: dict, far: dict) -> tuple[str, str]:
    """Most far sources (over all models) at AUROC >= FAR_GOAL; ties: the best mean AUROC over every source of
    all models. Only registered detectors (not VARIANTS). A detector with a non-finite score anywhere is not
    eligible."""
    def key(detector: str):
        aurocs = [c[0] for t in tables.values() if detector in t for c in t[detector]["cells"].values()]
        if len(aurocs) == 0 or not np.all(np.isfinite(aurocs)) or any(detector not in t for t in tables.values()):
            return (-1, -1.0)
        caught = sum(tables[m][detector]["cells"][s][0] >= FAR_GOAL for m in tables for s in far[m])
        return (caught, float(np.mean([tables[m][detector]["mean_auroc"] for m in tables])))
    best = max(DETECTOR_ORDER, key=key)
    total = sum(len(f) for f in far.values())
    lines = [f"- {d}: {key(d)[0]} of {total} far sources at AUROC >= {FAR_GOAL}, mean AUROC over all models "
             f"{key(d)[1]:.3f}" for d in DETECTOR_ORDER]
    return best, "\n".join(lines)


def report(results: list[dict], setup: dict) -> str:
    tables, far = {}, {}
    for result in results:
        modality, sources = setup[result["name"]]["modality"], setup[result["name"]]["sources"]
        tables[result["name"]] = rows_for(result, sources)
        far[result["name"]] = [s for s in sources if is_far(modality, s)]
    best, ranking = choose_default(tables, far)
    lines = []
    for result in results:
        name, info = result["name"], setup[result["name"]]
        sources, counts = info["sources"], result["counts"]
        table = tables[name]
        lines += ["", f"**{name}** model: EfficientNet-Lite0 (ImageNet, packaged), {info['img_size']} px, "
                      f"{info['epochs']} epochs, " + ("fine-tuned end to end" if info["training"] == "fine-tuned" else
                                                    "backbone frozen (linear classifier on cached features)") +
                      f", {info['minutes']:.1f} min to train (guard fit included); "
                      f"test AUC {info['test_auc']:.3f}; features {result['dim']}-d, {result['classes']} classes; "
                      f"fitted on {counts['train']} training images, in-distribution = {counts['test']} test images "
                      f"({counts['val']} val images for the threshold column).", "",
                  "AUROC (foreign = positive) / FPR@95 (share of foreign images accepted when 95% of the test images "
                  "are); F = far (another modality or generated), N = near (breast ultrasound too):", "",
                  "| source (images) | " + " | ".join(d + (" (default)" if d == best else "")
                                                       for d in COLUMNS if d in table) + " |",
                  "|---" * (1 + len(table)) + "|"]
        for s in sources:
            tag = "F" if s in far[name] else "N"
            lines.append(f"| {s} [{tag}] ({counts[s]}) | " + " | ".join(
                f"{fmt(table[d]['cells'][s][0])} / {fmt(table[d]['cells'][s][1])}"
                for d in COLUMNS if d in table) + " |")
        lines.append("| **mean over sources** | " + " | ".join(
            f"**{fmt(table[d]['mean_auroc'])}** / {fmt(table[d]['mean_fpr'])}" for d in COLUMNS
            if d in table) + " |")
        lines.append("| far sources at AUROC >= .99 | " + " | ".join(
            f"{sum(table[d]['cells'][s][0] >= FAR_GOAL for s in far[name])} of {len(far[name])}"
            for d in COLUMNS if d in table) + " |")
        lines.append("| at the guard's val threshold (95% of val): test accepted / foreign accepted (mean) | " +
                     " | ".join(f"{table[d]['val_test_accept']:.2f} / {table[d]['val_foreign_accept']:.2f}"
                                for d in COLUMNS if d in table) + " |")
        lines.append(f"\nMahalanobis (pytorch-ood, not patched): {result['covariance']}.")
        for detector, note in result["notes"].items():
            lines.append(f"\n{detector} failed to fit or score: {note}")
    lines += ["", f"Default rule: the most far sources caught at AUROC >= {FAR_GOAL} over all models, ties broken "
                  "by the mean AUROC over all sources of all models (non-finite scores: not eligible):",
              ranking, f"Chosen: **{best}** (DEFAULT_DETECTOR in inference/detectors.py is now {DEFAULT_DETECTOR!r})."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--per-source", type=int, default=PER_SOURCE)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    plan = models()
    if not plan:
        return f"ood: skipped (neither BreastMNIST nor BUSI found in {', '.join(map(str, data_roots()))})"
    out = args.out or out_dir("runs/bench", "ood")
    start = time.time()
    results, setup = [], {}
    for name, (data, modality, settings, sources, training) in plan.items():
        sources = [s for s in sources if available(s)]
        epochs = args.epochs if training == "fine-tuned" else FROZEN_EPOCHS
        run, seconds = train_model(name, data, settings | TRAINING[training], epochs, out)
        metrics, _ = evaluate_run(run, split="test")
        setup[name] = {"modality": modality, "sources": sources, "img_size": settings["img_size"],
                       "epochs": epochs, "training": training, "minutes": seconds / 60, "test_auc": metrics["auc"]}
        results.append(measure(name, run, sources, args.per_source))
        print(f"ood: {name} done at {(time.time() - start) / 60:.1f} min", flush=True)
    text = (f"Input guard detectors on foreign images (`python benchmarks/ood.py`, {(time.time() - start) / 60:.1f} "
            "min in all on this machine):\n" + report(results, setup))
    Path("runs/bench/ood").mkdir(parents=True, exist_ok=True)
    Path("runs/bench/ood/results.md").write_text(text + "\n")
    (out / "results.md").write_text(text + "\n")
    return text


if __name__ == "__main__":
    print(main())

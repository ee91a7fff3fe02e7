"""`train(config)`: data → splits → Lightning fit → best checkpoint → model artefact, all inside the run folder.

Reads top to bottom: prepare_data, resolve_input, build_trainer, train.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, WeightAveraging
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from torch.optim.swa_utils import get_ema_avg_fn

import medclass
from medclass.data import ImageDataset, open_dataset
from medclass.data.audit import audit_dataset
from medclass.data.splits import load_splits, save_splits, stratified_split
from medclass.data.tasks import is_multi_label
from medclass.errors import DataWarning, MedclassError
from medclass.inference.artifact import ModelArtifact
from medclass.models import model_entry
from medclass.training.config import TrainConfig
from medclass.training.datamodule import ImageDataModule
from medclass.training.history import HistoryWriter, plot_history
from medclass.training.module import ClassifierModule
from medclass.transforms import default_preprocessing

log = logging.getLogger("medclass")
MAX_AUTO_SIZE = 224


@dataclass
class TrainResult:
    run_dir: Path
    artifact_path: Path
    best_val_auc: float
    epochs_run: int


def prepare_data(config: TrainConfig) -> ImageDataset:
    """Open the data and give every image a split: the file's own, a --splits file, or a new seeded one."""
    dataset = open_dataset(config.data, **config.reader_options)
    if config.splits:
        options = {"fold": config.fold} if config.fold is not None else {}
        dataset = load_splits(dataset, Path(config.splits), **options)
    elif not dataset.has_splits:
        if any(s.split for s in dataset.samples):
            raise MedclassError(f"{config.data}: some images have a split and others none; give every image one "
                                "or none (then medclass makes a stratified split)")
        dataset = stratified_split(dataset, config.val_fraction, config.test_fraction, config.seed)
    if is_multi_label(dataset):
        raise MedclassError(f"{config.data}: task {dataset.target!r} is multi-label; medclass trains one class per "
                            "image for now: pick a finding with --positive FINDING (optionally --negative)")
    if not any(s.split == "val" for s in dataset.samples):
        dataset = carve_validation(dataset, config.val_fraction, config.seed)
    return dataset


def audit_before_training(dataset: ImageDataset, run_dir: Path) -> list[str]:
    """Audit the split data (saved as audit.json). Unreadable images stop the run here, before any epoch;
    leakage and artefacts are returned as warnings, since the user may have reasons to keep them."""
    report = audit_dataset(dataset)
    (run_dir / "audit.json").write_text(json.dumps(report, indent=2))
    if report["corrupt"]:
        first = report["corrupt"][0]
        raise MedclassError(f"{len(report['corrupt'])} image(s) cannot be read, e.g. {first['path']}: "
                            f"{first['reason']}. Fix or remove them; all are listed in {run_dir / 'audit.json'}")
    summary = report["summary"]
    found = {"cross_split_duplicates": "exact-duplicate groups span splits (test images seen in training)",
             "conflicting_label_duplicates": "exact-duplicate groups carry different labels",
             "patient_leaks": "patients have images in more than one split",
             "masks": "files look like segmentation masks",
             "size_artefacts": "image sizes/modes differ by class (a shortcut the model can learn)"}
    lines = [f"audit: {len(report[key])} {text}" for key, text in found.items() if report[key]]
    if summary.get("near_duplicate_cross_split_groups"):
        lines.append(f"audit: {summary['near_duplicate_cross_split_groups']} near-duplicate groups span splits "
                     "(likely the same patient or scan; review them)")
    return lines + (
        [f"audit: details in {run_dir / 'audit.json'}; `medclass split --dedupe` removes duplicates"]
        if summary.get("leakage_found") else [])


def carve_validation(dataset: ImageDataset, fraction: float, seed: int) -> ImageDataset:
    """Data shipped with only train/test (e.g. Training/Testing folders): take a validation part out of train, so
    model selection never looks at the test images. Whole patients move when ids exist; else stratified by class."""
    train_idx = [i for i, s in enumerate(dataset.samples) if s.split == "train"]
    if not train_idx:
        raise MedclassError(f"{dataset.name}: no training images (splits found: "
                            f"{sorted({s.split for s in dataset.samples})})")
    if any(dataset.samples[i].patient for i in train_idx):
        groups = [dataset.samples[i].patient or dataset.samples[i].source for i in train_idx]
        cut = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        _, val_pos = next(cut.split(train_idx, groups=groups))
        val_idx = [train_idx[i] for i in val_pos]
    else:
        y = dataset.targets()[train_idx]
        stratify = y if np.bincount(y).min() >= 2 else None
        _, val_idx = train_test_split(train_idx, test_size=fraction, random_state=seed, stratify=stratify)
    val = set(val_idx)
    return dataset.with_samples([s.with_split("val") if i in val else s for i, s in enumerate(dataset.samples)])


def resolve_input(config: TrainConfig, dataset: ImageDataset) -> tuple[int, int]:
    """Image size and channels: as configured, else from the training images themselves."""
    train = dataset.subset("train")
    probe = [train.load_image(i) for i in range(min(32, len(train)))]
    img_size = config.img_size or min(max(probe[0].size), MAX_AUTO_SIZE)
    in_chans = config.in_chans or (3 if config.pretrained or any(im.mode != "L" for im in probe) else 1)
    minimum = model_entry(config.model).min_input
    if img_size < minimum:
        raise MedclassError(f"model {config.model} needs inputs of at least {minimum} px; got --img-size "
                            f"{img_size}. Use a larger --img-size or a small-input model (resnet18_small, smallcnn)")
    return img_size, in_chans


def positive_index(config: TrainConfig, classes: list[str]) -> int | None:
    if len(classes) != 2:
        if config.positive_class:
            raise MedclassError(f"--positive-class applies to binary tasks; this one has {len(classes)} classes")
        return None
    if config.positive_class is None:
        return 1
    if config.positive_class not in classes:
        raise MedclassError(f"--positive-class {config.positive_class!r} is not a class; classes: {classes}")
    return classes.index(config.positive_class)


def class_weights(config: TrainConfig, dataset: ImageDataset) -> list[float] | None:
    if config.class_weights == "none":
        return None
    counts = np.bincount(dataset.subset("train").targets(), minlength=len(dataset.classes)).astype(float)
    return (counts.sum() / (len(counts) * np.maximum(counts, 1))).tolist()


def build_trainer(config: TrainConfig, run_dir: Path) -> tuple[L.Trainer, ModelCheckpoint]:
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best-{epoch:03d}", monitor="val_auc",
                                 mode="max")
    # Lightning's save_last only refreshes last.ckpt when a better model is saved; a resume must start from the
    # latest epoch, so a second, unmonitored checkpoint rewrites last.ckpt after every epoch.
    latest = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", save_top_k=1,
                             enable_version_counter=False)
    early_stop = EarlyStopping(monitor="val_auc", mode="max", patience=config.patience)
    callbacks = [checkpoint, latest, early_stop, HistoryWriter(run_dir / "history.csv")]
    if config.ema:
        # validation, checkpoints and the final model all use the averaged weights
        callbacks.append(WeightAveraging(avg_fn=get_ema_avg_fn(config.ema)))
    devices = int(config.devices) if str(config.devices).isdigit() else config.devices
    trainer = L.Trainer(max_epochs=config.epochs, accelerator=config.accelerator, devices=devices,
                        precision=config.precision, callbacks=callbacks,
                        logger=False, num_sanity_val_steps=0, log_every_n_steps=10, default_root_dir=run_dir,
                        enable_model_summary=False)
    return trainer, checkpoint


def resumed_config(config: TrainConfig) -> TrainConfig:
    """A resumed run continues with the config it was started with (its schedule depends on it); only where
    it runs (accelerator, devices, workers) may change."""
    last_ckpt = config.run_dir / "checkpoints" / "last.ckpt"
    if not last_ckpt.exists():
        raise MedclassError(f"{last_ckpt}: nothing to resume (no last checkpoint in the run folder)")
    saved = TrainConfig.load(config.run_dir / "config.yaml")
    return replace(saved, out=config.out, resume=True, accelerator=config.accelerator, devices=config.devices,
                   num_workers=config.num_workers)


def train(config: TrainConfig) -> TrainResult:
    run_dir = config.run_dir
    last_ckpt = run_dir / "checkpoints" / "last.ckpt"
    if config.resume:
        config = resumed_config(config)
    elif (run_dir / "history.csv").exists():
        raise MedclassError(f"{run_dir}: already holds a training run; pass --resume to continue it "
                            "or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    if Path(config.data).exists():  # absolute, so the run can be evaluated from any working directory
        config = replace(config, data=str(Path(config.data).resolve()))

    dataset = prepare_data(config)
    save_splits(dataset, run_dir / "splits.csv")
    if config.audit:
        for line in audit_before_training(dataset, run_dir):
            warnings.warn(line, DataWarning, stacklevel=2)
    img_size, in_chans = resolve_input(config, dataset)
    classes, pos = dataset.classes, positive_index(config, dataset.classes)

    L.seed_everything(config.seed, workers=True, verbose=False)
    module = ClassifierModule(config.model, len(classes), in_chans, pretrained=config.pretrained, lr=config.lr,
                              weight_decay=config.weight_decay, optimizer=config.optimizer,
                              scheduler=config.scheduler, label_smoothing=config.label_smoothing,
                              class_weights=class_weights(config, dataset), hflip_tta=config.hflip,
                              positive_index=pos, model_kwargs=config.model_kwargs)
    pretrained_cfg = getattr(module.model, "pretrained_cfg", None) if config.pretrained else None
    preprocessing = default_preprocessing(img_size, in_chans, pretrained_cfg)
    resolved = {"img_size": img_size, "in_chans": in_chans, "classes": classes, "task": dataset.target,
                "positive_index": pos, "preprocessing": preprocessing.to_dict(), "counts": dataset.counts(),
                "versions": _versions()}
    config.save(run_dir / "config.yaml", resolved)

    data = ImageDataModule(dataset, preprocessing.train_transform(config.augment, config.hflip),
                           preprocessing.eval_transform(), config.batch_size, config.num_workers)
    trainer, checkpoint = build_trainer(config, run_dir)
    trainer.fit(module, datamodule=data, ckpt_path=str(last_ckpt) if config.resume else None)

    best_path = checkpoint.best_model_path or str(last_ckpt)
    state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
    module.load_state_dict(state)
    artifact = ModelArtifact(
        model_name=config.model, classes=classes, preprocessing=preprocessing, task=dataset.target,
        state_dict=module.model.state_dict(), positive_index=pos, model_kwargs=config.model_kwargs, tta=["hflip"] if config.hflip else [],
        provenance={"data": config.data, "run_dir": str(run_dir), "best_checkpoint": Path(best_path).name,
                    "best_val_auc": _score(checkpoint.best_model_score), "seed": config.seed, **_versions()})
    artifact_path = artifact.save(run_dir)
    plot_history(run_dir / "history.csv", run_dir / "training_curves.png")
    return TrainResult(run_dir, artifact_path, _score(checkpoint.best_model_score), trainer.current_epoch)


def _score(value) -> float:
    return float(value) if value is not None else float("nan")


def _versions() -> dict:
    import timm

    return {"medclass": medclass.__version__, "torch": str(torch.__version__), "lightning": L.__version__,
            "timm": timm.__version__, "python": platform.python_version()}

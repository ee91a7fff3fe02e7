"""`train(config)`: data → splits → Lightning fit → best checkpoint → tuned model artefact, all inside the run folder.

Reads top to bottom, as torchvision's classification reference script does (references/classification/train.py):
`train()` is the sequence of steps, each a named function below it or in the module of its side job:

    prepare.py       the data, its split and class coverage, the tasks, augmentation, input size and model
    run_records.py   what the run records about its data (skipped.csv, splits.csv, excluded.csv)
    data_audit.py    the audit before the first epoch (audit.json), unreadable images stopping or left out
    loggers.py       TensorBoard / MLflow beside history.csv
    artifact.py      the artefact of the best checkpoint
    tuning.py        its calibration and operating point, chosen on validation before it is saved (once)

Progress and decisions are reported on stderr (progress.py: report); findings about the data are DataWarnings.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar, WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn

from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead
from medclass.core.preprocessing import Preprocessing, default_preprocessing
from medclass.core.rundir import RunDir
from medclass.data import ImageDataset
from medclass.evaluation.tuning import save_tuned, tuning_summary
from medclass.training.artifact import trained_artifact, versions
from medclass.training.augment import BatchAugment
from medclass.training.augment_policy import AugmentPolicy
from medclass.training.batchnorm import recalibrate_batchnorm
from medclass.training.checkpoints import CHECKPOINT_DIR, LAST, load_checkpoint, vet_checkpoints_to_resume
from medclass.training.config import TrainConfig
from medclass.training.data_audit import audited
from medclass.training.datamodule import ImageDataModule
from medclass.training.distributed import check_batch_split, is_global_zero, lightning_strategy, local_processes
from medclass.training.feature_cache import CacheReport, FeatureDataModule, cached_features
from medclass.training.history import HistoryWriter, plot_history
from medclass.training.imbalance import loss_class_weights, train_sampler
from medclass.training.loggers import check_logger_installed, experiment_logger
from medclass.training.module import ClassifierModule
from medclass.training.prepare import (check_class_coverage, check_input_size, learned_tasks, prepare_data,
                                       report_positive_class, resolve_input, resolve_model, with_augmentation)
from medclass.training.progress import progress_callback, report
from medclass.training.run_records import record_reading, record_splits
from medclass.training.speed import SpeedPlan, on_gpu, prepare_model, resolve_speed
from medclass.training.tuning import fit_run_guard, tune_on_validation

__all__ = ["TrainResult", "prepare_data", "resolve_model", "train"]  # the last two also for benchmarks, harness


@dataclass
class TrainResult:
    run_dir: Path
    artifact_path: Path
    best_val_auc: float
    epochs_run: int


@dataclass
class Setup:
    """How the run trains, resolved once its data is known, and recorded in config.yaml."""

    preprocessing: Preprocessing
    speed: SpeedPlan
    data: L.LightningDataModule
    weights: object | None  # the pretrained weights' report (models/weights.py), None without
    recalibrated: int  # training images that re-estimated the BatchNorm statistics (0: not asked)
    cache: CacheReport | None  # the frozen backbone's feature cache, when used


def train(config: TrainConfig) -> TrainResult:
    """Everything that can be checked without writing is checked first (out folder, checkpoints to resume, data,
    classes per split, input size, model), so a refused start leaves no run folder behind.

    Under DDP every rank runs this: all of them make the same checks (a refused start stops every rank, rather than
    leaving some waiting for the others) and the same seeded splits; only global rank 0 writes the run folder. No
    check trips over rank 0's writing: history.csv first appears after epoch 1, which no rank reaches alone, and
    config.yaml, read by a resume, is replaced whole (TrainConfig.save)."""
    config = checked_start(config)
    scanned = {}  # images decoded for the split's duplicate grouping, reused by the audit: one decode each
    dataset = prepare_data(config, scanned)
    config, policy = with_augmentation(config, dataset)
    check_class_coverage(dataset)
    config, img_size, in_chans = resolve_input(config, dataset)
    task_heads = learned_tasks(config, dataset)
    report_positive_class(config, task_heads[0])
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = ClassifierModule(config, task_heads, in_chans,
                              loss_class_weights(config.class_weights, dataset, task_heads))
    writes, run = is_global_zero(), RunDir(config.run_dir)
    with run_folder(config.run_dir) if writes else nullcontext():
        read = record_reading(dataset, run) if writes else {}
        dataset, unreadable = audited(config, dataset, scanned)
        scanned.clear()  # ~1 KB of thumbnail per image, not needed while training
        excluded = record_splits(dataset, run) if writes else 0
        setup = set_up_training(config, module, dataset, img_size, in_chans, policy)
        trainer, checkpoint = build_trainer(config, setup.speed.precision)
        if writes:
            facts = read | {"unreadable_images": unreadable, "excluded_images": excluded}
            config.save(run.config_file, resolved_record(dataset, task_heads, img_size, in_chans, policy, setup,
                                                         facts, trainer, config.batch_size))
        fit(config, trainer, module, setup.data)
    best_val_auc = _score(checkpoint.best_model_score)
    if writes:  # rank 0 saves the model, from the checkpoint that all ranks chose alike
        save_model(config, module, checkpoint, setup.preprocessing, dataset.subset("val"), dataset.subset("train"))
    return TrainResult(config.run_dir, run.artifact_file, best_val_auc, trainer.current_epoch)


def checked_start(config: TrainConfig) -> TrainConfig:
    """What is checked before the data is read: the out folder, the logger's package, the checkpoints and config of
    a run to resume (which it continues with), the batch split and the input size. The config returned names every
    path absolutely, so the run can be evaluated, sampled and resumed from any folder."""
    check_out_folder(config)
    check_logger_installed(config.logger)
    if config.resume:
        config = resumed_config(config)
    config = config.with_absolute_paths()
    check_batch_split(config.batch_size, processes(config))
    if not config.resume and config.img_size is not None:
        check_input_size(resolve_model(config.model, config.img_size, config.pretrained), config.img_size)
    return config


def check_out_folder(config: TrainConfig) -> None:
    run_dir = config.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise MedclassError(f"{run_dir}: --out names an existing file; expected a run folder (a new one, or a run "
                            "to --resume)")
    if not config.resume and RunDir(run_dir).history_file.exists():
        raise MedclassError(f"{run_dir}: already holds a training run; pass --resume to continue it "
                            "or choose another --out")


def resumed_config(config: TrainConfig) -> TrainConfig:
    """A resumed run continues with the config it was started with (its schedule depends on it); only where
    it runs (accelerator, devices, nodes, workers) may change. Its checkpoints are vetted before anything runs."""
    vet_checkpoints_to_resume(config.run_dir)
    saved = TrainConfig.load(RunDir(config.run_dir).config_file)
    return replace(saved, out=config.out, resume=True, accelerator=config.accelerator, devices=config.devices,
                   strategy=config.strategy, num_nodes=config.num_nodes, num_workers=config.num_workers,
                   precision=config.precision, compile=config.compile, in_memory=config.in_memory,
                   memory_budget_gb=config.memory_budget_gb)


def processes(config: TrainConfig) -> int:
    """Training processes over all machines (DDP: one per device)."""
    return local_processes(config.devices, config.accelerator) * config.num_nodes


@contextmanager
def run_folder(run_dir: Path):
    """Create the run folder; if the start fails before anything was written into it, remove it again."""
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield run_dir
    except BaseException:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


def set_up_training(config: TrainConfig, module: ClassifierModule, dataset: ImageDataset, img_size: int,
                    in_chans: int, policy: AugmentPolicy) -> Setup:
    """The preprocessing (a pretrained network's own statistics), the speed plan and the network prepared for it,
    BatchNorm statistics re-estimated when asked, and the training data: images, or cached features."""
    pretrained_cfg = getattr(module.model, "pretrained_cfg", None) if config.pretrained else None
    preprocessing = default_preprocessing(img_size, in_chans, pretrained_cfg)
    speed = resolve_speed(config, dataset, preprocessing)
    module.model = prepare_model(module.model, speed)
    weights = getattr(module.model, "weights_report", None)
    if weights:
        report(f"pretrained weights: {weights.summary()}")
    if config.modality:
        report(f"augmentation: {config.augment} for {config.modality}: {policy.summary()}")
    recalibrated = recalibrated_batchnorm(config, module, dataset, preprocessing, speed)
    data, cache = training_data(config, dataset, module, preprocessing, speed, policy)
    if cache:
        report(f"feature cache: {cache.summary()}")
    return Setup(preprocessing, speed, data, weights, recalibrated, cache)


def recalibrated_batchnorm(config: TrainConfig, module: ClassifierModule, dataset: ImageDataset,
                           preprocessing: Preprocessing, speed: SpeedPlan) -> int:
    """--bn-recalibrate: the backbone's BatchNorm statistics re-estimated on training images before anything trains
    or is cached (the cache key hashes them); a resume takes them from its checkpoint instead. Returns the images
    used (0: not asked)."""
    if not config.bn_recalibrate or config.resume:
        return 0
    used = recalibrate_batchnorm(module.model, dataset.subset("train"), preprocessing, device(config),
                                 speed.num_workers, config.seed)
    report(f"BatchNorm statistics re-estimated on {used} training images")
    return used


def uses_feature_cache(config: TrainConfig, policy: AugmentPolicy) -> bool:
    """Only where every epoch would see the same features: a frozen backbone and no random augmentation (random
    horizontal flips are fine: both views are cached)."""
    return config.feature_cache and config.finetune == "frozen" and not policy.trains


def training_data(config: TrainConfig, dataset: ImageDataset, module: ClassifierModule, preprocessing: Preprocessing,
                  speed: SpeedPlan, policy: AugmentPolicy) -> tuple[L.LightningDataModule, CacheReport | None]:
    """Images augmented per batch, or, for a frozen backbone without random augmentation, its cached features
    (the module then trains its classifier on them). Returns the data module and, for cached features, the
    cache's report."""
    sampler = train_sampler(config.sampler, dataset, module.task_heads[0], config.seed)
    if not uses_feature_cache(config, policy):
        return ImageDataModule(dataset, preprocessing, BatchAugment(preprocessing, policy),
                               config.batch_size, speed.num_workers, speed.in_memory, config.channels_last,
                               sampler, module.task_heads), None
    splits = {split: dataset.subset(split) for split in ("train", "val")}
    features, cache = cached_features(module.model, splits, preprocessing, config.model, config.model_kwargs,
                                      2 if policy.hflip else 1, device(config), speed.precision, speed.num_workers,
                                      module.task_heads)
    module.on_features = True
    return FeatureDataModule(features, config.batch_size, sampler), cache


def build_trainer(config: TrainConfig, precision: str) -> tuple[L.Trainer, ModelCheckpoint]:
    run_dir = config.run_dir
    checkpoint = ModelCheckpoint(dirpath=run_dir / CHECKPOINT_DIR, filename="best-{epoch:03d}", monitor="val_auc",
                                 mode="max")
    # Lightning's save_last only refreshes last.ckpt when a better model is saved; a resume must start from the
    # latest epoch, so a second, unmonitored checkpoint rewrites last.ckpt after every epoch.
    latest = ModelCheckpoint(dirpath=run_dir / CHECKPOINT_DIR, filename=Path(LAST).stem, save_top_k=1,
                             enable_version_counter=False)
    early_stop = EarlyStopping(monitor="val_auc", mode="max", patience=config.patience)
    progress = progress_callback()
    callbacks = [checkpoint, latest, early_stop, HistoryWriter(RunDir(run_dir).history_file), progress]
    if config.ema:
        # validation, checkpoints and the final model all use the averaged weights
        callbacks.append(WeightAveraging(avg_fn=get_ema_avg_fn(config.ema)))
    devices = int(config.devices) if str(config.devices).isdigit() else config.devices
    strategy = lightning_strategy(config.strategy, config.finetune, processes(config))
    # every batch has the same image size, so cuDNN's per-shape algorithm search pays off (no effect on a CPU)
    trainer = L.Trainer(max_epochs=config.epochs, accelerator=config.accelerator, devices=devices,
                        num_nodes=config.num_nodes, strategy=strategy, precision=precision, callbacks=callbacks,
                        benchmark=True, logger=experiment_logger(config.logger, run_dir), num_sanity_val_steps=0,
                        log_every_n_steps=10, default_root_dir=run_dir, enable_model_summary=False,
                        enable_progress_bar=isinstance(progress, ProgressBar))
    return trainer, checkpoint


def resolved_record(dataset: ImageDataset, task_heads: list[TaskHead], img_size: int, in_chans: int,
                    policy: AugmentPolicy, setup: Setup, facts: dict, trainer: L.Trainer, batch_size: int) -> dict:
    """What the run resolved at start, written under `resolved:` in config.yaml: sizes, classes and tasks, the
    weights, augmentation and preprocessing used, the images per split and those left out (`facts`), the speed
    plan, the feature cache, versions and processes."""
    several = len(task_heads) > 1
    return {"img_size": img_size, "in_chans": in_chans, "classes": list(task_heads[0].classes),
            "task": dataset.target, "positive_index": task_heads[0].positive_index,
            "tasks": [h.to_dict() for h in task_heads],
            **({"pretrained_weights": setup.weights.to_dict()} if setup.weights else {}),
            "augmentation": policy.to_dict(), "preprocessing": setup.preprocessing.to_dict(),
            "counts": dataset.counts(),
            **({"task_counts": {t: dataset.counts(t) for t in dataset.learned[1:]}} if several else {}),
            "skipped_images": facts["skipped_images"], "unreadable_images": facts["unreadable_images"],
            "excluded_images": facts["excluded_images"], "split_grouping": facts["split_grouping"],
            **({"batchnorm_recalibrated_on": setup.recalibrated} if setup.recalibrated else {}),
            **setup.speed.to_dict(), **({"feature_cache": setup.cache.to_dict()} if setup.cache else {}),
            "versions": versions(), "processes": trainer.world_size,
            "device_batch_size": batch_size // trainer.world_size}


def fit(config: TrainConfig, trainer: L.Trainer, module: ClassifierModule, data: L.LightningDataModule) -> None:
    """The epochs: from the start, or from the run's last checkpoint (--resume)."""
    last = config.run_dir / CHECKPOINT_DIR / LAST
    with frozen_backbone_notice(config.finetune):
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if config.resume else None, weights_only=True)


@contextmanager
def frozen_backbone_notice(finetune: str):
    """A frozen backbone keeps its BatchNorm layers in eval mode on purpose (module.py: train), which Lightning
    warns about at every start; said once here in medclass's words instead."""
    if finetune == "full":
        yield
        return
    report("frozen backbone: its BatchNorm layers keep the pretrained statistics (eval mode) while only the "
           "classifier trains; Lightning's 'modules in eval mode' warning is expected and not shown")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
        yield


def save_model(config: TrainConfig, module: ClassifierModule, checkpoint: ModelCheckpoint,
               preprocessing: Preprocessing, val_data: ImageDataset, train_data: ImageDataset) -> Path:
    """The best checkpoint's network as the run's artefact: tuned on the validation split (its temperatures and
    operating points), its input guard fitted (training/guard.py), then written once, with calibration.json beside
    it; the training curves plotted."""
    run = RunDir(config.run_dir)
    best_path = checkpoint.best_model_path or str(config.run_dir / CHECKPOINT_DIR / LAST)
    module.load_trained_state(load_checkpoint(best_path))  # a frozen backbone: taken from the module itself
    artifact = trained_artifact(config, module, preprocessing, best_path, _score(checkpoint.best_model_score))
    tuned = tune_on_validation(artifact, val_data, config)
    guard_line = fit_run_guard(artifact, train_data, val_data, config)
    path = save_tuned(run, artifact, tuned)
    plot_history(run.history_file, run.curves_file)
    for line in [*tuning_summary(tuned), guard_line]:
        report(line)
    return path


def device(config: TrainConfig) -> torch.device:
    """Where work outside Lightning's loop runs (BatchNorm re-estimation, the feature cache)."""
    return torch.device("cuda") if on_gpu(config.accelerator) else torch.device("cpu")


def _score(value) -> float:
    return float(value) if value is not None else float("nan")

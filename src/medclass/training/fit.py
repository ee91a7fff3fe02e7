"""`train(config)`: data → splits → Lightning fit → best checkpoint → model artefact, all inside the run folder.

Reads top to bottom: prepare_data, resolve_input, build_trainer, train.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import platform
import sys
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar, WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn

import medclass
from medclass.data import ImageDataset, open_dataset
from medclass.data.audit import audit_dataset
from medclass.data.coverage import missing_classes
from medclass.data.csv_reader import outside_lines
from medclass.data.masks import mask_lines
from medclass.data.splits import (carve_validation, exclude, excluded_images, load_splits, save_exclusions, save_splits,
                                  stratified_split)
from medclass.data.tasks import check_single_label
from medclass.core.errors import DataError, DataWarning, MedclassError
from medclass.evaluation.operating_point import ThresholdRule, check_rule_applies
from medclass.evaluation.tuning import tune_run, tuning_summary
from medclass.core.heads import TaskHead, default_positive, encode_targets, heads_for, per_task
from medclass.core.artifact import ModelArtifact
from medclass.models import model_entry
from medclass.core.rundir import RunDir
from medclass.training.augment import BatchAugment
from medclass.training.augment_policy import MODALITIES, AugmentPolicy, resolve_policy
from medclass.training.batchnorm import recalibrate_batchnorm
from medclass.training.checkpoints import CHECKPOINT_DIR, LAST, vet_checkpoints_to_resume, load_checkpoint
from medclass.training.config import TrainConfig
from medclass.training.datamodule import ImageDataModule
from medclass.training.distributed import check_batch_split, is_global_zero, lightning_strategy, local_processes
from medclass.training.feature_cache import CacheReport, FeatureDataModule, cached_features
from medclass.training.history import HistoryWriter, plot_history
from medclass.training.imbalance import balanced_class_weights, make_sampler
from medclass.training.module import ClassifierModule
from medclass.training.progress import progress_callback
from medclass.training.speed import SpeedPlan, on_gpu, prepare_model, resolve_speed
from medclass.core.preprocessing import default_preprocessing

log = logging.getLogger("medclass")
MAX_AUTO_SIZE = 224
PROBE_IMAGES = 32  # training images looked at to choose the input size and channels
SMALL_INPUT = 64  # model auto: up to this side, a small from-scratch CNN


@dataclass
class TrainResult:
    run_dir: Path
    artifact_path: Path
    best_val_auc: float
    epochs_run: int


def prepare_data(config: TrainConfig, scanned: dict | None = None) -> ImageDataset:
    """Open the data and give every image a split: the file's own, a --splits file, or a new seeded one. A split made
    here keeps duplicate clusters together unless --no-group-duplicates; the images it decodes for that go into
    `scanned` (facts by source), for the audit to reuse."""
    dataset = open_dataset(config.data, **config.reader_options)
    for task in dataset.learned:  # an image with several labels in a single-label task, named by its CSV row
        check_single_label(dataset, task)
    task_heads(config, dataset)  # the task options checked before a split is made
    if config.splits:
        options = {"fold": config.fold} if config.fold is not None else {}
        dataset = load_splits(dataset, Path(config.splits), **options)
    elif not dataset.has_splits:
        if any(s.split for s in dataset.samples):
            raise MedclassError(f"{config.data}: some images have a split and others none; give every image one "
                                "or none (then medclass makes a stratified split)")
        dataset = stratified_split(dataset, config.val_fraction, config.test_fraction, config.seed,
                                   config.group_duplicates, scanned)
    if not any(s.split == "val" for s in dataset.samples):
        dataset = carve_validation(dataset, config.val_fraction, config.seed, config.group_duplicates, scanned)
    return dataset


def with_data_modality(config: TrainConfig, dataset: ImageDataset, writes: bool = True) -> TrainConfig:
    """The modality the data names (a MedMNIST set: data/npz.py) when --modality is not given, said on stderr;
    without either, a line saying the augmentation is generic. The flips and jitter that are plausible differ by
    modality (chest films are not mirror images); on PneumoniaMNIST's test split, collected apart from its
    training images, the X-ray policy gave EfficientNet-Lite0 a test AUC of .971 against .966 and a specificity at
    0.5 of .875 against .846 (3 seeds, benchmarks/shift.py; data/npz.py lists the sets that name one)."""
    named = dataset.meta.get("modality")
    if config.modality is not None or config.resume:
        return config
    if named:
        if writes:
            print(f"modality: {named} ({dataset.name} holds {named} images): its augmentation and flips; "
                  "--modality other keeps the generic augmentation", file=sys.stderr, flush=True)
        return replace(config, modality=named)
    if writes and config.augment != "none" and config.hflip is None:
        print(f"augmentation: {config.augment}, generic (horizontal flips on); --modality "
              f"{'|'.join(m for m in MODALITIES if m != 'other')} sets flips and jitter plausible for your images "
              "(chest X-rays are not mirror images)", file=sys.stderr, flush=True)
    return config


def report_split_grouping(dataset: ImageDataset, writes: bool = True) -> dict | None:
    """How the split made here was grouped (None when the data or a --splits file brought its own), on stderr too:
    a split whose duplicates were not kept together is worth seeing before the numbers it produces."""
    grouping = dataset.meta.get("split_grouping")
    if grouping and writes:
        print(f"split grouped by {grouping['by']}: {grouping['groups']} groups, {grouping['multi_image_groups']} of "
              "them with more than one image", file=sys.stderr, flush=True)
    return grouping


def check_class_coverage(dataset: ImageDataset) -> None:
    """Stop before the first epoch when a class (a finding, for a multi-label task) of a task being learnt has no
    training or no validation image: it would never be learnt, or the validation AUC that selects the checkpoint
    would be undefined. A class missing from test is a warning."""
    problems = [p for task in dataset.learned for p in missing_classes(dataset, ("train", "val"), task)]
    if problems:
        raise MedclassError(f"{dataset.name}: cannot train: {'; '.join(p['message'] for p in problems)}. Add images "
                            "of these classes, merge or drop them, or give a split file (--splits)")
    if any(s.split == "test" for s in dataset.samples):
        for task in dataset.learned:
            for problem in missing_classes(dataset, ("test",), task):
                warnings.warn(f"{dataset.name}: {problem['message']}; test metrics will not measure it", DataWarning,
                              stacklevel=3)


def audit_before_training(dataset: ImageDataset, run_dir: Path, skip_unreadable: bool = False,
                          scanned: dict | None = None, writes: bool = True) -> tuple[list[str], list[dict]]:
    """Audit the split data (saved as audit.json when `writes`). Unreadable images stop the run here, before any
    epoch, unless `skip_unreadable`: then they are returned to be left out. Leakage and artefacts are returned as
    warning lines, since the user may have reasons to keep them. Images the split already decoded (`scanned`) are
    not decoded again."""
    report = audit_dataset(dataset, scanned=scanned)
    if writes:
        RunDir(run_dir).audit_file.write_text(json.dumps(report, indent=2))
    if report["corrupt"] and not skip_unreadable:
        first = report["corrupt"][0]
        raise MedclassError(f"{len(report['corrupt'])} image(s) cannot be read, e.g. {first['path']}: "
                            f"{first['reason']}. Fix or remove them, or pass --skip-unreadable to train without "
                            f"them; all are listed in {RunDir(run_dir).audit_file}")
    summary = report["summary"]
    found = {"cross_split_duplicates": "exact-duplicate groups span splits (test images seen in training)",
             "conflicting_label_duplicates": "exact-duplicate groups carry different labels",
             "patient_leaks": "patients have images in more than one split",
             "masks": "files look like segmentation masks (binary pixels or a mask-like name without an image beside "
                      "it) and are trained on; mark them excluded in a --splits file if they are masks",
             "size_artefacts": "image sizes/modes differ by class (a shortcut the model can learn)"}
    lines = [f"audit: {len(report[key])} {text}" for key, text in found.items() if report[key]]
    if summary.get("near_duplicate_cross_split_groups"):
        lines.append(f"audit: {summary['near_duplicate_cross_split_groups']} near-duplicate groups span splits "
                     "(likely the same patient or scan; review them)")
    return lines + (
        [f"audit: details in {RunDir(run_dir).audit_file}; `medclass split --dedupe` removes duplicates"]
        if summary.get("leakage_found") else []), report["corrupt"]


def without_unreadable(dataset: ImageDataset, unreadable: list[dict], listing: Path | None) -> ImageDataset:
    """--skip-unreadable: the unreadable images are excluded (with their reason), each named on stderr and listed in
    `listing` with the run's other exclusions (None: by another rank); a class that loses all its training or
    validation images still stops the run."""
    dataset = exclude(dataset, {item["path"]: f"unreadable: {item['reason']}" for item in unreadable})
    if listing:
        for item in unreadable:
            print(f"skipped unreadable image: {item['path']} ({item['reason']})", file=sys.stderr, flush=True)
        print(f"{len(unreadable)} unreadable image(s) left out; listed in {listing}", file=sys.stderr, flush=True)
    check_class_coverage(dataset)
    return dataset


def audited(config: TrainConfig, dataset: ImageDataset, writes: bool, scanned: dict | None = None
            ) -> tuple[ImageDataset, int]:
    """The dataset to train on after the audit, and how many unreadable images it left out. Only the rank that
    `writes` needs the audit's warnings and refusals: the others run it too only with --skip-unreadable, to leave
    out the same images. (When rank 0 refuses, the launcher ends the others: Lightning's never starts them,
    torchrun stops them, srun with --kill-on-bad-exit.)"""
    if not config.audit or not (writes or config.skip_unreadable):
        return dataset, 0
    lines, unreadable = audit_before_training(dataset, config.run_dir, config.skip_unreadable, scanned, writes)
    for line in lines if writes else []:
        warnings.warn(line, DataWarning, stacklevel=3)
    if unreadable:
        dataset = without_unreadable(dataset, unreadable, RunDir(config.run_dir).excluded_file if writes else None)
    return dataset, len(unreadable)


def resolve_input(config: TrainConfig, dataset: ImageDataset) -> tuple[int, int]:
    """Image size and channels: as configured, else from the first readable training images (unreadable ones are
    the audit's to report, with all of them listed)."""
    probe = []
    for sample in dataset.subset("train").samples:
        try:
            probe.append(dataset.load_image(sample))
        except DataError:
            continue
        if len(probe) == PROBE_IMAGES:
            break
    if not probe:
        raise MedclassError(f"{dataset.name}: none of the training images can be read; `medclass audit` lists why")
    img_size = config.img_size or min(max(probe[0].size), MAX_AUTO_SIZE)
    in_chans = config.in_chans or (3 if config.pretrained or any(im.mode != "L" for im in probe) else 1)
    return img_size, in_chans


def resolve_model(model: str, img_size: int, pretrained) -> str:
    """`auto`: at MedMNIST-like sizes (<= SMALL_INPUT px) from scratch, smallcnn: on BreastMNIST at 28 px it beat
    ResNet-18 (3x3 stem) on test AUC at 10 epochs (.88 vs .82) at 10x the training images/s on a CPU. Larger or
    pretrained inputs get timm's ResNet-18."""
    if model != "auto":
        return model
    return "smallcnn" if img_size <= SMALL_INPUT and not pretrained else "resnet18"


def pretrained_input_size(model: str, pretrained) -> int | None:
    """A pretrained backbone sees images at the size its weights were trained at (unless --img-size says
    otherwise): ImageNet filters expect ImageNet-sized structures."""
    return model_entry(model).default_size if pretrained else None


def check_input_size(model: str, img_size: int) -> None:
    minimum = model_entry(model).min_input
    if img_size < minimum:
        raise MedclassError(f"model {model} needs inputs of at least {minimum} px; got --img-size {img_size}. "
                            "Use a larger --img-size or a small-input model (resnet18_small, smallcnn)")


def task_heads(config: TrainConfig, dataset: ImageDataset) -> list[TaskHead]:
    """The heads of the tasks learnt, with the task options (weights, monitored task) checked against them."""
    heads = heads_for(dataset, config.positive_class)
    if config.ordinal:
        if heads[0].kind != "multiclass":
            raise MedclassError(f"--ordinal: the main task {heads[0].name!r} is {heads[0].kind}; ordinal grades are a "
                                "multiclass task whose classes are in grade order")
        heads[0] = replace(heads[0], ordinal=True)
    check_rule_applies(ThresholdRule.parse(config.operating_point), heads)
    names = [h.name for h in heads]
    unknown = sorted(set(config.task_weights) - set(names))
    if unknown:
        raise MedclassError(f"task_weights: no task {', '.join(map(repr, unknown))} is learnt; "
                            f"tasks: {', '.join(names)}")
    if config.monitor_task is not None and config.monitor_task not in names:
        raise MedclassError(f"--monitor-task {config.monitor_task!r} is not a task learnt; tasks: {', '.join(names)}")
    return heads


def class_weights(config: TrainConfig, dataset: ImageDataset, heads: list[TaskHead]) -> dict[str, list[float]]:
    """`balanced`, per task, from its labelled training images: inverse class frequency (single-label), or each
    finding's negatives / positives as the weight of its positives (multi-label)."""
    if config.class_weights == "none":
        return {}
    train = dataset.subset("train")
    targets = per_task(heads, encode_targets(heads, train.samples, where=train.name), "targets")
    weights = {}
    for head in heads:
        labelled = targets[head.name][(targets[head.name] >= 0).all(1)]
        if head.kind == "multilabel":
            positives = labelled.sum(0)
            weights[head.name] = ((len(labelled) - positives) / np.maximum(positives, 1)).tolist()
        else:
            weights[head.name] = balanced_class_weights(labelled[:, 0], len(head.classes))
    return weights


def train_sampler(config: TrainConfig, dataset: ImageDataset, head: TaskHead):
    """Samplers balance the main task's classes, so they need one class per training image."""
    if config.sampler == "none":
        return None
    targets = dataset.subset("train").targets() if head.kind != "multilabel" else None
    if targets is None or (targets < 0).any():
        why = "it is multi-label" if targets is None else "some have no label"
        raise MedclassError(f"--sampler {config.sampler} balances the classes of the main task {head.name!r}, which "
                            f"needs one class per training image ({why}); use --class-weights balanced instead")
    return make_sampler(config.sampler, targets, config.seed)


def check_logger_installed(kind: str) -> None:
    if kind != "csv" and importlib.util.find_spec(kind) is None:  # the package is named as the option
        raise MedclassError(f"--logger {kind} needs the {kind} package: pip install {kind} "
                            "(or pip install 'medclass[loggers]')")


def experiment_logger(kind: str, run_dir: Path):
    """history.csv is always written (HistoryWriter); TensorBoard or MLflow in addition when asked for, writing
    into the run folder (tensorboard/, mlruns/) so the run stays one folder."""
    if kind == "csv":
        return False
    check_logger_installed(kind)
    from lightning.pytorch import loggers

    if kind == "tensorboard":
        return loggers.TensorBoardLogger(save_dir=run_dir, name="tensorboard", version="")
    return loggers.MLFlowLogger(experiment_name="medclass", run_name=run_dir.name,
                                tracking_uri=(run_dir / "mlruns").resolve().as_uri())


def build_trainer(config: TrainConfig, run_dir: Path, precision: str, processes: int = 1
                  ) -> tuple[L.Trainer, ModelCheckpoint]:
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
    # every batch has the same image size, so cuDNN's per-shape algorithm search pays off (no effect on a CPU)
    trainer = L.Trainer(max_epochs=config.epochs, accelerator=config.accelerator, devices=devices,
                        num_nodes=config.num_nodes, strategy=lightning_strategy(config.strategy, config.finetune,
                                                                                 processes),
                        precision=precision, callbacks=callbacks, benchmark=True,
                        logger=experiment_logger(config.logger, run_dir), num_sanity_val_steps=0,
                        log_every_n_steps=10, default_root_dir=run_dir, enable_model_summary=False,
                        enable_progress_bar=isinstance(progress, ProgressBar))
    return trainer, checkpoint


def uses_feature_cache(config: TrainConfig, policy: AugmentPolicy) -> bool:
    """Only where every epoch would see the same features: a frozen backbone and no random augmentation (random
    horizontal flips are fine: both views are cached)."""
    return config.feature_cache and config.finetune == "frozen" and not policy.trains


def training_data(config: TrainConfig, dataset: ImageDataset, module: ClassifierModule, preprocessing,
                  speed: SpeedPlan, policy: AugmentPolicy) -> tuple[L.LightningDataModule, CacheReport | None]:
    """Images augmented per batch, or, for a frozen backbone without random augmentation, its cached features
    (the module then trains its classifier on them). Returns the data module and, for cached features, the
    cache's report."""
    sampler = train_sampler(config, dataset, module.heads[0])
    if not uses_feature_cache(config, policy):
        return ImageDataModule(dataset, preprocessing, BatchAugment(preprocessing, policy),
                               config.batch_size, speed.num_workers, speed.in_memory, config.channels_last,
                               sampler, module.heads), None
    device = torch.device("cuda") if on_gpu(config.accelerator) else torch.device("cpu")
    splits = {split: dataset.subset(split) for split in ("train", "val")}
    features, report = cached_features(module.model, splits, preprocessing, config.model, config.model_kwargs,
                                       2 if policy.hflip else 1, device, speed.precision, speed.num_workers,
                                       module.heads)
    module.on_features = True
    return FeatureDataModule(features, config.batch_size, sampler), report


def recalibrated_batchnorm(config: TrainConfig, module: ClassifierModule, dataset: ImageDataset, preprocessing,
                           speed: SpeedPlan, writes: bool) -> int:
    """--bn-recalibrate: the backbone's BatchNorm statistics re-estimated on training images before anything trains
    or is cached (the cache key hashes them); a resume takes them from its checkpoint instead. Returns the images
    used (0: not asked)."""
    if not config.bn_recalibrate or config.resume:
        return 0
    device = torch.device("cuda") if on_gpu(config.accelerator) else torch.device("cpu")
    used = recalibrate_batchnorm(module.model, dataset.subset("train"), preprocessing, device, speed.num_workers,
                                 config.seed)
    if writes:
        print(f"BatchNorm statistics re-estimated on {used} training images", file=sys.stderr, flush=True)
    return used


@contextmanager
def frozen_backbone_notice(finetune: str, writes: bool):
    """A frozen backbone keeps its BatchNorm layers in eval mode on purpose (module.py: train), which Lightning
    warns about at every start; said once here in medclass's words instead."""
    if finetune == "full":
        yield
        return
    if writes:
        print("frozen backbone: its BatchNorm layers keep the pretrained statistics (eval mode) while only the "
              "classifier trains; Lightning's 'modules in eval mode' warning is expected and not shown", file=sys.stderr,
              flush=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
        yield


def resumed_config(config: TrainConfig) -> TrainConfig:
    """A resumed run continues with the config it was started with (its schedule depends on it); only where
    it runs (accelerator, devices, nodes, workers) may change. Its checkpoints are vetted before anything runs."""
    vet_checkpoints_to_resume(config.run_dir)
    saved = TrainConfig.load(RunDir(config.run_dir).config_file)
    return replace(saved, out=config.out, resume=True, accelerator=config.accelerator, devices=config.devices,
                   strategy=config.strategy, num_nodes=config.num_nodes, num_workers=config.num_workers,
                   precision=config.precision, compile=config.compile, in_memory=config.in_memory,
                   memory_budget_gb=config.memory_budget_gb)


def check_out_folder(config: TrainConfig) -> None:
    run_dir = config.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise MedclassError(f"{run_dir}: --out names an existing file; expected a run folder (a new one, or a run "
                            "to --resume)")
    if not config.resume and RunDir(run_dir).history_file.exists():
        raise MedclassError(f"{run_dir}: already holds a training run; pass --resume to continue it "
                            "or choose another --out")


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


def train(config: TrainConfig) -> TrainResult:
    """Everything that can be checked without writing is checked first (out folder, checkpoints to resume, data,
    classes per split, input size, model), so a refused start leaves no run folder behind.

    Under DDP every rank runs this: all of them make the same checks (a refused start stops every rank, rather than
    leaving some waiting for the others) and the same seeded splits; only global rank 0 writes the run folder. No
    check trips over rank 0's writing: history.csv first appears after epoch 1, which no rank reaches alone, and
    config.yaml, read by a resume, is replaced whole (TrainConfig.save)."""
    writes = is_global_zero()
    check_out_folder(config)
    check_logger_installed(config.logger)
    if config.resume:
        config = resumed_config(config)
    config = config.with_absolute_paths()  # the run can be evaluated, sampled and resumed from any folder
    processes = local_processes(config.devices, config.accelerator) * config.num_nodes
    check_batch_split(config.batch_size, processes)
    if not config.resume and config.img_size is not None:
        check_input_size(resolve_model(config.model, config.img_size, config.pretrained), config.img_size)
    run_dir, last_ckpt = config.run_dir, config.run_dir / CHECKPOINT_DIR / LAST
    run = RunDir(run_dir)
    scanned = {}  # images decoded for the split's duplicate grouping, reused by the audit: one decode each
    dataset = prepare_data(config, scanned)
    config = with_data_modality(config, dataset, writes)
    augment_policy = resolve_policy(config.augment, config.modality, config.hflip)
    config = replace(config, hflip=augment_policy.hflip)  # saved as used: also the flip TTA of validation and model
    check_class_coverage(dataset)
    img_size, in_chans = resolve_input(config, dataset)
    config = replace(config, model=resolve_model(config.model, img_size, config.pretrained))
    img_size = config.img_size or pretrained_input_size(config.model, config.pretrained) or img_size
    check_input_size(config.model, img_size)
    heads = task_heads(config, dataset)
    if heads[0].kind == "binary" and config.positive_class is None and writes and not config.resume:
        print(f"positive class of task {heads[0].name!r}: {heads[0].positive_class!r} "
              f"({default_positive(heads[0].classes)[1]}); --positive-class names the other", file=sys.stderr,
              flush=True)
    # several tasks: one head each on the shared backbone (core/architectures.py: TaskHeads); the artefact keeps it
    model_kwargs = config.model_kwargs | ({"task_outputs": [h.outputs for h in heads]} if len(heads) > 1 else {})
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = ClassifierModule(config.model, heads, in_chans, pretrained=config.pretrained, lr=config.lr,
                              weight_decay=config.weight_decay, optimizer=config.optimizer,
                              scheduler=config.scheduler, label_smoothing=config.label_smoothing,
                              class_weights=class_weights(config, dataset, heads), hflip_tta=config.hflip,
                              model_kwargs=model_kwargs, finetune=config.finetune,
                              head_epochs=config.head_epochs, backbone_lr_scale=config.backbone_lr_scale,
                              loss=config.loss, focal_gamma=config.focal_gamma, task_weights=config.task_weights,
                              monitor_task=config.monitor_task)

    with run_folder(run_dir) if writes else nullcontext():
        skipped = save_skipped(dataset, run.skipped_file) if writes else 0
        said = mask_lines(dataset, str(run.excluded_file), "--keep-masks trains on them") + outside_lines(dataset)
        for line in said if writes else []:
            print(line, file=sys.stderr, flush=True)
        split_grouping = report_split_grouping(dataset, writes)
        dataset, unreadable = audited(config, dataset, writes, scanned)
        scanned.clear()  # ~1 KB of thumbnail per image, not needed while training
        if writes:  # every image of the data: what trains and is evaluated, and what was left out and why
            save_splits(dataset, run.splits_file)
            save_exclusions(dataset, run.excluded_file)
        pretrained_cfg = getattr(module.model, "pretrained_cfg", None) if config.pretrained else None
        preprocessing = default_preprocessing(img_size, in_chans, pretrained_cfg)
        speed = resolve_speed(config, dataset, preprocessing)
        module.model = prepare_model(module.model, speed)
        weights = getattr(module.model, "weights_report", None)
        if weights and writes:
            print(f"pretrained weights: {weights.summary()}", file=sys.stderr, flush=True)
        if config.modality and writes:
            print(f"augmentation: {config.augment} for {config.modality}: {augment_policy.summary()}",
                  file=sys.stderr, flush=True)
        recalibrated = recalibrated_batchnorm(config, module, dataset, preprocessing, speed, writes)
        data, cache = training_data(config, dataset, module, preprocessing, speed, augment_policy)
        if cache and writes:
            print(f"feature cache: {cache.summary()}", file=sys.stderr, flush=True)
        resolved = {"img_size": img_size, "in_chans": in_chans, "classes": list(heads[0].classes),
                    "task": dataset.target, "positive_index": heads[0].positive_index,
                    "tasks": [h.to_dict() for h in heads],
                    **({"pretrained_weights": weights.to_dict()} if weights else {}),
                    "augmentation": augment_policy.to_dict(),
                    "preprocessing": preprocessing.to_dict(), "counts": dataset.counts(),
                    **({"task_counts": {t: dataset.counts(t) for t in dataset.learned[1:]}} if len(heads) > 1 else {}),
                    "skipped_images": skipped, "unreadable_images": unreadable,
                    "excluded_images": len(excluded_images(dataset)), "split_grouping": split_grouping,
                    **({"batchnorm_recalibrated_on": recalibrated} if recalibrated else {}),
                    **speed.to_dict(), **({"feature_cache": cache.to_dict()} if cache else {}),
                    "versions": _versions()}
        trainer, checkpoint = build_trainer(config, run_dir, speed.precision, processes)
        resolved |= {"processes": trainer.world_size, "device_batch_size": config.batch_size // trainer.world_size}
        if writes:
            config.save(run.config_file, resolved)
        with frozen_backbone_notice(config.finetune, writes):
            trainer.fit(module, datamodule=data, ckpt_path=str(last_ckpt) if config.resume else None,
                        weights_only=True)

    if not writes:  # rank 0 saves the model, from the checkpoint that all ranks chose alike
        return TrainResult(run_dir, run.artifact_file, _score(checkpoint.best_model_score),
                           trainer.current_epoch)
    best_path = checkpoint.best_model_path or str(last_ckpt)
    module.load_trained_state(load_checkpoint(best_path))  # a frozen backbone: taken from the module itself
    artifact = ModelArtifact(
        model_name=config.model, heads=heads, preprocessing=preprocessing, state_dict=module.model.state_dict(),
        model_kwargs=model_kwargs, tta=["hflip"] if config.hflip else [], modality=config.modality,
        description=config.description,
        provenance={"data": config.data, "run_dir": str(run_dir), "best_checkpoint": Path(best_path).name,
                    "best_val_auc": _score(checkpoint.best_model_score), "seed": config.seed, **_versions()})
    artifact_path = artifact.save(run_dir)
    plot_history(run.history_file, run.curves_file)
    tuned = tune_run(run, config.operating_point, config.calibrate, val_data=dataset.subset("val"),
                     device="cuda" if on_gpu(config.accelerator) else "cpu", temperature_rule=config.temperature_rule)
    for line in tuning_summary(tuned):
        print(line, file=sys.stderr, flush=True)
    return TrainResult(run_dir, artifact_path, _score(checkpoint.best_model_score), trainer.current_epoch)


def save_skipped(dataset: ImageDataset, path: Path) -> int:
    """Rows the reader skipped (e.g. CSV rows whose image file is missing), kept in the run beside the split."""
    skipped = dataset.meta.get("skipped") or []
    if skipped:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["row", "image", "reason"])
            writer.writeheader()
            writer.writerows(skipped)
    return len(skipped)


def _score(value) -> float:
    return float(value) if value is not None else float("nan")


def _versions() -> dict:
    import timm

    return {"medclass": medclass.__version__, "torch": str(torch.__version__), "lightning": L.__version__,
            "timm": timm.__version__, "python": platform.python_version()}

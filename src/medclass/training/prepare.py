"""Before a run writes anything: the data it trains on (opened, split, checked per class), the tasks it learns, the
augmentation its modality calls for, and the input size, channels and model it resolves to. Every refusal here
leaves no run folder behind."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

from medclass.core.errors import DataError, DataWarning, MedclassError
from medclass.core.heads import TaskHead, default_positive, heads_for
from medclass.data import ImageDataset, open_dataset
from medclass.data.coverage import missing_classes
from medclass.data.splits import carve_validation, load_splits, stratified_split
from medclass.data.tasks import check_single_label
from medclass.evaluation.operating_point import ThresholdRule, check_rule_applies
from medclass.models import model_entry
from medclass.training.augment_policy import MODALITIES, AugmentPolicy, resolve_policy
from medclass.training.config import TrainConfig
from medclass.training.progress import report

MAX_AUTO_SIZE = 224
PROBE_IMAGES = 32  # training images looked at to choose the input size and channels
SMALL_INPUT = 64  # model auto: up to this side, a small from-scratch CNN


def prepare_data(config: TrainConfig, scanned: dict | None = None) -> ImageDataset:
    """Open the data and give every image a split: the file's own, a --splits file, or a new seeded one. A split made
    here keeps duplicate clusters together unless --no-group-duplicates; the images it decodes for that go into
    `scanned` (facts by source), for the audit to reuse."""
    dataset = open_dataset(config.data, **config.reader_options)
    for task in dataset.learned:  # an image with several labels in a single-label task, named by its CSV row
        check_single_label(dataset, task)
    learned_tasks(config, dataset)  # the task options checked before a split is made
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


def with_augmentation(config: TrainConfig, dataset: ImageDataset) -> tuple[TrainConfig, AugmentPolicy]:
    """The config with the data's modality (when --modality is not given) and the flips it uses (saved as used:
    also the flip TTA of validation and the model), and the augmentation policy they make."""
    config = with_data_modality(config, dataset)
    policy = resolve_policy(config.augment, config.modality, config.hflip)
    return replace(config, hflip=policy.hflip), policy


def with_data_modality(config: TrainConfig, dataset: ImageDataset) -> TrainConfig:
    """The modality the data names (a MedMNIST set: data/npz.py) when --modality is not given, said on stderr;
    without either, a line saying the augmentation is generic. The flips and jitter that are plausible differ by
    modality (chest films are not mirror images); on PneumoniaMNIST's test split, collected apart from its
    training images, the X-ray policy gave EfficientNet-Lite0 a test AUC of .971 against .966 and a specificity at
    0.5 of .875 against .846 (3 seeds, benchmarks/shift.py; data/npz.py lists the sets that name one)."""
    named = dataset.meta.get("modality")
    if config.modality is not None or config.resume:
        return config
    if named:
        report(f"modality: {named} ({dataset.name} holds {named} images): its augmentation and flips; "
               "--modality other keeps the generic augmentation")
        return replace(config, modality=named)
    if config.augment != "none" and config.hflip is None:
        report(f"augmentation: {config.augment}, generic (horizontal flips on); --modality "
               f"{'|'.join(m for m in MODALITIES if m != 'other')} sets flips and jitter plausible for your images "
               "(chest X-rays are not mirror images)")
    return config


def learned_tasks(config: TrainConfig, dataset: ImageDataset) -> list[TaskHead]:
    """The TaskHeads of the tasks learnt, with the task options (weights, monitored task) checked against them."""
    task_heads = heads_for(dataset, config.positive_class)
    if config.ordinal:
        if task_heads[0].kind != "multiclass":
            raise MedclassError(f"--ordinal: the main task {task_heads[0].name!r} is {task_heads[0].kind}; ordinal "
                                "grades are a multiclass task whose classes are in grade order")
        task_heads[0] = replace(task_heads[0], ordinal=True)
    check_rule_applies(ThresholdRule.parse(config.operating_point), task_heads)
    names = [h.name for h in task_heads]
    unknown = sorted(set(config.task_weights) - set(names))
    if unknown:
        raise MedclassError(f"task_weights: no task {', '.join(map(repr, unknown))} is learnt; "
                            f"tasks: {', '.join(names)}")
    if config.monitor_task is not None and config.monitor_task not in names:
        raise MedclassError(f"--monitor-task {config.monitor_task!r} is not a task learnt; tasks: {', '.join(names)}")
    return task_heads


def report_positive_class(config: TrainConfig, main_task: TaskHead) -> None:
    """A binary main task's positive class, when medclass chose it: it decides what sensitivity means."""
    if main_task.kind == "binary" and config.positive_class is None and not config.resume:
        report(f"positive class of task {main_task.name!r}: {main_task.positive_class!r} "
               f"({default_positive(main_task.classes)[1]}); --positive-class names the other")


def resolve_input(config: TrainConfig, dataset: ImageDataset) -> tuple[TrainConfig, int, int]:
    """The config with its model named (`auto` resolved), the image size and the channels: as configured, else from
    the first readable training images (unreadable ones are the audit's to report, with all of them listed)."""
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
    config = replace(config, model=resolve_model(config.model, img_size, config.pretrained))
    img_size = config.img_size or pretrained_input_size(config.model, config.pretrained) or img_size
    check_input_size(config.model, img_size)
    return config, img_size, in_chans


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

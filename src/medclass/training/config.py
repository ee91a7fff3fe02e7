"""Everything a training run depends on, in one dataclass that is written beside the results.

Each field is declared once, with its default, help and allowed values (`option(...)`, training/options.py): the
same declaration checks a TrainConfig, builds `medclass train`'s option and reads a recipe's key. Choices are those
of the code that implements them (classifier heads, samplers, losses, augmentation presets, modalities, strategies,
optimisers, schedules, loggers, temperature rules), never typed here again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

from medclass.core.choices import HEADS, MLP_HIDDEN
from medclass.core.errors import MedclassError, read_yaml
from medclass.core.prediction_sets import check_requested_coverage
from medclass.evaluation.rules import TEMPERATURE_RULES, ThresholdRule
from medclass.training.augment_policy import MODALITIES, PRESETS
from medclass.training.distributed import STRATEGIES
from medclass.training.choices import CLASS_WEIGHTS, LOSSES, SAMPLERS
from medclass.training.loggers import LOGGERS
from medclass.training.optim import OPTIMIZERS, SCHEDULERS
from medclass.inference.detectors import DEFAULT_DETECTOR, detector_names
from medclass.inference.guard import DEFAULT_ACCEPT, check_accept
from medclass.training.options import (allows_none, option, option_of, read_pretrained, read_task_weights,
                                       value_types)

MIN_IMG_SIZE = 8  # below this no registered network keeps a spatial map to classify
FINETUNE = ("full", "frozen", "two-stage")  # training/module.py: ClassifierModule.backbone_frozen_in
IN_MEMORY = ("auto", "on", "off")  # training/datamodule.py: choose_in_memory


@dataclass
class TrainConfig:
    data: str = option(help="Data: a .npz, medmnist:NAME[@SIZE], a class folder, a .csv (not needed with --resume).")
    out: str = option("runs/latest", "Run folder to write.")
    # auto: smallcnn up to 64 px from scratch, else resnet18 (training/fit.py: resolve_model)
    model: str = option("auto", "auto (smallcnn up to 64 px from scratch, else resnet18) or a name from "
                                "`medclass models`.")
    # True: ImageNet weights (timm's hub or a packaged file); a path: that file
    pretrained: bool | str = option(False, "imagenet (timm's hub; offline for efficientnet_lite0 when packaged) or a "
                                           "local .pth/.bin/.safetensors file.", from_text=read_pretrained)
    # the classifier head on the pooled features (config key and flag `head`, as recipes have always said it)
    head: str = option("linear", "Classifier head: {choices}.", choices=HEADS,
                       meanings={"mlp": f"Linear {MLP_HIDDEN} -> ReLU -> Dropout -> Linear"})
    finetune: str = option("full", "{choices}.", choices=FINETUNE, listed_as_prose=True,
                           meanings={"frozen": "train the classifier only",
                                     "two-stage": "classifier first, then everything"})
    head_epochs: int = option(3, "two-stage: epochs training the classifier alone.")
    backbone_lr_scale: float = option(0.1, "two-stage: the backbone's learning rate as a share of --lr.")
    feature_cache: bool = option(True, "frozen + --augment none: compute the backbone's features once (cached), "
                                       "train the head on them.")
    # training/batchnorm.py: for a weights file whose statistics do not fit the data (a frozen backbone's features
    # constant or huge)
    bn_recalibrate: bool = option(False, "Re-estimate the pretrained backbone's BatchNorm statistics on training "
                                         "images first (when a frozen backbone's features are constant or huge).",
                                  flag="--bn-recalibrate")
    reader_options: dict = option(factory=dict, help="The data options, as open_dataset takes them.",
                                  on_command_line=False)  # cli/options.py: reader_options
    # Recipe: AdamW + one-cycle + label smoothing + light affine augmentation + flip TTA + classifier dropout,
    # small batches (more steps for small medical datasets). Unweighted loss by default: a class-balanced loss
    # moves the argmax towards the minority class (BreastMNIST, 5 epochs, 3 seeds: test ACC fell to .60 against a
    # majority rate of .73) and gave no better AUC; the decision threshold is the place to trade sensitivity for
    # specificity (chosen on validation). `balanced` stays available. No weight EMA by default: with
    # BatchNorm, averaged weights met running statistics of the live weights and short runs collapsed onto one
    # class (BreastMNIST, 10 epochs, ResNet-18: test ACC .31 with EMA 0.98, .78 without; same training loss).
    # Measured at 5, 10 and 30 epochs against MedMNIST's Adam/no-augmentation baseline: benchmarks/recipes.py.
    epochs: int = option(30, "Maximum epochs (early stopping may end sooner).", at_least=1)
    batch_size: int = option(32, "Images per batch.", at_least=1)
    lr: float = option(2e-3, "Peak learning rate.")
    weight_decay: float = option(0.05, "Weight decay.")
    optimizer: str = option("adamw", "{choices}.", choices=tuple(OPTIMIZERS), listed_as_prose=True)
    scheduler: str = option("onecycle", "{choices}.", choices=tuple(SCHEDULERS), listed_as_prose=True)
    label_smoothing: float = option(0.1, "Label smoothing of the cross-entropy.")
    augment: str = option("light", "{choices}.", choices=PRESETS,  # training/augment_policy.py
                          meanings={"light": "rotation, shift, zoom", "classic": "also shear; ImageDataGenerator-style",
                                    "strong": "crops and TrivialAugment intensity ops"})
    # also stored in the artefact: the Otsu polarity of explanations (explain/options.py: ultrasound -> dark)
    modality: str | None = option(None, "{choices}: augmentation defaults for such images (e.g. no flips for chest "
                                        "X-rays); flags given win. Default: what the data names (a MedMNIST set), "
                                        "else other.", choices=MODALITIES)
    description: str = option("", "One line on what the model is for (data, population, intended use); stored in "
                                  "the model, shown by `medclass serve`'s page.")
    # None: the modality's choice, else True; the run saves the value it used
    hflip: bool | None = option(None, "Random horizontal flips in training and flip TTA (default: on, unless "
                                      "--modality says off).")
    class_weights: str = option("none", "{choices}.", choices=CLASS_WEIGHTS, listed_as_prose=True,
                                meanings={"balanced": "inverse class frequency"})
    sampler: str = option("none", "{choices}.", choices=SAMPLERS,
                          meanings={"none": "shuffle", "weighted": "classes drawn equally",
                                    "oversample": "minority images repeated"})
    loss: str = option("ce", "{choices}.", choices=LOSSES, meanings={"ce": "cross-entropy"})
    focal_gamma: float = option(2.0, "--loss focal: the focusing exponent.")
    # None (a recipe's `drop_rate: null`): the architecture's own default
    drop_rate: float | None = option(0.3, "Dropout before the classifier.")
    ema: float = option(0.0, "Weight EMA decay (0 = off).")
    img_size: int | None = option(None, "Input side in px (default: the data's own).")
    # None: 1 when every sampled image is grayscale and the model is not pretrained
    in_chans: int | None = option(None, "1 = grayscale, 3 = RGB (default: from the data).")
    positive_class: str | None = option(None, "Binary main task: the positive class (default: the class named like a "
                                              "disease, else the second).")
    # After training, on the validation split (training/tuning.py): temperature scaling, then the operating point
    # of binary and multi-label tasks (evaluation/operating_point.py: ThresholdRule reads and checks it).
    # 0.5 by default: the argmax, which the temperature leaves unchanged; a rule is a clinical choice to state.
    operating_point: str = option("0.5", "Binary/multi-label decision threshold, chosen on validation after "
                                         "training: 0.5, youden, sensitivity:0.95 or specificity:0.9 (`medclass "
                                         "threshold` re-chooses it later).", check=ThresholdRule.parse)
    calibrate: bool = option(True, "Temperature scaling fitted on validation after training.")
    # evaluation/calibration.py: what each rule does and how they compared. Never below 1 by default: fitted
    # temperatures below 1 (label smoothing leaves the model underconfident on validation) raised test ECE in 18 of
    # 75 runs over the shared datasets, all but one where validation had 78-132 images.
    temperature_rule: str = option(
        "no-sharpening", "{choices}.", choices=TEMPERATURE_RULES,
        meanings={"no-sharpening": "the NLL minimum on validation, never below 1: the default",
                  "fitted": "the NLL minimum",
                  "out-of-fold": "kept only when it holds on validation folds it was not fitted on, else 1"})
    # evaluation/conformal.py: prediction sets calibrated on validation after the temperature (0 = none)
    coverage: float = option(0.9, "Single-label tasks: conformal prediction sets holding the true class for this "
                                  "share of images (0: no sets; `medclass threshold --coverage` re-makes them).",
                             check=check_requested_coverage)
    # After tuning (training/guard.py): the input guard, fitted on the training images' features, its threshold
    # chosen so that `guard_accept` of the validation images pass. The default detector: benchmarks/ood.py.
    guard: str = option(DEFAULT_DETECTOR, "Input guard against images unlike the training images: {choices}.",
                        choices=(*detector_names(), "none"), meanings={"none": "no guard; only the cheap checks"})
    guard_accept: float = option(DEFAULT_ACCEPT, "Share of the validation images the input guard accepts; its "
                                                 "threshold is chosen there.", check=check_accept)
    ordinal: bool = option(False, "The main task's classes are ordered grades (adds quadratic-weighted kappa).",
                           flag="--ordinal")
    # Several tasks (data option --tasks): the loss is the sum of each task's loss times its weight (default 1), and
    # the checkpoint is chosen on the mean validation AUC over tasks, or on `monitor_task`'s alone.
    task_weights: dict = option(factory=dict, help="Several tasks (--tasks): each task's weight in the loss, e.g. "
                                                   "organ=1,malignancy=2 (default 1).", from_text=read_task_weights)
    monitor_task: str | None = option(None, "Several tasks: choose the checkpoint on this task's validation AUC "
                                            "(default: the mean over tasks).")
    seed: int = option(0, "Seed for splits, initialisation and augmentation.")
    patience: int = option(10, "Early stopping: epochs without a better val AUC.")
    val_fraction: float = option(0.15, "Validation share when medclass splits.")
    test_fraction: float = option(0.15, "Test share when medclass splits.")
    splits: str | None = option(None, "CSV of source,split (from `medclass split`).")
    fold: int | None = option(None, "With a k-fold --splits file: the fold used as val.")
    # A split made here keeps each cluster of exact/near duplicates (as `medclass audit` finds them) in one split when
    # the data names no patients: on BUSI a random split put 60 of its 122 near-duplicate groups across splits.
    group_duplicates: bool = option(True, "Without patient ids, a split made here keeps each cluster of exact/near "
                                          "duplicates in one part.")
    # Speed (training/speed.py): `auto` resolves per machine and the result is written to config.yaml.
    num_workers: int | str = option("auto", "DataLoader workers: auto (from the CPUs) or a count.")
    accelerator: str = option("auto", "auto, cpu, gpu, ...")
    devices: str = option("auto", "Devices per machine: auto, a count (e.g. 4: DDP on 4 GPUs) or GPU ids (0,1).")
    strategy: str = option("auto", "{choices}; --batch-size is split among the processes.", choices=STRATEGIES,
                           meanings={"auto": "DDP when there are several devices"})
    num_nodes: int = option(1, "Machines, each running --devices processes (torchrun, srun).", at_least=1)
    # auto: bf16-mixed where the GPU/CPU runs bf16 natively, else 16-mixed (GPU) or 32-true
    precision: str = option("auto", "auto (bf16-mixed where supported), 32-true, 16-mixed, bf16-mixed.")
    in_memory: str = option("auto", "{choices}: decode the images once into memory (on the GPU when training there).",
                            choices=IN_MEMORY, listed_as_prose=True)
    memory_budget_gb: float = option(4.0, "in-memory auto: the most the images may take.")
    channels_last: bool = option(True, "Channels-last memory layout (faster convolutions).")
    # GPU: faster after a warm-up; CPU: measured no gain (training/speed.py)
    compile: bool = option(False, "torch.compile the network (pays off on GPUs).")
    logger: str = option("csv", "{choices}: history.csv is always written, the others log in addition (when "
                                "installed).", choices=LOGGERS)
    resume: bool = option(False, "Continue the run in --out from its last checkpoint.")
    audit: bool = option(True, "Audit the data first (duplicates, leaks, unreadable files); unreadable images stop "
                               "the run.")
    skip_unreadable: bool = option(False, "Train without unreadable images (listed in excluded.csv) instead of "
                                          "stopping.", flag="--skip-unreadable")

    def __post_init__(self):
        for config_field in fields(self):
            problem = option_of(config_field).refusal(config_field.name, getattr(self, config_field.name))
            if problem:
                raise MedclassError(problem)
        if self.img_size is not None and self.img_size < MIN_IMG_SIZE:
            raise MedclassError(f"img_size must be >= {MIN_IMG_SIZE} px (or unset: the data's own size); "
                                f"got {self.img_size}")
        if self.lr <= 0:
            raise MedclassError(f"lr must be > 0; got {self.lr}")
        if self.num_workers != "auto" and not (str(self.num_workers).isdigit()):
            raise MedclassError(f"num_workers must be auto or a count >= 0; got {self.num_workers!r}")
        if self.hflip not in (True, False, None):
            raise MedclassError(f"hflip must be true, false or unset (the modality's choice); got {self.hflip!r}")
        for task, weight in self.task_weights.items():
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
                raise MedclassError(f"task_weights: the weight of task {task!r} must be a number >= 0; got {weight!r}")
        self._check_combinations()

    def _check_combinations(self):
        """Options that are fine alone but not together."""
        if self.finetune != "full" and not self.pretrained:
            raise MedclassError(f"--finetune {self.finetune} freezes the backbone, which needs --pretrained weights "
                                "(a frozen random backbone learns nothing)")
        if self.bn_recalibrate and not self.pretrained:
            raise MedclassError("--bn-recalibrate re-estimates the BatchNorm statistics of --pretrained weights; "
                                "a network trained from scratch learns its own")
        if self.finetune == "two-stage" and not 0 < self.head_epochs < self.epochs:
            raise MedclassError(f"--finetune two-stage needs 0 < head_epochs < epochs; got head_epochs "
                                f"{self.head_epochs}, epochs {self.epochs}")
        if self.skip_unreadable and not self.audit:
            raise MedclassError("--skip-unreadable needs the audit, which finds the unreadable images; drop --no-audit")

    @property
    def classifier_head(self) -> str:
        """The `head` option: the classifier on the pooled features (linear or mlp), not a task's TaskHead."""
        return self.head

    @property
    def model_kwargs(self) -> dict:
        """Architecture options passed to create_model (and stored in the artefact to rebuild it)."""
        return {"head": self.classifier_head} | ({} if self.drop_rate is None else {"drop_rate": self.drop_rate})

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_absolute_paths(self) -> "TrainConfig":
        """Every path the run records, absolute: the data (a path; a `medmnist:` spec stays a spec), the run folder,
        a --splits file, a --pretrained weights file and reader options such as --mapping. Absolute rather than
        relative to the run: they name things outside the run folder, which a copied run does not carry along, and
        an absolute path says exactly where they were. The images inside the data are named relative to its root
        instead (splits.csv), so a moved dataset is found again by giving its new place (`--run-data`)."""
        from medclass.data import absolute_path_options

        def absolute(path: str) -> str:
            return str(Path(path).expanduser().resolve())

        return replace(self, data=absolute(self.data) if self.data and Path(self.data).exists() else self.data,
                       out=absolute(self.out), splits=absolute(self.splits) if self.splits else None,
                       pretrained=absolute(self.pretrained) if isinstance(self.pretrained, str) else self.pretrained,
                       reader_options=absolute_path_options(self.reader_options))

    def save(self, path: Path, resolved: dict | None = None) -> None:
        """Write the config, plus what was resolved at run time (sizes, class names, versions)."""
        data = {"config": self.to_dict(), **({"resolved": resolved} if resolved else {})}
        # written whole or not at all: under DDP other ranks may be reading it (a resume started by torchrun or srun)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(yaml.safe_dump(data, sort_keys=False))
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        if not path.is_file():
            raise MedclassError(f"{path}: run config not found (is this a medclass run folder?)")
        data = yaml.safe_load(path.read_text())["config"]
        # runs saved before this option split without duplicate clusters; a resumed one must remake the same split
        data.setdefault("group_duplicates", False)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def load_recipe(path: str | Path) -> dict:
    """Training options from a YAML file (`medclass train --config recipe.yaml`; flags given on the command line
    win). A run's own config.yaml is a valid recipe. Unknown keys are an error: a misspelt option silently
    falling back to its default is how a recipe stops meaning what it says."""
    path = Path(path)
    data = read_yaml(path, "recipe file")
    if isinstance(data, dict) and isinstance(data.get("config"), dict):  # a run's config.yaml
        data = data["config"]
    if not isinstance(data, dict):
        raise MedclassError(f"{path}: a recipe is a mapping of option: value (e.g. `lr: 0.001`)")
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(map(str, data)) - set(known))
    if unknown:
        raise MedclassError(f"{path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key, value in data.items():
        if value is None and allows_none(known[key]):  # e.g. `img_size: null`: unset, as config.yaml writes it
            continue
        allowed = value_types(known[key])
        fits = any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in allowed)
        if str not in allowed and not fits and not (float in allowed and type(value) is int):
            raise MedclassError(f"{path}: {key} must be {' or '.join(t.__name__ for t in allowed)}; got {value!r}")
    return {key: value for key, value in data.items() if key != "resume"}  # resuming is the command line's call


def command_line_config(flags: dict, reader_options: dict | None = None, recipe: str | Path | None = None
                        ) -> TrainConfig:
    """What `medclass train` runs: TrainConfig's defaults, under the --config recipe, under the flags given (`flags`:
    only those, as the command line spelt them; an Option's from_text reads text such as --task-weights a=1). Data
    options given replace the recipe's as a whole: they describe one reader's view of the data."""
    values = load_recipe(recipe) if recipe else {}
    known = {f.name: option_of(f) for f in fields(TrainConfig)}
    for name, value in flags.items():
        read = known[name].from_text
        values[name] = read(value) if read and isinstance(value, str) else value
    values["reader_options"] = reader_options or values.get("reader_options") or {}
    values["data"] = values.get("data") or ""
    if not values.get("out"):  # unset, or a recipe's `out: null`
        values.pop("out", None)
    if not values["data"] and not values.get("resume"):
        raise MedclassError("--data is required (the images to train on), unless --resume continues a run")
    try:
        return TrainConfig(**values)
    except TypeError as exc:  # a recipe value of the wrong type (e.g. `epochs: ten`)
        raise MedclassError(f"{recipe or 'options'}: {exc}") from None

"""Everything a training run depends on, in one dataclass that is written beside the results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

from medclass.core.errors import MedclassError, read_yaml
from medclass.evaluation.calibration import TEMPERATURE_RULES
from medclass.core.architectures import HEADS
from medclass.training.augment_policy import MODALITIES, PRESETS, check_choice
from medclass.training.distributed import STRATEGIES
from medclass.training.imbalance import LOSSES, SAMPLERS

MIN_IMG_SIZE = 8  # below this no registered network keeps a spatial map to classify
LOGGERS = ("csv", "tensorboard", "mlflow")  # training/fit.py: experiment_logger


@dataclass
class TrainConfig:
    data: str
    out: str
    model: str = "auto"  # smallcnn up to 64 px from scratch, else resnet18 (training/fit.py: resolve_model)
    pretrained: bool | str = False  # True: ImageNet weights (timm's hub or a packaged file); a path: that file
    head: str = "linear"  # linear | mlp (pool -> Linear 256 -> ReLU -> Dropout -> Linear)
    finetune: str = "full"  # full | frozen (classifier only) | two-stage (classifier first, then everything)
    head_epochs: int = 3  # two-stage: epochs that train the classifier alone
    backbone_lr_scale: float = 0.1  # two-stage: the backbone's learning rate, as a share of --lr
    feature_cache: bool = True  # frozen backbone, no random augmentation: compute features once, train the head on them
    # re-estimate the backbone's BatchNorm statistics on training images before training (training/batchnorm.py):
    # for a weights file whose statistics do not fit the data (a frozen backbone's features constant or huge)
    bn_recalibrate: bool = False
    reader_options: dict = field(default_factory=dict)
    # Recipe: AdamW + one-cycle + label smoothing + light affine augmentation + flip TTA + classifier dropout,
    # small batches (more steps for small medical datasets). Unweighted loss by default: a class-balanced loss
    # moves the argmax towards the minority class (BreastMNIST, 5 epochs, 3 seeds: test ACC fell to .60 against a
    # majority rate of .73) and gave no better AUC; the decision threshold is the place to trade sensitivity for
    # specificity (chosen on validation). `balanced` stays available. No weight EMA by default: with
    # BatchNorm, averaged weights met running statistics of the live weights and short runs collapsed onto one
    # class (BreastMNIST, 10 epochs, ResNet-18: test ACC .31 with EMA 0.98, .78 without; same training loss).
    # Measured at 5, 10 and 30 epochs against MedMNIST's Adam/no-augmentation baseline: benchmarks/recipes.py.
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    optimizer: str = "adamw"
    scheduler: str = "onecycle"
    label_smoothing: float = 0.1
    augment: str = "light"  # none | light | classic | strong (training/augment_policy.py)
    modality: str | None = None  # xray | ultrasound | histology | dermoscopy | mri | fundus: augmentation defaults
    # and, stored in the artefact, the Otsu polarity of explanations (explain/options.py: ultrasound -> dark)
    description: str = ""  # one line on what the model is for, stored in the artefact; the server's page shows it
    hflip: bool | None = None  # None: the modality's choice, else True; the run saves the value it used
    class_weights: str = "none"  # none | balanced (inverse class frequency)
    sampler: str = "none"  # none (shuffle) | weighted (classes drawn equally) | oversample (minorities repeated)
    loss: str = "ce"  # ce | focal
    focal_gamma: float = 2.0
    drop_rate: float | None = 0.3  # dropout before the classifier; None: the architecture's own default
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 = off
    img_size: int | None = None  # None: the data's own size (first training image)
    in_chans: int | None = None  # None: 1 when every sampled image is grayscale and the model is not pretrained
    positive_class: str | None = None  # a binary main task's positive class; None: heads.default_positive
    # After training, on the validation split (evaluation/tuning.py): temperature scaling, then the operating point
    # of binary and multi-label tasks: 0.5 | youden | sensitivity:0.95 | specificity:0.9 (operating_point.py).
    # 0.5 by default: the argmax, which the temperature leaves unchanged; a rule is a clinical choice to state.
    operating_point: str = "0.5"
    calibrate: bool = True
    # no-sharpening | fitted | out-of-fold (evaluation/calibration.py: what each does and how they compared). Never
    # below 1 by default: fitted temperatures below 1 (label smoothing leaves the model underconfident on validation)
    # raised test ECE in 18 of 75 runs over the shared datasets, all but one where validation had 78-132 images.
    temperature_rule: str = "no-sharpening"
    ordinal: bool = False  # the main task's classes are ordered grades (also scored by quadratic-weighted kappa)
    # Several tasks (data option --tasks): the loss is the sum of each task's loss times its weight (default 1), and
    # the checkpoint is chosen on the mean validation AUC over tasks, or on `monitor_task`'s alone.
    task_weights: dict = field(default_factory=dict)
    monitor_task: str | None = None
    seed: int = 0
    patience: int = 10
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    splits: str | None = None
    fold: int | None = None
    # A split made here keeps each cluster of exact/near duplicates (as `medclass audit` finds them) in one split when
    # the data names no patients: on BUSI a random split put 60 of its 122 near-duplicate groups across splits.
    group_duplicates: bool = True
    # Speed (training/speed.py): `auto` resolves per machine and the result is written to config.yaml.
    num_workers: int | str = "auto"  # DataLoader workers: from the CPU count
    accelerator: str = "auto"
    devices: str = "auto"  # per machine (node); more than one runs DDP, one process per device
    strategy: str = "auto"  # auto (Lightning's choice: DDP for several devices) | ddp
    num_nodes: int = 1  # machines, each running `devices` processes (torchrun, srun)
    precision: str = "auto"  # bf16-mixed where the GPU/CPU runs bf16 natively, else 16-mixed (GPU) or 32-true
    in_memory: str = "auto"  # auto | on | off: decode every image once into a uint8 tensor (on the GPU when there)
    memory_budget_gb: float = 4.0  # `auto` keeps data in memory when its decoded train+val images fit in this
    channels_last: bool = True
    compile: bool = False  # torch.compile the network (GPU: faster after a warm-up; CPU: measured no gain)
    logger: str = "csv"  # csv (history.csv, always written) | tensorboard | mlflow, in addition to it
    resume: bool = False
    audit: bool = True  # audit the split data first; unreadable images stop the run
    skip_unreadable: bool = False  # train without unreadable images instead (each listed in unreadable.csv)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "num_nodes"):
            if getattr(self, name) < 1:
                raise MedclassError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.img_size is not None and self.img_size < MIN_IMG_SIZE:
            raise MedclassError(f"img_size must be >= {MIN_IMG_SIZE} px (or unset: the data's own size); "
                                f"got {self.img_size}")
        if self.lr <= 0:
            raise MedclassError(f"lr must be > 0; got {self.lr}")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise MedclassError(f"optimizer must be adamw, adam or sgd; got {self.optimizer!r}")
        if self.scheduler not in ("onecycle", "cosine", "step", "none"):
            raise MedclassError(f"scheduler must be onecycle, cosine, step or none; got {self.scheduler!r}")
        if self.in_memory not in ("auto", "on", "off"):
            raise MedclassError(f"in_memory must be auto, on or off; got {self.in_memory!r}")
        if self.num_workers != "auto" and not (str(self.num_workers).isdigit()):
            raise MedclassError(f"num_workers must be auto or a count >= 0; got {self.num_workers!r}")
        if self.finetune not in ("full", "frozen", "two-stage"):
            raise MedclassError(f"finetune must be full, frozen or two-stage; got {self.finetune!r}")
        if self.finetune != "full" and not self.pretrained:
            raise MedclassError(f"--finetune {self.finetune} freezes the backbone, which needs --pretrained weights "
                                "(a frozen random backbone learns nothing)")
        if self.bn_recalibrate and not self.pretrained:
            raise MedclassError("--bn-recalibrate re-estimates the BatchNorm statistics of --pretrained weights; "
                                "a network trained from scratch learns its own")
        if self.finetune == "two-stage" and not 0 < self.head_epochs < self.epochs:
            raise MedclassError(f"--finetune two-stage needs 0 < head_epochs < epochs; got head_epochs "
                                f"{self.head_epochs}, epochs {self.epochs}")
        for name, allowed in (("head", HEADS), ("sampler", SAMPLERS), ("loss", LOSSES), ("logger", LOGGERS),
                              ("strategy", STRATEGIES), ("augment", PRESETS), ("temperature_rule", TEMPERATURE_RULES)):
            check_choice(name, getattr(self, name), allowed)
        if self.skip_unreadable and not self.audit:
            raise MedclassError("--skip-unreadable needs the audit, which finds the unreadable images; drop --no-audit")
        if self.modality is not None:
            check_choice("modality", self.modality, MODALITIES)
        if self.hflip not in (True, False, None):
            raise MedclassError(f"hflip must be true, false or unset (the modality's choice); got {self.hflip!r}")
        for task, weight in self.task_weights.items():
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
                raise MedclassError(f"task_weights: the weight of task {task!r} must be a number >= 0; got {weight!r}")
        from medclass.evaluation.operating_point import ThresholdRule

        ThresholdRule.parse(self.operating_point)  # refuses a malformed rule before anything runs
        if self.class_weights not in ("none", "balanced"):
            raise MedclassError(f"class_weights must be none or balanced; got {self.class_weights!r}")

    @property
    def model_kwargs(self) -> dict:
        """Architecture options passed to create_model (and stored in the artefact to rebuild it)."""
        return {"head": self.head} | ({} if self.drop_rate is None else {"drop_rate": self.drop_rate})

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
        if value is None and "None" in str(known[key].type):  # e.g. `img_size: null`: unset, as config.yaml writes it
            continue
        allowed = _value_types(known[key])
        fits = any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in allowed)
        if str not in allowed and not fits and not (float in allowed and type(value) is int):
            raise MedclassError(f"{path}: {key} must be {' or '.join(t.__name__ for t in allowed)}; got {value!r}")
    return {key: value for key, value in data.items() if key != "resume"}  # resuming is the command line's call


def _value_types(option) -> tuple[type, ...]:
    """The types a recipe value may have, from the option's annotation (a string here, from `from __future__ import
    annotations`): `bool | str` (pretrained: a flag or a weights file) allows either, `int | None` an int."""
    named = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict}
    return tuple(named[n.strip()] for n in str(option.type).split("|") if n.strip() in named) or (type(option.default),)

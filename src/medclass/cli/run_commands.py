"""Model commands: train, evaluate, threshold, compare, models, demo. Each parses options and calls the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors
from medclass.cli.options import RunData, RunFolder, check_other_data, reader_options


def _pretrained(value: Optional[str]):
    """--pretrained: absent/'false' = random init, 'imagenet' (or 'true') = the published weights (timm's hub,
    or the packaged file for efficientnet_lite0), else a local weights file."""
    if value is None or value.lower() in ("false", "no", "0", "none"):
        return False
    return True if value.lower() in ("imagenet", "true", "yes", "1") else value


def _task_weights(text: str) -> dict[str, float]:
    """--task-weights organ=1,malignancy=2 -> {"organ": 1.0, "malignancy": 2.0}."""
    from medclass.core.errors import MedclassError

    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            name = ""
        if not sep or not name.strip():
            raise MedclassError(f"--task-weights: expected TASK=WEIGHT[,TASK=WEIGHT...], e.g. organ=1,malignancy=2; "
                                f"got {part!r}")
    return weights


@app.command()
@user_errors
@reader_options
def train(
    data: Annotated[Optional[str], typer.Option(
        "--data", help="Data: a .npz, medmnist:NAME[@SIZE], a class folder, a .csv (not needed with --resume).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder to write (default runs/latest).")] = None,
    config_file: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML recipe of training options (a run's config.yaml works); flags given here win.")] = None,
    model: Annotated[Optional[str], typer.Option(
        help="auto (smallcnn up to 64 px from scratch, else resnet18) or a name from `medclass models`.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs (early stopping may end sooner).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    img_size: Annotated[Optional[int], typer.Option(help="Input side in px (default: the data's own).")] = None,
    in_chans: Annotated[Optional[int], typer.Option(help="1 = grayscale, 3 = RGB (default: from the data).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for splits, initialisation and augmentation.")] = None,
    pretrained: Annotated[Optional[str], typer.Option(
        help="imagenet (timm's hub; offline for efficientnet_lite0 when packaged) or a local .pth/.bin/.safetensors "
             "file.")] = None,
    head: Annotated[Optional[str], typer.Option(
        help="linear, or mlp (Linear 256 -> ReLU -> Dropout -> Linear).")] = None,
    finetune: Annotated[Optional[str], typer.Option(
        help="full, frozen (train the classifier only) or two-stage (classifier first, then everything).")] = None,
    head_epochs: Annotated[Optional[int], typer.Option(help="two-stage: epochs training the classifier alone.")] = None,
    backbone_lr_scale: Annotated[Optional[float], typer.Option(
        help="two-stage: the backbone's learning rate as a share of --lr.")] = None,
    feature_cache: Annotated[Optional[bool], typer.Option(
        help="frozen + --augment none: compute the backbone's features once (cached), train the head on them.")
    ] = None,
    bn_recalibrate: Annotated[Optional[bool], typer.Option(
        "--bn-recalibrate", help="Re-estimate the pretrained backbone's BatchNorm statistics on training images "
                                 "first (when a frozen backbone's features are constant or huge).")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adamw, adam or sgd.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="onecycle, cosine, step or none.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="Label smoothing of the cross-entropy.")] = None,
    augment: Annotated[Optional[str], typer.Option(
        help="none, light (rotation, shift, zoom), classic (also shear; ImageDataGenerator-style) or strong (crops "
             "and TrivialAugment intensity ops).")] = None,
    modality: Annotated[Optional[str], typer.Option(
        help="xray, ultrasound, histology, dermoscopy, mri, fundus or other: augmentation defaults for such images "
             "(e.g. no flips for chest X-rays); flags given win. Default: what the data names (a MedMNIST set), "
             "else other.")] = None,
    description: Annotated[Optional[str], typer.Option(
        help="One line on what the model is for (data, population, intended use); stored in the model, shown by "
             "`medclass serve`'s page.")] = None,
    hflip: Annotated[Optional[bool], typer.Option(
        help="Random horizontal flips in training and flip TTA (default: on, unless --modality says off).")] = None,
    class_weights: Annotated[Optional[str], typer.Option(help="balanced (inverse class frequency) or none.")] = None,
    sampler: Annotated[Optional[str], typer.Option(
        help="none (shuffle), weighted (classes drawn equally) or oversample (minority images repeated).")] = None,
    loss: Annotated[Optional[str], typer.Option(help="ce (cross-entropy) or focal.")] = None,
    focal_gamma: Annotated[Optional[float], typer.Option(help="--loss focal: the focusing exponent.")] = None,
    ema: Annotated[Optional[float], typer.Option(help="Weight EMA decay (0 = off).")] = None,
    drop_rate: Annotated[Optional[float], typer.Option(help="Dropout before the classifier.")] = None,
    positive_class: Annotated[Optional[str], typer.Option(
        help="Binary main task: the positive class (default: the class named like a disease, else the second).")
    ] = None,
    operating_point: Annotated[Optional[str], typer.Option(
        help="Binary/multi-label decision threshold, chosen on validation after training: 0.5, youden, "
             "sensitivity:0.95 or specificity:0.9 (`medclass threshold` re-chooses it later).")] = None,
    calibrate: Annotated[Optional[bool], typer.Option(
        help="Temperature scaling fitted on validation after training (default on).")] = None,
    temperature_rule: Annotated[Optional[str], typer.Option(
        help="no-sharpening (the NLL minimum on validation, never below 1: the default), fitted (the NLL minimum) "
             "or out-of-fold (kept only when it holds on validation folds it was not fitted on, else 1).")] = None,
    ordinal: Annotated[Optional[bool], typer.Option(
        "--ordinal", help="The main task's classes are ordered grades (adds quadratic-weighted kappa).")] = None,
    task_weights: Annotated[Optional[str], typer.Option(
        help="Several tasks (--tasks): each task's weight in the loss, e.g. organ=1,malignancy=2 (default 1).")
    ] = None,
    monitor_task: Annotated[Optional[str], typer.Option(
        help="Several tasks: choose the checkpoint on this task's validation AUC (default: the mean over tasks).")
    ] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early stopping: epochs without a better val AUC.")] = None,
    splits: Annotated[Optional[str], typer.Option(help="CSV of source,split (from `medclass split`).")] = None,
    fold: Annotated[Optional[int], typer.Option(help="With a k-fold --splits file: the fold used as val.")] = None,
    group_duplicates: Annotated[Optional[bool], typer.Option(
        help="Without patient ids, a split made here keeps each cluster of exact/near duplicates in one part.")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Validation share when medclass splits.")] = None,
    test_fraction: Annotated[Optional[float], typer.Option(help="Test share when medclass splits.")] = None,
    num_workers: Annotated[Optional[str], typer.Option(
        help="DataLoader workers: auto (from the CPUs) or a count.")] = None,
    in_memory: Annotated[Optional[str], typer.Option(
        help="auto, on or off: decode the images once into memory (on the GPU when training there).")] = None,
    memory_budget_gb: Annotated[Optional[float], typer.Option(
        help="in-memory auto: the most the images may take.")] = None,
    accelerator: Annotated[Optional[str], typer.Option(help="auto, cpu, gpu, ...")] = None,
    devices: Annotated[Optional[str], typer.Option(
        help="Devices per machine: auto, a count (e.g. 4: DDP on 4 GPUs) or GPU ids (0,1).")] = None,
    strategy: Annotated[Optional[str], typer.Option(
        help="auto (DDP when there are several devices) or ddp; --batch-size is split among the processes.")] = None,
    num_nodes: Annotated[Optional[int], typer.Option(help="Machines, each running --devices processes.")] = None,
    precision: Annotated[Optional[str], typer.Option(
        help="auto (bf16-mixed where supported), 32-true, 16-mixed, bf16-mixed.")] = None,
    channels_last: Annotated[Optional[bool], typer.Option(
        help="Channels-last memory layout (faster convolutions).")] = None,
    compile: Annotated[Optional[bool], typer.Option(help="torch.compile the network (pays off on GPUs).")] = None,
    logger: Annotated[Optional[str], typer.Option(
        help="csv (history.csv, always), or tensorboard / mlflow in addition (when installed).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    audit: Annotated[Optional[bool], typer.Option(
        help="Audit the data first (duplicates, leaks, unreadable files).")] = None,
    skip_unreadable: Annotated[Optional[bool], typer.Option(
        "--skip-unreadable", help="Train without unreadable images (listed in unreadable.csv) instead of stopping.")
    ] = None,
    reader_options: dict | None = None,
):
    """Train a classifier; writes config, model, history.csv and training curves to --out.

    Options left out take TrainConfig's defaults (the recipe in training/config.py); config.yaml in the run
    folder lists every value used."""
    given = {key: value for key, value in locals().items() if value is not None and key not in (
        "data", "out", "config_file", "pretrained", "resume", "reader_options")}
    from medclass.core.errors import MedclassError
    from medclass.training import TrainConfig
    from medclass.training import train as run_training
    from medclass.training.config import load_recipe
    from medclass.training.distributed import is_global_zero

    if task_weights is not None:
        given["task_weights"] = _task_weights(task_weights)
    recipe = load_recipe(config_file) if config_file else {}
    if pretrained is not None or "pretrained" not in recipe:
        recipe["pretrained"] = _pretrained(pretrained)
    recipe.update(data=data or recipe.get("data") or "", out=str(out or recipe.get("out") or "runs/latest"),
                  reader_options=reader_options or recipe.get("reader_options") or {})
    if not recipe["data"] and not resume:
        raise MedclassError("--data is required (the images to train on), unless --resume continues a run")
    try:
        config = TrainConfig(**{**recipe, **given}, resume=resume)
    except TypeError as exc:  # a recipe value of the wrong type (e.g. `epochs: ten`)
        raise MedclassError(f"{config_file or 'options'}: {exc}") from None
    result = run_training(config)
    if is_global_zero():  # under DDP every rank runs this command; one summary
        typer.echo(f"best val AUC {result.best_val_auc:.4f} after {result.epochs_run} epochs; "
                   f"model: {result.artifact_path}")


@app.command()
@user_errors
@reader_options
def evaluate(
    run_dir: RunFolder,
    data: Annotated[Optional[str], typer.Option(help="Other labelled data (default: the run's own).")] = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    out: Annotated[Optional[Path], typer.Option(help="Folder for metrics.json and report.html.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics JSON to stdout.")] = False,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals.")] = 1000,
    run_data: RunData = None,
    reader_options: dict | None = None,
):
    """Score a trained model: accuracy, balanced accuracy, AUC with CIs, per-class P/R/F1, report.html."""
    from medclass.evaluation import evaluate_run
    from medclass.core.rundir import RunDir as Run

    check_other_data(run_dir, data, run_data, reader_options, "the run is evaluated on its own data")
    metrics, out_dir = evaluate_run(Run(run_dir, data=run_data), data=data, split=split, out_dir=out,
                                    reader_options=reader_options, n_boot=n_boot)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    from medclass.evaluation.summary import summary_lines

    for line in summary_lines(metrics):
        typer.echo(line)
    typer.echo(f"report: {out_dir / 'report.html'}")


@app.command()
@user_errors
@reader_options
def threshold(
    run_dir: RunFolder,
    sensitivity: Annotated[Optional[float], typer.Option(help="The most specific threshold reaching this sensitivity.")
                           ] = None,
    specificity: Annotated[Optional[float], typer.Option(help="The most sensitive threshold keeping this specificity.")
                           ] = None,
    youden: Annotated[bool, typer.Option("--youden", help="Maximise sensitivity + specificity - 1.")] = False,
    value: Annotated[Optional[float], typer.Option(help="A fixed threshold (0.5: the argmax).")] = None,
    task: Annotated[Optional[list[str]], typer.Option(help="Only this task (repeatable; default: every binary and "
                                                           "multi-label task).")] = None,
    recalibrate: Annotated[bool, typer.Option("--recalibrate", help="Fit the temperature again first.")] = False,
    temperature_rule: Annotated[str, typer.Option(
        help="With --recalibrate: no-sharpening, fitted or out-of-fold (as train's option).")] = "no-sharpening",
    data: Annotated[Optional[str], typer.Option(help="Labelled images to choose on instead of the run's validation "
                                                     "split: a sample from where the model will serve (its val "
                                                     "split if it has splits, else all of it).")] = None,
    run_data: RunData = None,
    reader_options: dict | None = None,
):
    """Re-choose the operating point on the run's validation split (or on --data), without retraining; the artefact
    keeps it, and `predict` and `evaluate` apply it."""
    from medclass.data import open_dataset
    from medclass.core.errors import MedclassError
    from medclass.evaluation.calibration import TEMPERATURE_RULES
    from medclass.evaluation.tuning import tune_run, tuning_summary
    from medclass.core.rundir import RunDir as Run
    from medclass.training.augment_policy import check_choice

    given = [(f"sensitivity:{sensitivity}", sensitivity), (f"specificity:{specificity}", specificity),
             ("youden", youden or None), (str(value), value)]
    rules = [rule for rule, set_ in given if set_ is not None]
    if len(rules) != 1:
        raise MedclassError("give one of --sensitivity S, --specificity S, --youden or --value T")
    check_other_data(run_dir, data, run_data, reader_options, "the run's own validation split is used")
    chosen_on = None
    if data is not None:
        chosen_on = open_dataset(data, **(reader_options or {}))
        chosen_on = chosen_on.subset("val") if chosen_on.has_splits else chosen_on
    check_choice("temperature_rule", temperature_rule, TEMPERATURE_RULES)
    record = tune_run(Run(run_dir, data=run_data), rules[0], calibrate=recalibrate or None, tasks=task or None,
                      val_data=chosen_on, source=data or "val", temperature_rule=temperature_rule)
    for line in tuning_summary(record):
        typer.echo(line)
    typer.echo(f"saved in {Run(run_dir).artifact_file} (record: {Run(run_dir).calibration_file})")


@app.command()
@user_errors
@reader_options
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run folders; the first is the reference.")],
    data: Annotated[Optional[str], typer.Option(help="Labelled data to compare on (default: the runs' own split, "
                                                     "which must hold the same images).")] = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples (intervals and the paired test).")] = 2000,
    out: Annotated[Optional[Path], typer.Option(
        help="Folder for comparison.json, .csv, .md and figures (default: FIRST_RUN/comparisons/OTHERS_SPLIT).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison JSON to stdout.")] = False,
    run_data: RunData = None,
    reader_options: dict | None = None,
):
    """Runs side by side on the same images: AUC with intervals, per-class precision/recall/F1, and a paired test
    of each AUC difference against the first run (DeLong for binary tasks, paired bootstrap for all); written as
    JSON, CSV, markdown and figures."""
    from medclass.evaluation.compare import compare_runs, comparison_lines
    from medclass.core.rundir import RunDir as Run

    out = out or Run(run_dirs[0], data=run_data).comparison_dir(run_dirs[1:], split)
    result = compare_runs([Run(r, data=run_data) for r in run_dirs], data=data, split=split,
                          reader_options=reader_options, n_boot=n_boot, out=out)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=float))
        return
    for line in comparison_lines(result):
        typer.echo(line)
    typer.echo(f"written: {result['files']['table']}, {Path(result['files']['markdown']).name} and figures in "
               f"{Path(result['files']['table']).parent}")


@app.command()
@user_errors
def models(
    timm_pattern: Annotated[Optional[str], typer.Option(
        "--timm", help="List timm architectures matching this pattern (e.g. 'convnext*'); any is usable as "
                       "--model timm:<name>.")] = None,
):
    """List the registered models: default input size, parameters, where pretrained weights come from."""
    if timm_pattern:
        import timm

        names = timm.list_models(timm_pattern)
        typer.echo("\n".join(f"timm:{name}" for name in names) or f"no timm architecture matches {timm_pattern!r}")
        return
    from medclass.models.catalogue import catalogue

    rows = catalogue()
    typer.echo(f"{'model':24} {'input':>6} {'params':>8}  pretrained weights")
    for row in rows:
        size = f"{row['default_size']}px" if row["default_size"] else "data"
        typer.echo(f"{row['name']:24} {size:>6} {row['params'] / 1e6:7.1f}M  {row['weights']}")
    typer.echo("any timm architecture: --model timm:<name> (medclass models --timm PATTERN lists them)")


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo data and run.")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 12,
    n_per_class: Annotated[int, typer.Option(help="Generated images per class.")] = 200,
):
    """Generate ultrasound-like demo data, train, evaluate, predict a few images, print the report path."""
    from medclass.demo import run_demo

    report = run_demo(out, epochs=epochs, n_per_class=n_per_class, echo=typer.echo)
    typer.echo(f"report: {report}")
    typer.echo(f"next: `medclass serve {report.parents[2]}` and open http://127.0.0.1:8000/ to upload an image")

"""Model commands: train, evaluate, threshold, compare, models, demo. Each parses options and calls the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors
from medclass.cli.options import RunData, RunFolder, check_other_data, reader_options, train_options
from medclass.evaluation.rules import TEMPERATURE_RULES
from medclass.core.wording import either


@app.command()
@user_errors
@reader_options
@train_options
def train(
    config_file: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML recipe of training options (a run's config.yaml works); flags given here win.")] = None,
    train_options: dict | None = None,
    reader_options: dict | None = None,
):
    """Train a classifier; writes config, model, history.csv and training curves to --out.

    Options left out take TrainConfig's defaults (the recipe in training/config.py); config.yaml in the run
    folder lists every value used."""
    from medclass.training import train as run_training
    from medclass.training.config import command_line_config
    from medclass.training.distributed import is_global_zero

    result = run_training(command_line_config(train_options or {}, reader_options, config_file))
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
        help=f"With --recalibrate: {either(TEMPERATURE_RULES)} (as train's option).")] = "no-sharpening",
    data: Annotated[Optional[str], typer.Option(help="Labelled images to choose on instead of the run's validation "
                                                     "split: a sample from where the model will serve (its val "
                                                     "split if it has splits, else all of it).")] = None,
    coverage: Annotated[Optional[float], typer.Option(
        help="Make the single-label tasks' conformal prediction sets again at this coverage (e.g. 0.95; 0: no "
             "sets); alone, or with an operating point.")] = None,
    set_score: Annotated[Optional[str], typer.Option(help="With --coverage: aps (default), raps or lac.")] = None,
    mondrian: Annotated[Optional[bool], typer.Option(
        "--mondrian/--marginal", help="With --coverage: one quantile per class, or one for all (default: per class "
                                      "when the validation classes are imbalanced).")] = None,
    run_data: RunData = None,
    reader_options: dict | None = None,
):
    """Re-choose the operating point and/or the prediction sets on the run's validation split (or on --data),
    without retraining; the artefact keeps them, and `predict` and `evaluate` apply them."""
    from medclass.data import open_dataset
    from medclass.core.errors import MedclassError
    from medclass.evaluation.tuning import tune_run, tuning_summary
    from medclass.core.rundir import RunDir as Run
    from medclass.training.augment_policy import check_choice

    given = [(f"sensitivity:{sensitivity}", sensitivity), (f"specificity:{specificity}", specificity),
             ("youden", youden or None), (str(value), value)]
    rules = [rule for rule, set_ in given if set_ is not None]
    if len(rules) > 1 or (not rules and coverage is None):
        raise MedclassError("give one of --sensitivity S, --specificity S, --youden or --value T (or --coverage C "
                            "alone)")
    if coverage is None and (set_score is not None or mondrian is not None):
        raise MedclassError("--set-score, --mondrian and --marginal say how to make the prediction sets: give "
                            "--coverage C with them")
    check_other_data(run_dir, data, run_data, reader_options, "the run's own validation split is used")
    chosen_on = None
    if data is not None:
        chosen_on = open_dataset(data, **(reader_options or {}))
        chosen_on = chosen_on.subset("val") if chosen_on.has_splits else chosen_on
    check_choice("temperature_rule", temperature_rule, TEMPERATURE_RULES)
    set_options = {k: v for k, v in (("by_class", mondrian), ("score", set_score)) if v is not None}
    record = tune_run(Run(run_dir, data=run_data), rules[0] if rules else None, calibrate=recalibrate or None,
                      tasks=task or None, val_data=chosen_on, source=data or "val", temperature_rule=temperature_rule,
                      coverage=coverage, set_options=set_options)
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

"""Inference commands: predict (files, folders, CSV lists; one process or many) and sample (a random test batch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors
from medclass.cli.options import RunData, RunFolder, explain_options
from medclass.core.errors import MedclassError
from medclass.explain.explainer import methods_help
from medclass.inference.backends import backend_choices


def _answer_line(row) -> str:
    """The line printed for one PredictionRow, rendered from its Prediction."""
    where = row.path + (f" (frame {row.frame})" if row.frame else "")
    if row.error:
        return f"{where}\tERROR: {row.error}"
    # one task: "a.png  benign  benign=0.912  malignant=0.088"; several: "organ=Lung  malignancy=benign" and
    # the probabilities as organ:Lung=0.970 ...
    tasks = list(row.prediction)
    named = len(tasks) > 1
    answers = "  ".join((f"{t.task}=" if named else "") + (t.text or "(no finding)") for t in tasks)
    probs = "  ".join((f"{t.task}:" if named else "") + f"{c}={p:.3f}"
                      for t in tasks for c, p in t.probabilities.items())
    # an image the input guard (or a cheap check) flags says so at the end of its line: its answer is a guess
    guard = row.prediction.extras.get("input_guard") or {}
    flagged = f"\tFLAGGED: {guard['message']}" if guard.get("in_distribution") is False else ""
    return f"{where}\t{answers}\t{probs}{flagged}"


@app.command()
@user_errors
@explain_options
def predict(
    run_dir: RunFolder,
    inputs: Annotated[list[Path], typer.Argument(help="Image files (DICOM too), folders of images, CSV lists of "
                                                      "image paths (a 'path' column).")],
    out: Annotated[Optional[Path], typer.Option(help="Write the predictions to this CSV (input order).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    backend: Annotated[str, typer.Option(help=f"{backend_choices()}; `medclass export RUN --format F` "
                                              "first.")] = "torch",
    devices: Annotated[int, typer.Option(help="Processes on this machine (Lightning DDP); needs --out.")] = 1,
    num_nodes: Annotated[int, typer.Option(help="Machines, each running --devices processes; needs --out.")] = 1,
    accelerator: Annotated[str, typer.Option(help="With --devices/--num-nodes: cpu, gpu or auto.")] = "auto",
    frames: Annotated[Optional[str], typer.Option(
        help="Multi-frame DICOM files: 'all' predicts every frame, N (1 = the first) frame N of each file; one row "
             "per frame, with a frame column. Without it a multi-frame file is refused in its row.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print no per-image lines (the CSV still has them).")] = False,
    explain: Annotated[Optional[str], typer.Option(
        help=f"Explain each prediction: {methods_help()}; the best box goes to the --out CSV (box_x0, box_y0, "
             "box_x1, box_y1, box_score).")] = None,
    explain_dir: Annotated[Path, typer.Option(help="Where --explain writes overlay PNGs and explanations.csv.")]
    = Path("explanations"),
    explain_options: dict | None = None,
):
    """Predict the class and every class probability of each image, with the model's own preprocessing."""
    from medclass.inference import load_predictor
    from medclass.inference.batch import expand_inputs, select_frames

    options = _explain_options(explain, explain_options)
    paths = select_frames(expand_inputs(inputs), frames)
    predictor = load_predictor(run_dir, backend=backend, batch_size=batch_size)
    if options and options.uses_network and predictor.backend.name != "torch":
        raise MedclassError(f"--explain {explain} differentiates through the network: use the torch backend (otsu "
                            "boxes work with any)")
    if devices * num_nodes > 1:
        if explain:
            raise MedclassError("--explain runs in one process; drop --devices/--num-nodes")
        _predict_distributed(predictor, paths, out, devices, num_nodes, accelerator, batch_size)
        return
    options = options.resolved(predictor.artifact.modality) if options else None
    failed = _predict_rows(predictor, paths, out, batch_size, quiet, frames is not None, options, explain_dir)
    if out:
        typer.echo(f"predictions: {out}")
    if options:
        polarity = f", polarity {options.polarity}" if not options.uses_network else ""
        typer.echo(f"explanations ({options.method}{polarity}): {explain_dir / 'explanations.csv'}")
    if failed:
        typer.echo(f"{failed} of {len(paths)} {'frame' if frames else 'image'}(s) could not be read (listed above)",
                   err=True)
        raise typer.Exit(1)


def _predict_rows(predictor, paths, out: Path | None, batch_size: int, quiet: bool, frames: bool, options,
                  explain_dir: Path) -> int:
    """Predict (and explain, with `options`) every input in one process: each row to the CSV, the explanations'
    folder and the screen as it comes. Returns the number of inputs that could not be read."""
    from medclass.inference.batch import PredictionWriter, iter_predictions

    hook, columns, explainer = None, {}, None
    if options:
        from medclass.explain.boxes import BOX_DESCRIPTIONS
        from medclass.explain.overlay import ExplanationWriter
        from medclass.explain.predicted import explaining

        hook, columns, explainer = explaining(predictor, options), BOX_DESCRIPTIONS, ExplanationWriter(explain_dir)
    writer = PredictionWriter(out, predictor.heads, columns=columns, frames=frames) if out else None
    failed = 0
    try:
        for row in iter_predictions(predictor, paths, batch_size, progress=True, on_batch=hook):
            failed += bool(row.error)
            if writer:
                writer.write(row)
            if explainer and not row.error:
                explainer.write(row)
            if not quiet or row.error:
                typer.echo(_answer_line(row))
    finally:
        for open_file in (writer, explainer):
            if open_file:
                open_file.close()
    return failed


def _explain_options(explain: str | None, given: dict | None):
    """The ExplainOptions of --explain and its options (None without --explain; options alone are refused)."""
    from medclass.explain.options import FLAG_NAMES, ExplainOptions

    if explain is None:
        if given:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
            raise MedclassError(f"{flags} shape(s) explanations: add --explain METHOD")
        return None
    return ExplainOptions.parse(explain, **(given or {}), names=FLAG_NAMES)


def _predict_distributed(predictor, paths, out, devices, num_nodes, accelerator, batch_size) -> None:
    from medclass.inference.distributed import predict_with_lightning

    if out is None:
        raise MedclassError("--devices/--num-nodes above 1 write one CSV: give --out FILE")
    if predictor.backend.name != "torch":
        raise MedclassError("--devices/--num-nodes run the torch backend (Lightning's engine); drop --backend")
    if predict_with_lightning(predictor, paths, out, devices, num_nodes, accelerator, batch_size):
        typer.echo(f"predictions of {len(paths)} image(s) on {devices * num_nodes} process(es): {out}")


@app.command()
@user_errors
def sample(
    run_dir: RunFolder,
    n: Annotated[int, typer.Option("--n", help="Images to draw.")] = 16,
    seed: Annotated[Optional[int], typer.Option(help="Draw this batch again (default: a new random batch).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Image grid PNG (default RUN/sample.png).")] = None,
    run_data: RunData = None,
):
    """A random batch of the run's TEST images: every task's prediction next to the truth, printed and as a grid."""
    from medclass.evaluation.sample import sample_lines, sample_test_images, save_sample_grid
    from medclass.inference import load_predictor
    from medclass.core.rundir import RunDir as Run

    predictor = load_predictor(run_dir)
    sampled, seed = sample_test_images(Run(run_dir, data=run_data), n, seed, predictor)
    for line in sample_lines(predictor.heads, sampled):
        typer.echo(line)
    path = save_sample_grid(predictor.heads, sampled, out or Path(run_dir) / "sample.png", seed)
    right = sum(all(s.truth[h.name] == s.prediction[h.name] for h in predictor.heads) for s in sampled)
    typer.echo(f"{right} of {len(sampled)} test image(s) right on every task; seed {seed}; grid: {path}")

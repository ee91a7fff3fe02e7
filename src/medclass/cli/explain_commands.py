"""Explanation commands: localize-eval. Each parses options and calls the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli import app, user_errors
from medclass.cli.options import reader_options


@app.command("localize-eval")
@user_errors
@reader_options
def localize_eval(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `medclass train`.")],
    data: Annotated[str, typer.Argument(help="Data with ground-truth boxes (a CSV with xmin,ymin,xmax,ymax, or a "
                                             "folder with --boxes); the run's own data scores its --split only.")],
    split: Annotated[Optional[str], typer.Option(help="The run's split to score when DATA is its own data.")] = None,
    method: Annotated[Optional[str], typer.Option(
        help="Comma-separated: gradcam, gradcam++, xgradcam, layercam, hirescam, eigencam, eigengradcam, "
             "gradcam-elementwise, otsu (default gradcam,otsu).")] = None,
    boxes: Annotated[Optional[Path], typer.Option(
        help="CSV of boxes to attach by image path: filename,label,xmin,ymin,xmax,ymax (the demo's boxes.csv).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for localization.json and overlays "
                                                     "(default RUN/localization).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the random baselines.")] = None,
    polarity: Annotated[Optional[str], typer.Option(
        help="Otsu: auto (the smaller side of the threshold), dark (ultrasound lesions) or bright.")] = None,
    overlays: Annotated[Optional[int], typer.Option(help="Overlay PNGs to write (first pairs).")] = None,
    reader_options: dict | None = None,
):
    """Score where explanations point against ground-truth boxes: IoBB>0.1/0.25/0.5 (Wang et al. 2017) and the
    pointing game, per class, each method beside a random baseline of the same run."""
    from medclass.explain.localize import format_table
    from medclass.explain.references import NIH_ALIASES, WANG2017_NAME, nih_reference
    from medclass.explain.runner import DEFAULT_METHODS, RESULTS
    from medclass.explain.runner import localize_eval as run_localize_eval

    methods = [m.strip() for m in method.split(",") if m.strip()] if method else list(DEFAULT_METHODS)
    result, out_dir = run_localize_eval(run_dir, data, split or "test", str(boxes) if boxes else None, methods, out,
                                        seed or 0, polarity or "auto", 6 if overlays is None else overlays,
                                        reader_options)
    reference = nih_reference(result.classes)
    typer.echo(f"localisation on {result.n_images} images with boxes:")
    typer.echo(format_table(result, reference, WANG2017_NAME, NIH_ALIASES))
    typer.echo(f"results: {out_dir / RESULTS}")

"""Explanation commands: localize-eval. Each parses options and calls the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors
from medclass.cli.options import explain_options, reader_options
from medclass.explain.explainer import method_names


@app.command("localize-eval")
@user_errors
@reader_options
@explain_options
def localize_eval(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `medclass train`.")],
    data: Annotated[str, typer.Argument(help="Data with ground-truth boxes (a CSV with xmin,ymin,xmax,ymax, or a "
                                             "folder with --boxes); the run's own data scores its --split only.")],
    split: Annotated[Optional[str], typer.Option(help="The run's split to score when DATA is its own data.")] = None,
    method: Annotated[Optional[str], typer.Option(
        help=f"Comma-separated: {', '.join(method_names())} (default gradcam,otsu).")] = None,
    boxes: Annotated[Optional[Path], typer.Option(
        help="CSV of boxes to attach by image path: filename,label,xmin,ymin,xmax,ymax (the demo's boxes.csv).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for localization.json and overlays "
                                                     "(default RUN/localization).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the random baselines.")] = None,
    overlays: Annotated[Optional[int], typer.Option(help="Overlay PNGs to write (first pairs).")] = None,
    reader_options: dict | None = None,
    explain_options: dict | None = None,
):
    """Score where explanations point against ground-truth boxes: IoBB>0.1/0.25/0.5 (Wang et al. 2017) and the
    pointing game, per class, each method beside a random baseline of the same run."""
    from medclass.explain.localization_eval import DEFAULT_METHODS, RESULTS
    from medclass.explain.localization_eval import localize_eval as run_localize_eval
    from medclass.explain.localize import format_table
    from medclass.explain.options import FLAG_NAMES, ExplainOptions
    from medclass.explain.references import NIH_ALIASES, WANG2017_NAME, nih_reference

    methods = [m.strip() for m in method.split(",") if m.strip()] if method else list(DEFAULT_METHODS)
    shared = ExplainOptions.parse(None, **(explain_options or {}), names=FLAG_NAMES)  # --polarity, --box-threshold
    result, out_dir = run_localize_eval(run_dir, data, split or "test", str(boxes) if boxes else None, methods, out,
                                        seed or 0, polarity=shared.polarity,
                                        n_overlays=6 if overlays is None else overlays,
                                        reader_options=reader_options, box_threshold=shared.box_threshold)
    reference = nih_reference(result.classes)
    polarity = result.settings["otsu_polarity"] if "otsu" in result.methods else None
    from_modality = " (the run's modality)" if polarity and not shared.polarity else ""
    typer.echo(f"localisation on {result.n_images} images with boxes" +
               (f"; Otsu polarity {polarity}{from_modality}" if polarity else "") + ":")
    typer.echo(format_table(result, reference, WANG2017_NAME, NIH_ALIASES))
    typer.echo(f"results: {out_dir / RESULTS}")

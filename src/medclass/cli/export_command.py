"""`medclass export`: a run's model for another runtime, any registered backend with an export (ONNX, optionally
quantised to int8; ncnn). The formats, their help and what each takes come from inference/backends.py `BACKENDS`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors
from medclass.core.wording import either
from medclass.inference.backends import BACKENDS, BackendEntry

OPTIONS = ("int8", "opset")  # the options below that only some formats take (their entry's `options`)


def formats() -> list[BackendEntry]:
    """The backends `medclass export` writes for, in registration order: the first is the default."""
    return [entry for _, entry in BACKENDS if entry.export]


def format_help() -> str:
    first, *others = formats()
    return either([f"{first.name} (default; {first.description})"]
                       + [f"{entry.name} ({entry.description})" for entry in others]) + "."


def takers(option: str) -> str:
    return " or ".join(entry.name for entry in formats() if option in entry.options)


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `medclass train` (or an artefact file).")],
    format: Annotated[Optional[str], typer.Option("--format", help=format_help())] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where to write the model (default in the run folder: "
                                                     f"{either(f'RUN/{e.run_file}' for e in formats())}).")
                   ] = None,
    opset: Annotated[Optional[int], typer.Option(help=f"{takers('opset')}: the ONNX opset (default 18).")] = None,
    int8: Annotated[Optional[bool], typer.Option("--int8", help=f"{takers('int8')}: also write an int8 model "
                                                                "(RUN/model.int8.onnx), calibrated on the run's "
                                                                "validation images, and report its accuracy "
                                                                "change.")] = None,
):
    """Export the model for another runtime: the network plus its heads, thresholds, preprocessing and TTA, so the
    export alone predicts (`load_predictor("model.onnx")`, `medclass predict RUN --backend ncnn`); checked against
    PyTorch on random inputs."""
    from medclass.core.errors import MedclassError

    names = [entry.name for entry in formats()]
    format = format or names[0]
    if format not in names:
        raise MedclassError(f"--format must be one of {', '.join(names)}; got {format!r}")
    entry = BACKENDS.get(format)
    given = {option: value for option, value in (("int8", int8), ("opset", opset)) if value}
    if any(option not in entry.options for option in given):
        raise MedclassError(f"{' and '.join(f'--{o}' for o in OPTIONS)} are options of --format "
                            f"{' or '.join(sorted({takers(o) for o in OPTIONS}))}")
    result = entry.export(run_dir, out, **given)
    for line in result.summary:
        typer.echo(line)

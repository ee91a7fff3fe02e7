"""`medclass export`: a run's model for another runtime (ONNX, optionally quantised to int8; ncnn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors

FORMATS = ("onnx", "ncnn")


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `medclass train` (or an artefact file).")],
    format: Annotated[Optional[str], typer.Option("--format", help="onnx (default; ONNX Runtime) or ncnn "
                                                                         "(fp32, Winograd convolutions on CPUs).")
                      ] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where to write the model (default RUN/model.onnx or "
                                                               "RUN/model.ncnn.param).")] = None,
    opset: Annotated[Optional[int], typer.Option(help="ONNX opset (default 18).")] = None,
    int8: Annotated[Optional[bool], typer.Option("--int8", help="Also write an int8 model (RUN/model.int8.onnx), "
                                                                "calibrated on the run's validation images, and "
                                                                "report its accuracy change.")] = None,
):
    """Export the model for ONNX Runtime or ncnn: the network plus its heads, thresholds, preprocessing and TTA, so
    the export alone predicts (`load_predictor("model.onnx")`, `medclass predict RUN --backend ncnn`); checked
    against PyTorch on random inputs."""
    from medclass.core.errors import MedclassError
    from medclass.inference.onnx_export import DEFAULT_OPSET, default_output, export_onnx
    from medclass.core.rundir import RunDir

    format = format or "onnx"
    if format not in FORMATS:
        raise MedclassError(f"--format must be one of {', '.join(FORMATS)}; got {format!r}")
    if format == "ncnn" and (int8 or opset):
        raise MedclassError("--int8 and --opset are options of --format onnx")
    run = RunDir(run_dir)
    if int8 and not run_dir.is_dir():
        raise MedclassError(f"{run_dir}: --int8 needs the run folder (its validation images calibrate the model)")
    if format == "ncnn":
        from medclass.inference.ncnn_export import export_ncnn

        result = export_ncnn(run_dir, out)
        typer.echo(f"exported {result.path} (+ .bin, .json; pnnx); ncnn vs PyTorch on random inputs: max |logit "
                   f"diff| {result.max_logit_diff:.2e}, max |probability diff| {result.max_prob_diff:.2e}")
        return
    out = out or default_output(run_dir)
    result = export_onnx(run_dir, out, opset=opset or DEFAULT_OPSET)
    typer.echo(f"exported {result.path} ({result.exporter} exporter); ONNX Runtime vs PyTorch on random inputs: "
               f"max |logit diff| {result.max_logit_diff:.2e}, max |probability diff| {result.max_prob_diff:.2e}")
    if int8:
        from medclass.inference.quantize import quantize_int8, report_lines

        int8_out = out.with_name(out.name.removesuffix(".onnx") + ".int8.onnx") if out != run.onnx_file else None
        report = quantize_int8(run, fp32=out, out=int8_out)
        for line in report_lines(report):
            typer.echo(line)
        typer.echo(f"int8 model: {report['files']['int8']} (report: {report['report_file']})")

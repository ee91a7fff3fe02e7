"""`medclass benchmark medmnist`: the MedMNIST table within a wall-time budget per dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors

benchmark_app = typer.Typer(help="Benchmarks against published numbers, measured on this machine.",
                            no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.command()
@user_errors
def medmnist(
    datasets: Annotated[str, typer.Option(help="Comma-separated MedMNIST flags.")] = "breastmnist,pneumoniamnist,retinamnist",
    root: Annotated[Optional[str], typer.Option("--root", "--data-root",
        help="Folder holding NAME.npz or NAME/NAME.npz (default: $MEDMNIST_ROOT, then the medmnist cache).")] = None,
    minutes: Annotated[float, typer.Option(help="Wall-time budget per dataset (training and prediction).")] = 15,
    model: Annotated[str, typer.Option(help="Network of the from-scratch ensemble members.")] = "auto",
    out: Annotated[Path, typer.Option(help="Folder for the runs and benchmark.json files.")] = Path("runs/benchmark"),
):
    """Train medclass's best recipe per dataset on the official splits within --minutes and print ACC and AUC
    (95% bootstrap CIs) beside MedMNIST v2's ResNet-18 (28) and the best published result."""
    from medclass.harness.medmnist import benchmark_dataset, format_table
    from medclass.core.errors import MedclassError

    names = [n.strip().lower() for n in datasets.split(",") if n.strip()]
    if not names:
        raise MedclassError("--datasets is empty; e.g. --datasets breastmnist,pneumoniamnist")
    if minutes <= 0:
        raise MedclassError(f"--minutes must be > 0; got {minutes:g}")
    results = [benchmark_dataset(name, root, out, minutes, model=model, echo=typer.echo) for name in names]
    typer.echo(format_table(results, minutes))

"""The `medclass` command. Commands only parse options and call library functions."""

from __future__ import annotations

import functools
import logging
import sys
import warnings

import typer

from medclass.errors import DataWarning, MedclassError

app = typer.Typer(help="Train, evaluate, explain and serve medical image classifiers.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def user_errors(command):
    """Turn a MedclassError into one line on stderr and exit status 2, instead of a traceback, and show the
    library's data warnings as `warning: ...` lines (not Python's file:line form)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        default_show = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, DataWarning):
                typer.echo(f"warning: {message}", err=True)
            else:
                default_show(message, category, filename, lineno, file, line)

        with warnings.catch_warnings():
            warnings.simplefilter("always", DataWarning)
            warnings.showwarning = show
            try:
                return command(*args, **kwargs)
            except MedclassError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None

    return wrapper


# Importing the command modules registers their commands on `app`.
from medclass.cli import (benchmark_command, data_commands, explain_commands, export_command,  # noqa: E402,F401
                          predict_commands, run_commands, serve_commands)


def main() -> None:
    # Lightning's start-up chatter (accelerator probing, product tips) buries medclass's own messages.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    app(prog_name="medclass")


if __name__ == "__main__":
    sys.exit(main())

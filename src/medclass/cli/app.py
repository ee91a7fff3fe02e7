"""The `medclass` Typer app and the one way its commands report a user's mistake."""

from __future__ import annotations

import functools
import warnings

import typer

from medclass.core.errors import DataWarning, MedclassError

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

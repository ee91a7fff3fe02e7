"""The `medclass` command. Commands only parse options and call library functions."""

from __future__ import annotations

import functools
import sys

import typer

from medclass.errors import MedclassError

app = typer.Typer(help="Train, evaluate, explain and serve medical image classifiers.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def user_errors(command):
    """Turn a MedclassError into one line on stderr and exit status 2, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MedclassError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


# Importing the command modules registers their commands on `app`.
from medclass.cli import data_commands, run_commands  # noqa: E402,F401


def main() -> None:
    app(prog_name="medclass")


if __name__ == "__main__":
    sys.exit(main())

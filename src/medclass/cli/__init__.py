"""The `medclass` command. Commands only parse options and call library functions."""

from __future__ import annotations

import logging
import sys
import warnings


# Importing the command modules registers their commands on `app`.
from medclass.cli import (audit_command, benchmark_command, explain_commands, export_command,  # noqa: F401
                          predict_commands, run_commands, serve_commands, split_command)
from medclass.cli.app import app, user_errors  # noqa: F401  (`from medclass.cli import app`)


def main() -> None:
    # Lightning's start-up chatter (accelerator probing, product tips) buries medclass's own messages.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    app(prog_name="medclass")


if __name__ == "__main__":
    sys.exit(main())

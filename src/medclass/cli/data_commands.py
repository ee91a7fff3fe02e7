"""Data commands. Each lives in its own module; importing them registers them on the app."""

from medclass.cli import audit_command, split_command  # noqa: F401

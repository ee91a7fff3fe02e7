"""Data commands: audit, split."""

"""How training tells the user what it does: `report(line)` for every step and decision (stderr, global rank 0
only), and the epochs' progress: a bar on a terminal, one line per epoch anywhere else (a log file, CI, a
notebook's pipe).

Findings about the data that the user may have to act on (leakage, a class missing from test, useless frozen
features) are warnings instead, `warnings.warn(..., DataWarning)`, which the CLI shows as `warning:` lines.

Epochs are counted from 1 everywhere ("Epoch 3/30"), as the run summary and history.csv count them.
"""

from __future__ import annotations

import sys

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from medclass.training.distributed import is_global_zero

SHOWN = ("train_loss", "val_loss", "val_auc", "val_acc")


def report(line: str) -> None:
    """One line on stderr, from global rank 0 only: under DDP every rank runs train(), and one account is enough.
    Flushed at once, so it lands in order with Lightning's own output."""
    if is_global_zero():
        print(line, file=sys.stderr, flush=True)


class EpochProgressBar(TQDMProgressBar):
    def on_train_epoch_start(self, trainer: L.Trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


class EpochLog(L.Callback):
    """One summary line per epoch on stderr, instead of a bar redrawn after every batch."""

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        values = "  ".join(f"{k} {float(metrics[k]):.4f}" for k in SHOWN if k in metrics)
        report(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {values}")


def progress_callback() -> L.Callback:
    return EpochProgressBar() if sys.stderr.isatty() else EpochLog()

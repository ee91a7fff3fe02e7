"""Per-epoch history: appended to history.csv as each epoch ends (so a crash keeps it) and plotted at the end."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L

# train_acc: accuracy on the training batches as trained (augmented, dropout on), beside val_acc
METRICS = ["train_loss", "train_acc", "val_loss", "val_auc", "val_acc"]
COLUMNS = ["epoch", *METRICS, "lr", "train_seconds", "train_images_per_s"]
TASK_AUC = "val_auc_"  # several tasks: each task's validation AUC gets a column after COLUMNS


class HistoryWriter(L.Callback):
    """Also times each epoch's training batches (validation excluded): the throughput `make bench` compares."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._started, self._images, self._train_seconds = 0.0, 0, 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._started, self._images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[1]) * trainer.world_size

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":  # Lightning validates inside the epoch, before on_train_epoch_end
            self._train_seconds = time.perf_counter() - self._started

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """On resume, drop rows of epochs the checkpoint does not hold (written just before a crash)."""
        if trainer.is_global_zero and self.path.exists():
            kept = [r for r in read_history(self.path) if r["epoch"] <= trainer.current_epoch]
            with open(self.path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header(self.path))
                writer.writeheader()
                writer.writerows({k: (int(v) if k == "epoch" else v) for k, v in r.items()} for r in kept)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        seconds = self._train_seconds or time.perf_counter() - self._started
        row = {"epoch": trainer.current_epoch + 1, "lr": trainer.optimizers[0].param_groups[0]["lr"],
               "train_seconds": round(seconds, 3), "train_images_per_s": round(self._images / max(seconds, 1e-9), 1)}
        self._train_seconds = 0.0
        row |= {k: float(metrics[k]) for k in METRICS if k in metrics}
        row |= {k: float(v) for k, v in metrics.items() if k.startswith(TASK_AUC)}
        new_file = not self.path.exists()
        fields = COLUMNS + sorted(k for k in row if k.startswith(TASK_AUC)) if new_file else header(self.path)
        with open(self.path, "a", newline="") as f:
            # a resumed run of an older medclass keeps its file's columns (no train_acc)
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)


def header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), None) or COLUMNS


def read_history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def plot_history(history_csv: Path, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(history_csv)
    epochs = [r["epoch"] for r in rows]
    task_aucs = sorted({k for r in rows for k in r if k.startswith(TASK_AUC)})
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = (("Loss", ["train_loss", "val_loss"]),
              ("Accuracy (training batches and validation)", ["train_acc", "val_acc"]),
              ("Validation AUC", ["val_auc", *task_aucs]))
    for ax, (title, keys) in zip(axes, panels):
        for key in (k for k in keys if any(k in r for r in rows)):
            dashed = key.startswith("val_") and title != "Validation AUC"  # validation dashed beside training
            ax.plot(epochs, [r.get(key, float("nan")) for r in rows], "--" if dashed else "-",
                    marker="o" if len(rows) < 12 else None, label=key)
        ax.set(xlabel="epoch", title=title)
        if title != "Loss":
            ax.set_ylim(0, 1.02)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png

"""Where the benchmarks find MedMNIST files and write their runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from medclass.data.npz import locate_medmnist
from medclass.core.errors import DataError

REPO = Path(__file__).resolve().parent.parent


def data_roots() -> list[Path]:
    """$MEDCLASS_DATA first, then ../shared/data beside the repository."""
    roots = [os.environ.get("MEDCLASS_DATA"), REPO.parent / "shared" / "data"]
    return [Path(r) for r in roots if r]


def find_npz(name: str) -> Path | None:
    """The official 28-px file, looked for as `medmnist:NAME` is (ROOT/NAME.npz or ROOT/NAME/NAME.npz)."""
    for root in data_roots():
        try:
            return locate_medmnist(name, 28, str(root), download=False)
        except DataError:
            continue
    return None


def out_dir(base: str, part: str) -> Path:
    path = Path(base) / f"{time.strftime('%Y%m%d-%H%M%S')}-{part}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def training_images_per_s(rows: list[dict]) -> float:
    """Training images/s over history.csv rows, weighted by each epoch's training time."""
    return sum(r["train_images_per_s"] * r["train_seconds"] for r in rows) / sum(r["train_seconds"] for r in rows)

"""Data: one entry point, `open_dataset(spec)`, for every supported format."""

from __future__ import annotations

from pathlib import Path

from medclass.data.base import Box, ImageDataset, Reader, Sample
from medclass.data.csv_reader import CsvReader
from medclass.data.folders import FolderReader
from medclass.data.nested import NestedFolderReader
from medclass.data.npz import MedMNISTReader, NpzReader
from medclass.data.tasks import apply_task_options
from medclass.errors import DataError

# Tried in order; the first whose can_read() accepts the spec reads it.
READERS: list[Reader] = [MedMNISTReader(), NpzReader(), CsvReader(), NestedFolderReader(), FolderReader()]


def open_dataset(spec: str | Path, **options) -> ImageDataset:
    """Read a dataset from a path or spec (`file.npz`, `medmnist:NAME[@SIZE]`, a class folder)."""
    spec = str(spec)
    for reader in READERS:
        if reader.can_read(spec):
            # target / positive / negative apply to every format alike, after the reader
            return apply_task_options(reader.read(spec, **options), **options)
    if not Path(spec).exists():
        raise DataError(f"{spec}: no such file or folder")
    raise DataError(f"{spec}: unsupported data; expected a .npz file, medmnist:NAME, a .csv label file, "
                    "or a folder of class folders")


__all__ = ["Box", "ImageDataset", "Reader", "Sample", "open_dataset", "READERS"]

"""Data: one entry point, `open_dataset(spec)`, for every supported format."""

from __future__ import annotations

from pathlib import Path

from medclass.data.base import Box, ImageDataset, Reader, Sample
from medclass.data.csv_reader import CsvReader
from medclass.data.folders import FolderReader
from medclass.data.masks import leave_out_masks
from medclass.data.nested import NestedFolderReader
from medclass.data.npz import MedMNISTReader, NpzReader
from medclass.data.tasks import TASK_OPTIONS, apply_task_options, check_task_options
from medclass.core.errors import DataError

# Tried in order; the first whose can_read() accepts the spec reads it.
READERS: list[Reader] = [MedMNISTReader(), NpzReader(), CsvReader(), NestedFolderReader(), FolderReader()]
# Options of every format, applied after the reader: `keep_masks` keeps segmentation masks that pair with an image
# by name (data/masks.py), which are otherwise left out, recorded as excluded.
DATASET_OPTIONS = ("keep_masks",)
# reader options naming a file or folder relative to the working directory (a run records them absolute)
PATH_OPTIONS = frozenset(name for reader in READERS for name in reader.path_options)


def open_dataset(spec: str | Path, **options) -> ImageDataset:
    """Read a dataset from a path or spec (`file.npz`, `medmnist:NAME[@SIZE]`, a class folder, a CSV).

    `options` are the chosen reader's own (see its `options`) plus target/tasks/positive/negative and keep_masks,
    which apply to every format after the reader: segmentation masks beside their images are left out unless
    keep_masks (data/masks.py). An option in both sets goes to both (the CSV reader reads `tasks` as its label
    columns). An option the reader does not use is an error, never silently ignored; None means not given.
    """
    spec = str(spec)
    reader = find_reader(spec)
    given = {name: value for name, value in options.items() if value is not None}
    unused = [name for name in given if name not in reader.options + TASK_OPTIONS + DATASET_OPTIONS]
    if unused:
        # each once, though `tasks` may be in both
        taken = list(dict.fromkeys(reader.options + TASK_OPTIONS + DATASET_OPTIONS))
        raise DataError(f"{spec}: {cli_flags(unused)} not used by the {reader.name} reader ({reader.description}); "
                        f"it takes {cli_flags(taken)}")
    task_options = {k: v for k, v in given.items() if k in TASK_OPTIONS}
    check_task_options(spec, **task_options)  # before reading: a large file need not be read to refuse them
    dataset = reader.read(spec, **{k: v for k, v in given.items() if k in reader.options})
    return leave_out_masks(apply_task_options(dataset, **task_options), given.get("keep_masks", False))


def find_reader(spec: str) -> Reader:
    for reader in READERS:
        if reader.can_read(spec):
            return reader
    if not Path(spec).exists():
        raise DataError(f"{spec}: no such file or folder")
    raise DataError(f"{spec}: unsupported data; expected a .npz file, medmnist:NAME, a .csv label file, "
                    "or a folder of class folders")


def absolute_path_options(options: dict) -> dict:
    """`options` with those that name a file or folder relative to the working directory (a --mapping YAML,
    MedMNIST's --data-root) made absolute, so that a run reads its data alike from any folder. Options relative to
    the data itself (a CSV's --images-dir) stay as given: they move with the data."""
    return {name: str(Path(value).expanduser().resolve()) if name in PATH_OPTIONS and isinstance(value, str) else value
            for name, value in options.items()}


def cli_flags(names) -> str:
    """Option names as the command line spells them (patient_pattern -> --patient-pattern)."""
    return ", ".join("--" + name.replace("_", "-") for name in names)


__all__ = ["Box", "ImageDataset", "Reader", "Sample", "open_dataset", "find_reader", "cli_flags",
           "absolute_path_options", "PATH_OPTIONS", "READERS"]

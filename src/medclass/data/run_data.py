"""A run's own data, read as it was for training: its reader options, its recorded split, what it left out, and
the data moved to another place (`RunDir.data`, `--run-data`)."""

from __future__ import annotations

import warnings
from pathlib import Path

from medclass.core.errors import DataWarning, MedclassError
from medclass.core.rundir import RunDir
from medclass.data import PATH_OPTIONS, open_dataset
from medclass.data.base import ImageDataset
from medclass.data.sources import root_of
from medclass.data.splits import load_splits


def run_dataset(run: RunDir, split: str | None = None) -> ImageDataset:
    """The run's data, read as it was for training, with the run's recorded split (`split`: only that part); the
    images the run left out stay out. A run written before excluded.csv has no row for them: they stay out too,
    with a warning, as images the run did not use. From `data` when given: the recorded split names images
    relative to the data's root, and reader options pointing into the old root (a mapping kept with the data)
    are followed to the new one."""
    config = run.settings().get("config", {})
    recorded, options = config["data"], config.get("reader_options") or {}
    spec = run.data or recorded  # data_spec(), without reading config.yaml again
    if run.data:
        options = _moved_options(options, root_of(recorded), root_of(run.data))
    check_data_there(run, spec, options)
    legacy = None if run.excluded_file.is_file() else "no row in the run's splits.csv (not used by the run)"
    dataset = load_splits(open_dataset(spec, **options), run.splits_file, unlisted=legacy,
                          recorded_root=root_of(recorded) if run.data else None)
    unlisted = [r for r in dataset.meta.get("excluded", []) if r["reason"] == legacy]
    if unlisted:
        warnings.warn(f"{run.path}: {len(unlisted)} image(s) of {spec} have no row in "
                      f"{run.splits_file} (a run of an older medclass listed no image it left out), e.g. "
                      f"{unlisted[0]['source']}; they are left out", DataWarning, stacklevel=2)
    if split is None:
        return dataset
    part = dataset.subset(split)
    if not len(part):
        raise MedclassError(f"{run.splits_file}: the run has no {split!r} images")
    return part


def check_data_there(run: RunDir, spec: str, options: dict) -> None:
    """A run copied without its data, or whose data moved, is told how to point at it."""
    fix = (f"give its place now with --run-data PATH (e.g. `medclass evaluate {run.path} --run-data PATH`; "
           "its images are found by their path inside it)")
    if run.data and not Path(run.data).exists():
        raise MedclassError(f"--run-data {run.data}: no such file or folder; {fix}")
    if not run.data and not spec.lower().startswith("medmnist:") and not Path(spec).exists():
        raise MedclassError(f"{run.config_file}: the run's data {spec} is not there (moved, or a run copied "
                            f"from another machine?); {fix}")
    for name, value in options.items():
        if name in PATH_OPTIONS and isinstance(value, str) and not Path(value).exists():
            raise MedclassError(f"{run.config_file}: reader option {name} of the run names {value}, which is not "
                                "there; keep such files inside the data folder (then --run-data finds them), or "
                                f"put the file back (or edit reader_options.{name} in {run.config_file})")


def _moved_options(options: dict, old_root: Path, new_root: Path) -> dict:
    """Reader options naming a file inside the data's old root (a mapping kept with the data), moved along to the
    new root; all others as recorded."""
    moved = {}
    for name, value in options.items():
        inside = name in PATH_OPTIONS and isinstance(value, str) and Path(value).is_relative_to(old_root)
        moved[name] = str(new_root / Path(value).relative_to(old_root)) if inside else value
    return moved

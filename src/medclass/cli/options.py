"""The options of the dataset readers, declared once for every command that reads a dataset.

`@reader_options` adds them all to a command and hands the ones the user gave to the command as one
`reader_options` dict, which goes to `open_dataset(spec, **reader_options)`; a flag (--multilabel, --keep-masks) is
passed only when given. The chosen reader refuses any option it does not use, so every command accepts the same
options and none of them is silently ignored.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Optional

import typer

PANEL = "Data options"


def _option(flag: str, help: str):
    return Annotated[Optional[str], typer.Option(flag, help=help, rich_help_panel=PANEL)]


READER_OPTIONS = {
    "data_root": _option("--data-root", "MedMNIST: folder holding the .npz files (offline use)."),
    "image_col": _option("--image-col", "CSV: column with the image path."),
    "label_col": _option("--label-col", "CSV: column with the label(s); 'A|B' lists several (see --multilabel)."),
    "patient_col": _option("--patient-col", "CSV: column with the patient id."),
    "split_col": _option("--split-col", "CSV: column with train/val/test."),
    "images_dir": _option("--images-dir", "CSV: folder the image paths are relative to (default: the CSV's folder, "
                                          "then images/)."),
    "label_sep": _option("--label-sep", "CSV: separator of several labels in one cell (default '|')."),
    "multilabel": Annotated[Optional[bool], typer.Option(
        "--multilabel", help="CSV: every label column is a set of findings ('A|B'), one output each; 'No Finding' "
                             "means none of them.", rich_help_panel=PANEL)],
    "keep_masks": Annotated[Optional[bool], typer.Option(
        "--keep-masks", help="Keep segmentation masks that pair with an image by name (X_mask.png beside X.png) as "
                             "images; by default they are left out, listed as excluded.", rich_help_panel=PANEL)],
    "patient_pattern": _option("--patient-pattern", r"Folders and CSV: regex with one group, the patient id, "
                                                    r"searched in the file name, e.g. '^(person\d+)_'."),
    "patient_from": _option("--patient-from", "Where --patient-pattern looks: name (the file name, default) or "
                                              "path (the path relative to the dataset root)."),
    "mapping": _option("--mapping", "Nested organ/class folders: YAML mapping class -> extra labels."),
    "target": _option("--target", "Task to classify when the data has several (e.g. group or class)."),
    "tasks": _option("--tasks", "Tasks a model learns, main task first, e.g. group,class (nested folders) or "
                                "organ,malignancy (CSV columns); --target is the one-task form."),
    "positive": _option("--positive", "Binary task: this finding is the positive class."),
    "negative": _option("--negative", "Binary task: only images with this finding are negatives (default: all "
                                      "others)."),
}


# A run's own data at a new place (the run or its data moved): read as for training, with the run's recorded split.
# Unlike --data (other labelled data, scored on its own splits or as a whole), it keeps the run's test split.
RunData = Annotated[Optional[str], typer.Option(
    "--run-data", help="The run's own data, now at this place (moved, or the run copied to another machine): read "
                       "as for training, with the run's recorded split.")]


def reader_options(command):
    """Give `command` every reader option; it receives those the user set as `reader_options: dict`."""
    signature = inspect.signature(command, eval_str=True)  # resolved, as typer reads a plain function
    own = [p for p in signature.parameters.values() if p.name != "reader_options"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
             for name, annotation in READER_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        given = {name: kwargs.pop(name, None) for name in READER_OPTIONS}
        return command(*args, reader_options={k: v for k, v in given.items() if v is not None}, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + added)
    return wrapper

"""Option groups declared once for every command that takes them.

`@reader_options`: the options of the dataset readers. It adds them all to a command and hands the ones the user
gave to the command as one `reader_options` dict, which goes to `open_dataset(spec, **reader_options)`; a flag
(--multilabel, --keep-masks) is passed only when given. The chosen reader refuses any option it does not use, so every command
accepts the same options and none of them is silently ignored.

`@explain_options`: how explanations box what they find (--polarity, --box-threshold), handed over as one
`explain_options` dict for `ExplainOptions.parse(method, **explain_options)` (explain/options.py), which checks
them as the server does.

`@train_options`: one option per TrainConfig field, built from the field's declaration (training/options.py: its
help with the choices spelt out, its flag, TrainConfig's default shown), handed over as one `train_options` dict of
the options given, for `command_line_config` (training/config.py), which lays them over a recipe and checks them.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.explain.options import CAM_THRESHOLD, POLARITIES

PANEL = "Data options"
EXPLAIN_PANEL = "Explanation options"


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
RunFolder = Annotated[Path, typer.Argument(help="Run folder written by `medclass train`.")]
RunData = Annotated[Optional[str], typer.Option(
    "--run-data", help="The run's own data, now at this place (moved, or the run copied to another machine): read "
                       "as for training, with the run's recorded split.")]


def check_other_data(run_dir, data: str | None, run_data: str | None, reader_options: dict | None,
                     without: str) -> None:
    """--data (other labelled images) with its data options, or the run's own data (moved: --run-data), not a mix:
    data options without --data would be silently unused. `without`: what the command uses instead."""
    from medclass.data import cli_flags
    from medclass.core.errors import MedclassError

    if reader_options and data is None:
        raise MedclassError(f"{run_dir}: data options ({cli_flags(reader_options)}) apply to --data; without it "
                            f"{without}, read as it was for training")
    if data is not None and run_data is not None:
        raise MedclassError("give --data (other labelled images) or --run-data (the run's own data, moved), not both")


EXPLAIN_OPTIONS = {
    "polarity": Annotated[Optional[str], typer.Option(
        help=f"Otsu boxes: {', '.join(POLARITIES)}: which side of the threshold a finding lies on (default: the "
             "model's modality: ultrasound dark, xray bright; else auto, the most compact region not touching the "
             "image's edge).", rich_help_panel=EXPLAIN_PANEL)],
    "box_threshold": Annotated[Optional[float], typer.Option(
        help=f"CAM boxes: share of the heatmap's maximum a pixel needs to be inside a box (default {CAM_THRESHOLD}).",
        rich_help_panel=EXPLAIN_PANEL)],
}


def option_group(options: dict, name: str):
    """A decorator giving a command every option of `options` ({parameter: annotation}); the command receives
    those the user set as one dict, its parameter `name`."""
    def decorate(command):
        signature = inspect.signature(command, eval_str=True)  # resolved, as typer reads a plain function
        own = [p for p in signature.parameters.values() if p.name != name]
        added = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
                 for key, annotation in options.items()]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            given = {key: kwargs.pop(key, None) for key in options}
            return command(*args, **{name: {k: v for k, v in given.items() if v is not None}}, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + added)
        return wrapper

    return decorate


def _train_option(config_field):
    """The Typer option of one TrainConfig field. Its default is None, so that the command knows what was given
    (and a recipe's value is not overridden by a default); the help shows TrainConfig's default instead."""
    from medclass.training.options import default_of, option_of, value_types

    declared, types = option_of(config_field), value_types(config_field)
    value_type = str if declared.from_text or str in types else types[0]
    default = default_of(config_field)
    shown = False
    if not declared.flag and default not in (None, "", {}) and default is not MISSING:
        shown = ("on" if default else "off") if isinstance(default, bool) else str(default)
    return Annotated[Optional[value_type], typer.Option(*filter(None, [declared.flag]), help=declared.help_text(),
                                                        show_default=shown)]


def _train_options() -> dict:
    from medclass.training.config import TrainConfig
    from medclass.training.options import option_of

    return {f.name: _train_option(f) for f in fields(TrainConfig) if option_of(f).on_command_line}


reader_options = option_group(READER_OPTIONS, "reader_options")
explain_options = option_group(EXPLAIN_OPTIONS, "explain_options")
train_options = option_group(_train_options(), "train_options")

"""Options shared by every command that reads a dataset, declared once.

Each command lists the ones it needs as parameters and passes them on with `reader_options(...)`;
`open_dataset(spec, **reader_options(...))` hands them to the reader that understands the spec.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

DataRoot = Annotated[Optional[str], typer.Option("--data-root", help="Folder holding MedMNIST .npz files (offline use).")]
ImageCol = Annotated[Optional[str], typer.Option("--image-col", help="CSV column with the image path.")]
LabelCol = Annotated[Optional[str], typer.Option("--label-col", help="CSV column with the label(s); 'A|B' is multi-label.")]
PatientCol = Annotated[Optional[str], typer.Option("--patient-col", help="CSV column with the patient id.")]
SplitCol = Annotated[Optional[str], typer.Option("--split-col", help="CSV column with train/val/test.")]
PatientPattern = Annotated[Optional[str], typer.Option(
    "--patient-pattern", help=r"Regex on the file name whose first group is the patient id, e.g. '^(\d{8})_'.")]
Target = Annotated[Optional[str], typer.Option(
    "--target", help="Task to classify when the data has several (e.g. 'group' or 'class' for organ/class folders).")]
Mapping = Annotated[Optional[str], typer.Option("--mapping", help="YAML mapping class -> extra labels (e.g. malignancy).")]
Positive = Annotated[Optional[str], typer.Option("--positive", help="Binary task: this finding is the positive class.")]
Negative = Annotated[Optional[str], typer.Option(
    "--negative", help="Binary task: only images with this finding are negatives (default: all others).")]


def reader_options(**options) -> dict:
    """Drop options the user did not give, so readers see only what was asked."""
    return {name: value for name, value in options.items() if value is not None}


# Added with the CSV reader; the keyword names (images_dir, label_sep) are what CsvReader.read accepts.
ImagesDir = Annotated[Optional[str], typer.Option(
    "--images-dir", help="Folder the CSV's image paths are relative to (default: the CSV's folder, then images/).")]
LabelSep = Annotated[Optional[str], typer.Option(
    "--label-sep", help="Separator of several labels in one CSV cell (default '|').")]

"""The images to score localisation on: those of a dataset that carry ground-truth boxes.

Boxes come with the data (a CSV with box columns, one row per box), from a separate box file attached by image
path (`--boxes boxes.csv`, as the demo data writes: filename,label,xmin,ymin,xmax,ymax), or from the segmentation
masks beside the images (BUSI's `X_mask.png`, `X_mask_1.png`: one box per region, data/masks.py).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medclass.data import cli_flags, open_dataset
from medclass.data.base import ImageDataset, Sample
from medclass.data.masks import with_mask_boxes
from medclass.data.csv_reader import (IMAGE_COLUMNS, LABEL_COLUMNS, CsvLayout, box_columns, merge_rows, pick_column,
                                     read_rows)
from medclass.core.errors import DataError
from medclass.core.rundir import RunDir
from medclass.data.run_data import run_dataset


def read_box_file(path: str | Path) -> dict[str, list]:
    """{image path as the file writes it: [Box, ...]} from a CSV with an image, a label and box columns."""
    path = Path(path)
    header, rows = read_rows(path)
    boxes = box_columns(path, header)
    if boxes is None:
        raise DataError(f"{path}: no box columns; expected xmin,ymin,xmax,ymax (or x,y,w,h); "
                        f"columns found: {', '.join(header)}")
    layout = CsvLayout(path=path, image=pick_column(path, header, None, IMAGE_COLUMNS, "image", "--image-col"),
                       tasks={"label": pick_column(path, header, None, LABEL_COLUMNS, "label", "--label-col")},
                       patient=None, split=None, boxes=boxes, patients=None, sep="|", multilabel=True)
    return {item.image: item.boxes for item in merge_rows(layout, rows) if item.boxes}


def attach_boxes(dataset: ImageDataset, box_file: str | Path) -> ImageDataset:
    """The dataset with each image's boxes from `box_file`, matched by path: a sample whose path ends with the
    file's image path (relative paths such as benign/benign_0001.png work) gets its boxes."""
    by_image = {Path(name).as_posix(): boxes for name, boxes in read_box_file(box_file).items()}
    samples, matched = [], 0
    for sample in dataset.samples:
        parts = Path(sample.source).parts
        tails = (Path(*parts[-k:]).as_posix() for k in range(1, len(parts) + 1))
        found = next((by_image[tail] for tail in tails if tail in by_image), None)
        matched += found is not None
        samples.append(replace(sample, boxes=tuple(found)) if found else sample)
    if not matched:
        example = next(iter(by_image), "?")
        raise DataError(f"{box_file}: none of its {len(by_image)} images is in {dataset.name} (e.g. {example!r}; "
                        "expected paths relative to the data folder)")
    return dataset.with_samples(samples)


def boxed_samples(run: RunDir, data: str | None = None, split: str = "test", box_file: str | None = None,
                  reader_options: dict | None = None) -> tuple[ImageDataset, list[Sample]]:
    """The dataset and its samples with boxes: from the run's own data (None, or the path it trained on) only
    its `split` images, read as in training; from other data every image."""
    own = is_run_data(run, data)
    if own and reader_options:
        raise DataError(f"{data or run}: data options ({cli_flags(reader_options)}) apply to other data; the run's "
                        "own data is read as it was for training")
    dataset = run_dataset(run, split) if own else open_dataset(data, **(reader_options or {}))
    if box_file:
        dataset = attach_boxes(dataset, box_file)
    dataset = with_mask_boxes(dataset)
    samples = [s for s in dataset.samples if s.boxes]
    if not samples:
        where = data or run.settings().get("config", {}).get("data", str(run))
        scope = f" in the run's {split} split" if own else ""
        raise DataError(f"{where}: no image{scope} has a bounding box; expected box columns (xmin,ymin,xmax,ymax) "
                        "in a CSV, --boxes FILE.csv (filename,label,xmin,ymin,xmax,ymax), or masks beside the "
                        "images (X_mask.png)")
    return dataset, samples


def is_run_data(run: RunDir, data: str | None) -> bool:
    if data is None:
        return True
    trained_on = run.settings().get("config", {}).get("data")
    return trained_on is not None and Path(trained_on).resolve() == Path(data).resolve()

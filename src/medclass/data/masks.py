"""Segmentation masks shipped beside their images, as BUSI is downloaded: `benign (1)_mask.png` (and
`benign (1)_mask_1.png` for a second lesion) next to `benign (1).png` in the class folder.

Found by name when the data is listed, before any pixel is decoded: a file named `<stem>_mask`, `<stem>_mask_1`,
`<stem>-seg`, `<stem>_segmentation` (any image extension) beside an image `<stem>.*` of the same dataset is that
image's mask. `open_dataset` leaves such masks out (`exclude`, reason "segmentation mask of <image>") unless
`keep_masks`, and remembers which masks belong to which image in `meta["masks"]`: their boxes are the image's
ground truth for `localize-eval` (`mask_boxes`).

Why name pairing and not pixels: a file named after an image of the same folder with a mask suffix is a mask by
the data's own convention, and it costs no decode. Binary or constant pixels alone are weak evidence: thresholded
scans, blank frames and whole datasets of silhouettes are binary too, and dropping images on a pixel statistic
would change what a model is trained and scored on without the user deciding. Those the audit reports (`_masks` in
data/audit.py) and training warns about; they stay in unless the user marks them `excluded` in a split file.

A mask-suffixed file without its image is left out too when the dataset has paired masks (it follows the data's
mask convention; its image is missing) and reported as such; in data without any pair such names are only the
audit's to report (the images of some datasets are named `..._seg`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import PurePath

import numpy as np

from medclass.data.base import Box, ImageDataset, Sample, labels_of
from medclass.data.exclusions import exclude

MASK_OF = re.compile(r"^(?P<stem>.+?)[ _.-](?:masks?|seg|segmentation)(?:[ _.-]?\d+)?$", re.IGNORECASE)
MASKS = "masks"  # meta key: {"of_image": {image source: [mask sources]}, "orphans": [...], "kept": bool}
PAIRED = "file name pairs with an image"
REASON = "segmentation mask"  # how the reason of every mask left out begins


def find_masks(samples: list[Sample]) -> tuple[dict[str, list[str]], list[str]]:
    """({image source: its mask sources}, [mask-suffixed sources without an image]) by file name, per folder."""
    place = lambda source: (str(PurePath(source).parent), PurePath(source).stem)  # noqa: E731
    suffixed = {s.source: MASK_OF.match(PurePath(s.source).stem) for s in samples}
    images = {place(s.source): s.source for s in samples if not suffixed[s.source]}
    of_image, orphans = {}, []
    for source, match in suffixed.items():
        if match:
            image = images.get((str(PurePath(source).parent), match["stem"]))
            if image:
                of_image.setdefault(image, []).append(source)
            else:
                orphans.append(source)
    return of_image, orphans


def leave_out_masks(dataset: ImageDataset, keep_masks: bool = False) -> ImageDataset:
    """The dataset without the masks that pair with its images (`keep_masks`: with them, as images of their
    class), which masks belong to which image kept in `meta["masks"]`. Data without any pair is returned as is."""
    of_image, orphans = find_masks(dataset.samples)
    if not of_image:
        return dataset
    found = {"of_image": of_image, "orphans": orphans, "kept": bool(keep_masks)}
    dataset = replace(dataset, meta={**dataset.meta, MASKS: found})
    if keep_masks:
        return dataset

    # masks without their image first: they are what a user has to look at
    reasons = {mask: f"{REASON}, image missing (no {MASK_OF.match(PurePath(mask).stem)['stem']}.* beside it)"
               for mask in orphans}
    reasons |= {mask: f"{REASON} of {PurePath(image).name}" for image, masks in of_image.items() for mask in masks}
    return exclude(dataset, reasons)


def is_mask_exclusion(record: dict) -> bool:
    """Whether an exclusion record (splits.exclude) is a segmentation mask's."""
    return record["reason"].startswith(REASON)


def mask_lines(dataset: ImageDataset, listed_in: str, keep_hint: str) -> list[str]:
    """What happened to the masks, in the words a user reads: how many were left out and why, where they are
    listed, how to keep them; and each mask whose image is missing."""
    found = dataset.meta.get(MASKS)
    if not found:
        return []
    n = sum(map(len, found["of_image"].values())) + len(found["orphans"])
    if found["kept"]:
        return [f"kept {n} segmentation masks as images of their class (--keep-masks)"]
    lines = [f"left out {n} segmentation masks ({PAIRED}); listed in {listed_in}; {keep_hint}"]
    lines += [f"segmentation mask without its image (left out): {mask}" for mask in found["orphans"]]
    return lines


def mask_boxes(masks: list[str], label: str) -> tuple[Box, ...]:
    """One box per connected region of each mask (pixels above half the mask's maximum), in the mask's pixel
    coordinates (the image's, as BUSI ships them), labelled `label`. An all-black mask (BUSI's normal images)
    gives none."""
    from scipy.ndimage import find_objects
    from scipy.ndimage import label as regions

    from medclass.data.images import read_image

    boxes = []
    for mask in masks:
        pixels = np.asarray(read_image(mask).convert("L"))
        if not pixels.max():
            continue
        for ys, xs in find_objects(regions(pixels > pixels.max() / 2)[0]):
            boxes.append(Box(label, float(xs.start), float(ys.start), float(xs.stop), float(ys.stop)))
    return tuple(boxes)


def with_mask_boxes(dataset: ImageDataset) -> ImageDataset:
    """Every image that has masks (`meta["masks"]`) and no boxes of its own gets the boxes its masks outline."""
    of_image = (dataset.meta.get(MASKS) or {}).get("of_image") or {}
    if not of_image:
        return dataset
    return dataset.with_samples([
        replace(s, boxes=mask_boxes(of_image[s.source], "|".join(labels_of(s, dataset.target))))
        if s.source in of_image and not s.boxes else s for s in dataset.samples])

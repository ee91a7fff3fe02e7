"""MedMNIST-style `.npz` files: keys `{train,val,test}_images` and `{train,val,test}_labels`.

Labels are one class index per image, shape (N,) or (N, 1), or one 0/1 column per finding, shape (N, L), as
ChestMNIST stores its 14 findings: then the task "label" is multi-label and an image's label is the tuple of its
findings (empty: no finding).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from medclass.data.base import DEFAULT_TASK, SPLITS, ImageDataset, Reader, Sample
from medclass.core.errors import DataError

MEDMNIST_PREFIX = "medmnist:"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local file header, or the end record of an empty zip


class NpzReader(Reader):
    name = "npz"
    description = "a MedMNIST-style .npz file"

    def can_read(self, spec: str) -> bool:
        return spec.lower().endswith(".npz")

    def read(self, spec: str) -> ImageDataset:
        return read_npz(Path(spec))


class MedMNISTReader(Reader):
    """`medmnist:NAME[@SIZE]`: a local file when one exists, else the `medmnist` package's download."""

    name = "medmnist"
    description = "medmnist:NAME[@SIZE]"
    options = ("data_root", "download")
    path_options = ("data_root",)

    def can_read(self, spec: str) -> bool:
        return spec.lower().startswith(MEDMNIST_PREFIX)

    def read(self, spec: str, data_root: str | None = None, download: bool = True) -> ImageDataset:
        flag, size = parse_medmnist_spec(spec)
        return read_npz(locate_medmnist(flag, size, data_root, download), flag=flag)


def read_npz(path: Path, flag: str | None = None) -> ImageDataset:
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected a MedMNIST-style .npz)")
    archive = open_npz(path)
    with archive:
        present = [s for s in SPLITS if f"{s}_images" in archive.files]
        if not present:
            raise DataError(f"{path}: expected keys train_images/train_labels (and val_*, test_*); "
                            f"found {', '.join(archive.files) or 'no arrays'}")
        arrays, labels = {}, {}
        for split in present:
            if f"{split}_labels" not in archive.files:
                raise DataError(f"{path}: has {split}_images but no {split}_labels")
            arrays[split] = _as_images(_array(archive, path, f"{split}_images"), path, f"{split}_images")
            labels[split] = _as_labels(_array(archive, path, f"{split}_labels"), path, f"{split}_labels",
                                       len(arrays[split]))

    flag = flag or path.stem.split("_")[0].lower()
    multilabel = _same_layout(labels, path)
    if multilabel:
        classes = medmnist_class_names(flag, next(iter(labels.values())).shape[1])
        named = {split: [tuple(sorted(classes[j] for j in np.flatnonzero(row))) for row in rows]
                 for split, rows in labels.items()}
    else:
        classes = medmnist_class_names(flag, int(max(lab.max() for lab in labels.values())) + 1)
        named = {split: [classes[int(y)] for y in indices] for split, indices in labels.items()}
    samples = [Sample(source=f"{path}#{split}/{i}", labels={DEFAULT_TASK: label}, split=split)
               for split in present for i, label in enumerate(named[split])]
    return ImageDataset(name=path.name, samples=samples, tasks={DEFAULT_TASK: classes}, loader=NpzImages(path, arrays),
                        meta={"format": "npz", "path": str(path), "medmnist_flag": flag,
                              **({"modality": MEDMNIST_MODALITY[flag]} if flag in MEDMNIST_MODALITY else {}),
                              **({"ordinal": [DEFAULT_TASK]} if medmnist_task(flag) == "ordinal-regression" else {})},
                        multilabel=(DEFAULT_TASK,) if multilabel else ())


def open_npz(path: Path):
    """np.load for archives only. A file that is not a zip would send numpy down its pickle path, whose error tells
    the user to pass allow_pickle (an unsafe load), so the magic bytes are checked first."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise DataError(f"{path}: a single .npy array, not an .npz archive; expected a MedMNIST-style .npz "
                        "(a zip of train_images, train_labels, val_*, test_* arrays, as np.savez writes)")
    if not head.startswith(ZIP_MAGIC):
        raise DataError(f"{path}: not an .npz archive (a .npz is a zip of .npy arrays, as np.savez writes; this "
                        f"file starts with {head!r})")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc.__class__.__name__}: {exc})") from None


class NpzImages:
    """The loader of an npz dataset: the decoded arrays, looked up by a sample's `PATH#split/index` source.

    Pickled (for DataLoader workers started with `spawn`), it carries only the path; a worker reads the file
    itself on first use instead of receiving every image through a pipe.
    """

    def __init__(self, path: Path, arrays: dict[str, np.ndarray]):
        self.path, self.arrays = Path(path), arrays

    def __call__(self, sample: Sample) -> Image.Image:
        if self.arrays is None:
            self.arrays = read_npz(self.path).loader.arrays
        split, index = sample.source.rsplit("#", 1)[1].split("/")
        return Image.fromarray(self.arrays[split][int(index)])

    def __getstate__(self) -> dict:
        return {"path": self.path, "arrays": None}


def _array(archive, path: Path, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError:  # numpy refuses object arrays without allow_pickle, which medclass never sets
        raise DataError(f"{path}: {key} holds pickled Python objects, not a numeric array; medclass does not "
                        "unpickle data files (expected uint8 or float images and integer labels)") from None


def _as_images(images: np.ndarray, path: Path, key: str) -> np.ndarray:
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise DataError(f"{path}: {key} has shape {images.shape}; expected (N, H, W) or (N, H, W, 3)")
    if images.dtype != np.uint8:
        # floats already in [0, 1] keep their meaning; any other range is stretched to 0..255
        lo, hi = float(images.min()), float(images.max())
        if lo < 0.0 or hi > 1.0:
            images = (images - lo) / max(hi - lo, 1e-12)
        images = (images * 255.0).round().clip(0, 255).astype(np.uint8)
    return images


def _as_labels(labels: np.ndarray, path: Path, key: str, n_images: int) -> np.ndarray:
    """Class indices (N,), or for multi-label arrays (N, L) one boolean column per finding."""
    if labels.ndim == 2 and labels.shape[1] > 1:
        if len(labels) != n_images:
            raise DataError(f"{path}: {key} has {len(labels)} rows of labels for {n_images} images")
        wrong = np.unique(labels[~np.isin(labels, (0, 1))])
        if wrong.size:
            raise DataError(f"{path}: {key} is multi-label, shape {labels.shape} (one column per finding); expected "
                            f"only 0 and 1, found {', '.join(map(str, wrong[:5].tolist()))}")
        return labels.astype(bool)
    return _as_class_indices(labels, path, key, n_images)


def _same_layout(labels: dict[str, np.ndarray], path: Path) -> bool:
    """True when every split is multi-label with the same findings, False when every split has class indices."""
    width = {split: array.shape[1] if array.ndim == 2 else 0 for split, array in labels.items()}
    first = next(iter(width))
    other = next((split for split in width if width[split] != width[first]), None)
    if other is not None:
        raise DataError(f"{path}: {first}_labels has {_layout_text(width[first])} but {other}_labels has "
                        f"{_layout_text(width[other])}; expected the same labels in every split")
    return width[first] > 0


def _layout_text(width: int) -> str:
    return f"{width} findings per image (multi-label)" if width else "one class index per image"


def _as_class_indices(labels: np.ndarray, path: Path, key: str, n_images: int) -> np.ndarray:
    labels = labels.reshape(-1)
    if len(labels) != n_images:
        raise DataError(f"{path}: {key} has {len(labels)} labels for {n_images} images")
    if labels.size and (labels.min() < 0 or not np.all(np.equal(np.mod(labels, 1), 0))):
        raise DataError(f"{path}: {key} must hold non-negative integer class indices")
    return labels.astype(np.int64)


def medmnist_info(flag: str) -> dict:
    """The medmnist package's INFO entry of a known MedMNIST set ({} when unknown or not installed)."""
    try:
        from medmnist.info import INFO
    except ImportError:
        return {}
    return INFO.get(flag, {})


# The modality a MedMNIST set trains with by default (training/augment_policy.py), where the modality's policy was
# measured level with or ahead of the generic preset on test AUC (benchmarks/shift.py, EfficientNet-Lite0, 3 seeds):
# PneumoniaMNIST (xray) and BreastMNIST (ultrasound); ChestMNIST holds chest films too. RetinaMNIST is left out: the
# fundus policy (rotation +-30 deg) lowered its test AUC from .740 to .723. Sets not measured here are left out.
MEDMNIST_MODALITY = {"pneumoniamnist": "xray", "chestmnist": "xray", "breastmnist": "ultrasound"}


def medmnist_task(flag: str) -> str | None:
    """MedMNIST's own description of the task (e.g. RetinaMNIST: "ordinal-regression", its grades are ordered)."""
    return medmnist_info(flag).get("task")


def medmnist_class_names(flag: str, n_classes: int) -> list[str]:
    """Class names from the medmnist package's INFO table when the file is a known MedMNIST set."""
    info = medmnist_info(flag)
    if info and len(info["label"]) == n_classes:
        return [info["label"][str(i)] for i in range(n_classes)]
    return [str(i) for i in range(n_classes)]


def parse_medmnist_spec(spec: str) -> tuple[str, int]:
    body = spec[len(MEDMNIST_PREFIX):].strip().lower()
    flag, _, size = body.partition("@")
    if not flag:
        raise DataError(f"{spec!r}: expected medmnist:NAME or medmnist:NAME@SIZE, e.g. medmnist:bloodmnist@64")
    if size and (not size.isdigit() or int(size) not in (28, 64, 128, 224)):
        raise DataError(f"{spec!r}: size must be one of 28, 64, 128, 224; got {size!r}")
    return flag, int(size or 28)


def medmnist_file_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def medmnist_search_dirs(data_root: str | None) -> list[Path]:
    dirs = [Path(d) for d in (data_root, os.environ.get("MEDMNIST_ROOT")) if d]
    return dirs + [Path("~/.medmnist").expanduser()]


def locate_medmnist(flag: str, size: int, data_root: str | None = None, download: bool = True) -> Path:
    name = medmnist_file_name(flag, size)
    dirs = medmnist_search_dirs(data_root)
    for directory in dirs:
        for candidate in (directory / name, directory / flag / name):
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(d) for d in dirs)
    if not download:
        raise DataError(f"medmnist:{flag}@{size}: {name} not found in {looked}; "
                        "pass --data-root DIR or set MEDMNIST_ROOT to the folder holding it")
    return _download_medmnist(flag, size, dirs[0], looked)


def _download_medmnist(flag: str, size: int, root: Path, looked: str) -> Path:
    try:
        import medmnist
        from medmnist.info import INFO
    except ImportError:
        raise DataError(f"medmnist:{flag}: not found in {looked}, and the medmnist package (needed to download) "
                        "is not installed: pip install medmnist") from None
    if flag not in INFO:
        raise DataError(f"medmnist:{flag}: unknown dataset; known: {', '.join(sorted(INFO))}")
    root.mkdir(parents=True, exist_ok=True)
    try:
        dataset_class = getattr(medmnist, INFO[flag]["python_class"])
        dataset_class(split="train", download=True, size=size, root=str(root))
    except Exception as exc:  # the package raises bare RuntimeError/URLError/OSError when offline
        raise DataError(f"medmnist:{flag}@{size}: {medmnist_file_name(flag, size)} not found in {looked}, and the "
                        f"download failed ({exc.__class__.__name__}). Offline? Put the file in one of those folders "
                        "or pass --data-root DIR") from None
    return root / medmnist_file_name(flag, size)

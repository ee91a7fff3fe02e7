"""Images named relative to their dataset's root, so that a split file (a run's splits.csv, `medclass split`'s
output) still matches the data after it moved: to another folder, another machine, another mount point.

The root is the folder the reader was given, or the folder holding the data file (a CSV, an .npz). An image
outside the root (a CSV's --images-dir elsewhere) keeps its absolute path. Split files written before medclass
named images this way hold absolute paths; they still match the data where it was, and, given the root they were
written under (`recorded_root`), the data where it is now.
"""

from __future__ import annotations

from pathlib import Path

from medclass.data.base import ImageDataset

FILE_SUFFIXES = (".csv", ".npz")  # data given as a file: its images are named from the file's folder


def root_of(spec: str | Path) -> Path:
    """The root of data given as `spec` (a folder, or a file's folder), whether or not it exists (a recorded path)."""
    path = Path(spec)
    return path.parent if path.is_file() or path.suffix.lower() in FILE_SUFFIXES else path


def data_root(dataset: ImageDataset) -> Path | None:
    path = dataset.meta.get("path")
    return root_of(path) if path else None


def portable_source(source: str, root: Path | None) -> str:
    """`source` relative to `root` (with / separators) when it lies inside it, else `source` as it is."""
    if root is None:
        return source
    try:
        return Path(source).absolute().relative_to(Path(root).absolute()).as_posix()
    except ValueError:
        return source


def source_lookup(dataset: ImageDataset, recorded_root: Path | None = None):
    """A function from a split file's name for an image to the dataset's source of it (the name itself when the
    dataset has no such image): names relative to the root, absolute names, and absolute names under
    `recorded_root` (a moved dataset's old place) all match."""
    root = data_root(dataset)
    own = {portable_source(s.source, root): s.source for s in dataset.samples}
    own.update((s.source, s.source) for s in dataset.samples)

    def lookup(name: str) -> str:
        if name in own or recorded_root is None:
            return own.get(name, name)
        return own.get(portable_source(name, recorded_root), name)

    return lookup

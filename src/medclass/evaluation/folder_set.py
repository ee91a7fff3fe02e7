"""A folder written as one set: a reader (or a run killed half-way, `kill -9` included) sees either the whole old
set of files or the whole new one, never new figures beside an old metrics.json.

The set is written into a sibling `.NAME.writing-PID` folder; when it is complete, the entries of the old folder
that are not part of a set (`owned(name)` false: a comparisons/ subfolder, a user's notes) are carried into it as
hard links (copies where links are not possible), and two renames swap it in: NAME -> .NAME.replaced, the new set
-> NAME. A crash between the two leaves NAME missing and .NAME.replaced whole: the next write renames it back
first. Leftover `.NAME.writing-*` folders of killed writes are removed by the next write (one writer per folder).
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from medclass.core.errors import MedclassError


@contextmanager
def written_as_one_set(folder: Path, owned: Callable[[str], bool]) -> Iterator[Path]:
    """Yields an empty folder to write the whole set into; on leaving without an error it becomes `folder`, with
    the old folder's entries that are not `owned` carried over. On an error the old folder stays as it was."""
    folder = Path(folder).absolute()
    _check_replaceable(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _recover(folder)
    staging = folder.parent / f".{folder.name}.writing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()  # not mkdtemp: its 0700 mode would become the folder's
    try:
        yield staging
        if folder.is_dir():
            _carry_over(folder, staging, owned)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, folder)


def _check_replaceable(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise MedclassError(f"{folder}: is a file; expected a folder for the evaluation's files")
    if Path.cwd().absolute().is_relative_to(folder):
        raise MedclassError(f"{folder}: is the current folder or holds it; the evaluation replaces its folder as a "
                            f"whole: give a folder of its own (e.g. {folder / 'evaluation'})")


def _replaced(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.replaced"


def _recover(folder: Path) -> None:
    """Undo what a write killed between its two renames, or after them, left behind."""
    replaced = _replaced(folder)
    if replaced.is_dir():
        if folder.exists():
            shutil.rmtree(replaced)
        else:
            replaced.rename(folder)
    for stale in folder.parent.glob(f".{folder.name}.writing-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _carry_over(old: Path, new: Path, owned: Callable[[str], bool]) -> None:
    for entry in old.iterdir():
        if owned(entry.name) or (new / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, new / entry.name)


def _link_or_copy(source, target) -> None:
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
        return
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


def _swap_in(staging: Path, folder: Path) -> None:
    replaced = _replaced(folder)
    if folder.exists():
        folder.rename(replaced)
    staging.rename(folder)
    shutil.rmtree(replaced, ignore_errors=True)

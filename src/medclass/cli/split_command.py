"""`medclass split`: assign train/val/test (or k folds) by patient or duplicate cluster, print the counts, write the
split CSV."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors
from medclass.cli.options import reader_options
from medclass.data import open_dataset
from medclass.data.masks import mask_lines
from medclass.data.splits import make_splits, patients_in_several_splits, save_splits, split_summary


class GroupBy(str, Enum):
    patient = "patient"
    none = "none"


By = Annotated[GroupBy, typer.Option("--by", help="Keep each patient's images in one split, or not.")]
Folds = Annotated[Optional[int], typer.Option("--folds", help="K cross-validation folds over the non-test part.")]
Dedupe = Annotated[bool, typer.Option("--dedupe", help="Drop exact duplicate images first (conflicting ones all).")]
GroupDuplicates = Annotated[bool, typer.Option(
    help="Without patient ids, keep each cluster of exact/near duplicates (as `medclass audit` finds them) in one "
         "split; decodes every image once.")]


@app.command("split")
@user_errors
@reader_options
def split(
    data: Annotated[str, typer.Argument(help="Dataset: a CSV label file, a class folder, a .npz, medmnist:NAME.")],
    out: Annotated[Path, typer.Option("--out", help="Split CSV to write (source,split,label,patient[,fold]).")],
    by: By = GroupBy.patient,
    val: Annotated[float, typer.Option("--val", help="Fraction for validation (nearest 1/20).")] = 0.15,
    test: Annotated[float, typer.Option("--test", help="Fraction for test (nearest 1/20).")] = 0.15,
    folds: Folds = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random assignment.")] = 0,
    dedupe: Dedupe = False,
    group_duplicates: GroupDuplicates = True,
    reader_options: dict | None = None,
) -> None:
    """Split a dataset into train/val/test, stratified by class and grouped by patient (without patient ids: by
    cluster of duplicate images), and save it as CSV. Images left out (segmentation masks beside their images,
    duplicates with --dedupe) are rows with split 'excluded' and their reason."""
    dataset = open_dataset(data, **reader_options)  # reader warnings print as `warning:` lines (user_errors)
    if dataset.has_splits:  # e.g. Training/Testing folders: say so rather than silently replace them
        typer.echo("note: the dataset's own split is replaced by a new one", err=True)
    dataset = make_splits(dataset, val=val, test=test, seed=seed, by_patient=by is GroupBy.patient,
                          folds=folds, dedupe=dedupe or None, group_duplicates=group_duplicates)
    save_splits(dataset, out)
    typer.echo(describe(dataset))
    for line in mask_lines(dataset, f"{out} as excluded", "--keep-masks splits them too"):
        typer.echo(line)
    typer.echo(f"wrote {out}")


def describe(dataset) -> str:
    info, grouping = dataset.meta["split"], dataset.meta["split_grouping"]
    learned = dataset.learned
    tasks = f"target {dataset.target!r}" if len(learned) == 1 else f"tasks {', '.join(learned)} (main {learned[0]!r})"
    lines = [f"{dataset.name}: {len(dataset)} images, {tasks}, grouped by {grouping['by']} "
             f"({grouping['groups']} groups, {grouping['multi_image_groups']} with more than one image), "
             f"stratified by {info['stratify']}, seed {info['seed']}"]
    if "dedupe" in dataset.meta:
        d = dataset.meta["dedupe"]
        lines.append(f"dedupe: {d['groups']} duplicate groups, {d['conflicting']} with conflicting labels, "
                     f"{d['dropped']} images dropped")
    lines += table(split_summary(dataset))
    for task in learned[1:]:  # splits are stratified on the main task; show how the others fell
        lines += ["", f"task {task!r} ({dataset.kind(task)}):"] + table(split_summary(dataset, task))
    if any(s.patient for s in dataset.samples):  # the leak this command exists to prevent, counted for the user
        lines.append(f"patients in more than one split: {len(patients_in_several_splits(dataset))}")
    return "\n".join(lines)


def table(rows: list[dict]) -> list[str]:
    header = list(rows[0])
    cells = [[("-" if row[h] is None else str(row[h])) for h in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    return ["  ".join(text.ljust(w) for text, w in zip(line, widths)).rstrip() for line in [header] + cells]

"""Options that apply to any dataset once read: which task(s) to learn, and binary tasks derived from a finding.

`open_dataset(spec, target=..., tasks=..., positive=..., negative=...)` calls `apply_task_options` after the reader,
so every format gets them the same way. `target` picks one task; `tasks` picks several (the first is the main task,
the one splits are stratified on). A label is a class name or, for multi-label tasks, a tuple of class names.
"""

from __future__ import annotations

from dataclasses import replace

from medclass.data.base import NO_FINDING, ImageDataset, Sample, labels_of, name_problem
from medclass.core.errors import DataError

TASK_OPTIONS = ("target", "positive", "negative", "tasks")  # understood for every format, after the reader


def apply_task_options(dataset: ImageDataset, target: str | None = None, positive: str | None = None,
                       negative: str | None = None, tasks: str | list[str] | None = None) -> ImageDataset:
    """Select the target task or the tasks to learn, then (optionally) replace the target by a binary task
    `positive` vs the rest/`negative`."""
    check_task_options(dataset.name, target, positive, negative, tasks)
    if tasks is not None:
        dataset = select_tasks(dataset, task_names(tasks, dataset.name))
    if target is not None:
        dataset = select_target(dataset, target)
    if positive is not None:
        dataset = derive_binary(dataset, positive, negative)
    check_names(dataset)
    return dataset


def check_names(dataset: ImageDataset) -> None:
    """Refuse a learned task or class whose name is empty or holds a control character (a CSV cell or folder name
    with a newline or NUL), naming it and the first image labelled with it, before anything is trained: the names
    become CSV columns, JSON keys and report lines, and a model artefact refuses them."""
    for task in dataset.learned:
        problem = name_problem(task)
        if problem:
            raise DataError(f"{dataset.name}: task name {task!r} {problem}; rename the column")
        for name in dataset.tasks[task]:
            problem = name_problem(name)
            if problem:
                sample = next((s for s in dataset.samples if name in labels_of(s, task)), None)
                where = sample_place(dataset, sample, task) if sample else dataset.name
                raise DataError(f"{where}: class {name!r} of task {task!r} {problem}; expected a class name "
                                "without control characters (rename the folder or fix the label)")


def check_task_options(where: str, target: str | None = None, positive: str | None = None,
                       negative: str | None = None, tasks: str | list[str] | None = None) -> None:
    """Refuse options that contradict each other, before any file is read."""
    if tasks is not None:
        names = ",".join(task_names(tasks, where))
        if target is not None:
            raise DataError(f"{where}: give either --tasks {names} or --target {target}, not both; --target is the "
                            f"one-task form (--tasks {target} means the same)")
        if positive is not None:
            raise DataError(f"{where}: --positive {positive} makes one binary task from the target, so it cannot go "
                            f"with --tasks {names}; use --target TASK --positive {positive}")
    if negative is not None and positive is None:
        raise DataError(f"{where}: negative={negative!r} needs a positive finding too (--positive)")


def task_names(tasks: str | list[str] | tuple[str, ...], where: str) -> list[str]:
    """`"a,b"` or `["a", "b"]` as a list of task names, in order; empty or repeated names are an error."""
    names = [name.strip() for name in (tasks.split(",") if isinstance(tasks, str) else tasks)]
    if not names or not all(names):
        raise DataError(f"{where}: --tasks {tasks!r}: expected task names separated by commas, e.g. organ,malignancy")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{where}: --tasks names {', '.join(repeated)} more than once; expected each task once")
    return names


def select_target(dataset: ImageDataset, target: str) -> ImageDataset:
    if target not in dataset.tasks:
        raise DataError(f"{dataset.name}: no task {target!r}; tasks found: {', '.join(dataset.tasks)}")
    return replace(dataset, target=target, selected=())


def select_tasks(dataset: ImageDataset, names: list[str]) -> ImageDataset:
    """The tasks a model learns, main task first; one name is the same as selecting the target."""
    unknown = [name for name in names if name not in dataset.tasks]
    if unknown:
        raise DataError(f"{dataset.name}: no task {', '.join(map(repr, unknown))} (named in --tasks); tasks found: "
                        f"{', '.join(dataset.tasks)}")
    return replace(dataset, target=names[0], selected=tuple(names) if len(names) > 1 else ())


def is_multi_label(dataset: ImageDataset, task: str | None = None) -> bool:
    """True for a task declared multi-label, and for one whose labels are tuples without the declaration (a CSV
    cell 'A|B' read without --multilabel: usable with --positive, refused by `check_single_label`)."""
    task = task or dataset.target
    return task in dataset.multilabel or any(isinstance(s.labels.get(task), (tuple, list)) for s in dataset.samples)


def check_single_label(dataset: ImageDataset, task: str | None = None) -> None:
    """Refuse a task that is not declared multi-label yet gives an image several labels, naming the image (and its
    CSV row, from meta["rows"]); the trainer calls this for every task it learns."""
    task = task or dataset.target
    if task in dataset.multilabel:
        return
    for sample in dataset.samples:
        labels = labels_of(sample, task)
        if len(labels) < 2:
            continue
        raise DataError(f"{sample_place(dataset, sample, task)}: expected one class for the single-label task "
                        f"{task!r}, found {len(labels)} ({'|'.join(labels)!r}); pass --multilabel to learn every finding, or --positive FINDING "
                        "for one finding vs the rest")


def sample_place(dataset: ImageDataset, sample: Sample, task: str) -> str:
    """Where a sample's label for `task` was read: its CSV row and column (meta["rows"]), else its image."""
    rows = dataset.meta.get("rows", {})
    column = dataset.meta.get("columns", {}).get("tasks", {}).get(task, task)
    if sample.source in rows:
        return f"{dataset.meta.get('path', dataset.name)}: row {rows[sample.source]}, column {column}"
    return f"{dataset.name}: {sample.source}"


def binary_task_name(positive: str, negative: str | None) -> str:
    return f"{positive} vs {negative or 'rest'}"


def derive_binary(dataset: ImageDataset, positive: str, negative: str | None = None) -> ImageDataset:
    """New target task with classes [negative, positive] (index 1 = positive), from the current target's labels.

    Without `negative`, every image whose labels lack `positive` is a negative ("no <positive>"). With it, only
    images labelled exactly `negative` are negatives (for a multi-label task, "No Finding" means no finding at all);
    the others are dropped. Images with no label for the source task are dropped too; meta["binary"] counts both.
    The new task is the only one learned.
    """
    source = dataset.target
    no_finding = source in dataset.multilabel and negative is not None and negative.lower() == NO_FINDING.lower()
    _require_class(dataset, source, positive, "positive")
    if negative is not None and not no_finding:
        _require_class(dataset, source, negative, "negative")
    negative_class = negative if negative is not None else f"no {positive}"
    wanted_negative = () if no_finding else (negative,)
    task = binary_task_name(positive, negative)
    kept, dropped, unlabelled = [], 0, 0
    for sample in dataset.samples:
        labels = labels_of(sample, source)
        if sample.labels.get(source) is None:
            unlabelled += 1
        elif positive in labels:
            kept.append(_with_label(sample, task, positive))
        elif negative is None or labels == wanted_negative:
            kept.append(_with_label(sample, task, negative_class))
        else:
            dropped += 1
    for name in (positive, negative_class):
        if not any(s.labels[task] == name for s in kept):
            raise DataError(f"{dataset.name}: binary task {task!r} has no {name!r} image left")
    meta = {**dataset.meta, "binary": {"task": task, "from_task": source, "positive": positive,
                                       "negative": negative_class, "dropped": dropped + unlabelled,
                                       "unlabelled": unlabelled}}
    tasks = {**dataset.tasks, task: [negative_class, positive]}
    return replace(dataset, samples=kept, tasks=tasks, target=task, meta=meta, selected=())


def _require_class(dataset: ImageDataset, task: str, name: str, role: str) -> None:
    if name not in dataset.tasks[task]:
        raise DataError(f"{dataset.name}: {role} class {name!r} is not a class of task {task!r}; "
                        f"classes found: {', '.join(dataset.tasks[task])}")


def _with_label(sample: Sample, task: str, label: str) -> Sample:
    return replace(sample, labels={**sample.labels, task: label})

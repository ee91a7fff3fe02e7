"""Which output an explanation explains: one column of the model's concatenated logits, the head's offset plus the
class index.

Defaults follow what a reader of the prediction asks about: a binary head's positive class, a multiclass head's
predicted class, a multi-label head's most probable finding.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medclass.core.errors import MedclassError
from medclass.core.heads import TaskHead, output_slices
from medclass.explain.explainer import Target


def explained_output(heads: Sequence[TaskHead], proba: np.ndarray | None, task: str | None = None,
                     class_name: str | None = None) -> Target:
    """(head, class index, output index) to explain for one image given its probabilities (all heads side by
    side; None will do when the class follows without them). `task` None: the head owning `class_name`, else the
    main task."""
    heads = list(heads)
    head = pick_head(heads, task, class_name)
    offset = output_slices(heads)[heads.index(head)].start
    if class_name is not None:
        if class_name not in head.classes:
            raise MedclassError(f"class {class_name!r} is not a class of task {head.name!r}; classes: "
                                f"{', '.join(head.classes)}")
        index = head.classes.index(class_name)
    elif head.kind == "binary":
        index = head.positive_index
    elif proba is None:
        raise MedclassError(f"task {head.name!r}: the class to explain follows the prediction; give the images' "
                            "probabilities or a class name")
    else:
        index = int(np.argmax(proba[offset:offset + head.outputs]))
    return Target(head, index, offset + index)


def needs_probabilities(heads: Sequence[TaskHead], task: str | None, class_name: str | None) -> bool:
    """Whether the class to explain depends on the image's probabilities (not for a named class, nor a binary
    task's positive class)."""
    return class_name is None and pick_head(heads, task, class_name).kind != "binary"


def pick_head(heads: Sequence[TaskHead], task: str | None, class_name: str | None) -> TaskHead:
    if task is not None:
        found = next((h for h in heads if h.name == task), None)
        if found is None:
            raise MedclassError(f"no task {task!r} in this model; tasks: {', '.join(h.name for h in heads)}")
        return found
    if class_name is not None:
        found = next((h for h in heads if class_name in h.classes), None)
        if found is None:
            raise MedclassError(f"class {class_name!r} is not a class of any task of this model; classes: "
                                f"{', '.join(c for h in heads for c in h.classes)}")
        return found
    return heads[0]

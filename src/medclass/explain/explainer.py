"""What an explanation method is: an `Explainer` object over one model, the `Explanation` it gives per image, and
the one registry of methods (`EXPLAINERS`) that every list of methods reads (the command line's help and checks,
`localize-eval`, the server's OpenAPI enum and /models).

Shaped like MONAI's CAM classes (`monai.visualize.GradCAM(nn_module, target_layers)`): the object is built once
over a network and owns what explaining it needs (a CAM's target layer, the hooks of each pass), then explains
batch after batch. Unlike them it answers in the original image's pixels, for the class a medclass head decides.

Methods are plug-ins (core/registry.py): each module of `medclass.explain.methods` registers its own on import.
No heavy import here, nor in those modules: the command line reads the names for its help text without PyTorch,
OpenCV or pytorch-grad-cam, which load when an explainer is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, NamedTuple, Sequence

from medclass.core.errors import MedclassError
from medclass.core.registry import Registry
from medclass.core.wording import either

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn

    from medclass.core.heads import TaskHead
    from medclass.core.preprocessing import Preprocessing
    from medclass.explain.boxes import ScoredBox
    from medclass.explain.options import ExplainOptions


@dataclass
class Explanation:
    """One image's explanation of one output. `heatmap`: [0, 1], the original image's size (H, W), or None for a
    method that uses no network (Otsu); `boxes`: regions in original pixels, best first; `peak`: (x, y) of the
    heatmap's maximum (no heatmap: the best box's centre, else the image's) in original pixels; `polarity`: Otsu's
    side of the threshold."""

    heatmap: np.ndarray | None
    task: str
    class_name: str
    output_index: int
    probability: float
    method: str
    boxes: list[ScoredBox] = field(default_factory=list)
    peak: tuple[float, float] = (0.0, 0.0)
    polarity: str | None = None

    @property
    def caption(self) -> str:
        return f"{self.method}: {self.task} = {self.class_name} (p={self.probability:.2f})"

    @property
    def point(self) -> tuple[float, float] | None:
        """Where the explanation points (the pointing game's guess): a heatmap's maximum; without a heatmap the best
        box's centre, or nothing when no box was found."""
        if self.heatmap is not None:
            return self.peak
        return self.boxes[0].centre if self.boxes else None

    def to_dict(self) -> dict:
        """Everything but the heatmap, as plain JSON values: the server's answer."""
        return {"method": self.method, "task": self.task, "class": self.class_name,
                "probability": round(self.probability, 6), "boxes": [box.to_dict() for box in self.boxes],
                "peak": [round(v, 1) for v in self.peak], **({"polarity": self.polarity} if self.polarity else {})}


class Target(NamedTuple):
    """The output an explanation explains: its head, the class's index in the head, the column in the logits."""

    head: TaskHead
    index: int
    output: int


@dataclass(frozen=True)
class ModelParts:
    """What an explainer may use of a model: its heads and preprocessing always; `network` (the PyTorch module,
    None when the backend runs none) for methods that differentiate through it; the CAM target layer given as
    `layer`, else found from the registered architecture `model_name` (core/architectures.py `cam_target_layer`)."""

    heads: Sequence[TaskHead]
    preprocessing: Preprocessing
    network: nn.Module | None = None
    model_name: str | None = None
    layer: nn.Module | None = None


class Explainer(ABC):
    """Explains images of one model with one method. Subclasses set `uses_network` and implement `explain`; heavy
    libraries are imported in their constructor or methods, so registering one stays cheap."""

    uses_network: ClassVar[bool] = False
    method: str

    def __init__(self, parts: ModelParts, options: ExplainOptions):
        self.parts, self.options, self.method = parts, options, options.method

    @property
    def heads(self) -> list[TaskHead]:
        return list(self.parts.heads)

    @abstractmethod
    def explain(self, pictures: Sequence[Image.Image], *, batch: torch.Tensor | None = None,
                proba: np.ndarray | None = None, task: str | None = None,
                class_name: str | None = None) -> list[Explanation]:
        """One explanation per picture, at the picture's own size, of (task, class_name) (None: the defaults of
        explain/targets.py). `batch`: the pictures preprocessed (methods with `uses_network` need it); `proba`
        (pictures x outputs, every head side by side): the probabilities to report and to take a default class
        from, None for the network's own (a method without a network then needs `class_name`)."""

    def explain_images(self, images: Sequence[Image.Image], *, task: str | None = None,
                       class_name: str | None = None, batch_size: int = 16) -> list[Explanation]:
        """`explain` over images that are not preprocessed yet, `batch_size` at a time."""
        found = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            batch = self.preprocess(chunk) if self.uses_network else None
            found += self.explain(chunk, batch=batch, task=task, class_name=class_name)
        return found

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        import torch

        transform = self.parts.preprocessing.eval_transform()
        return torch.stack([transform(image) for image in images])


@dataclass(frozen=True)
class ExplanationMethod:
    """A registered method: `build(parts, options, **args)` makes its Explainer (importing what it needs then);
    `uses_network`: it differentiates through the PyTorch network (torch backend only); `summary`: a few words for
    help texts, e.g. "classic boxes"; `args`: what a family's one builder needs to tell its members apart (the
    CAMs: their pytorch-grad-cam class)."""

    name: str
    build: Callable[..., Explainer]
    uses_network: bool
    summary: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)


# Built-in methods, in the order they are listed (the default, gradcam, first): the modules of
# medclass.explain.methods, imported in name order on the first lookup.
EXPLAINERS: Registry[ExplanationMethod] = Registry("explanation method", plugins=("medclass.explain.methods",))
DEFAULT_METHOD = "gradcam"


def register_method(name: str, build: Callable[..., Explainer], *, uses_network: bool, summary: str = "",
                    args: Mapping[str, Any] | None = None) -> ExplanationMethod:
    """Add an explanation method under `name` (lower case: options are matched in lower case). `build`: called
    as build(parts, options, **args) when the method is asked for; an Explainer subclass will do."""
    return EXPLAINERS.register(name, ExplanationMethod(name, build, uses_network, summary, dict(args or {})))


def method_names(uses_network: bool | None = None) -> list[str]:
    """Every registered method's name in listing order; `uses_network` True/False: only those that do/do not."""
    return [name for name, entry in EXPLAINERS if uses_network is None or entry.uses_network == uses_network]


def methods_help() -> str:
    """The methods as help texts list them: "gradcam, gradcam++, ... or otsu (classic boxes)"."""
    names = [f"{name} ({entry.summary})" if entry.summary else name for name, entry in EXPLAINERS]
    return either(names)


def build_explainer(parts: ModelParts, options: ExplainOptions) -> Explainer:
    """The Explainer of `options.method` over `parts`."""
    entry = EXPLAINERS.get(options.method)
    if entry.uses_network and parts.network is None:
        raise MedclassError(f"{options.method} differentiates through the network: it needs the PyTorch network "
                            "(torch backend)")
    return entry.build(parts, options, **entry.args)

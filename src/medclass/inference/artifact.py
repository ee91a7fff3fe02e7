"""The model artefact: one file that carries everything needed to predict.

Weights, architecture, preprocessing, the tasks it answers (`heads`: name, kind, classes, positive class and
threshold(s) each), test-time augmentation and provenance. Training, evaluation, the CLI and (later) the server load
it the same way. It is saved with `torch.save` and loaded with `weights_only=True`, so opening an artefact from
elsewhere runs no pickled code.

Format 2 keeps a list of heads (a head's temperature, threshold source and ordinal flag were added within format 2,
with defaults, so older format-2 files read as uncalibrated and untuned); format 1 (up to medclass 0.x of November
2026) kept one task's classes, positive_index and threshold, and still loads, as a single head.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from medclass.errors import MedclassError
from medclass.heads import TaskHead
from medclass.models import create_model
from medclass.rundir import ARTIFACT as ARTIFACT_NAME
from medclass.transforms import Preprocessing

FORMAT = "medclass-model"
FORMAT_VERSION = 2


@dataclass
class ModelArtifact:
    model_name: str
    heads: list[TaskHead]  # main task first; the model's logits are their outputs side by side
    preprocessing: Preprocessing
    state_dict: dict
    tta: list[str] = field(default_factory=list)  # e.g. ["hflip"]: average over these views at predict time
    model_kwargs: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @classmethod
    def single_task(cls, model_name: str, classes: list[str], preprocessing: Preprocessing, state_dict: dict,
                    task: str = "label", positive_index: int | None = None, threshold: float = 0.5,
                    **kwargs) -> "ModelArtifact":
        """A one-task binary or multiclass model (the only kind format 1 knew)."""
        kind = "binary" if len(classes) == 2 else "multiclass"
        return cls(model_name, [TaskHead(task, kind, tuple(classes), positive_index, threshold)], preprocessing,
                   state_dict, **kwargs)

    # The main task (heads[0]): what a single-task caller asks about.
    @property
    def classes(self) -> list[str]:
        return list(self.heads[0].classes)

    @property
    def task(self) -> str:
        return self.heads[0].name

    @property
    def positive_index(self) -> int | None:
        return self.heads[0].positive_index

    @property
    def threshold(self):
        return self.heads[0].threshold

    @property
    def is_binary(self) -> bool:
        return self.heads[0].kind == "binary"

    def build_model(self) -> nn.Module:
        model = create_model(self.model_name, num_classes=sum(h.outputs for h in self.heads),
                             in_chans=self.preprocessing.in_chans, pretrained=False, **self.model_kwargs)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def save(self, path: Path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / ARTIFACT_NAME
        # not asdict(self): it would deep-copy every weight tensor first
        payload = {f.name: getattr(self, f.name) for f in fields(self)
                   if f.name not in ("preprocessing", "state_dict", "heads")}
        payload.update(format=FORMAT, format_version=FORMAT_VERSION, preprocessing=self.preprocessing.to_dict(),
                       heads=[h.to_dict() for h in self.heads],
                       state_dict={k: v.detach().cpu() for k, v in self.state_dict.items()})
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ModelArtifact":
        path = Path(path)
        if path.is_dir():
            path = path / ARTIFACT_NAME
        if not path.is_file():
            raise MedclassError(f"{path}: no model artefact here (expected a run folder holding {ARTIFACT_NAME})")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several unrelated types for a foreign or damaged file
            raise MedclassError(f"{path}: not a readable medclass model ({exc.__class__.__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise MedclassError(f"{path}: not a medclass model artefact (format {FORMAT!r} expected)")
        if payload["format_version"] > FORMAT_VERSION:
            raise MedclassError(f"{path}: artefact format {payload['format_version']} is newer than this medclass "
                                f"reads ({FORMAT_VERSION}); upgrade medclass")
        version = payload.pop("format_version")
        payload.pop("format")
        payload["preprocessing"] = Preprocessing.from_dict(payload["preprocessing"])
        if version == 1:
            return cls.single_task(payload.pop("model_name"), payload.pop("classes"), payload.pop("preprocessing"),
                                   payload.pop("state_dict"), **payload)
        payload["heads"] = [TaskHead.from_dict(h) for h in payload["heads"]]
        return cls(**payload)

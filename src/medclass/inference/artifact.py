"""The model artefact: one file that carries everything needed to predict.

Weights, architecture, preprocessing, class names, positive class and threshold, test-time augmentation and
provenance. Training, evaluation, the CLI and (later) the server load it the same way. It is saved with
`torch.save` and loaded with `weights_only=True`, so opening an artefact from elsewhere runs no pickled code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from medclass.errors import MedclassError
from medclass.models import create_model
from medclass.transforms import Preprocessing

FORMAT = "medclass-model"
FORMAT_VERSION = 1
ARTIFACT_NAME = "model.pt"


@dataclass
class ModelArtifact:
    model_name: str
    classes: list[str]
    preprocessing: Preprocessing
    state_dict: dict
    task: str = "label"
    positive_index: int | None = None  # binary tasks: the column whose probability is thresholded
    threshold: float = 0.5
    tta: list[str] = field(default_factory=list)  # e.g. ["hflip"]: average over these views at predict time
    model_kwargs: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 2

    def build_model(self) -> nn.Module:
        model = create_model(self.model_name, num_classes=len(self.classes),
                             in_chans=self.preprocessing.in_chans, pretrained=False, **self.model_kwargs)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def save(self, path: Path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / ARTIFACT_NAME
        payload = {k: v for k, v in asdict(self).items() if k not in ("preprocessing", "state_dict")}
        payload.update(format=FORMAT, format_version=FORMAT_VERSION, preprocessing=self.preprocessing.to_dict(),
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
        payload.pop("format"), payload.pop("format_version")
        payload["preprocessing"] = Preprocessing.from_dict(payload["preprocessing"])
        return cls(**payload)

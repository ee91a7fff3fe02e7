"""Pretrained weights from a local file (air-gapped hospitals): .pth/.pt/.bin (torch) or .safetensors.

The file is read as untrusted input (weights only, no pickled code). What loaded and what did not is returned as a
report, written to the run's config and log: a head of another size is expected to be skipped; a file for another
architecture is refused by name instead of training from random weights without a word.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from medclass.core.errors import MedclassError

SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
MIN_LOADED = 0.5  # below this share of the model's tensors loaded, the file is for another architecture


@dataclass
class WeightsReport:
    file: str
    loaded: int
    total: int
    missing: list[str] = field(default_factory=list)  # in the model, not in the file: left at their initialisation
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model: ignored
    reshaped: list[str] = field(default_factory=list)  # in both with other shapes: the classifier, as a rule

    def to_dict(self) -> dict:
        return asdict(self)

    def not_loaded(self) -> list[str]:
        return self.missing + self.reshaped

    def summary(self) -> str:
        parts = [f"{self.file}: {self.loaded} of {self.total} tensors loaded"]
        for label, names in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("other shape, kept initialised", self.reshaped)):
            if names:
                parts.append(f"{label}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}")
        return "; ".join(parts)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise MedclassError(f"{path}: weights file must end in {', '.join(SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many unrelated types for foreign or damaged files
        raise MedclassError(f"{path}: not a readable weights file ({exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0][:160]})") from None
    for key in ("state_dict", "model", "model_state_dict"):  # training checkpoints wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MedclassError(f"{path}: holds no tensors by name (a state_dict was expected)")
    return state


def _own_name(key: str, own: dict) -> str:
    """The model's name for a file's key, unwrapping DDP, torch.compile and Lightning-module prefixes."""
    for prefix in ("module.", "_orig_mod.", "model."):
        if key not in own and key.startswith(prefix):
            key = key[len(prefix):]
    return key


def load_weights_file(model: nn.Module, path: Path, first_conv: str | None = None) -> WeightsReport:
    """Load what fits; a grayscale model gets the RGB first conv summed over its channels (timm's rule)."""
    own = model.state_dict()
    state = {_own_name(k, own): v for k, v in read_state_dict(path).items()}
    if first_conv and f"{first_conv}.weight" in state:
        key = f"{first_conv}.weight"
        if key in own and state[key].shape[1] != own[key].shape[1]:
            from timm.models import adapt_input_conv

            state[key] = adapt_input_conv(own[key].shape[1], state[key])
    fitting = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    report = WeightsReport(str(path), len(fitting), len(own), missing=sorted(k for k in own if k not in state),
                           unexpected=sorted(k for k in state if k not in own),
                           reshaped=sorted(k for k in state if k in own and state[k].shape != own[k].shape))
    if len(fitting) < MIN_LOADED * len(own):
        raise MedclassError(f"{path}: does not fit this architecture: {len(fitting)} of {len(own)} tensors match "
                            f"by name and shape (first missing: {', '.join(report.missing[:3]) or '-'}; first "
                            f"unexpected: {', '.join(report.unexpected[:3]) or '-'})")
    model.load_state_dict(fitting, strict=False)
    return report

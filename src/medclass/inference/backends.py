"""Backends: what turns a preprocessed batch into logits. The Predictor does the rest (decoding, preprocessing,
test-time views, temperature, softmax/sigmoid, thresholds) the same way whichever backend runs the network.

A backend is called with a float32 batch (N, C, H, W), already normalised, and returns the logits (N, outputs) as
float32 numpy: every head's outputs side by side, exactly as the artefact's network computes them.

`BACKENDS` is the one list of them: load_predictor, `medclass export` and the command line's help read it. PyTorch
registers here; every other runtime is one module of `medclass.export` that registers its `BackendEntry` on import
(export/onnx.py is the example to copy). Nothing here imports PyTorch or a runtime at module level: the command
line reads the registry for its help text, and loading it imports every module of `medclass.export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

import numpy as np

from medclass.core.registry import Registry
from medclass.core.wording import either

if TYPE_CHECKING:
    import torch

    from medclass.core.artifact import ModelArtifact


class Backend(Protocol):
    name: str
    files: tuple[Path, ...]  # the exported files it runs (empty for the torch backend)

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray: ...

    def network_bytes(self) -> Iterable[bytes] | None:
        """The network it runs (graph and weights, without metadata), as a served version hashes it; None: the
        artefact's own weights (ModelArtifact.version)."""


@dataclass(frozen=True)
class BackendEntry:
    """One runtime medclass predicts with.

    `run_file`: the file it reads in a run folder (e.g. "model.onnx"); None: the run's artefact itself.
    `suffixes`: the endings of the exported files it loads whatever backend was asked for (".onnx"); the longest
    match wins. `export(source, out=None, **options) -> ExportResult` writes `source` (a run folder, an artefact
    file or a ModelArtifact) for the runtime; `options` names the `medclass export` options it takes as keywords.
    `load(path, threads, device) -> (backend, artefact)`: the backend over an exported file and the artefact
    (without weights) its metadata describes. The torch entry has neither: the Predictor runs the artefact itself.
    """

    name: str
    run_file: str | None
    suffixes: tuple[str, ...]
    description: str  # one line, as help text shows it
    export: Callable[..., Any] | None = None
    load: Callable[[Path, int | None, str], tuple[Backend, ModelArtifact]] | None = None
    options: tuple[str, ...] = ()


BACKENDS: Registry[BackendEntry] = Registry("backend", plugins=("medclass.export",))


def register_backend(entry: BackendEntry) -> BackendEntry:
    return BACKENDS.register(entry.name, entry)


def backend_for_file(path: Path) -> BackendEntry | None:
    """The backend that loads `path` by its name's ending (model.onnx: onnx), or None (an artefact file)."""
    matches = [(len(suffix), entry) for _, entry in BACKENDS for suffix in entry.suffixes
               if path.name.endswith(suffix)]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def backend_choices() -> str:
    """The registered backends for help text, in registration order (torch first)."""
    return either(BACKENDS.names())


def as_float32(batch: np.ndarray | torch.Tensor) -> np.ndarray:
    """A batch as the contiguous float32 numpy array runtimes other than PyTorch take, from numpy or a tensor on
    any device (a tensor is told apart without importing torch: the registry's modules stay light)."""
    if not isinstance(batch, np.ndarray):
        batch = batch.detach().cpu().numpy()
    return np.ascontiguousarray(batch, dtype=np.float32)


class TorchBackend:
    """The artefact's network in eager PyTorch, on a CPU or a GPU. Explanations (Grad-CAM) need it: they
    differentiate through the network."""

    name = "torch"
    files = ()

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu"):
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = torch.as_tensor(batch).to(self.device)
            return self.model(batch).float().cpu().numpy()

    def with_features(self, batch: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The logits and the pooled features they are computed from (what the input guard reads)."""
        import torch

        from medclass.core.architectures import features_and_logits

        with torch.inference_mode():
            logits, features = features_and_logits(self.model, torch.as_tensor(batch).to(self.device))
            return logits.float().cpu().numpy(), features.float().cpu().numpy()

    def network_bytes(self) -> None:
        return None  # the network is the artefact's weights


# The first entry: registration order is the order help lists backends in, and torch is the default.
register_backend(BackendEntry("torch", None, (), "eager PyTorch, on a CPU or a GPU; explanations need it"))

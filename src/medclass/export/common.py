"""What every export shares: the result it reports, where it reads and writes, its check against PyTorch, the input
guard's tensors beside it, and a way to silence the converters' output.

An export's graph is `WithFeatures(model)`: its outputs are the logits and the pooled features the input guard
(inference/guard.py) scores, so an exported model assesses inputs as the artefact does. The guard's description
travels in the export's metadata; its tensors (a few MB at most, and not part of the graph) in
`guard_file(...)`, a safetensors file beside the export."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medclass.core.errors import MedclassError

if TYPE_CHECKING:
    import torch

    from medclass.core.artifact import ModelArtifact

INPUT_NAME, OUTPUT_NAME = "input", "logits"  # the network's tensors in an export (ONNX; int8's calibration feeds)
FEATURES_NAME = "features"  # the pooled features, the export's second output
GUARD_SUFFIX = ".guard.safetensors"  # the input guard's tensors: NAME.guard.safetensors beside the export NAME


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "torchscript" or "dynamo" (ONNX), "pnnx" (ncnn)
    max_logit_diff: float  # the runtime vs PyTorch on random inputs
    max_prob_diff: float
    summary: list[str] = field(default_factory=list)  # what `medclass export` prints, written by each export
    int8: dict | None = None  # export_onnx(..., int8=True): the int8 model's report (export/int8.py)
    max_feature_diff: float | None = None  # the pooled features, the input guard's (None: not compared)


def parity_text(runtime: str, result: ExportResult) -> str:
    features = "" if result.max_feature_diff is None else f", max |feature diff| {result.max_feature_diff:.2e}"
    return (f"{runtime} vs PyTorch on random inputs: max |logit diff| {result.max_logit_diff:.2e}, max |probability "
            f"diff| {result.max_prob_diff:.2e}{features}")


def guard_file(name: Path) -> Path:
    """Where the input guard's tensors go beside an export named `name` (model.onnx: model.onnx.guard.safetensors;
    for ncnn the NAME of NAME.param/.bin/.json: model.ncnn.guard.safetensors)."""
    return name.with_name(name.name + GUARD_SUFFIX)


def write_guard_file(artifact: ModelArtifact, name: Path) -> Path | None:
    """The artefact's guard tensors beside the export `name` (None, and any stale file removed, without a guard)."""
    from safetensors.torch import save_file

    path = guard_file(name)
    if artifact.guard is None:
        path.unlink(missing_ok=True)  # a guard file left by an earlier export would belong to other weights
        return None
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in artifact.guard_tensors.items()}
    save_file(tensors, str(path), metadata={"medclass": "input guard tensors", "detector": artifact.guard["detector"]})
    return path


def read_guard_file(artifact: ModelArtifact, name: Path) -> ModelArtifact:
    """`artifact` (read from an export's metadata) with its guard tensors from beside the export `name`."""
    if artifact.guard is None:
        return artifact
    path = guard_file(name)
    if not path.is_file():
        if not artifact.guard.get("tensors"):
            return artifact  # a guard on the logits alone (msp, energy) has no tensors to read
        raise MedclassError(f"{path}: not found; the export's input guard ({artifact.guard['detector']}) needs its "
                            "tensors, which `medclass export` writes beside it: copy it with the export, or export "
                            "again")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        artifact.guard_tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise MedclassError(f"{path}: not a readable safetensors file of input guard tensors ({exc})") from None
    return artifact


def beside(source: str | Path, run_file: str, suffix: str) -> Path:
    """Where an export of `source` goes by default: RUN/`run_file` for a run folder, else the artefact file's name
    with `suffix`."""
    source = Path(source)
    return source / run_file if source.is_dir() else source.with_suffix(suffix)


def export_source(source: ModelArtifact | str | Path, out: str | Path | None, default, caller: str
                  ) -> tuple[ModelArtifact, Path]:
    """The artefact an export reads and the path it writes (`default(source)` unless `out` is given; an in-memory
    ModelArtifact has no default)."""
    from medclass.core.artifact import ModelArtifact

    if isinstance(source, ModelArtifact):
        if out is None:
            raise MedclassError(f"{caller}: give `out` (where to write) for an in-memory ModelArtifact")
        return source, Path(out)
    return ModelArtifact.load(source), Path(out) if out is not None else default(source)


def compare_with_torch(artifact: ModelArtifact, model: torch.nn.Module, backend, n: int, seed: int = 0
                       ) -> tuple[float, float, float]:
    """Largest |logit|, |probability| and |pooled feature| difference between `backend` (its `with_features`)
    and the PyTorch model on n random inputs."""
    import torch

    from medclass.core.architectures import features_and_logits
    from medclass.core.heads import view_probabilities

    size, chans = artifact.preprocessing.img_size, artifact.preprocessing.in_chans
    x = torch.randn(n, chans, size, size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.inference_mode():
        reference, features = (t.float().numpy() for t in features_and_logits(model, x))
    got, got_features = backend.with_features(x)
    proba = [view_probabilities(artifact.heads, logits[None]) for logits in (reference, got)]
    return (float(np.abs(reference - got).max()), float(np.abs(proba[0] - proba[1]).max()),
            float(np.abs(features - got_features).max()))


@contextlib.contextmanager
def quiet():
    """The exporters report every graph step (prints, warnings, logging, and from C++ the whole graph when
    TorchScript gives up); medclass's own lines would drown."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()), open(os.devnull, "w") as null:
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            logging.disable(previous)

"""What every export shares: the result it reports, where it reads and writes, its check against PyTorch, and a
way to silence the converters' output."""

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


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "torchscript" or "dynamo" (ONNX), "pnnx" (ncnn)
    max_logit_diff: float  # the runtime vs PyTorch on random inputs
    max_prob_diff: float
    summary: list[str] = field(default_factory=list)  # what `medclass export` prints, written by each export
    int8: dict | None = None  # export_onnx(..., int8=True): the int8 model's report (export/int8.py)


def parity_text(runtime: str, result: ExportResult) -> str:
    return (f"{runtime} vs PyTorch on random inputs: max |logit diff| {result.max_logit_diff:.2e}, max |probability "
            f"diff| {result.max_prob_diff:.2e}")


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
                       ) -> tuple[float, float]:
    """Largest |logit| and |probability| difference between `backend` and the PyTorch model on n random inputs."""
    import torch

    from medclass.core.heads import view_probabilities

    size, chans = artifact.preprocessing.img_size, artifact.preprocessing.in_chans
    x = torch.randn(n, chans, size, size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.inference_mode():
        reference = model(x).float().numpy()
    got = backend(x)
    proba = [view_probabilities(artifact.heads, logits[None]) for logits in (reference, got)]
    return float(np.abs(reference - got).max()), float(np.abs(proba[0] - proba[1]).max())


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

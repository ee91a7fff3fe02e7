"""Export a model artefact to ONNX: the network exactly as the artefact's (input (N, C, H, W) float32, already
normalised; output the logits of every head side by side), a dynamic batch axis, and the artefact's metadata (heads
with thresholds and temperatures, preprocessing, TTA, model name, provenance, format) as JSON in the ONNX model's
`metadata_props`, so the .onnx file alone is enough to predict (`load_predictor("model.onnx")`).

Two exporters: TorchScript tracing (`dynamo=False`) first, since it takes about a second per model here; it cannot
export a few operations (adaptive pooling to a size that does not divide the input, as VGG at small inputs; the
antialiased bicubic resize of ViT's position embeddings), so on failure the torch.export-based exporter (`dynamo=True`,
through onnxscript), which handles every registered model but takes 5-30 s each. Both match PyTorch within 1e-5.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medclass.core.errors import MedclassError
from medclass.core.heads import view_probabilities
from medclass.core.artifact import ModelArtifact
from medclass.inference.backends import OnnxBackend
from medclass.core.rundir import RunDir

METADATA_KEY = "medclass"  # metadata_props entry holding the artefact's JSON
EXPORTER_KEY = "medclass_exporter"
INPUT_NAME, OUTPUT_NAME = "input", "logits"
DEFAULT_OPSET = 18


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "torchscript" or "dynamo"
    max_logit_diff: float  # ONNX Runtime vs PyTorch on random inputs
    max_prob_diff: float


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


def _export(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, dynamo: bool) -> None:
    if dynamo:
        shapes = ({0: torch.export.Dim("batch", min=1)},)
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=opset, dynamo=True, dynamic_shapes=shapes, external_data=False)
    else:
        axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=opset, dynamo=False, dynamic_axes=axes)


def default_output(source: str | Path) -> Path:
    """RUN/model.onnx for a run folder, else the artefact file's name with .onnx."""
    source = Path(source)
    return RunDir(source).onnx_file if source.is_dir() else source.with_suffix(".onnx")


def export_source(source: ModelArtifact | str | Path, out: str | Path | None, default, caller: str
                  ) -> tuple[ModelArtifact, Path]:
    """The artefact an export reads and the path it writes (`default(source)` unless `out` is given; an in-memory
    ModelArtifact has no default)."""
    if isinstance(source, ModelArtifact):
        if out is None:
            raise MedclassError(f"{caller}: give `out` (where to write) for an in-memory ModelArtifact")
        return source, Path(out)
    return ModelArtifact.load(source), Path(out) if out is not None else default(source)


def export_onnx(source: ModelArtifact | str | Path, out: str | Path | None = None, opset: int = DEFAULT_OPSET,
                check_images: int = 4, seed: int = 0) -> ExportResult:
    """Write the network and metadata of `source` (a run folder, an artefact file or a ModelArtifact) to `out`
    (default: `default_output`), then compare ONNX Runtime with PyTorch on `check_images` random inputs."""
    import onnx

    artifact, out = export_source(source, out, default_output, "export_onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = artifact.build_model()
    size, chans = artifact.preprocessing.img_size, artifact.preprocessing.in_chans
    example = torch.randn(2, chans, size, size, generator=torch.Generator().manual_seed(seed))  # 2: batch stays free
    partial = out.with_name(out.name + ".partial")
    exporter, failure = None, None
    for dynamo in (False, True):
        try:
            with quiet(), torch.no_grad():
                _export(model, example, partial, opset, dynamo)
            exporter = "dynamo" if dynamo else "torchscript"
            break
        except Exception as exc:  # the exporters raise many types; the last one's reason is reported
            failure = exc
    if exporter is None:
        partial.unlink(missing_ok=True)
        raise MedclassError(f"{artifact.model_name}: cannot be exported to ONNX opset {opset} "
                            f"({str(failure).splitlines()[0][:200]})")
    proto = onnx.load(str(partial))
    meta = {p.key: p.value for p in proto.metadata_props}
    meta |= {METADATA_KEY: json.dumps(artifact.metadata()), EXPORTER_KEY: exporter}
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name = "medclass"
    onnx.save(proto, str(out))
    partial.unlink(missing_ok=True)
    logit_diff, prob_diff = compare_with_torch(artifact, model, OnnxBackend(out), check_images, seed)
    return ExportResult(out, exporter, logit_diff, prob_diff)


def compare_with_torch(artifact: ModelArtifact, model: torch.nn.Module, backend, n: int, seed: int = 0
                       ) -> tuple[float, float]:
    """Largest |logit| and |probability| difference between `backend` and the PyTorch model on n random inputs."""
    size, chans = artifact.preprocessing.img_size, artifact.preprocessing.in_chans
    x = torch.randn(n, chans, size, size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.inference_mode():
        reference = model(x).float().numpy()
    got = backend(x)
    proba = [view_probabilities(artifact.heads, logits[None]) for logits in (reference, got)]
    return float(np.abs(reference - got).max()), float(np.abs(proba[0] - proba[1]).max())


def artifact_from_onnx(backend: OnnxBackend) -> ModelArtifact:
    """The artefact an exported model carries in its metadata, without weights (the ONNX graph holds them)."""
    meta = backend.session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise MedclassError(f"{backend.path}: ONNX model without medclass metadata (expected one made by "
                            "`medclass export RUN --format onnx`)")
    try:
        data = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError:
        raise MedclassError(f"{backend.path}: its medclass metadata is not valid JSON (damaged export)") from None
    return ModelArtifact.from_metadata(data, {}, backend.path)


def quantize_int8(run_dir: str | Path, **options) -> dict:
    """The int8 model of a run's export, with its measured accuracy change: see medclass.inference.quantize."""
    from medclass.inference.quantize import quantize_int8 as quantize

    return quantize(run_dir, **options)

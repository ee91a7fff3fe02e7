"""Export a model artefact to ONNX: the network exactly as the artefact's (input (N, C, H, W) float32, already
normalised; outputs "logits", every head's side by side, and "features", the pooled features the input guard
scores), a dynamic batch axis, and the artefact's metadata (heads with thresholds and temperatures, preprocessing,
TTA, the input guard, model name, provenance, format) as JSON in the ONNX model's `metadata_props`, so the .onnx file
is enough to predict (`load_predictor("model.onnx")`), with the guard's tensors beside it in
NAME.onnx.guard.safetensors (export/common.py) where the model has a guard; and the backend that runs it in ONNX
Runtime. An export made before the features output still predicts; only a guard that reads features refuses it.

Two exporters: TorchScript tracing (`dynamo=False`) first, since it takes about a second per model here; it cannot
export a few operations (adaptive pooling to a size that does not divide the input, as VGG at small inputs; the
antialiased bicubic resize of ViT's position embeddings), so on failure the torch.export-based exporter (`dynamo=True`,
through onnxscript), which handles every registered model but takes 5-30 s each. Both match PyTorch within 1e-5.

A new backend copies this module's shape: the backend class, `export_*` and a loader, one `register_backend` at
the end. PyTorch, onnx and onnxruntime are imported inside functions: looking the registry up imports this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medclass.core.errors import MedclassError
from medclass.export.common import FEATURES_NAME, INPUT_NAME, OUTPUT_NAME, ExportResult, beside, \
    compare_with_torch, export_source, parity_text, quiet, read_guard_file, write_guard_file
from medclass.inference.backends import BackendEntry, as_float32, register_backend

if TYPE_CHECKING:
    import torch

    from medclass.core.artifact import ModelArtifact

RUN_FILE = "model.onnx"
METADATA_KEY = "medclass"  # metadata_props entry holding the artefact's JSON
EXPORTER_KEY = "medclass_exporter"
DEFAULT_OPSET = 18


class OnnxBackend:
    """An exported network (`medclass export RUN --format onnx`) in ONNX Runtime: no PyTorch needed to predict,
    and usually faster on a CPU. `threads`: intra-op threads (None: ONNX Runtime's default, one per core).
    `device="cuda"` uses the CUDA provider where onnxruntime-gpu is installed (else the CPU)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu"):
        import onnxruntime as ort

        self.path = Path(path)
        self.files = (self.path,)
        if not self.path.is_file():
            raise MedclassError(f"{self.path}: no ONNX model here (make one with `medclass export RUN --format onnx`)")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types for a foreign or damaged file
            raise MedclassError(f"{self.path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.logits_name, self.has_features = outputs[0], FEATURES_NAME in outputs

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        return self.session.run([self.logits_name], {self.input_name: as_float32(batch)})[0].astype(np.float32,
                                                                                                   copy=False)

    def with_features(self, batch: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The logits and the pooled features (what the input guard reads), from one run of the graph."""
        if not self.has_features:
            raise MedclassError(f"{self.path}: exported without the pooled features the model's input guard reads "
                                "(made by an older medclass); export again with `medclass export RUN --format onnx`")
        logits, features = self.session.run([self.logits_name, FEATURES_NAME], {self.input_name: as_float32(batch)})
        return logits.astype(np.float32, copy=False), features.astype(np.float32, copy=False)

    def network_bytes(self) -> list[bytes]:
        """The graph and its weights; not the model's metadata_props, which also hold provenance (the version hashes
        the metadata that answers itself)."""
        import onnx

        return [onnx.load(str(self.path)).graph.SerializeToString()]


def _export(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, dynamo: bool) -> None:
    import torch

    from medclass.core.architectures import WithFeatures

    network, outputs = WithFeatures(model).eval(), [OUTPUT_NAME, FEATURES_NAME]
    if dynamo:
        shapes = ({0: torch.export.Dim("batch", min=1)},)
        torch.onnx.export(network, (example,), str(path), input_names=[INPUT_NAME], output_names=outputs,
                          opset_version=opset, dynamo=True, dynamic_shapes=shapes, external_data=False)
    else:
        axes = {name: {0: "batch"} for name in (INPUT_NAME, *outputs)}
        torch.onnx.export(network, (example,), str(path), input_names=[INPUT_NAME], output_names=outputs,
                          opset_version=opset, dynamo=False, dynamic_axes=axes)


def default_output(source: str | Path) -> Path:
    """RUN/model.onnx for a run folder, else the artefact file's name with .onnx."""
    return beside(source, RUN_FILE, ".onnx")


def export_onnx(source: ModelArtifact | str | Path, out: str | Path | None = None, opset: int = DEFAULT_OPSET,
                check_images: int = 4, seed: int = 0, int8: bool = False) -> ExportResult:
    """Write the network and metadata of `source` (a run folder, an artefact file or a ModelArtifact) to `out`
    (default: `default_output`), then compare ONNX Runtime with PyTorch on `check_images` random inputs. `int8`
    (a run folder only: its validation images calibrate it): also the int8 model beside `out` and its measured
    accuracy change (export/int8.py), in the result's `int8`."""
    if int8 and not (isinstance(source, (str, Path)) and Path(source).is_dir()):
        raise MedclassError(f"{source}: --int8 needs the run folder (its validation images calibrate the model)")
    artifact, out = export_source(source, out, default_output, "export_onnx")
    model = artifact.build_model()
    exporter = write_onnx(artifact, model, out, opset, seed)
    guard = write_guard_file(artifact, out)
    logit_diff, prob_diff, feature_diff = compare_with_torch(artifact, model, OnnxBackend(out), check_images, seed)
    result = ExportResult(out, exporter, logit_diff, prob_diff, max_feature_diff=feature_diff)
    beside_it = f" (+ {guard.name})" if guard else ""
    result.summary = [f"exported {out}{beside_it} ({exporter} exporter); {parity_text('ONNX Runtime', result)}"]
    if int8:
        from medclass.export.int8 import quantize_int8, report_lines

        int8_out = None if out == default_output(source) else out.with_name(out.name.removesuffix(".onnx")
                                                                             + ".int8.onnx")
        result.int8 = quantize_int8(source, fp32=out, out=int8_out)
        result.summary += report_lines(result.int8)
        result.summary.append(f"int8 model: {result.int8['files']['int8']} (report: {result.int8['report_file']})")
    return result


def write_onnx(artifact: ModelArtifact, model: torch.nn.Module, out: Path, opset: int, seed: int) -> str:
    """Export `model` to `out` with the artefact's metadata; returns the exporter that managed it."""
    import onnx
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
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
    return exporter


def artifact_from_onnx(backend: OnnxBackend) -> ModelArtifact:
    """The artefact an exported model carries in its metadata, without weights (the ONNX graph holds them)."""
    from medclass.core.artifact import ModelArtifact

    meta = backend.session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise MedclassError(f"{backend.path}: ONNX model without medclass metadata (expected one made by "
                            "`medclass export RUN --format onnx`)")
    try:
        data = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError:
        raise MedclassError(f"{backend.path}: its medclass metadata is not valid JSON (damaged export)") from None
    return ModelArtifact.from_metadata(data, {}, backend.path)


def load_onnx(path: Path, threads: int | None, device: str) -> tuple[OnnxBackend, ModelArtifact]:
    runtime = OnnxBackend(path, threads=threads, device=device)
    return runtime, read_guard_file(artifact_from_onnx(runtime), runtime.path)


register_backend(BackendEntry("onnx", RUN_FILE, (".onnx",), "ONNX Runtime", export=export_onnx, load=load_onnx,
                              options=("opset", "int8")))

"""Export a model artefact for ncnn (Tencent's inference framework) through pnnx, its PyTorch converter.

Why a second runtime beside ONNX Runtime: on this project's 2-core CPU, ONNX Runtime and OpenVINO run ResNet-18 at
1.6-1.7x eager PyTorch and already sit near the cores' fp32 FLOP peak; ncnn computes 3x3 convolutions with Winograd
transforms, which need fewer multiplications for the same sums, and reaches 2x and more with probabilities within
1e-6 of PyTorch (`benchmarks/predict_speed.py`).

Files, beside each other: NAME.param (the graph), NAME.bin (the weights, fp32: pnnx's default fp16 weights moved
probabilities by 3e-4) and NAME.json (the artefact's metadata, as the ONNX export embeds it, plus the check against
PyTorch). A run's are RUN/model.ncnn.{param,bin,json}.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from medclass.core.errors import MedclassError
from medclass.core.artifact import ModelArtifact
from medclass.inference.backends import NcnnBackend
from medclass.inference.onnx_export import ExportResult, compare_with_torch, export_source, quiet
from medclass.core.rundir import RunDir


def default_ncnn_output(source: str | Path) -> Path:
    """RUN/model.ncnn.param for a run folder, else the artefact file's name with .ncnn.param."""
    source = Path(source)
    return RunDir(source).ncnn_file if source.is_dir() else source.with_suffix(".ncnn.param")


def export_ncnn(source: ModelArtifact | str | Path, out: str | Path | None = None, check_images: int = 4,
                seed: int = 0) -> ExportResult:
    """Write `source` (a run folder, an artefact file or a ModelArtifact) as an ncnn model at `out` (the .param
    path; default `default_ncnn_output`), then compare ncnn with PyTorch on `check_images` random inputs."""
    try:
        import pnnx
    except ImportError:
        raise MedclassError("the ncnn export needs the pnnx and ncnn packages: pip install 'medclass[ncnn]'") from None
    artifact, param = export_source(source, out, default_ncnn_output, "export_ncnn")
    if param.suffix != ".param":
        raise MedclassError(f"{param}: an ncnn model is named NAME.param (its weights go to NAME.bin beside it)")
    param.parent.mkdir(parents=True, exist_ok=True)
    model = artifact.build_model()
    size, chans = artifact.preprocessing.img_size, artifact.preprocessing.in_chans
    example = torch.randn(1, chans, size, size, generator=torch.Generator().manual_seed(seed))
    with tempfile.TemporaryDirectory() as tmp:  # pnnx also writes its own graph, a TorchScript file and scripts
        graph, weights = Path(tmp) / "model.ncnn.param", Path(tmp) / "model.ncnn.bin"
        try:
            with quiet(), torch.no_grad():
                pnnx.export(model, str(Path(tmp) / "model.pt"), (example,), fp16=False, ncnnparam=str(graph),
                            ncnnbin=str(weights))
        except Exception as exc:  # tracing and the converter raise many types
            raise MedclassError(f"{artifact.model_name}: cannot be converted for ncnn "
                                f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None
        if not (graph.is_file() and weights.is_file()):
            raise MedclassError(f"{artifact.model_name}: pnnx wrote no ncnn model (an operation it cannot convert)")
        graph.replace(param)
        weights.replace(param.with_suffix(".bin"))
    backend = NcnnBackend(param)
    logit_diff, prob_diff = compare_with_torch(artifact, model, backend, check_images, seed)
    meta = {"medclass": artifact.metadata(param), "exporter": f"pnnx {getattr(pnnx, '__version__', '')}".strip(),
            "max_logit_diff": logit_diff, "max_prob_diff": prob_diff}
    param.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return ExportResult(param, "pnnx", logit_diff, prob_diff)


def artifact_from_ncnn(backend: NcnnBackend) -> ModelArtifact:
    """The artefact an ncnn export describes in its NAME.json, without weights (NAME.bin holds them)."""
    path = backend.path.with_suffix(".json")
    if not path.is_file():
        raise MedclassError(f"{path}: not found; an ncnn model needs the metadata `medclass export --format ncnn` "
                            "writes beside it")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise MedclassError(f"{path}: not valid JSON (damaged export)") from None
    if not isinstance(meta, dict) or "medclass" not in meta:
        raise MedclassError(f"{path}: no 'medclass' metadata (expected one written by `medclass export`)")
    return ModelArtifact.from_metadata(meta["medclass"], {}, path)

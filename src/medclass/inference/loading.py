"""One way to get a Predictor from whatever the user holds: a run folder, an artefact file, an exported .onnx or
.ncnn.param file or a ModelArtifact, on the PyTorch, ONNX Runtime or ncnn backend."""

from __future__ import annotations

from pathlib import Path

from medclass.core.errors import MedclassError
from medclass.core.artifact import ModelArtifact
from medclass.inference.backends import BACKENDS, NcnnBackend, OnnxBackend
from medclass.inference.predictor import Predictor
from medclass.core.rundir import RunDir


def load_predictor(source: str | Path | ModelArtifact, backend: str = "torch", device: str = "cpu",
                   batch_size: int = 64, threads: int | None = None) -> Predictor:
    """`source`: a run folder (backend "torch": its model.safetensors or older model.pt; "onnx": its model.onnx;
    "ncnn": its model.ncnn.param), an artefact file, an exported file (.onnx: ONNX Runtime, .param: ncnn; the
    export's metadata holds heads, preprocessing and TTA) or a ModelArtifact (torch only). `threads`: the ONNX
    Runtime or ncnn threads."""
    if backend not in BACKENDS:
        raise MedclassError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if isinstance(source, ModelArtifact):
        if backend != "torch":
            raise MedclassError(f"an in-memory ModelArtifact runs on the torch backend; for {backend} give the "
                                "exported file or the run folder holding it")
        return Predictor(source, device=device, batch_size=batch_size)
    path = Path(source)
    exported = {".onnx": "onnx", ".param": "ncnn"}.get(path.suffix)
    if exported or (backend != "torch" and path.is_dir()):
        backend = exported or backend
        run = RunDir(path) if path.is_dir() else None
        if run:
            path = run.exported_file(backend)
            if not path.is_file():
                raise MedclassError(f"{path}: not found; export the run first with `medclass export {source} "
                                    f"--format {backend}`")
        runtime, artifact = exported_model(path, backend, threads, device)
        saved = run.saved_artifact() if run else None
        if saved and not same_decisions(artifact, ModelArtifact.load(saved, weights=False)):
            raise MedclassError(f"{path}: exported before the run's thresholds, calibration or preprocessing changed "
                                f"(e.g. by `medclass threshold`); export again with `medclass export {source} "
                                f"--format {backend}`")
        return Predictor(artifact, batch_size=batch_size, backend=runtime)
    if backend != "torch":
        raise MedclassError(f"{path}: the {backend} backend needs a run folder or an exported file")
    return Predictor(ModelArtifact.load(path), device=device, batch_size=batch_size)


def exported_model(path: Path, backend: str, threads: int | None, device: str):
    """The runtime of an exported file and the artefact (without weights) its metadata describes."""
    if backend == "ncnn":
        from medclass.inference.ncnn_export import artifact_from_ncnn

        runtime = NcnnBackend(path, threads=threads)
        return runtime, artifact_from_ncnn(runtime)
    from medclass.inference.onnx_export import artifact_from_onnx

    runtime = OnnxBackend(path, threads=threads, device=device)
    return runtime, artifact_from_onnx(runtime)


def same_decisions(exported: ModelArtifact, saved: ModelArtifact) -> bool:
    """Whether an export still decides as the run's artefact does (its metadata may predate a retuning)."""
    return (exported.heads, exported.preprocessing, exported.tta) == (saved.heads, saved.preprocessing, saved.tta)

"""One way to get a Predictor from whatever the user holds: a run folder, an artefact file, an exported .onnx file
or a ModelArtifact, on the PyTorch or the ONNX Runtime backend."""

from __future__ import annotations

from pathlib import Path

from medclass.errors import MedclassError
from medclass.inference.artifact import ModelArtifact
from medclass.inference.backends import BACKENDS, OnnxBackend
from medclass.inference.predictor import Predictor
from medclass.rundir import RunDir


def load_predictor(source: str | Path | ModelArtifact, backend: str = "torch", device: str = "cpu",
                   batch_size: int = 64, threads: int | None = None) -> Predictor:
    """`source`: a run folder (backend "torch": its model.safetensors or older model.pt; "onnx": its model.onnx),
    an artefact file, an .onnx file (always ONNX Runtime: its metadata holds heads, preprocessing and TTA) or a
    ModelArtifact (torch only). `threads`: ONNX Runtime intra-op threads."""
    from medclass.inference.onnx_export import artifact_from_onnx

    if backend not in BACKENDS:
        raise MedclassError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if isinstance(source, ModelArtifact):
        if backend == "onnx":
            raise MedclassError("an in-memory ModelArtifact runs on the torch backend; for ONNX Runtime give the "
                                ".onnx file or the run folder holding model.onnx")
        return Predictor(source, device=device, batch_size=batch_size)
    path = Path(source)
    if path.suffix == ".onnx" or (backend == "onnx" and path.is_dir()):
        run = RunDir(path) if path.is_dir() else None
        if run:
            path = run.onnx_file
            if not path.is_file():
                raise MedclassError(f"{path}: not found; export the run first with `medclass export {source} "
                                    "--format onnx`")
        onnx = OnnxBackend(path, threads=threads, device=device)
        artifact = artifact_from_onnx(onnx)
        saved = run.saved_artifact() if run else None
        if saved and not same_decisions(artifact, ModelArtifact.load(saved, weights=False)):
            raise MedclassError(f"{path}: exported before the run's thresholds, calibration or preprocessing changed "
                                f"(e.g. by `medclass threshold`); export again with `medclass export {source} "
                                "--format onnx`")
        return Predictor(artifact, batch_size=batch_size, backend=onnx)
    if backend == "onnx":
        raise MedclassError(f"{path}: the onnx backend needs a run folder or an .onnx file")
    return Predictor(ModelArtifact.load(path), device=device, batch_size=batch_size)


def same_decisions(exported: ModelArtifact, saved: ModelArtifact) -> bool:
    """Whether an export still decides as the run's artefact does (its metadata may predate a retuning)."""
    return (exported.heads, exported.preprocessing, exported.tta) == (saved.heads, saved.preprocessing, saved.tta)

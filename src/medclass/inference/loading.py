"""One way to get a Predictor from whatever the user holds: a run folder, an artefact file, an exported file or a
ModelArtifact, on any registered backend (inference/backends.py `BACKENDS`: PyTorch, ONNX Runtime, ncnn)."""

from __future__ import annotations

from pathlib import Path

from medclass.core.errors import MedclassError
from medclass.core.artifact import ModelArtifact
from medclass.inference.backends import BACKENDS, BackendEntry, backend_for_file
from medclass.inference.predictor import Predictor
from medclass.core.rundir import RunDir


def load_predictor(source: str | Path | ModelArtifact, backend: str = "torch", device: str = "cpu",
                   batch_size: int = 64, threads: int | None = None) -> Predictor:
    """`source`: a run folder (backend "torch": its model.safetensors or older model.pt; another backend: the file
    its export wrote there, e.g. model.onnx, model.ncnn.param), an artefact file, an exported file (its ending
    picks the backend, e.g. .onnx: ONNX Runtime, .param: ncnn; the export's metadata holds heads, preprocessing
    and TTA) or a ModelArtifact (torch only). `threads`: the runtime's threads (ONNX Runtime, ncnn)."""
    if backend not in BACKENDS:
        raise MedclassError(f"backend must be one of {', '.join(BACKENDS.names())}; got {backend!r}")
    entry = BACKENDS.get(backend)
    if isinstance(source, ModelArtifact):
        if entry.load:
            raise MedclassError(f"an in-memory ModelArtifact runs on the torch backend; for {backend} give the "
                                "exported file or the run folder holding it")
        return Predictor(source, device=device, batch_size=batch_size)
    path = Path(source)
    exported = backend_for_file(path)
    if exported or (entry.load and path.is_dir()):
        return exported_predictor(source, exported or entry, device, batch_size, threads)
    if entry.load:
        raise MedclassError(f"{path}: the {backend} backend needs a run folder or an exported file")
    return Predictor(ModelArtifact.load(path), device=device, batch_size=batch_size)


def exported_predictor(source: str | Path, entry: BackendEntry, device: str, batch_size: int,
                       threads: int | None) -> Predictor:
    """The Predictor over an exported file, or over the one a run folder holds for `entry`; a run's export must
    still decide as the run's artefact does."""
    path = Path(source)
    run = RunDir(path) if path.is_dir() else None
    if run:
        path = run.exported_file(entry.run_file)
        if not path.is_file():
            raise MedclassError(f"{path}: not found; export the run first with `medclass export {source} "
                                f"--format {entry.name}`")
    runtime, artifact = entry.load(path, threads, device)
    saved = run.saved_artifact() if run else None
    if saved and not same_decisions(artifact, ModelArtifact.load(saved, weights=False)):
        raise MedclassError(f"{path}: exported before the run's thresholds, calibration, preprocessing or input "
                            f"guard changed (e.g. by `medclass threshold`); export again with `medclass export {source} "
                            f"--format {entry.name}`")
    return Predictor(artifact, batch_size=batch_size, backend=runtime)


def same_decisions(exported: ModelArtifact, saved: ModelArtifact) -> bool:
    """Whether an export still decides and assesses inputs as the run's artefact does (its metadata may predate a
    retuning, or a guard refitted or added)."""
    return (exported.heads, exported.preprocessing, exported.tta, exported.guard) == \
        (saved.heads, saved.preprocessing, saved.tta, saved.guard)

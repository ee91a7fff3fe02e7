"""The models a server answers with: each Predictor with its name, version, test metrics and one lock.

Answers are `Prediction` values (inference/prediction.py) made from the logits as `medclass predict` makes them, so
the server's labels and probabilities are exactly those of the command line for the same file; the JSON is the
value's own rendering (`Prediction.to_dict`). Each answer carries the input guard's verdict in `extras.input_guard`
(inference/guard.py), computed as `Predictor.predictions` computes it: the cheap checks on the decoded image, the
detector on the pooled features of the same forward that gave the probabilities.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from medclass.core.errors import MedclassError
from medclass.evaluation.report import HEADLINE
from medclass.explain.options import ExplainOptions
from medclass.explain.predicted import explain as explain_images
from medclass.core.heads import TaskHead, view_probabilities
from medclass.inference.backends import BACKENDS
from medclass.inference.guard import NOT_FITTED, InputGuard
from medclass.inference.prediction import predictions_from_probabilities, threshold_of, threshold_source
from medclass.inference.predictor import NetworkOutputs, Predictor, with_assessments
from medclass.core.rundir import RunDir
from medclass.serve.about import about, chance_warnings
from medclass.serve.batching import MicroBatcher
DEFAULT_MAX_BATCH = 16  # most requests one forward takes; chosen by benchmarks/serve_load.py (docs/serving.md)


@dataclass
class ServedModel:
    name: str
    predictor: Predictor
    version: str  # sha256 of what answers: the weights or exported network, and the metadata that answers
    test_metrics: dict | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    # One forward (or Grad-CAM, whose hooks live on the shared network) at a time per model: see serve/app.py.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    batcher: MicroBatcher = field(init=False, repr=False)

    def __post_init__(self):
        self.batcher = MicroBatcher(self._forward, self.max_batch, self.lock, self.name)

    def _forward(self, uploads: list[tuple[Image.Image, list[str]]]) -> NetworkOutputs:
        """One forward over the waiting uploads, each (image, its cheap-check findings): the logits, and the pooled
        features when the input guard reads them; the batcher gives each request its rows (`take`)."""
        predictor = self.predictor
        batch = predictor.preprocess([image for image, _ in uploads])
        return predictor.forward_outputs(batch, [found for _, found in uploads])

    @property
    def warnings(self) -> list[str]:
        """Why this model's answers may be no better than chance (serve/about.py); empty when nothing says so."""
        return chance_warnings(self.predictor.artifact, self.test_metrics)

    def card(self) -> dict:
        """What /models says about this model: what it is for (description, data, modality, input, tasks), how it
        decides (per task: threshold, calibration, prediction sets), its input guard, its test metrics, the
        explanations it offers and any warning."""
        artifact = self.predictor.artifact
        return {"name": self.name, "version": self.version, "architecture": artifact.model_name,
                "backend": self.predictor.backend.name, **about(artifact, self.predictor.backend.name),
                "tasks": [task_card(h) for h in self.predictor.heads], "input_guard": guard_card(self.predictor.guard),
                "test_metrics": self.test_metrics, "warnings": self.warnings, "batching": self.batcher.stats()}

    def predict(self, image: Image.Image, explain: ExplainOptions | None = None) -> dict:
        """{tasks: {task: {label, probabilities, threshold, threshold_source, calibrated, prediction_set?}},
        extras: {input_guard: {fitted, in_distribution, score, threshold, detector, reasons, message}},
        explanation?}; the explanation: {method, task, class, probability, boxes: [{x0, y0, x1, y1, score, label}]
        in the image's own pixels, best first, peak, polarity (Otsu), image_size: [width, height], overlay_png}."""
        predictor = self.predictor
        found, = predictor.input_problems([image])  # cheap Pillow work, here in the request's thread
        outputs = self.batcher([(image, found)])  # preprocessed and run with the requests waiting beside it
        proba = view_probabilities(predictor.heads, outputs.logits)
        explanation = None
        with self.lock:  # the guard's detector and Grad-CAM's hooks are shared by every request of this model
            guard = predictor.assess(outputs)
            if explain:  # the probabilities explained are the ones just computed
                explanation = explain_images(predictor, [image], explain, proba=proba)[0]
        prediction, = with_assessments(predictions_from_probabilities(predictor.heads, proba), guard)
        answer = prediction.to_dict()
        if explanation is not None:
            answer["explanation"] = explanation.to_dict() | {"image_size": list(image.size),
                                                             "overlay_png": overlay_png(image, explanation)}
        return answer


def task_card(head: TaskHead) -> dict:
    # getattr: artefacts loaded through an older TaskHead have no prediction sets at all
    sets = getattr(head, "prediction_sets", None)
    return {"name": head.name, "kind": head.kind, "classes": list(head.classes), "positive_class": head.positive_class,
            "threshold": threshold_of(head), "threshold_source": threshold_source(head),
            "temperature": head.temperature, "calibrated": head.temperature != 1.0,
            "decision": head.describe_decision(),
            "prediction_sets": None if sets is None else sets.to_dict() | {"description": sets.describe()}}


def guard_card(guard: InputGuard | None) -> dict:
    """/models' account of the input guard: its detector, threshold and the share of validation images it accepts
    (`accept` the target, `val_accepted` as measured), or that none is fitted."""
    if guard is None:
        return {"fitted": False, "message": NOT_FITTED}
    return {"fitted": True, "detector": guard.detector, "description": guard.entry.description,
            "threshold": float(guard.threshold), "accept": float(guard.accept),
            "val_accepted": guard.record.get("val_accepted"), "colour_trained": guard.stats.colour_trained}


def overlay_png(image: Image.Image, explanation) -> str:
    """The overlay (a CAM's heatmap, the boxes, the caption) as base64 PNG text."""
    from medclass.explain.overlay import overlay_image

    picture = overlay_image(image, explanation, explanation.boxes, (), explanation.caption)
    return png_base64(Image.fromarray(picture))


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def load_model(name: str, source, backend: str = "torch", max_batch: int = DEFAULT_MAX_BATCH) -> ServedModel:
    """A ServedModel from a Predictor or a path (run folder, artefact or exported file)."""
    from medclass.inference import load_predictor

    if isinstance(source, Predictor):
        return ServedModel(name, source, source.version, max_batch=max_batch)
    path = Path(source)
    run = RunDir(path) if path.is_dir() else None
    if run:
        run.check()
    predictor = load_predictor(path, backend=backend)
    return ServedModel(name, predictor, predictor.version, test_metrics(run) if run else None, max_batch)


def test_metrics(run: RunDir) -> dict | None:
    """{task: {metric: value, metric_ci: [low, high]}} from RUN/evaluation/test/metrics.json, or None."""
    path = run.evaluation_dir("test") / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MedclassError(f"{path}: not valid JSON ({exc}); run `medclass evaluate` again") from None
    sections = metrics.get("tasks") or {metrics.get("task", "label"): metrics}
    return {task: headline(section) for task, section in sections.items()}


def headline(section: dict) -> dict:
    """The task's headline numbers, those of the evaluation report (`names`: metric key -> name, in its order),
    each with its CI when bootstrapped."""
    ci = section.get("ci") or {}
    found = {"n": section.get("n"), "names": {}}
    for name, key in HEADLINE[section["kind"]]:
        if key in section and _finite(section[key]):
            found["names"][key] = name
            found[key] = section[key]
            if key in ci:
                found[f"{key}_ci"] = ci[key]
    if "level" in ci:
        found["ci_level"] = ci["level"]
    return found


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def model_sources(runs: list[Path] | None, models_dir: Path | None, backend: str = "torch") -> dict[str, Path]:
    """{name: run folder}: the runs given, or every run below `models_dir` (one level), each named by its folder.
    Checked up front, so a wrong path stops the command with its reason before a port is opened."""
    if bool(runs) == bool(models_dir):
        raise MedclassError("give run folders or --models-dir DIR (one of them)")
    if models_dir:
        if not Path(models_dir).is_dir():
            raise MedclassError(f"{models_dir}: no such folder")
        runs = sorted(p for p in Path(models_dir).iterdir() if p.is_dir() and RunDir(p).saved_artifact())
        if not runs:
            raise MedclassError(f"{models_dir}: holds no run folder (a subfolder with model.safetensors)")
    sources = {}
    for run in map(Path, runs):
        name = run.stem if run.is_file() else run.resolve().name
        if name in sources:
            raise MedclassError(f"{run}: model name {name!r} is taken by {sources[name]}; rename a run folder")
        if run.is_dir():
            RunDir(run).check()
            exported = RunDir(run).exported_file(BACKENDS.get(backend).run_file)
            if exported and not exported.is_file():
                raise MedclassError(f"{run}: holds no {exported.name}; export it first with `medclass export {run} "
                                    f"--format {backend}`")
        elif not run.is_file():
            raise MedclassError(f"{run}: no such run folder or model file")
        sources[name] = run
    return sources

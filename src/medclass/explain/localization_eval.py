"""Localisation scoring for `medclass localize-eval`: explain every boxed (image, class) pair of a dataset with each
method's Explainer (explain/explainer.py) and score its best box and its point against the ground truth
(explain/localize.py: IoBB, the pointing game, random baselines)."""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from medclass.data.base import Box, ImageDataset, Sample
from medclass.core.errors import DataWarning, MedclassError
from medclass.explain.explainer import EXPLAINERS, Explainer, Explanation, ModelParts, build_explainer, method_names
from medclass.explain.localize import LocalizationResult, random_box_like, random_point
from medclass.explain.options import CAM_THRESHOLD, OTSU, ExplainOptions
from medclass.explain.overlay import overlay_image, save_overlay
from medclass.core.rundir import RunDir

DEFAULT_METHODS = ("gradcam", OTSU)
RESULTS = "localization.json"


@dataclass(frozen=True)
class Pair:
    """One image and one class it has ground-truth boxes of."""

    sample: Sample
    class_name: str
    truth: tuple[Box, ...]


def boxed_pairs(samples: Sequence[Sample], classes: Sequence[str]) -> list[Pair]:
    """Every (image, class) with a box of that class; a box label 'A|B' counts for both. Classes the model does not
    know are left out, with a warning naming them."""
    pairs, unknown = [], set()
    for sample in samples:
        by_class = defaultdict(list)
        for box in sample.boxes:
            for name in box.label.split("|"):
                by_class[name.strip()].append(box)
        for name, truth in by_class.items():
            if name in classes:
                pairs.append(Pair(sample, name, tuple(truth)))
            else:
                unknown.add(name)
    if unknown:
        warnings.warn(f"boxes of {', '.join(sorted(unknown))} left out: not a class of the model", DataWarning,
                      stacklevel=2)
    return pairs


def check_methods(methods: Sequence[str]) -> list[str]:
    wrong = [m for m in methods if m not in EXPLAINERS]
    if wrong or not methods:
        raise MedclassError(f"--method {','.join(methods)}: expected a comma-separated list of "
                            f"{', '.join(method_names())}")
    return list(dict.fromkeys(methods))


def explain_options(methods: Sequence[str], polarity: str | None, box_threshold: float,
                    modality: str | None) -> list[ExplainOptions]:
    """The options of each method: `polarity` None takes the model's modality's (ultrasound: dark)."""
    return [ExplainOptions(m, polarity, box_threshold).resolved(modality) for m in check_methods(methods)]


def localize_samples(parts: ModelParts, dataset: ImageDataset, samples: Sequence[Sample], *,
                     methods: Sequence[str] = DEFAULT_METHODS, seed: int = 0, polarity: str | None = None,
                     overlay_dir: Path | None = None, n_overlays: int = 6, batch_size: int = 16,
                     box_threshold: float = CAM_THRESHOLD, modality: str | None = None) -> LocalizationResult:
    """Score each method on every boxed (image, class) pair of the model of `parts`; each explains the pair's
    class. Overlays of the first `n_overlays` pairs go to `overlay_dir`. `polarity` (Otsu) None: the one of the
    model's `modality`."""
    options = explain_options(methods, polarity, box_threshold, modality)
    explainers = [build_explainer(parts, option) for option in options]
    pairs = boxed_pairs(samples, [c for h in parts.heads for c in h.classes])
    if not pairs:
        raise MedclassError("no box is of a class the model predicts; nothing to score")
    result = LocalizationResult([o.method for o in options], seed, n_images=len({p.sample.source for p in pairs}),
                                settings={"otsu_polarity": options[0].polarity, "cam_box_threshold": box_threshold,
                                          "model": parts.model_name, **({"modality": modality} if modality else {})})
    rngs = [np.random.default_rng([seed, i]) for i in range(len(options))]  # one stream per method
    shown = {id(p): i for i, p in enumerate(pairs[:n_overlays])} if overlay_dir else {}
    for class_name, group in grouped(pairs):
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            images = [dataset.load_image(p.sample) for p in chunk]
            for explainer, rng in zip(explainers, rngs):
                explained = score_chunk(result, explainer, rng, chunk, images, class_name)
                for pair, image, explanation in zip(chunk, images, explained):
                    if id(pair) in shown:
                        name = f"{shown[id(pair)]:02d}_{safe(Path(pair.sample.source).stem)}_{safe(class_name)}"
                        write_overlay(overlay_dir / f"{name}_{safe(explainer.method)}.png", image, explanation,
                                      pair)
    return result


def grouped(pairs: list[Pair]) -> list[tuple[str, list[Pair]]]:
    """Pairs by class, so each CAM batch explains one class."""
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.class_name, []).append(pair)
    return list(groups.items())


def score_chunk(result: LocalizationResult, explainer: Explainer, rng: np.random.Generator, chunk: list[Pair],
                images: list[Image.Image], class_name: str) -> list[Explanation]:
    """Explain `class_name` on each pair's image and score its best box and point, the random baseline's drawn
    beside (box first, then point, per pair: the seeded streams of before)."""
    explained = explainer.explain_images(images, class_name=class_name)
    for pair, image, explanation in zip(chunk, images, explained):
        box = explanation.boxes[0] if explanation.boxes else None
        random_box = random_box_like(box, image.size, rng) if box is not None else None
        result.add(explainer.method, class_name, box, explanation.point, pair.truth, random_box,
                   random_point(image.size, rng))
    return explained


def write_overlay(path: Path, image: Image.Image, explanation: Explanation, pair: Pair) -> None:
    """A heatmap's overlay with all its boxes and caption; without a heatmap (Otsu), the image and its best box."""
    if explanation.heatmap is not None:
        save_overlay(path, image, explanation, pair.truth)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    caption = f"{explanation.method}: best box (truth: {pair.class_name})"
    best = explanation.boxes[:1]
    Image.fromarray(overlay_image(image, None, best, pair.truth, caption)).save(path)


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace("+", "p"))


def localize_eval(run_dir: str | Path, data: str | None = None, split: str = "test", box_file: str | None = None,
                  methods: Sequence[str] = DEFAULT_METHODS, out: str | Path | None = None, seed: int = 0, *,
                  polarity: str | None = None, n_overlays: int = 6, reader_options: dict | None = None,
                  box_threshold: float = CAM_THRESHOLD) -> tuple[LocalizationResult, Path]:
    """Score a run's explanations on data with boxes; writes OUT/localization.json and overlays (OUT defaults to
    RUN/localization). Returns the result and OUT. `polarity` (Otsu) None: the one of the run's modality."""
    from medclass.explain.boxdata import boxed_samples

    run = RunDir(run_dir).check()
    artifact = run.artifact()
    options = explain_options(methods, polarity, box_threshold, artifact.modality)  # refused before any image
    dataset, samples = boxed_samples(run, data, split, box_file, reader_options)
    out = Path(out) if out else run.path / "localization"
    network = artifact.build_model() if any(o.uses_network for o in options) else None  # Otsu alone needs none
    parts = ModelParts(heads=tuple(artifact.heads), preprocessing=artifact.preprocessing, network=network,
                       model_name=artifact.model_name)
    result = localize_samples(parts, dataset, samples, methods=methods, seed=seed, polarity=polarity,
                              overlay_dir=out / "overlays", n_overlays=n_overlays, box_threshold=box_threshold,
                              modality=artifact.modality)
    result.write_json(out / RESULTS)
    return result, out

"""Explanations: CAMs of any task and class (pytorch-grad-cam), boxes from CAMs or classic Otsu contours,
overlays, and localisation scores against ground-truth boxes (ChestX-ray8's IoBB and the pointing game).

`explain(predictor, images, method)` explains a Predictor's answers. Each method is an `Explainer` (explainer.py)
registered in `EXPLAINERS` by a module of `medclass.explain.methods`.

Names load on first use, so the command line can read `medclass.explain.options` (its help text) without importing
PyTorch and OpenCV.
"""

from __future__ import annotations

import importlib

_SOURCES = {"ScoredBox": "boxes", "cam_boxes": "boxes", "otsu_boxes": "boxes",
            "CAM_METHODS": "cam", "CamExplainer": "cam", "cam_maps": "cam", "explain_cam": "cam",
            "heatmap_to_original": "cam",
            "EXPLAINERS": "explainer", "Explainer": "explainer", "Explanation": "explainer",
            "ExplanationMethod": "explainer", "ModelParts": "explainer", "build_explainer": "explainer",
            "method_names": "explainer", "register_method": "explainer",
            "explained_output": "targets",
            "explain": "predicted", "explainer_for": "predicted", "explaining": "predicted",
            "LocalizationResult": "localize", "format_table": "localize", "iobb": "localize",
            "random_box_like": "localize", "random_point": "localize",
            "overlay_image": "overlay", "save_overlay": "overlay",
            "localize_eval": "localization_eval", "localize_samples": "localization_eval",
            "ExplainOptions": "options"}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)

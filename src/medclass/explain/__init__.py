"""Explanations: CAMs of any task and class (pytorch-grad-cam), boxes from CAMs or classic Otsu contours,
overlays, and localisation scores against ground-truth boxes (ChestX-ray8's IoBB and the pointing game)."""

from medclass.explain.boxes import ScoredBox, cam_boxes, otsu_boxes
from medclass.explain.cam import (CAM_METHODS, Explanation, cam_maps, explain_cam, explained_output,
                                  heatmap_to_original)
from medclass.explain.localize import LocalizationResult, format_table, iobb, random_box_like, random_point
from medclass.explain.overlay import overlay_image, save_overlay
from medclass.explain.runner import localize_eval, localize_samples

__all__ = ["CAM_METHODS", "Explanation", "LocalizationResult", "ScoredBox", "cam_boxes", "cam_maps", "explain_cam",
           "explained_output", "format_table", "heatmap_to_original", "iobb", "localize_eval", "localize_samples",
           "otsu_boxes", "overlay_image", "random_box_like", "random_point", "save_overlay"]

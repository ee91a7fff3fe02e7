"""Published localisation results to print beside medclass's own, with where they come from."""

from __future__ import annotations

# Wang et al., "ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on Weakly-Supervised Classification
# and Localization of Common Thorax Diseases", CVPR 2017, Table 3: localisation accuracy at T(IoBB) = 0.1 (ResNet-50,
# heatmap boxes, NIH's 984 ground-truth boxes).
WANG2017_IOBB_01 = {"Atelectasis": 0.6888, "Cardiomegaly": 0.9383, "Effusion": 0.6601, "Infiltration": 0.7073,
                    "Mass": 0.4000, "Nodule": 0.1392, "Pneumonia": 0.6333, "Pneumothorax": 0.3775}
WANG2017_NAME = "Wang 2017 IoBB>0.1"
# Class names other copies of the NIH boxes use -> Wang et al.'s (BBox_List_2017.csv says "Infiltrate").
NIH_ALIASES = {"Infiltrate": "Infiltration"}


def nih_reference(classes) -> dict[str, float] | None:
    """Wang et al.'s row when the classes are NIH findings (at least two of them), else None."""
    known = [c for c in classes if NIH_ALIASES.get(c, c) in WANG2017_IOBB_01]
    return WANG2017_IOBB_01 if len(known) >= 2 else None

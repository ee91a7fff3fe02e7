"""The explanation options, declared once: `medclass predict --explain`, `medclass localize-eval`, the Python API
(`medclass.explain.explain`) and the server's /predict all take an `ExplainOptions` and refuse the same wrong values
with the same words. No heavy import here: the command line reads these names for its help text. The methods
themselves are those registered in explain/explainer.py `EXPLAINERS`.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace

from medclass.core.errors import MedclassError
from medclass.explain.explainer import DEFAULT_METHOD, EXPLAINERS, method_names

OTSU = "otsu"  # classic boxes without a model (explain/methods/otsu.py): the method of any backend
POLARITIES = ("auto", "dark", "bright")
CAM_THRESHOLD = 0.5  # share of the heatmap's maximum a pixel needs to be part of a CAM box
# Which side of Otsu's threshold a finding lies on, by the modality a model was trained for (`train --modality`,
# stored in the artefact). Ultrasound lesions are hypoechoic: darker than the echogenic tissue around them (on
# BUSI's 647 lesion images, 48% of `auto`'s best boxes are the bright skin/tissue band along the top edge, 8% of
# `dark`'s). On X-ray (as on CT) masses, nodules and opacities absorb more and show bright. Pigmented skin lesions
# are darker than the skin around them. Other modalities (histology, MRI, fundus) have findings of either side: auto.
MODALITY_POLARITY = {"ultrasound": "dark", "xray": "bright", "dermoscopy": "dark"}


def polarity_for(modality: str | None) -> str:
    """The Otsu polarity that suits images of `modality` (None or an unlisted one: auto)."""
    return MODALITY_POLARITY.get(modality or "", "auto")


# What each option is called where it is given, so a refusal names what the user typed
PYTHON_NAMES = {"method": "method", "polarity": "polarity", "box_threshold": "box_threshold"}
FORM_NAMES = {"method": "explain", "polarity": "polarity", "box_threshold": "box_threshold"}  # POST /predict
FLAG_NAMES = {"method": "--explain", "polarity": "--polarity", "box_threshold": "--box-threshold"}


@dataclass(frozen=True)
class ExplainOptions:
    """How to explain a prediction. `method`: a registered method (a CAM of the network, or "otsu"); `polarity`:
    Otsu's side of the threshold, auto/dark/bright, or None for the model's modality (`resolved`); `box_threshold`:
    the share of a CAM's maximum a pixel needs to be inside a box."""

    method: str = DEFAULT_METHOD
    polarity: str | None = None
    box_threshold: float = CAM_THRESHOLD

    def __post_init__(self):
        check(self.method, self.polarity, self.box_threshold, PYTHON_NAMES)

    @classmethod
    def parse(cls, method: str | None, polarity: str | None = None, box_threshold: str | float | None = None,
              names: dict[str, str] = FORM_NAMES) -> "ExplainOptions":
        """Options from text as a user types it (command line, form fields): blanks mean the defaults. `names`:
        what the caller calls each option, for the refusals."""
        method = (method or DEFAULT_METHOD).strip().lower()
        polarity = (polarity or "").strip().lower() or None
        threshold = CAM_THRESHOLD if box_threshold in (None, "") else box_threshold
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise MedclassError(f"{names['box_threshold']} must be a number between 0 and 1; got "
                                f"{box_threshold!r}") from None
        check(method, polarity, threshold, names)
        return cls(method, polarity, threshold)

    @property
    def uses_network(self) -> bool:
        """CAMs differentiate through the network (torch backend only); Otsu boxes need only the image."""
        return EXPLAINERS.get(self.method).uses_network

    def resolved(self, modality: str | None) -> "ExplainOptions":
        """These options with the polarity decided: as given, else the one of the model's modality."""
        return self if self.polarity else replace(self, polarity=polarity_for(modality))

    def to_dict(self) -> dict:
        return asdict(self)


def check(method: str, polarity: str | None, box_threshold: float, names: dict[str, str]) -> None:
    if method not in EXPLAINERS:
        raise MedclassError(f"{names['method']} must be one of {', '.join(method_names())}; got {method!r}")
    if polarity is not None and polarity not in POLARITIES:
        raise MedclassError(f"{names['polarity']} must be one of {', '.join(POLARITIES)}; got {polarity!r}")
    if isinstance(box_threshold, bool) or not isinstance(box_threshold, (int, float)) or not 0 < box_threshold < 1:
        raise MedclassError(f"{names['box_threshold']} must be a share of the heatmap's maximum, between 0 and 1 "
                            f"(exclusive); got {box_threshold!r}")


def __getattr__(name: str):
    """The method lists that were constants here, read from the registry (it may grow after import)."""
    lists = {"METHODS": None, "CAM_METHOD_NAMES": True}
    if name not in lists:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{__name__}.{name} is read from the registry now: call "
                  f"medclass.explain.explainer.method_names({'uses_network=True' if lists[name] else ''})",
                  DeprecationWarning, stacklevel=2)
    return tuple(method_names(lists[name]))

"""What training augmentation does, as numbers: a preset (`--augment`) gives the base, a modality (`--modality`)
adjusts it for what is plausible in that kind of image, and `--hflip`, when given, wins over both.

The resolved policy is written to the run's config.yaml (`resolved: augmentation`), so a run states exactly which
transformations its model saw. Plain Python (no torch): config.py validates against these tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from medclass.core.errors import MedclassError

PRESETS = ("none", "light", "classic", "strong")
MODALITIES = ("xray", "ultrasound", "histology", "dermoscopy", "mri", "fundus", "other")


@dataclass(frozen=True)
class AugmentPolicy:
    """Ranges are +- unless named otherwise. `none` trains on unaltered images; its `hflip` still chooses flip TTA."""

    preset: str = "light"
    hflip: bool = True  # mirror half of the training images (and average over a mirrored view at test time)
    vflip: bool = False  # mirror top/bottom for half of them
    rot90: bool = False  # quarter turns 0-3 (exact on square images: no interpolation, no corners)
    rotation: float = 10.0  # degrees
    shift: float = 0.1  # share of the side
    zoom: float = 0.1  # scale 1 - zoom .. 1 + zoom
    shear: float = 0.0  # degrees
    crop: float = 1.0  # smallest share of the area a random crop keeps (1: no crop)
    brightness_contrast: float = 0.0  # factors 1 - x .. 1 + x
    saturation: float = 0.0  # colour images only: factors 1 - x .. 1 + x
    hue: float = 0.0  # colour images only: shift of the hue circle, in turns
    trivial_augment: bool = False  # one photometric TrivialAugment-Wide op per image (uint8, before the warp)

    @property
    def trains(self) -> bool:
        return self.preset != "none"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """The values that differ from the preset's own, e.g. 'hflip off, rot90 on, hue 0.05'."""
        base = asdict(PRESET_POLICIES[self.preset])
        changed = {k: v for k, v in asdict(self).items() if v != base[k]}
        return ", ".join(f"{k} {_word(v)}" for k, v in changed.items()) or "the preset's own"


def _word(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}"


PRESET_POLICIES = {
    "none": AugmentPolicy("none", rotation=0.0, shift=0.0, zoom=0.0),
    # today's default, unchanged so that earlier results reproduce (MedMNIST-scale images)
    "light": AugmentPolicy("light"),
    # what Keras ImageDataGenerator projects used: rotation 20, shifts 0.1-0.2, zoom 0.2, shear, flips
    "classic": AugmentPolicy("classic", rotation=20.0, shift=0.15, zoom=0.2, shear=10.0),
    # light geometry, a random crop of 70-100 % of the area, and TrivialAugment's photometric ops (its own shear,
    # translation and rotation are left out: geometry stays in the batched warp, where the modality bounds it)
    "strong": AugmentPolicy("strong", crop=0.7, trivial_augment=True),
}

# What each modality changes; the preset's other values stay. Each entry says why it is plausible for that image.
MODALITY_DEFAULTS: dict[str, dict] = {
    # Chest films are not mirror-symmetric (heart on the left, situs; L/R markers and text would read backwards),
    # and patients stand upright: only small rotation. Exposure and processing differ between machines.
    "xray": {"hflip": False, "vflip": False, "rotation": 5.0, "brightness_contrast": 0.2},
    # Probe orientation is the operator's (left/right mirrors are common), depth (top to bottom) is physical:
    # no vertical flip. Gain and time-gain compensation change brightness and contrast.
    "ultrasound": {"hflip": True, "vflip": False, "brightness_contrast": 0.2},
    # A slide has no up or left: the 8 flips/quarter turns are all real views. H&E staining varies between labs
    # and batches: hue and saturation jitter.
    "histology": {"hflip": True, "vflip": True, "rot90": True, "brightness_contrast": 0.1, "saturation": 0.2,
                  "hue": 0.05},
    # A skin lesion is photographed at any angle and either side up; lighting and camera colour vary, but colour
    # is diagnostic (melanoma): small hue shifts only.
    "dermoscopy": {"hflip": True, "vflip": True, "rotation": 180.0, "brightness_contrast": 0.1, "saturation": 0.1,
                   "hue": 0.02},
    # The brain is near left/right symmetric and slices are acquired in a standard orientation; MR intensities
    # have no absolute scale between scanners: mild contrast jitter.
    "mri": {"hflip": True, "vflip": False, "brightness_contrast": 0.1},
    # Left and right eyes are mirror images; head tilt and camera alignment rotate the field; illumination and
    # pupil size change brightness and contrast.
    "fundus": {"hflip": True, "vflip": False, "rotation": 30.0, "brightness_contrast": 0.2},
    # Any other kind of image: the preset as it is. Also how to keep the preset where the data names a modality.
    "other": {},
}


def check_choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise MedclassError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def resolve_policy(augment: str = "light", modality: str | None = None, hflip: bool | None = None) -> AugmentPolicy:
    """The preset's policy, with the modality's defaults, with `hflip` when the user set it (None: not set)."""
    check_choice("augment", augment, PRESETS)
    policy = PRESET_POLICIES[augment]
    if modality is not None:
        check_choice("modality", modality, MODALITIES)
        defaults = MODALITY_DEFAULTS[modality]
        # `none` alters no training image; the modality still decides flip TTA through hflip
        policy = replace(policy, **(defaults if policy.trains else {"hflip": defaults.get("hflip", policy.hflip)}))
    return policy if hflip is None else replace(policy, hflip=hflip)

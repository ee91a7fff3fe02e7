"""The rules evaluation chooses by, as names the command line and TrainConfig offer: the operating-point rules
(operating_point.py applies them) and the temperature rules (calibration.py). No heavy import here, so that
`medclass --help` can list them."""

from __future__ import annotations

from dataclasses import dataclass

from medclass.core.errors import MedclassError

# How the temperature is chosen on validation (`--temperature-rule`), measured on the saved logits of 75 runs over
# the 6 shared labelled datasets (benchmarks/shift.py): `fitted` gave the lowest mean test ECE on 4 of them but
# raised test ECE above the uncalibrated model's in 22 runs (by up to .061), 18 of them with a temperature below 1
# fitted on small validation splits; `no-sharpening` raised it in 4 (by at most .016), so it is the default.
TEMPERATURE_RULES = ("no-sharpening", "fitted", "out-of-fold")
RULES = ("fixed", "youden", "sensitivity", "specificity")


@dataclass(frozen=True)
class ThresholdRule:
    kind: str  # one of RULES
    value: float | None = None  # fixed: the threshold; sensitivity/specificity: the target

    @classmethod
    def parse(cls, text: str | float) -> "ThresholdRule":
        text = str(text).strip().lower()
        if text in ("argmax", "default"):
            return cls("fixed", 0.5)
        if text == "youden":
            return cls("youden")
        name, sep, value = text.partition(":")
        try:
            if not sep:
                rule = cls("fixed", float(name))
            elif name in ("sensitivity", "specificity"):
                rule = cls(name, float(value))
            else:
                raise ValueError
        except ValueError:
            raise MedclassError(f"operating point: expected 0.5 (or another fixed threshold), youden, "
                                f"sensitivity:TARGET or specificity:TARGET (e.g. sensitivity:0.95); got {text!r}"
                                ) from None
        if not 0 <= rule.value <= 1:
            raise MedclassError(f"operating point {text!r}: the value must lie in [0, 1]")
        return rule

    @property
    def tunes(self) -> bool:
        return self.kind != "fixed"

    def describe(self, split: str, n: int) -> str:
        if self.kind == "fixed":
            return f"fixed {self.value:g}" + (" (not tuned)" if self.value == 0.5 else "")
        what = "Youden's J" if self.kind == "youden" else f"{self.kind} >= {self.value:g}"
        return f"{what} on the {split} split ({n} images)"

    def __str__(self) -> str:
        if self.kind == "youden":
            return "youden"
        return f"{self.value:g}" if self.kind == "fixed" else f"{self.kind}:{self.value:g}"

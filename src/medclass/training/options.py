"""How a TrainConfig field is declared: its default, help, allowed values and command-line spelling, once, beside the
field (`option(...)` in training/config.py).

Everything that offers or checks a training option reads that one declaration: TrainConfig's validation (the
choices, the lower bounds), `medclass train`'s options (cli/options.py: train_options builds one Typer option per
field, with this help, the choices spelled out and TrainConfig's default shown) and recipes (a YAML key is the
field's name, its value checked against the field's type). A new field is a new option everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, field
from typing import Any, Callable, Mapping

from medclass.core.errors import MedclassError
from medclass.core.wording import either

CHOICES = "{choices}"  # where a help text spells out the allowed values


@dataclass(frozen=True)
class Option:
    help: str
    choices: tuple[str, ...] = ()  # the allowed values, taken from the code that implements them
    # what a choice means, shown in --help after its name: {"frozen": "train the classifier only"}
    meanings: Mapping[str, str] = field(default_factory=dict)
    # how a refused value's message lists the choices: "a, b or c" (these options' wording since they were added;
    # scripts and tests match it) instead of "one of a, b, c"
    listed_as_prose: bool = False
    at_least: int | None = None
    check: Callable[[Any], object] | None = None  # raises MedclassError for a value it refuses
    flag: str | None = None  # the only command-line flag (e.g. --ordinal, with no --no-ordinal)
    from_text: Callable[[str], Any] | None = None  # the command line's text to the value (--task-weights a=1,b=2)
    on_command_line: bool = True  # False: given another way (reader_options: the data options)

    def __post_init__(self):
        # declaration mistakes, found when the module is imported rather than by a user reading --help
        unknown = set(self.meanings) - set(self.choices)
        if unknown:
            raise ValueError(f"meanings of values that are no choice: {sorted(unknown)} (choices: {self.choices})")
        if self.choices and CHOICES not in self.help:
            raise ValueError(f"help {self.help!r} does not say where the choices go ({CHOICES})")

    def help_text(self) -> str:
        """The help with the choices spelled out: 'full, frozen (train the classifier only) or two-stage (...)'."""
        if not self.choices:
            return self.help
        named = [f"{c} ({self.meanings[c]})" if c in self.meanings else c for c in self.choices]
        return self.help.replace(CHOICES, either(named))

    def refusal(self, name: str, value) -> str | None:
        """Why `value` is not allowed for the option `name`, or None. None itself is the config's to judge (an unset
        optional value)."""
        if self.choices and value is not None and value not in self.choices:
            allowed = either(self.choices) if self.listed_as_prose else f"one of {', '.join(self.choices)}"
            return f"{name} must be {allowed}; got {value!r}"
        if self.at_least is not None and value < self.at_least:
            return f"{name} must be >= {self.at_least}; got {value}"
        if self.check is not None:
            self.check(value)
        return None


def option(default=MISSING, help: str = "", *, factory: Callable[[], Any] | None = None, **declared):
    """A TrainConfig field and its Option (stored in the field's metadata)."""
    metadata = {"option": Option(help, **declared)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def option_of(config_field: dataclasses.Field) -> Option:
    return config_field.metadata["option"]


def value_types(config_field: dataclasses.Field) -> tuple[type, ...]:
    """The types a field's value may have, from its annotation (a string, from `from __future__ import
    annotations`): `bool | str` (pretrained: a flag or a weights file) allows either, `int | None` an int."""
    named = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict}
    found = tuple(named[n.strip()] for n in str(config_field.type).split("|") if n.strip() in named)
    return found or (type(config_field.default),)


def allows_none(config_field: dataclasses.Field) -> bool:
    return "None" in str(config_field.type)


def default_of(config_field: dataclasses.Field):
    """The field's default (MISSING for a required one)."""
    if config_field.default_factory is not MISSING:
        return config_field.default_factory()
    return config_field.default


def read_pretrained(text: str | None) -> bool | str:
    """--pretrained: absent or 'false' (no, 0, none) = random init, 'imagenet' (true, yes, 1) = the published
    weights (timm's hub, or the packaged file for efficientnet_lite0), anything else a local weights file."""
    if text is None or text.lower() in ("false", "no", "0", "none"):
        return False
    return True if text.lower() in ("imagenet", "true", "yes", "1") else text


def read_task_weights(text: str) -> dict[str, float]:
    """--task-weights organ=1,malignancy=2 -> {"organ": 1.0, "malignancy": 2.0}."""
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            name = ""
        if not sep or not name.strip():
            raise MedclassError(f"--task-weights: expected TASK=WEIGHT[,TASK=WEIGHT...], e.g. organ=1,malignancy=2; "
                                f"got {part!r}")
    return weights

"""Patient ids from file names: one rule shared by every reader that names images by path (folders, nested, CSV).

Real datasets carry the patient in the file name (Kermany: `person1000_bacteria_2931.jpeg` and
`person1000_virus_1681.jpeg` are one child; NIH: `00000007_001.png`) or in a folder of the path
(`ROOT/<class>/<patient>/img.png`). `--patient-pattern` is a regular expression with one capturing group around
the id, searched in the file name, or in the path relative to the dataset root with `--patient-from path`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from medclass.core.errors import DataError

PATIENT_FROM = ("name", "path")
SHOWN_UNMATCHED = 3


@dataclass(frozen=True)
class PatientRule:
    pattern: re.Pattern
    source: str = "name"  # "name": the file name; "path": the path relative to the dataset root

    @classmethod
    def parse(cls, pattern: str | None, source: str | None = None) -> "PatientRule | None":
        """The rule for the options given, or None when no pattern was given."""
        if source is not None and source not in PATIENT_FROM:
            raise DataError(f"--patient-from {source!r}: expected one of {', '.join(PATIENT_FROM)}")
        if pattern is None:
            if source is not None:
                raise DataError(f"--patient-from {source} needs --patient-pattern REGEX (the rule it applies to)")
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise DataError(f"patient pattern {pattern!r}: not a valid regular expression ({exc})") from None
        if compiled.groups != 1:
            raise DataError(f"patient pattern {pattern!r}: expected exactly one capturing group around the patient "
                            rf"id, e.g. '^(person\d+)_'; found {compiled.groups}")
        return cls(compiled, source or "name")

    def text_of(self, relative_path: str) -> str:
        """What the pattern is searched in: the file name, or the path (POSIX separators) relative to the root."""
        path = PurePath(relative_path)
        return path.name if self.source == "name" else path.as_posix()

    def match(self, relative_path: str) -> str | None:
        found = self.pattern.search(self.text_of(relative_path))
        return found.group(1) if found and found.group(1) else None

    def describe(self) -> str:
        return f"the patient pattern {self.pattern.pattern!r} (searched in the file {self.source})"


def patients_from_paths(rule: PatientRule, relative_paths: list[str], where: str) -> list[str]:
    """The patient id of every path; all paths the rule does not match are reported at once, by name."""
    ids = [rule.match(p) for p in relative_paths]
    unmatched = [p for p, pid in zip(relative_paths, ids) if pid is None]
    if unmatched:
        shown = ", ".join(repr(rule.text_of(p)) for p in unmatched[:SHOWN_UNMATCHED])
        more = f" and {len(unmatched) - SHOWN_UNMATCHED} more" if len(unmatched) > SHOWN_UNMATCHED else ""
        raise DataError(f"{where}: {len(unmatched)} of {len(relative_paths)} image(s) do not match "
                        f"{rule.describe()}: {shown}{more}")
    return ids

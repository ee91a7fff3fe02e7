"""Moved to medclass.explain.localization_eval; this path keeps working until the next release."""

from medclass.core.deprecated import moved_to

__getattr__ = moved_to(__name__, "medclass.explain.localization_eval")

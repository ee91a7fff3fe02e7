"""medclass: train, evaluate, explain and serve medical image classifiers."""

__version__ = "0.1.0"

from medclass.core.errors import MedclassError

__all__ = ["MedclassError", "__version__"]

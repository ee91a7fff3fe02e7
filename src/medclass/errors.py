"""User-facing errors: one line that names the file/row/field, what was expected and what was found."""


class MedclassError(Exception):
    """An error caused by the user's input (data, paths, options). The CLI prints it without a traceback."""


class DataError(MedclassError):
    """Data that cannot be read as asked: missing file, wrong layout, missing key or column."""


class DataWarning(UserWarning):
    """Something in the data the user should know before trusting results (leakage, artefacts, missing rows)."""

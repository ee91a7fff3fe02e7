"""User-facing errors: one line that names the file/row/field, what was expected and what was found."""


class MedclassError(Exception):
    """An error caused by the user's input (data, paths, options). The CLI prints it without a traceback."""


class DataError(MedclassError):
    """Data that cannot be read as asked: missing file, wrong layout, missing key or column."""


class ImageTooLargeError(DataError):
    """An image whose header claims more pixels than medclass decodes (MAX_PIXELS): a decompression bomb guard."""


class UnsupportedImageError(DataError):
    """Bytes that are not an image type medclass decodes (sniffed from the content, never from the name)."""


class DataWarning(UserWarning):
    """Something in the data the user should know before trusting results (leakage, artefacts, missing rows)."""


def read_yaml(path, what: str, error: type[MedclassError] = MedclassError):
    """A YAML file's content, or one line naming the file: `{path}: {what} not found` / `not valid YAML (...)`."""
    from pathlib import Path

    import yaml

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None

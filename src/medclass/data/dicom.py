"""Decode a single-frame DICOM file into an 8-bit PIL image ("L" for MONOCHROME1/2, "RGB" for colour).

Grayscale follows the DICOM display pipeline: stored values -> Modality LUT (or RescaleSlope/Intercept) -> VOI LUT
(or the first WindowCenter/WindowWidth, or else the min..max of the rescaled values) -> 0..255, with MONOCHROME1
inverted so that, as in every other image, high means bright. Each step uses pydicom's own implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, apply_windowing, get_decoder

from medclass.data.images import check_pixel_count
from medclass.errors import DataError

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# pydicom's `pixel_array` converts YBR colour spaces to RGB, so all of these arrive as RGB.
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")


def read_dicom(path: str | Path | BinaryIO, name: str | None = None) -> Image.Image:
    """Read the pixels of a single-frame DICOM file as an 8-bit "L" or "RGB" image. `path` may also be a binary
    file object (an upload held in memory), which `name` then labels in errors."""
    source = path if hasattr(path, "read") else Path(path)
    ds = _read_dataset(source, where=name)
    path = name or source  # what the errors below name
    _check_decodable(path, ds)
    stored = _decode_pixels(path, ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        if photometric in _MONOCHROME:
            return Image.fromarray(_display_gray(stored, ds, invert=photometric == "MONOCHROME1"))
        if photometric == "PALETTE COLOR":
            return Image.fromarray(_to_uint8_rgb(apply_color_lut(stored, ds), bits=16))
        if photometric in _COLOUR:
            return Image.fromarray(_to_uint8_rgb(stored, bits=int(ds.get("BitsStored", 8))))
    except (ValueError, AttributeError, KeyError, NotImplementedError) as exc:
        raise DataError(f"{path}: cannot apply the DICOM display settings "
                        f"({exc.__class__.__name__}: {exc})") from None
    raise DataError(f"{path}: unsupported Photometric Interpretation {photometric!r}; "
                    "expected MONOCHROME1, MONOCHROME2, RGB, YBR_* or PALETTE COLOR")


def dicom_patient_id(path: str | Path) -> str | None:
    """PatientID of a DICOM file (None when absent or empty), read from the header without the pixel data."""
    path = Path(path)
    ds = _read_dataset(path, stop_before_pixels=True, specific_tags=["PatientID"])
    patient = str(ds.get("PatientID", "") or "").strip()
    return patient or None


def _read_dataset(source: Path | BinaryIO, where: str | None = None, **options) -> pydicom.Dataset:
    path = where or source
    try:
        return pydicom.dcmread(source, **options)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except InvalidDicomError as exc:
        raise DataError(f"{path}: not a DICOM file ({exc})") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable DICOM file ({exc.__class__.__name__}: {exc})") from None


def _check_decodable(path: Path, ds: pydicom.Dataset) -> None:
    """Refuse, before decoding, what medclass cannot turn into one image."""
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise DataError(f"{path}: no pixel data; expected a DICOM image with a (7FE0,0010) Pixel Data element")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(f"{path}: has {frames} frames; medclass reads single-frame images only "
                        "(split the series into one file per frame)")
    check_pixel_count(path, int(ds.get("Columns", 0)), int(ds.get("Rows", 0)))
    syntax = _transfer_syntax(ds)
    if syntax is None or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DataError(f"{path}: pixel data compressed as {syntax.name} ({syntax}), "
                        "which pydicom cannot decode") from None
    if not decoder.is_available:
        raise DataError(f"{path}: pixel data compressed as {syntax.name} ({syntax}) and no decoder for it is "
                        f"installed; install one of: {'; '.join(decoder.missing_dependencies)}")


def _transfer_syntax(ds: pydicom.Dataset):
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _decode_pixels(path: Path, ds: pydicom.Dataset) -> np.ndarray:
    try:
        return ds.pixel_array
    except (ValueError, RuntimeError, NotImplementedError, AttributeError, KeyError, EOFError) as exc:
        syntax = _transfer_syntax(ds)
        where = f" ({syntax.name}, {syntax})" if syntax is not None else ""
        detail = " ".join(str(exc).split())  # pydicom's plugin reports span several lines; ours are one
        raise DataError(f"{path}: cannot decode pixel data{where}: {exc.__class__.__name__}: {detail}") from None


def _display_gray(stored: np.ndarray, ds: pydicom.Dataset, invert: bool) -> np.ndarray:
    values = apply_modality_lut(stored, ds)
    if ds.get("VOILUTSequence"):
        values, low, high = _apply_voi_lut(values, ds)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        values, low, high = _apply_window(values, ds)
    else:
        low, high = float(np.min(values)), float(np.max(values))
    gray = _rescale_to_uint8(values, low, high)
    # MONOCHROME1 means the lowest value is displayed white.
    return 255 - gray if invert else gray


def _apply_voi_lut(values: np.ndarray, ds: pydicom.Dataset):
    # A LUT indexes by integers; rescaled values can be float even when they are whole numbers.
    values = np.rint(values).astype(np.int64)
    descriptor = ds.VOILUTSequence[0].LUTDescriptor
    entries, first = int(descriptor[0]) or 2 ** 16, int(descriptor[1])
    # The LUT's own output range becomes 0..255: many LUTs declare 16 bits but fill far fewer.
    table = apply_voi(np.arange(first, first + entries), ds)
    return apply_voi(values, ds), float(table.min()), float(table.max())


def _apply_window(values: np.ndarray, ds: pydicom.Dataset):
    # pydicom maps the window onto an output range it derives from BitsStored and the rescale; asking it where
    # -inf and +inf land gives that range exactly, for LINEAR, LINEAR_EXACT and SIGMOID alike.
    low, high = apply_windowing(np.array([-np.inf, np.inf]), ds)
    return apply_windowing(values, ds), float(low), float(high)


def _rescale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.rint(np.clip((values - low) * scale, 0, 255)).astype(np.uint8)


def _to_uint8_rgb(rgb: np.ndarray, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    return _rescale_to_uint8(rgb, 0.0, float(2 ** bits - 1))

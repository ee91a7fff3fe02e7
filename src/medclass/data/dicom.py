"""Decode one frame of a DICOM file into an 8-bit PIL image ("L" for MONOCHROME1/2, "RGB" for colour).

Grayscale follows the DICOM display pipeline: stored values -> Modality LUT (or RescaleSlope/Intercept) -> VOI LUT
(or the first WindowCenter/WindowWidth, or else the min..max of the rescaled values) -> 0..255, with MONOCHROME1
inverted so that, as in every other image, high means bright. pydicom decodes the pixels (with the JPEG, JPEG-LS
and JPEG 2000 plugins medclass installs) and applies the LUTs and windows.

Files from elsewhere are read defensively: the header fields decoding needs are checked first (dicom_header.py),
a deflated data set is inflated only as far as MAX_DECODED_BYTES allows, and whatever pydicom still raises on
hostile data becomes one DataError line naming the file and the step that failed. Multi-frame files are read one
frame at a time (`frame`, counted from 1 as DICOM numbers frames); without a frame they are refused.
"""

from __future__ import annotations

import re
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, apply_windowing, get_decoder, pixel_array
from pydicom.uid import AllTransferSyntaxes, DeflatedExplicitVRLittleEndian

from medclass.data.dicom_header import MONOCHROME, PixelHeader, element_name, numbers, pixel_header
from medclass.data.decode_limits import BAND_PIXELS, MAX_DECODED_BYTES
from medclass.core.errors import DataError, ImageTooLargeError, MedclassError

# A deflated data set is inflated whole by pydicom, before any header field can be checked: a 143 KB file can
# inflate to gigabytes. Its inflated size is measured first (streamed, nothing kept), against one largest image
# plus 1 MiB for the header and other elements.
MAX_INFLATED_BYTES = MAX_DECODED_BYTES + 1024 ** 2
# Elements larger than this are read when used, not with the header: the pixel data of a multi-frame file is then
# read one frame at a time, and a file's size is checked against its header before its pixels are read.
_DEFER_SIZE = 1024 ** 2
_INFLATE_CHUNK = 1024 ** 2
# Sentences of pydicom's messages that advise a Python caller (force=True, keyword arguments): a CLI or API user
# cannot act on them.
_PYDICOM_ADVICE = re.compile(r"[^.]*\b(force=True|allow_excess_frames|please see|you should|pass ')[^.]*\.?", re.I)
# The first group of a data set that lacks the 128-byte preamble (raw data sets, ACR-NEMA style exports), either
# byte order: (0002,xxxx) file meta or (0008,xxxx) identification.
_RAW_DATASET_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
# Decoder plugins medclass never hands untrusted bytes to: GDCM's aborts the whole process (a C++ exception that
# ends in std::terminate, no Python exception to catch) on a corrupt JPEG stream, found by benchmarks/fuzz.py
# (seed 0) when python-gdcm is installed beside the plugins medclass ships. pydicom tries every available plugin
# in turn, so an installed one is reached whenever the others fail.
UNSAFE_DECODER_PLUGINS = ("gdcm",)


def _drop_unsafe_decoder_plugins() -> None:
    for syntax in AllTransferSyntaxes:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:  # no decoder at all for this syntax
            continue
        for label in UNSAFE_DECODER_PLUGINS:
            if label in decoder.available_plugins or label in getattr(decoder, "_unavailable", {}):
                decoder.remove_plugin(label)


_drop_unsafe_decoder_plugins()  # once, at import: pydicom's registry is process-wide


def read_dicom(path: str | Path | BinaryIO, name: str | None = None, frame: int | None = None) -> Image.Image:
    """Read the pixels of one frame of a DICOM file as an 8-bit "L" or "RGB" image. `frame` counts from 1; None
    reads a single-frame file and refuses a multi-frame one. `path` may also be a binary file object (an upload
    held in memory), which `name` then labels in errors."""
    source = path if hasattr(path, "read") else Path(path)
    where = name or source  # what the errors name
    with _quiet_pydicom():
        ds = _read_dataset(source, where, defer_size=_DEFER_SIZE)
        with failing_step(where, "reading the header"):
            header = pixel_header(where, ds)
        index = _frame_index(where, header, frame)
        with failing_step(where, f"decoding the pixel data ({header.syntax.name})"):
            stored = _frame_pixels(source, ds, header, index)
        _check_shape(where, stored, header)
        with failing_step(where, "applying the display settings"):
            return _display_image(stored, ds, header)


def dicom_frame_count(path: str | Path) -> int:
    """The number of frames of a DICOM file, from its checked header (no pixel is decoded)."""
    path = Path(path)
    with _quiet_pydicom():
        ds = _read_dataset(path, path, defer_size=_DEFER_SIZE)
        with failing_step(path, "reading the header"):
            frames = pixel_header(path, ds).frames
    # Uncompressed pixel data is checked against NumberOfFrames above; compressed frames take at least an 8-byte
    # item each, which bounds a hostile frame count by the file's size.
    if frames * 8 > path.stat().st_size:
        raise DataError(f"{path}: {element_name('NumberOfFrames')} is {frames}, more frames than the file can hold")
    return frames


def dicom_patient_id(path: str | Path) -> str | None:
    """PatientID of a DICOM file (None when absent or empty), read from the header without the pixel data."""
    path = Path(path)
    with _quiet_pydicom():
        ds = _read_dataset(path, path, stop_before_pixels=True, specific_tags=["PatientID"])
        with failing_step(path, "reading the PatientID"):
            patient = str(ds.get("PatientID", "") or "").strip()
    return patient or None


@contextmanager
def failing_step(where, step: str):
    """Anything but medclass's own errors (and MemoryError) raised inside becomes one DataError line naming the
    file and `step`: pydicom and its plugins raise most exception types on hostile data."""
    try:
        yield
    except (MedclassError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - the net around a third-party decoder fed untrusted bytes
        raise DataError(f"{where}: {step} failed ({pydicom_message(exc)})") from None


def pydicom_message(exc: BaseException) -> str:
    """An exception of pydicom (or a plugin) as one line, without advice meant for Python callers."""
    text = _PYDICOM_ADVICE.sub("", " ".join(str(exc).split())).strip()
    return f"{exc.__class__.__name__}: {text[:240]}" if text else exc.__class__.__name__


@contextmanager
def _quiet_pydicom():
    # pydicom warns about every oddity it reads past (and advises keyword arguments); medclass reports what stops
    # it, as one error line, and nothing for what it can read. (catch_warnings is process-wide: two threads
    # overlapping here can at worst leave this pydicom-only filter installed.)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
        yield


def _read_dataset(source: Path | BinaryIO, where, **options) -> pydicom.Dataset:
    with failing_step(where, "reading the DICOM header"):
        if _is_deflated(source):
            _check_inflated_size(source, where)
            options.pop("defer_size", None)  # deferred values would be re-read from the still deflated file
        try:
            return pydicom.dcmread(_rewound(source), **options)
        except FileNotFoundError:
            raise DataError(f"{where}: file not found") from None
        except InvalidDicomError:
            with _open(source) as f:
                start = f.read(2)
            if start not in _RAW_DATASET_STARTS:
                raise DataError(f"{where}: not a DICOM file (no 'DICM' marker at byte 128, and it does not begin "
                                "with a DICOM data element)") from None
        # A data set without the DICOM file preamble: read it as what it begins with.
        return pydicom.dcmread(_rewound(source), force=True, **options)


def _rewound(source: Path | BinaryIO):
    if isinstance(source, Path):
        return str(source)
    source.seek(0)
    return source


def _is_deflated(source: Path | BinaryIO) -> bool:
    """Whether the file meta names the deflated transfer syntax (read without touching the data set)."""
    try:
        with _open(source) as f:
            read_preamble(f, False)
            meta = _read_file_meta_info(f)
    except (InvalidDicomError, OSError, EOFError):
        return False  # not a Part 10 file, or unreadable: dcmread says which
    return meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian


@contextmanager
def _open(source: Path | BinaryIO):
    if isinstance(source, Path):
        with open(source, "rb") as f:
            yield f
    else:
        source.seek(0)
        yield source


def _check_inflated_size(source: Path | BinaryIO, where) -> None:
    """Stream the deflated data set through zlib, keeping nothing, and refuse it when it inflates beyond
    MAX_INFLATED_BYTES or is truncated."""
    inflater, size = zlib.decompressobj(-zlib.MAX_WBITS), 0
    with _open(source) as f:
        read_preamble(f, False)
        _read_file_meta_info(f)
        while not inflater.eof:
            chunk = inflater.unconsumed_tail or f.read(_INFLATE_CHUNK)
            if not chunk:
                raise DataError(f"{where}: deflated data set is truncated (its compressed stream ends early)")
            size += len(inflater.decompress(chunk, _INFLATE_CHUNK))
            if size > MAX_INFLATED_BYTES:
                raise ImageTooLargeError(f"{where}: deflated data set inflates to more than "
                                         f"{MAX_INFLATED_BYTES // 1024 ** 2} MiB; medclass inflates at most one "
                                         "image of MAX_DECODED_BYTES plus 1 MiB of other elements")


def _frame_index(where, header: PixelHeader, frame: int | None) -> int:
    """pydicom's 0-based frame index of the 1-based `frame`."""
    if frame is None:
        if header.frames > 1:
            raise DataError(f"{where}: has {header.frames} frames; medclass trains on single-frame images, and "
                            "`medclass predict --frames all` (or --frames N) predicts each frame")
        return 0
    if not 1 <= frame <= header.frames:
        raise DataError(f"{where}: has {header.frames} frame(s); frame {frame} was asked for (frames count from 1)")
    return frame - 1


def _frame_pixels(source: Path | BinaryIO, ds: pydicom.Dataset, header: PixelHeader, index: int) -> np.ndarray:
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = header.syntax  # checked, or inferred for a file that had none
    if header.frames > 1 and header.syntax != DeflatedExplicitVRLittleEndian:
        # read only this frame's bytes from the file (held in memory: the deflated data set)
        return pixel_array(_rewound(source), index=index, transfer_syntax_uid=header.syntax)
    return pixel_array(ds, index=index if header.frames > 1 else None)


def _check_shape(where, stored: np.ndarray, header: PixelHeader) -> None:
    expected = (header.rows, header.columns) + ((header.samples,) if header.samples > 1 else ())
    if stored.shape != expected:  # a codestream whose size disagrees with the header
        raise DataError(f"{where}: pixel data decoded to shape {stored.shape}, where Rows x Columns x "
                        f"SamplesPerPixel declare {expected}")


def _display_image(stored: np.ndarray, ds: pydicom.Dataset, header: PixelHeader) -> Image.Image:
    if header.photometric in MONOCHROME:
        return Image.fromarray(_display_gray(stored, ds, invert=header.photometric == "MONOCHROME1"))
    if header.photometric == "PALETTE COLOR":
        return Image.fromarray(_banded(stored, lambda band: _to_uint8_rgb(apply_color_lut(band, ds), bits=16)))
    bits = int(ds.get("BitsStored", header.bits_allocated))
    return Image.fromarray(_banded(stored, lambda band: _to_uint8_rgb(band, bits)))


def _banded(stored: np.ndarray, to_8_bit: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`to_8_bit` applied to bands of rows of `stored`, into one uint8 array: the only full-size arrays are the
    stored pixels and the 8-bit result, since pydicom's LUTs and windows work in float64 (8 bytes a sample)."""
    out = None
    for top, band in _bands(stored):
        converted = to_8_bit(band)
        if out is None:
            out = np.empty(stored.shape[:1] + converted.shape[1:], dtype=np.uint8)
        out[top:top + len(band)] = converted
    return out


def _bands(stored: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    step = max(1, BAND_PIXELS // max(stored[0].size, 1))
    for top in range(0, len(stored), step):
        yield top, stored[top:top + step]


def _display_gray(stored: np.ndarray, ds: pydicom.Dataset, invert: bool) -> np.ndarray:
    to_display, low, high = _gray_mapping(stored, ds)
    gray = _banded(stored, lambda band: _rescale_to_uint8(to_display(band), low, high))
    if invert:  # MONOCHROME1 means the lowest value is displayed white.
        np.subtract(255, gray, out=gray)
    return gray


def _gray_mapping(stored: np.ndarray, ds: pydicom.Dataset):
    """The display values of stored ones (a function, applied band by band) and their range that becomes 0..255:
    the VOI LUT's output range, the window's, or else the min..max of the modality values."""
    def modality(band: np.ndarray) -> np.ndarray:
        values = _modality(band, ds)
        if values.dtype.kind == "f" and not np.isfinite([values.min(), values.max()]).all():
            raise ValueError("the rescaled pixel values are not all finite numbers")
        return values

    if ds.get("VOILUTSequence"):
        return _voi_lut_mapping(modality, ds)
    if numbers("", ds, "WindowCenter") and numbers("", ds, "WindowWidth"):
        # pydicom maps the window onto an output range it derives from BitsStored and the rescale; asking it
        # where -inf and +inf land gives that range exactly, for LINEAR, LINEAR_EXACT and SIGMOID alike.
        low, high = apply_windowing(np.array([-np.inf, np.inf]), ds)
        return (lambda band: apply_windowing(modality(band), ds)), float(low), float(high)
    low, high = np.inf, -np.inf
    for _, band in _bands(stored):
        values = modality(band)
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    return modality, low, high


def _modality(stored: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Stored values -> modality values: pydicom's Modality LUT, or the rescale in float32 (pydicom's float64
    doubles the memory of a large image for no visible difference in 8 display bits)."""
    slope, intercept = numbers("", ds, "RescaleSlope"), numbers("", ds, "RescaleIntercept")
    if ds.get("ModalityLUTSequence") or not (slope and intercept):
        return apply_modality_lut(stored, ds)
    values = stored.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # a slope beyond float32 gives inf, refused as not finite by the caller
        values *= slope[0]
        values += intercept[0]
    return values


def _voi_lut_mapping(modality: Callable[[np.ndarray], np.ndarray], ds: pydicom.Dataset):
    descriptor = ds.VOILUTSequence[0].LUTDescriptor
    entries, first = int(descriptor[0]) or 2 ** 16, int(descriptor[1])
    # The LUT's own output range becomes 0..255: many LUTs declare 16 bits but fill far fewer.
    table = apply_voi(np.arange(first, first + entries), ds)
    # A LUT indexes by integers; rescaled values can be float even when they are whole numbers.
    return (lambda band: apply_voi(np.rint(modality(band)).astype(np.int32), ds)), float(table.min()), \
        float(table.max())


def _rescale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled = np.asarray(values, dtype=np.float32) - np.float32(low)  # one float32 copy, then in place
    scaled *= np.float32(scale)
    np.clip(scaled, 0, 255, out=scaled)
    return np.rint(scaled, out=scaled).astype(np.uint8)


def _to_uint8_rgb(rgb: np.ndarray, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    return _rescale_to_uint8(rgb, 0.0, float(2 ** bits - 1))

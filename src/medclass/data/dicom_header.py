"""The header fields a DICOM decode relies on, checked before any pixel is decoded.

A DICOM file from elsewhere (or an upload made to break things) can carry any value in any element: text in a
numeric element, an unknown VR, an empty transfer syntax, a frame count of "1A", pixel data longer or shorter than
Rows x Columns declares. pydicom reads such values as it finds them and fails later in many ways (or, for excess
pixel data, decodes a wrong image); here each field is checked once, with a one-line reason that names the element
as `(gggg,eeee) Keyword` and what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.pixels import get_decoder
from pydicom.uid import UID, AllTransferSyntaxes, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medclass.data.decode_limits import check_decoded_size
from medclass.core.errors import DataError

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# pydicom's pixel decoding converts YBR colour spaces to RGB, so all of these arrive as RGB.
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
_SAMPLES = {**{p: 1 for p in MONOCHROME + ("PALETTE COLOR",)}, **{p: 3 for p in COLOUR}}
_BITS_ALLOCATED = (1, 8, 16, 32, 64)
_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_UNDEFINED_LENGTH = 0xFFFFFFFF
# How pydicom read a file without a (0002,0010) Transfer Syntax UID (raw data sets, ACR-NEMA style exports):
# (implicit VR, little endian) -> the native syntax that encoding is.
_NATIVE_BY_ENCODING = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
                       (False, False): ExplicitVRBigEndian}


@dataclass(frozen=True)
class PixelHeader:
    """The checked fields of one DICOM image: what decoding its pixels needs."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    frames: int
    photometric: str
    syntax: UID
    keyword: str  # which pixel data element holds the pixels


def element_name(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {keyword}" if tag is not None else keyword


def pixel_header(where, ds: pydicom.Dataset) -> PixelHeader:
    """Check every field decoding needs (and the display settings), from the header alone; raise DataError naming
    the first field that is missing or wrong, ImageTooLargeError when one frame decodes beyond MAX_DECODED_BYTES."""
    keyword = next((k for k in PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        raise DataError(f"{where}: no pixel data; expected a DICOM image with a (7FE0,0010) Pixel Data element")
    photometric = str(_value(where, ds, "PhotometricInterpretation") or "").strip().upper()
    if photometric not in _SAMPLES:
        raise DataError(f"{where}: unsupported {element_name('PhotometricInterpretation')} {photometric!r}; "
                        "expected MONOCHROME1, MONOCHROME2, RGB, YBR_* or PALETTE COLOR")
    header = PixelHeader(
        rows=integer(where, ds, "Rows"), columns=integer(where, ds, "Columns"),
        samples=integer(where, ds, "SamplesPerPixel", allowed=(_SAMPLES[photometric],)),
        bits_allocated=integer(where, ds, "BitsAllocated", allowed=_BITS_ALLOCATED),
        frames=integer(where, ds, "NumberOfFrames", default=1),
        photometric=photometric, syntax=transfer_syntax(where, ds, keyword), keyword=keyword)
    if keyword == "PixelData":
        integer(where, ds, "BitsStored", allowed=range(1, header.bits_allocated + 1))
        integer(where, ds, "PixelRepresentation", allowed=(0, 1), low=0)
    check_decoded_size(where, header.columns, header.rows, header.samples, math.ceil(header.bits_allocated / 8))
    if not header.syntax.is_encapsulated:
        _check_native_length(where, ds, header)
    check_display_elements(where, ds, photometric)
    return header


def transfer_syntax(where, ds: pydicom.Dataset, keyword: str) -> UID:
    """The file's transfer syntax, one pydicom knows and can decode here. Without one, a native encoding is read
    from how the data set itself was encoded; compressed pixel data without one cannot be decoded."""
    meta = getattr(ds, "file_meta", None)
    value = _value(where, meta, "TransferSyntaxUID") if meta is not None else None
    name = element_name("TransferSyntaxUID")
    if value is None:
        if _length(where, ds, keyword) == _UNDEFINED_LENGTH:
            raise DataError(f"{where}: no {name}, and its pixel data is compressed with a codec it does not name")
        return _NATIVE_BY_ENCODING.get(tuple(ds.original_encoding), ExplicitVRLittleEndian)
    syntax = UID(str(value).strip())
    if syntax not in AllTransferSyntaxes:
        raise DataError(f"{where}: {name} {str(syntax)[:64]!r} is not a transfer syntax pydicom knows")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DataError(f"{where}: pixel data compressed as {syntax.name} ({syntax}), which pydicom cannot "
                        "decode") from None
    if not decoder.is_available:
        raise DataError(f"{where}: pixel data compressed as {syntax.name} ({syntax}) and no decoder for it is "
                        f"installed; install one of: {'; '.join(decoder.missing_dependencies)}")
    return syntax


def integer(where, ds: pydicom.Dataset, keyword: str, allowed=None, default: int | None = None, low: int = 1) -> int:
    """A single whole-number element, at least `low` (and one of `allowed`); `default` when absent or empty."""
    value = _single(where, ds, keyword)
    if value is None:
        if default is None:
            raise DataError(f"{where}: missing {element_name(keyword)}; every DICOM image has one")
        return default
    text = str(value).strip()
    number = int(text) if text.lstrip("+-").isdigit() and not isinstance(value, float) else None
    if number is None or number < low or (allowed is not None and number not in allowed):
        expected = f"one of {', '.join(map(str, allowed))}" if allowed is not None and len(allowed) < 8 else \
            f"a whole number of at least {low}" if allowed is None else \
            f"a whole number from {allowed[0]} to {allowed[-1]}"
        raise DataError(f"{where}: {element_name(keyword)} is {text[:40]!r}; expected {expected}")
    return number


def numbers(where, ds: pydicom.Dataset, keyword: str) -> list[float] | None:
    """Every value of a decimal element as finite floats (None when absent or empty)."""
    value = _value(where, ds, keyword)
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        floats = [math.nan]
    if not floats or not all(math.isfinite(f) for f in floats):
        shown = "\\".join(str(v) for v in values)[:40]
        raise DataError(f"{where}: {element_name(keyword)} is {shown!r}; expected a number")
    return floats


def check_display_elements(where, ds: pydicom.Dataset, photometric: str) -> None:
    """The rescale, window and LUT elements the display pipeline applies, checked as numbers and tables."""
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        numbers(where, ds, keyword)
    width = numbers(where, ds, "WindowWidth")
    function = str(_value(where, ds, "VOILUTFunction") or "LINEAR").strip().upper()
    if function not in _VOI_FUNCTIONS:
        raise DataError(f"{where}: {element_name('VOILUTFunction')} {function[:40]!r}; expected LINEAR, "
                        "LINEAR_EXACT or SIGMOID")
    # PS3.3 C.11.2.1.2: a LINEAR window is at least 1 wide, the others wider than 0
    if width and numbers(where, ds, "WindowCenter") and not (width[0] >= 1 if function == "LINEAR" else width[0] > 0):
        raise DataError(f"{where}: {element_name('WindowWidth')} is {width[0]:g}; expected a width of at least 1")
    for keyword in ("ModalityLUTSequence", "VOILUTSequence"):
        items = _value(where, ds, keyword)
        if items:
            _check_lut(where, items[0], keyword)
    if photometric == "PALETTE COLOR":
        for colour in ("Red", "Green", "Blue"):
            if f"Segmented{colour}PaletteColorLookupTableData" not in ds:
                _check_lut(where, ds, f"{colour}PaletteColorLookupTable", prefix=f"{colour}PaletteColorLookupTable")


def _check_lut(where, item: pydicom.Dataset, what: str, prefix: str = "LUT") -> None:
    descriptor = _value(where, item, f"{prefix}Descriptor")
    data = _value(where, item, f"{prefix}Data")
    values = list(descriptor) if isinstance(descriptor, (list, pydicom.multival.MultiValue)) else []
    if len(values) != 3 or not all(isinstance(v, int) for v in values):
        raise DataError(f"{where}: {what}: {element_name(prefix + 'Descriptor')} is {str(descriptor)[:40]!r}; "
                        "expected three numbers (entries, first value, bits per entry)")
    entries = values[0] or 2 ** 16
    held = len(data) // 2 if isinstance(data, bytes) else len(data) if data is not None else 0
    if held < entries:
        raise DataError(f"{where}: {what}: {element_name(prefix + 'Data')} holds {held} entries; its descriptor "
                        f"declares {entries}")


def _check_native_length(where, ds: pydicom.Dataset, header: PixelHeader) -> None:
    """Uncompressed pixel data must hold what the header declares: shorter is a truncated file. Trailing bytes
    short of one more frame are padding some encoders write (pydicom reads exactly the declared frames); a frame or
    more beyond is a header that does not describe its pixels (pydicom would read the excess as extra frames of a
    different image)."""
    length = _length(where, ds, header.keyword)
    if length == _UNDEFINED_LENGTH:
        raise DataError(f"{where}: pixel data is compressed (encapsulated) but its transfer syntax "
                        f"{header.syntax.name} is uncompressed")
    bits = header.rows * header.columns * header.samples * header.frames * header.bits_allocated
    if header.photometric == "YBR_FULL_422":
        bits = bits * 2 // 3  # two chroma samples shared by each pair of pixels
    expected = (bits + 7) // 8
    if expected <= length < expected + max(expected // header.frames, 2):
        return
    declared = (f"Rows x Columns x SamplesPerPixel x NumberOfFrames x BitsAllocated = {header.rows} x "
                f"{header.columns} x {header.samples} x {header.frames} x {header.bits_allocated} bits")
    problem = "truncated" if length < expected else "longer than its header declares"
    raise DataError(f"{where}: pixel data {problem}: {length} bytes where {declared} = {expected} bytes")


def _length(where, ds: pydicom.Dataset, keyword: str) -> int:
    """The byte length of an element's value, read from its header (a deferred value is not read)."""
    element = ds.get_item(keyword, keep_deferred=True)
    if element is None:
        return 0
    if hasattr(element, "length"):
        return element.length  # a raw element keeps the length its header declares
    if element.is_undefined_length:
        return _UNDEFINED_LENGTH
    if not isinstance(element.value, (bytes, bytearray)):
        raise DataError(f"{where}: {element_name(keyword)} holds {type(element.value).__name__} values (VR "
                        f"{element.VR}); expected pixel bytes")
    return len(element.value)


def _single(where, ds: pydicom.Dataset, keyword: str):
    value = _value(where, ds, keyword)
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        if len(value) != 1:
            raise DataError(f"{where}: {element_name(keyword)} holds {len(value)} values; expected one")
        value = value[0]
    return value


def _value(where, ds: pydicom.Dataset, keyword: str):
    """An element's value, None when absent or empty; an element pydicom cannot convert (an unknown or wrong VR,
    bytes that are not its type) is named instead of raising pydicom's error."""
    if keyword not in ds:
        return None
    try:
        value = ds[keyword].value
    except Exception as exc:  # noqa: BLE001 - pydicom raises most types on hostile element bytes
        raise DataError(f"{where}: {element_name(keyword)} cannot be read ({exc.__class__.__name__}: "
                        f"{' '.join(str(exc).split())[:120]})") from None
    if value is None or (isinstance(value, (str, bytes, list, tuple, pydicom.multival.MultiValue))
                         and len(value) == 0) or (isinstance(value, str) and not value.strip()):
        return None
    return value

"""Decode an image file into an 8-bit PIL image in mode "L" or "RGB" (the only two modes medclass trains on).

Every reader decodes pixels through `read_image`, so a dataset behaves the same whatever folder or table names it.
DICOM files (`.dcm`, `.dicom`) are handed to `medclass.data.dicom`, which applies the DICOM display pipeline.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
from PIL import Image, ImageMode, ImageOps

from medclass.core.errors import DataError, ImageTooLargeError, UnsupportedImageError
import medclass.data.decode_limits as limits
from medclass.data.decode_limits import (BAND_PIXELS, DECODE_PEAK_BYTES, MAX_DECODED_BYTES,  # noqa: F401
                                         MAX_PIXELS, check_decoded_size, check_pixel_count)

DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff") + DICOM_SUFFIXES

# Errors Pillow raises for files it cannot parse; anything else is a bug in medclass and should surface as one.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)
# What an upload may be, told by its first bytes (a client's file name or content type proves nothing).
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_TO_BASE = {"LA": "L", "La": "L", "PA": "RGB", "RGBA": "RGB", "RGBa": "RGB", "RGBX": "RGB"}
# libjpeg decodes at 1/2, 1/4 or 1/8 of the stored size (DCT scaling): a JPEG too large to decode whole is read at
# the first of these scales that fits MAX_DECODED_BYTES, instead of being refused.
_JPEG_SCALES = (2, 4, 8)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder`, recursively, sorted (the one listing every folder reader and predict use)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))


def is_dicom_file(path: Path) -> bool:
    """A DICOM by its suffix, or, for a file whose suffix names no image format (PACS exports are often named by
    their UID alone), by the "DICM" marker every DICOM Part 10 file carries at byte 128."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            return sniff_image_type(f.read(132)) == "dicom"
    except OSError:
        return False  # unreadable: the image reader names the error


def read_image(path: str | Path, frame: int | None = None) -> Image.Image:
    """Read `path` and return it as an 8-bit image in mode "L" (grayscale) or "RGB". `frame` (counted from 1)
    picks one frame of a multi-frame DICOM file; any other image is its frame 1."""
    path = Path(path)
    if is_dicom_file(path):
        from medclass.data.dicom import read_dicom  # lazy: pydicom is only imported when DICOMs are read

        return read_dicom(path, frame=frame)
    if frame not in (None, 1):
        raise DataError(f"{path}: has 1 frame (not a multi-frame DICOM file); frame {frame} was asked for")
    return _read_with_pillow(path, path)


def sniff_image_type(data: bytes) -> str | None:
    """"png", "jpeg" or "dicom" from the content's own signature (DICOM: "DICM" at byte 128); None otherwise."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    if data[128:132] == b"DICM":
        return "dicom"
    return None


def decode_image_bytes(data: bytes, name: str = "upload") -> Image.Image:
    """Decode an image held in memory (PNG, JPEG or DICOM, told by its bytes) as `read_image` decodes a file:
    same pixel-count guard, same modes. `name` labels the errors. Raises UnsupportedImageError for any other
    content, ImageTooLargeError beyond MAX_PIXELS, DataError for a truncated or corrupt image."""
    kind = sniff_image_type(data)
    if kind is None:
        raise UnsupportedImageError(f"{name}: not a PNG, JPEG or DICOM image (its first bytes match none of "
                                    "their signatures)")
    if kind == "dicom":
        from medclass.data.dicom import read_dicom

        return read_dicom(io.BytesIO(data), name=name)
    return _read_with_pillow(io.BytesIO(data), name, formats=(_PILLOW_FORMATS[kind],))


def _read_with_pillow(source: Path | BinaryIO, where, formats: tuple[str, ...] | None = None) -> Image.Image:
    """The one Pillow decoding path of files and in-memory bytes; `formats` restricts what Pillow may parse."""
    try:
        # Our explicit MAX_PIXELS check replaces Pillow's bomb warning; its hard error is caught below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source, formats=formats) as img:
                _fit_decode_bound(img, where)
                ImageOps.exif_transpose(img, in_place=True)  # in place keeps img.format, which mode "I" needs
                return to_standard_mode(img)
    except FileNotFoundError:
        raise DataError(f"{where}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{where}: image too large ({exc}); medclass reads at most {limits.MAX_PIXELS} "
                                 "pixels") from None
    except _DECODE_ERRORS as exc:
        raise DataError(f"{where}: not a readable image ({exc.__class__.__name__}: {exc})") from None


def _fit_decode_bound(img: Image.Image, where) -> None:
    """Check the opened (not yet decoded) `img` against MAX_DECODED_BYTES by its mode's samples and bytes; a JPEG
    over it is set to decode at the first reduced scale that fits (draft), one within it decodes whole, as in
    training. Raises ImageTooLargeError when nothing fits."""
    layout = sample_layout(img.mode)
    try:
        limits.check_decoded_size(where, *img.size, *layout)
    except ImageTooLargeError:
        scale = _fitting_jpeg_scale(img, layout)
        if scale is None:
            raise
        width, height = img.size
        img.draft(None, (width // scale, height // scale))  # libjpeg picks the largest scale <= the ratio asked
        limits.check_decoded_size(where, *img.size, *layout)


def _fitting_jpeg_scale(img: Image.Image, layout: tuple[int, int]) -> int | None:
    if img.format != "JPEG":
        return None
    width, height = img.size
    for scale in _JPEG_SCALES:
        reduced = -(-width // scale) * -(-height // scale)  # libjpeg rounds each side up
        if reduced <= limits.MAX_PIXELS and reduced * layout[0] * layout[1] <= limits.MAX_DECODED_BYTES:
            return scale
    return None


def sample_layout(mode: str) -> tuple[int, int]:
    """(samples per pixel, bytes per sample) a Pillow mode decodes to, known before decoding: "L" (1, 1),
    "RGB" (3, 1), "RGBA" (4, 1), "I;16" (1, 2), "I" and "F" (1, 4)."""
    described = ImageMode.getmode(mode)
    return len(described.bands), np.dtype(described.typestr).itemsize


def to_standard_mode(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit "L" or "RGB" without inventing colour or discarding stored pixels."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img.copy()
    if mode == "1":
        return img.convert("L")
    if mode in ("P", "PA"):
        return _from_palette(img)
    if mode in _ALPHA_TO_BASE:
        # Alpha in a medical image is almost always an export artefact; dropping it keeps the stored pixel values,
        # whereas compositing onto a background would change them wherever alpha < 255.
        return (img.convert("RGBA") if mode == "RGBa" else img).convert(_ALPHA_TO_BASE[mode])
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        # Pillow's JPEG decoder already undoes the inversion of Adobe CMYK JPEGs.
        return img.convert("RGB")
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and img.format == "PNG"):
        return _scale_16_bit(img)
    if mode in ("I", "F"):
        return _min_max_to_8_bit(img)
    raise ValueError(f"unsupported image mode {mode!r}; expected a grayscale, RGB, palette or CMYK image")


def convert_channels(img: Image.Image, in_chans: int) -> Image.Image:
    """Give a model the channels it was built for: 1 -> "L", 3 -> "RGB"."""
    modes = {1: "L", 3: "RGB"}
    if in_chans not in modes:
        raise ValueError(f"in_chans must be 1 (grayscale) or 3 (RGB), found {in_chans}")
    return img if img.mode == modes[in_chans] else img.convert(modes[in_chans])


def _from_palette(img: Image.Image) -> Image.Image:
    if img.mode == "PA":  # through RGBA, which reads (and drops) the alpha band
        rgb = img.convert("RGBA").convert("RGB")
    else:
        with warnings.catch_warnings():  # palette transparency is dropped, as alpha is: the colours stay
            warnings.filterwarnings("ignore", "Palette images with Transparency")
            rgb = img.convert("RGB")
    return rgb.convert("L") if _used_palette_is_gray(img) else rgb


def _used_palette_is_gray(img: Image.Image) -> bool:
    # Only the entries the pixels use count: palettes are often padded with unused colours.
    palette = np.asarray(img.getpalette("RGB") or [], dtype=np.int32).reshape(-1, 3)
    counts = (img.getchannel(0) if img.mode == "PA" else img).histogram()  # 256 counts: no copy of the pixels
    used = np.flatnonzero(counts)
    used = used[used < len(palette)]
    colours = palette[used]
    return bool(np.all(colours == colours[:, :1]))


def _scale_16_bit(img: Image.Image) -> Image.Image:
    # Full 16-bit range: value * 255 / 65535, rounded. The PNG and TIFF specs store samples scaled to the full
    # bit depth (sBIT only records the original precision), and a fixed rule maps the same stored value to the
    # same 8-bit value in every image of a dataset, which per-image min-max scaling would not.
    def to_8_bit(values: np.ndarray) -> np.ndarray:
        values = values.astype(np.int64)  # in place from here: one band-sized temporary
        np.clip(values, 0, 65535, out=values)
        values *= 255
        values += 32767
        values //= 65535
        return values

    return _rows_to_8_bit(img, to_8_bit)


def _min_max_to_8_bit(img: Image.Image) -> Image.Image:
    # 32-bit integer and float images have no fixed range, so their own min..max becomes 0..255.
    low, high = np.inf, -np.inf
    for rows in _row_bands(img):
        finite = rows[np.isfinite(rows)] if rows.dtype.kind == "f" else rows
        if finite.size:
            low, high = min(low, finite.min()), max(high, finite.max())
    if low > high:  # no finite value at all
        return Image.new("L", img.size, 0)
    scale = 255.0 / (high - low) if high > low else 0.0

    def to_8_bit(values: np.ndarray) -> np.ndarray:
        values = values.astype(np.float64)
        scaled = np.where(np.isfinite(values), (values - low) * scale, 0.0)
        return np.rint(np.clip(scaled, 0, 255))

    return _rows_to_8_bit(img, to_8_bit)


def _row_bands(img: Image.Image) -> Iterator[np.ndarray]:
    """The pixels of a one-band image as arrays of a few rows each (about BAND_PIXELS pixels)."""
    width, height = img.size
    step = max(1, limits.BAND_PIXELS // max(width, 1))
    for top in range(0, height, step):
        yield np.asarray(img.crop((0, top, width, min(top + step, height))))


def _rows_to_8_bit(img: Image.Image, to_8_bit: Callable[[np.ndarray], np.ndarray]) -> Image.Image:
    """An "L" image of `to_8_bit` applied band by band of rows: the only full-size array is the 8-bit result."""
    out = np.empty((img.height, img.width), dtype=np.uint8)
    top = 0
    for rows in _row_bands(img):
        out[top:top + len(rows)] = to_8_bit(rows)
        top += len(rows)
    return Image.fromarray(out)

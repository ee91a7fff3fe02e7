"""The bounds on what one decode may cost, checked from an image's header before any pixel is decoded: shared by
the Pillow path (images.py) and the DICOM path (dicom.py, dicom_header.py). Read as `decode_limits.NAME` at call
time, so a test (or a deployment) can lower a bound in one place."""

from __future__ import annotations

from medclass.core.errors import ImageTooLargeError

# Largest image medclass decodes (width * height), checked from the header before any pixel is decoded.
# Routine single-frame medical images are far below it (a full-field mammogram is ~4096 x 5600 = 23 M pixels);
# whole-slide pathology needs tiling tools, not a classifier's loader. It also sits below Pillow's own hard limit
# (2 * Image.MAX_IMAGE_PIXELS = 179 M), so the limit a user meets is this one, with this message.
MAX_PIXELS = 10_000 * 10_000
# Largest decoded image in bytes (pixels x samples x bytes per sample, one frame), checked from the header too:
# the pixel count alone does not bound memory, since a 190 KB 16-bit PNG can declare 10000 x 10000 pixels (200 MB
# decoded, and more in conversions). 128 MiB holds a 16-bit full-field mammogram (~46 MB) and an 8-bit RGB image
# of 44 M pixels. It is checked from the mode's samples and bytes before decoding; a JPEG over it decodes at 1/2,
# 1/4 or 1/8 scale instead, when one fits.
MAX_DECODED_BYTES = 128 * 1024 ** 2
# Most memory one decode within the bound holds at its peak (measured, Pillow path: a 16-bit image at the bound
# 1.6 x MAX_DECODED_BYTES, RGB 2.5 x as Pillow keeps 4 bytes a pixel, a colour palette image of MAX_PIXELS 3.7 x as
# its RGB). The server sizes how many decodes run at once by it.
DECODE_PEAK_BYTES = 4 * MAX_DECODED_BYTES

# Conversions to 8-bit (here and in dicom.py) work on bands of rows of about this many pixels, so no full-size wide
# intermediate (int64, float64) ever exists beside the decoded buffer and the 8-bit result.
BAND_PIXELS = 1 << 20


def check_pixel_count(path, width: int, height: int) -> None:
    """Refuse images larger than MAX_PIXELS before decoding, so a hostile or broken header cannot exhaust memory."""
    pixels = int(width) * int(height)
    if pixels > MAX_PIXELS:
        raise ImageTooLargeError(f"{path}: image too large: {width} x {height} = {pixels} pixels; "
                        f"medclass reads at most {MAX_PIXELS} pixels (MAX_PIXELS)")


def check_decoded_size(path, width: int, height: int, samples: int = 1, bytes_per_sample: int = 1) -> None:
    """Refuse, before decoding, an image whose decoded pixels would exceed MAX_DECODED_BYTES (and MAX_PIXELS):
    `samples` per pixel (1 gray, 3 RGB, 4 with alpha) of `bytes_per_sample` each (1, 2 for 16-bit, 4, 8)."""
    check_pixel_count(path, width, height)
    size = int(width) * int(height) * int(samples) * int(bytes_per_sample)
    if size > MAX_DECODED_BYTES:
        raise ImageTooLargeError(f"{path}: image too large: {width} x {height} pixels of {samples} x "
                                 f"{bytes_per_sample * 8}-bit samples = {size // 1024 ** 2} MiB decoded; medclass "
                                 f"decodes at most {MAX_DECODED_BYTES // 1024 ** 2} MiB per image "
                                 "(MAX_DECODED_BYTES)")

"""Decode an image file into an 8-bit PIL image in mode "L" or "RGB" (the only two modes medclass trains on)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from medclass.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image(path: str | Path) -> Image.Image:
    """Read `path` and return it as mode "L" (grayscale) or "RGB"."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return to_standard_mode(img)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None


def to_standard_mode(img: Image.Image) -> Image.Image:
    if img.mode in ("L", "RGB"):
        return img.copy()
    if img.mode in ("1", "P", "LA", "RGBA", "CMYK", "YCbCr"):
        rgb = img.convert("RGBA" if img.mode in ("P", "LA", "RGBA") else "RGB")
        if rgb.mode == "RGBA":
            rgb = rgb.convert("RGB")
        gray = img.mode in ("1", "LA") or (img.mode == "P" and _palette_is_gray(img))
        return rgb.convert("L") if gray else rgb
    return img.convert("L")


def _palette_is_gray(img: Image.Image) -> bool:
    palette = img.getpalette() or []
    triples = zip(palette[0::3], palette[1::3], palette[2::3])
    return all(r == g == b for r, g, b in triples)

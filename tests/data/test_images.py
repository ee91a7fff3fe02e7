"""read_image: every supported flavour decodes to 8-bit "L"/"RGB" with the right pixels; broken files fail cleanly."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from medclass.data.images import MAX_PIXELS, IMAGE_SUFFIXES, convert_channels, is_image_file, read_image
from medclass.core.errors import DataError


def _pixels(img):
    return np.asarray(img).astype(int)


def test_16_bit_png_scales_by_full_range(tmp_path):
    path = tmp_path / "sixteen.png"
    Image.fromarray(np.array([[0, 257, 32768, 65535]], dtype=np.uint16)).save(path)
    img = read_image(path)
    assert img.mode == "L"
    # value * 255 / 65535, rounded: 257 -> 1, 32768 -> 127.5019 -> 128
    assert _pixels(img).tolist() == [[0, 1, 128, 255]]


def test_float_and_int32_tiff_scale_min_max(tmp_path):
    Image.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32)).save(tmp_path / "float.tif")
    Image.fromarray(np.array([[10, 20, 30]], dtype=np.int32)).save(tmp_path / "int32.tif")
    for name in ("float.tif", "int32.tif"):
        img = read_image(tmp_path / name)
        assert img.mode == "L"
        assert _pixels(img).tolist() == [[0, 128, 255]]


def test_cmyk_jpeg_keeps_its_colour(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("RGB", (16, 16), (200, 30, 40)).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    img = read_image(path)
    assert img.mode == "RGB"
    assert np.abs(_pixels(img)[8, 8] - [200, 30, 40]).max() <= 8


def test_progressive_jpeg(tmp_path):
    path = tmp_path / "progressive.jpg"
    Image.new("RGB", (32, 24), (10, 120, 250)).save(path, progressive=True, quality=95)
    assert Image.open(path).info.get("progressive")
    img = read_image(path)
    assert img.mode == "RGB" and img.size == (32, 24)
    assert np.abs(_pixels(img)[12, 16] - [10, 120, 250]).max() <= 8


def test_rgba_drops_alpha_and_keeps_rgb_values(tmp_path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (4, 4), (100, 150, 200, 0)).save(path)
    img = read_image(path)
    assert img.mode == "RGB"
    assert _pixels(img)[0, 0].tolist() == [100, 150, 200]


def test_la_drops_alpha(tmp_path):
    path = tmp_path / "la.png"
    Image.new("LA", (4, 4), (90, 10)).save(path)
    img = read_image(path)
    assert img.mode == "L" and _pixels(img)[0, 0] == 90


def test_colour_palette_with_transparency_becomes_rgb(tmp_path):
    path = tmp_path / "palette.png"
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255])
    img.putpixel((1, 0), 1)
    img.save(path, transparency=0)
    out = read_image(path)
    assert out.mode == "RGB"
    assert _pixels(out)[0].tolist() == [[255, 0, 0], [0, 0, 255]]


def test_gray_palette_stays_gray(tmp_path):
    path = tmp_path / "graypalette.png"
    img = Image.new("P", (3, 1))
    # Gray entries in use, plus an unused coloured entry that must not make the image RGB.
    img.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255, 255, 0, 0])
    for x in range(3):
        img.putpixel((x, 0), x)
    img.save(path)
    out = read_image(path)
    assert out.mode == "L"
    assert _pixels(out).tolist() == [[0, 128, 255]]


def test_rgb_with_equal_channels_stays_rgb(tmp_path):
    path = tmp_path / "grayish.png"
    Image.new("RGB", (2, 2), (70, 70, 70)).save(path)
    assert read_image(path).mode == "RGB"


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 10, 10))  # dark square in the top-left corner of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: display rotated 90 degrees clockwise
    img.save(path, exif=exif.tobytes(), quality=95)
    out = read_image(path)
    assert out.size == (20, 40)
    # After a clockwise turn the stored top-left corner is displayed top-right.
    assert _pixels(out)[5, 15].max() < 40 and _pixels(out)[5, 5].min() > 200


def test_grayscale_jpeg_and_bmp(tmp_path):
    Image.new("L", (8, 8), 77).save(tmp_path / "gray.jpg", quality=100)
    Image.new("1", (8, 8), 1).save(tmp_path / "mono.bmp")
    assert abs(_pixels(read_image(tmp_path / "gray.jpg"))[0, 0] - 77) <= 2
    mono = read_image(tmp_path / "mono.bmp")
    assert mono.mode == "L" and _pixels(mono)[0, 0] == 255


def _write_png_header(path, width, height):
    """A PNG that declares `width` x `height` 1-bit pixels but carries no image data: costs a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(11_000, 10_000), (30_000, 30_000)])
def test_bomb_sized_header_is_refused(tmp_path, width, height):
    path = tmp_path / f"bomb_{width}.png"
    _write_png_header(path, width, height)
    with pytest.raises(DataError) as err:
        read_image(path)
    message = str(err.value)
    assert path.name in message and str(width * height) in message and str(MAX_PIXELS) in message


def test_broken_files_raise_data_error_naming_the_file(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path in (truncated, text, empty, tmp_path / "missing.png"):
        with pytest.raises(DataError, match=path.name):
            read_image(path)
    with pytest.raises(DataError, match="file not found"):
        read_image(tmp_path / "missing.png")


def test_mixed_folder_loads_valid_files_and_names_broken_ones(tmp_path):
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(tmp_path / "a16.png")
    Image.new("RGBA", (4, 4), (1, 2, 3, 4)).save(tmp_path / "b_rgba.png")
    (tmp_path / "c_text.png").write_text("hello")
    (tmp_path / "d_cut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    loaded, failed = {}, {}
    for path in sorted(p for p in tmp_path.iterdir() if is_image_file(p)):
        try:
            loaded[path.name] = read_image(path)
        except DataError as exc:
            failed[path.name] = str(exc)
    assert {name: img.mode for name, img in loaded.items()} == {"a16.png": "L", "b_rgba.png": "RGB"}
    assert sorted(failed) == ["c_text.png", "d_cut.jpg"]
    assert all(name in message for name, message in failed.items())


def test_convert_channels():
    gray, rgb = Image.new("L", (2, 2), 9), Image.new("RGB", (2, 2), (9, 9, 9))
    assert convert_channels(gray, 3).mode == "RGB" and convert_channels(rgb, 1).mode == "L"
    assert convert_channels(gray, 1) is gray
    with pytest.raises(ValueError, match="in_chans"):
        convert_channels(gray, 4)


def test_dicom_suffixes_count_as_images(tmp_path):
    assert ".dcm" in IMAGE_SUFFIXES
    assert is_image_file(tmp_path / "scan.DCM") and not is_image_file(tmp_path / ".hidden.png")

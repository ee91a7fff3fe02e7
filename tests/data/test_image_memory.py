"""Decoded bytes are bounded before decoding (by bit depth and samples, not just pixels), huge JPEGs decode at a
reduced scale, and the conversions to 8-bit keep no full-size wide intermediate: measured in a subprocess's RSS."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medclass.data import decode_limits, images
from medclass.data.images import MAX_DECODED_BYTES, decode_image_bytes, read_image
from medclass.core.errors import ImageTooLargeError
from tests.conftest import sixteen_bit_png

MIB = 1024 ** 2

# Decodes the file argv[1] as an upload and prints how much the process's peak RSS grew while it did.
MEASURE = """
import json, resource, sys
from medclass.data.images import decode_image_bytes
from medclass.core.errors import ImageTooLargeError
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    image = decode_image_bytes(data, name="upload.png")
    outcome = {"size": list(image.size), "mode": image.mode}
except ImageTooLargeError as exc:
    outcome = {"refused": str(exc)}
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
print(json.dumps({**outcome, "peak_growth": grown * 1024}))
"""


def decode_measured(path) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_small_16_bit_png_declaring_10000_squared_is_refused_within_16_mib(tmp_path):
    """The 190 KB PNG of the issue: 10000 x 10000 16-bit pixels are 190 MiB decoded (it cost +1.9 GiB and seconds).
    Bound: refused from its header, the decoding process's peak RSS grows by less than 16 MiB."""
    path = tmp_path / "bomb16.png"
    path.write_bytes(sixteen_bit_png(10_000, 10_000))
    assert path.stat().st_size < 256 * 1024
    measured = decode_measured(path)
    assert "MAX_DECODED_BYTES" in measured.get("refused", ""), measured
    assert "10000 x 10000 pixels of 1 x 16-bit samples" in measured["refused"]
    assert measured["peak_growth"] < 16 * MIB


def test_a_16_bit_png_within_the_bound_decodes_in_under_twice_its_16_bit_bytes(tmp_path):
    """6000 x 6000 16-bit (69 MiB of samples) decodes whole: Pillow's buffer (2 bytes a pixel), the 8-bit result (1)
    and a band of rows; the conversion through int64 over the whole image cost ~19 bytes a pixel."""
    width = height = 6000
    row = np.linspace(0, 65535, width).astype(np.uint16)
    path = tmp_path / "within.png"
    path.write_bytes(sixteen_bit_png(width, height, row))
    sample_bytes = width * height * 2
    assert sample_bytes <= MAX_DECODED_BYTES
    measured = decode_measured(path)
    assert measured.get("size") == [width, height] and measured["mode"] == "L", measured
    assert measured["peak_growth"] < 2 * sample_bytes, f"{measured['peak_growth'] / MIB:.0f} MiB"


@pytest.fixture
def small_bound(monkeypatch):
    """MAX_DECODED_BYTES of 64 x 48 RGB pixels, so the bound's cases need only tiny images."""
    monkeypatch.setattr(decode_limits, "MAX_DECODED_BYTES", 64 * 48 * 3)


def jpeg(tmp_path, size, name="photo.jpg"):
    path = tmp_path / name
    gradient = np.add.outer(np.arange(size[1]), np.arange(size[0])) % 256
    Image.fromarray(np.stack([gradient, 255 - gradient, gradient // 2], -1).astype(np.uint8)).save(path, quality=95)
    return path


def test_bytes_per_sample_and_samples_count_against_the_bound(tmp_path, small_bound):
    for mode, size in (("L", (96, 96)), ("RGB", (64, 48)), ("RGBA", (48, 48))):  # 9216 bytes each: within
        Image.new(mode, size).save(tmp_path / f"{mode}.png")
        assert read_image(tmp_path / f"{mode}.png").size == size
    Image.fromarray(np.zeros((48, 64), np.uint16)).save(tmp_path / "sixteen.png")  # 6144 bytes: within
    assert read_image(tmp_path / "sixteen.png").size == (64, 48)
    Image.fromarray(np.zeros((96, 64), np.uint16)).save(tmp_path / "sixteen_tall.png")  # 12288 bytes
    with pytest.raises(ImageTooLargeError, match=r"sixteen_tall.png: .*64 x 96 pixels of 1 x 16-bit samples"):
        read_image(tmp_path / "sixteen_tall.png")
    Image.new("RGBA", (64, 48)).save(tmp_path / "rgba.png")  # 12288 bytes
    with pytest.raises(ImageTooLargeError, match="4 x 8-bit samples"):
        decode_image_bytes((tmp_path / "rgba.png").read_bytes(), name="rgba.png")


def test_a_jpeg_over_the_bound_decodes_at_a_reduced_scale_and_one_within_it_whole(tmp_path, small_bound):
    within = jpeg(tmp_path, (64, 48), "within.jpg")
    with Image.open(within) as full:
        expected = np.asarray(full.convert("RGB"))
    assert np.array_equal(np.asarray(read_image(within)), expected)  # exactly the full-size decode

    for size, reduced in (((128, 96), (64, 48)), ((500, 300), (63, 38))):  # 1/2, then 1/8 (1/4 is still over)
        image = read_image(jpeg(tmp_path, size))
        assert image.size == reduced and image.mode == "RGB"
    with pytest.raises(ImageTooLargeError, match="1024 x 1024 pixels of 3 x 8-bit"):  # over even at 1/8
        read_image(jpeg(tmp_path, (1024, 1024)))
    png = tmp_path / "photo.png"
    Image.new("RGB", (128, 96)).save(png)  # PNG has no reduced decode: refused
    with pytest.raises(ImageTooLargeError, match="MAX_DECODED_BYTES"):
        read_image(png)


def test_conversions_to_8_bit_band_by_band_match_the_whole_image_rule(tmp_path, monkeypatch):
    monkeypatch.setattr(decode_limits, "BAND_PIXELS", 2)  # one row per band
    Image.fromarray(np.array([[-1.0, 0.0], [1.0, 0.5]], np.float32)).save(tmp_path / "float.tif")
    assert np.asarray(read_image(tmp_path / "float.tif")).tolist() == [[0, 128], [255, 191]]  # min, max: rows 1, 2
    Image.fromarray(np.array([[np.nan, 0.0], [1.0, np.inf]], np.float32)).save(tmp_path / "nan.tif")
    assert np.asarray(read_image(tmp_path / "nan.tif")).tolist() == [[0, 0], [255, 0]]
    Image.fromarray(np.array([[np.nan]], np.float32)).save(tmp_path / "allnan.tif")
    assert np.asarray(read_image(tmp_path / "allnan.tif")).tolist() == [[0]]
    Image.fromarray(np.array([[0, 257], [32768, 65535]], np.uint16)).save(tmp_path / "sixteen.png")
    assert np.asarray(read_image(tmp_path / "sixteen.png")).tolist() == [[0, 1], [128, 255]]


@pytest.mark.parametrize("display", [{"WindowCenter": 40, "WindowWidth": 400}, {}], ids=["window", "min-max"])
def test_a_16_bit_dicom_at_the_bound_decodes_within_the_servers_per_decode_budget(tmp_path, display):
    """8192 x 8192 16-bit (128 MiB of samples, MAX_DECODED_BYTES) with a rescale: pydicom's windowing and LUTs work
    in float64, which over the whole image cost +1345 MiB (window) and +832 MiB (min-max); converted band by band
    the decode stays within DECODE_PEAK_BYTES, the memory the server counts per decode."""
    from medclass.harness.fuzz import dicom_dataset

    side = 8192
    pixels = (np.arange(side * side, dtype=np.uint32) % 4096).astype(np.uint16).reshape(side, side)
    path = tmp_path / "big.dcm"
    dicom_dataset(pixels, RescaleSlope=1.5, RescaleIntercept=-1024, **display).save_as(path,
                                                                                      enforce_file_format=True)
    del pixels
    measured = decode_measured(path)
    assert measured.get("size") == [side, side] and measured["mode"] == "L", measured
    assert measured["peak_growth"] < images.DECODE_PEAK_BYTES

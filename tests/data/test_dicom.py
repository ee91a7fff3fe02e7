"""read_dicom: the DICOM display pipeline gives the values computed by hand; unreadable DICOMs fail cleanly."""

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmwrite
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, ExplicitVRLittleEndian

from medclass.harness.fuzz import dicom_dataset
from medclass.data import open_dataset
from medclass.data.dicom import dicom_patient_id, read_dicom
from medclass.data.images import read_image
from medclass.core.errors import DataError


def _dataset(pixels, photometric="MONOCHROME2", syntax=ExplicitVRLittleEndian, **elements):
    """A minimal single-frame image; `pixels` is (rows, cols) uint16 or (rows, cols, 3) uint8."""
    return dicom_dataset(pixels, photometric, syntax, PatientID="P001", **elements)


def _write(tmp_path, name, ds):
    path = tmp_path / name
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def _pixels(img):
    return np.asarray(img).astype(int)


def test_monochrome2_without_window_uses_min_max(tmp_path):
    path = _write(tmp_path, "plain.dcm", _dataset(np.array([[0, 100, 300, 400]], dtype=np.uint16)))
    img = read_dicom(path)
    assert img.mode == "L"
    # min..max = 0..400 -> 0..255: 100 -> 63.75, 300 -> 191.25
    assert _pixels(img).tolist() == [[0, 64, 191, 255]]


def test_monochrome1_is_inverted(tmp_path):
    ds = _dataset(np.array([[0, 100, 300, 400]], dtype=np.uint16), photometric="MONOCHROME1")
    img = read_dicom(_write(tmp_path, "mono1.dcm", ds))
    assert _pixels(img).tolist() == [[255, 191, 64, 0]]


def test_rescale_then_window(tmp_path):
    # Stored s -> HU = 2 * s - 1024. Window centre 0, width 400, LINEAR (DICOM PS3.3 C.11.2.1.2.1):
    #   y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, 0 below the window, 255 above it.
    #   s=412 -> HU -200 -> 0;  s=462 -> HU -100 -> (-99.5 / 399 + 0.5) * 255 = 63.91 -> 64
    #   s=512 -> HU 0 -> (0.5 / 399 + 0.5) * 255 = 127.82 -> 128;  s=612 -> HU 200 -> 255
    stored = np.array([[412, 462, 512, 612]], dtype=np.uint16)
    ds = _dataset(stored, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=[0, 40], WindowWidth=[400, 80])
    ds.BitsStored, ds.HighBit = 12, 11
    img = read_dicom(_write(tmp_path, "ct.dcm", ds))
    assert _pixels(img).tolist() == [[0, 64, 128, 255]]


def test_rescale_without_window_uses_min_max_of_rescaled_values(tmp_path):
    ds = _dataset(np.array([[10, 20, 30]], dtype=np.uint16), RescaleSlope=-1, RescaleIntercept=0)
    # Rescaled: -10, -20, -30 -> min..max -30..-10 -> 255, 128 (127.5 rounds to even), 0
    assert _pixels(read_dicom(_write(tmp_path, "neg.dcm", ds))).tolist() == [[255, 128, 0]]


def test_voi_lut_takes_precedence_over_window(tmp_path):
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]  # 4 entries, first stored value 0, 8 bits per entry
    item.add_new("LUTData", "US", [0, 40, 160, 200])  # ambiguous VR (US or OW): say which
    ds = _dataset(np.array([[0, 1, 2, 3]], dtype=np.uint16), WindowCenter=1000, WindowWidth=10)
    ds.VOILUTSequence = Sequence([item])
    # The LUT's output range 0..200 becomes 0..255.
    assert _pixels(read_dicom(_write(tmp_path, "lut.dcm", ds))).tolist() == [[0, 51, 204, 255]]


def test_rgb_dicom(tmp_path):
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (200, 10, 30)
    img = read_dicom(_write(tmp_path, "colour.dcm", _dataset(rgb, photometric="RGB")))
    assert img.mode == "RGB" and _pixels(img)[0, 0].tolist() == [200, 10, 30]


def test_missing_pixel_data(tmp_path):
    ds = _dataset(np.zeros((2, 2), dtype=np.uint16))
    del ds.PixelData
    path = _write(tmp_path, "nopixels.dcm", ds)
    with pytest.raises(DataError, match="nopixels.dcm: no pixel data"):
        read_dicom(path)


def test_multi_frame_is_read_one_frame_at_a_time(tmp_path):
    frames = np.array([[[0, 10], [20, 30]], [[400, 300], [200, 100]]], dtype=np.uint16)
    ds = _dataset(frames.reshape(4, 2), NumberOfFrames=2)
    ds.Rows = 2
    path = _write(tmp_path, "frames.dcm", ds)
    with pytest.raises(DataError, match=r"frames.dcm: has 2 frames; .*--frames all"):
        read_dicom(path)  # training readers take single-frame images only
    assert _pixels(read_dicom(path, frame=1)).tolist() == [[0, 85], [170, 255]]
    assert _pixels(read_dicom(path, frame=2)).tolist() == [[255, 170], [85, 0]]
    with pytest.raises(DataError, match=r"has 2 frame\(s\); frame 3 was asked for"):
        read_dicom(path, frame=3)


def _compressed(syntax):
    ds = _dataset(np.zeros((2, 2), dtype=np.uint16), syntax=syntax)
    ds.PixelData = encapsulate([b"\x00\x01\x02\x03 not really compressed"])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless])
def test_compressed_pixel_data_names_the_transfer_syntax(tmp_path, syntax):
    # Whether the decoder is missing (JPEG-LS here) or present and fed garbage (JPEG 2000 via Pillow),
    # the error names the file and the transfer syntax.
    path = _write(tmp_path, "packed.dcm", _compressed(syntax))
    with pytest.raises(DataError) as err:
        read_dicom(path)
    assert "packed.dcm" in str(err.value) and syntax.name in str(err.value)


def test_missing_decoder_says_what_to_install(tmp_path):
    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    path = _write(tmp_path, "jls.dcm", _compressed(JPEGLSLossless))
    with pytest.raises(DataError, match=f"no decoder for it is installed.*{JPEGLSLossless}|{JPEGLSLossless}.*install"):
        read_dicom(path)


def test_not_a_dicom_file(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_text("plain text, not DICOM")
    with pytest.raises(DataError, match="fake.dcm: not a DICOM file"):
        read_dicom(path)
    with pytest.raises(DataError, match="fake.dcm"):
        dicom_patient_id(path)
    with pytest.raises(DataError, match="file not found"):
        read_dicom(tmp_path / "absent.dcm")


def test_patient_id_and_read_image_dispatch(tmp_path):
    path = _write(tmp_path, "scan.dcm", _dataset(np.array([[0, 10]], dtype=np.uint16)))
    assert dicom_patient_id(path) == "P001"
    assert _pixels(read_image(path)).tolist() == [[0, 255]]
    anonymous = _dataset(np.array([[0, 10]], dtype=np.uint16))
    anonymous.PatientID = ""
    assert dicom_patient_id(_write(tmp_path, "anon.dcm", anonymous)) is None


def test_class_folders_of_dicom_files_open_as_dataset(tmp_path):
    for label, value in (("normal", 100), ("tumour", 900)):
        (tmp_path / label).mkdir()
        for i in range(2):
            pixels = np.array([[0, value + i]], dtype=np.uint16)
            _write(tmp_path / label, f"{label}_{i}.dcm", _dataset(pixels))
    Image.new("L", (2, 1), 5).save(tmp_path / "normal" / "extra.png")  # DICOM and PNG may share a folder
    data = open_dataset(tmp_path)
    assert data.classes == ["normal", "tumour"] and len(data) == 5
    first_dicom = next(s for s in data.samples if s.source.endswith("normal_0.dcm"))
    img = data.load_image(first_dicom)
    assert img.mode == "L" and _pixels(img).tolist() == [[0, 255]]

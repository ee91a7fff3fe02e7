"""DICOM from elsewhere: hostile header values, excess pixel data, deflate bombs and PACS syntaxes end in one line
of medclass's own error or a plausible image, never another exception or a wrong image."""

import io
import re
import struct
import tracemalloc
import zlib

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_files
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medclass.data.dicom import read_dicom
from medclass.data.images import MAX_DECODED_BYTES, decode_image_bytes
from medclass.core.errors import DataError, ImageTooLargeError
from tests.data.test_dicom import _dataset, _pixels


def _bytes(ds) -> bytes:
    """A Part 10 file (preamble, "DICM", file meta) holding whatever `ds` holds, valid or not."""
    ds.preamble = b"\0" * 128
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=False, implicit_vr=False, little_endian=True)
    return out.getvalue()


def _gray(**elements):
    return _dataset(np.array([[0, 100], [300, 400]], dtype=np.uint16), **elements)


def _edit(change):
    ds = _gray()
    change(ds)
    return _bytes(ds)


def _raw(ds, tag, vr, value: bytes):
    """An element holding exactly `value` (pydicom refuses to write a hostile value through its own types)."""
    ds[tag] = RawDataElement(pydicom.tag.Tag(tag), vr, len(value), value, 0, False, True)


def _voi_lut(data):
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]
    if data is not None:
        item.add_new("LUTData", "US", data)
    return Sequence([item])


HOSTILE = {  # what the issue found escaping (or decoding wrongly), and what the one-line reason names
    "NumberOfFrames 1A (badVR.dcm)": (lambda ds: _raw(ds, 0x00280008, "IS", b"1A"),
                                      r"\(0028,0008\) NumberOfFrames is '1A'; expected a whole number"),
    "text RescaleSlope": (lambda ds: (_raw(ds, 0x00281053, "DS", b"abc "), setattr(ds, "RescaleIntercept", 0)),
                          r"\(0028,1053\) RescaleSlope is 'abc'; expected a number"),
    "empty transfer syntax": (lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", ""), None),
    "not a transfer syntax": (lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.3.4"),
                              r"\(0002,0010\) TransferSyntaxUID '1.2.3.4' is not a transfer syntax"),
    "unknown VR": ("unknown VR", r"\(0028,0011\) Columns cannot be read"),
    "None window width": (lambda ds: (setattr(ds, "WindowCenter", 10), setattr(ds, "WindowWidth", None)), None),
    "zero window width": (lambda ds: (setattr(ds, "WindowCenter", 10), setattr(ds, "WindowWidth", 0)),
                          r"\(0028,1051\) WindowWidth is 0"),
    "empty LUT": (lambda ds: setattr(ds, "VOILUTSequence", _voi_lut([])), r"LUTData holds 0 entries"),
    "None LUT": (lambda ds: setattr(ds, "VOILUTSequence", _voi_lut(None)), r"LUTData holds 0 entries"),
    "no pixel data": (lambda ds: delattr(ds, "PixelData"), r"no pixel data"),
    "empty float pixel data": (lambda ds: (delattr(ds, "PixelData"), setattr(ds, "BitsAllocated", 32),
                                           ds.__setitem__(0x7FE00008, DataElement(0x7FE00008, "OF", b""))),
                               r"pixel data truncated: 0 bytes"),
    "excess pixel data on a 1-row image": (lambda ds: (setattr(ds, "Rows", 1), setattr(ds, "PixelData", bytes(2048))),
                                           r"pixel data longer than its header declares: 2048 bytes"),
    "excess pixel data (2x2 read as 2x1024)": (lambda ds: setattr(ds, "PixelData", bytes(range(256)) * 16),
                                               r"longer than its header declares"),
    "truncated pixel data": (lambda ds: setattr(ds, "PixelData", bytes(4)), r"pixel data truncated"),
    "wrong samples": (lambda ds: setattr(ds, "SamplesPerPixel", 3), r"\(0028,0002\) SamplesPerPixel is '3'"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_header_values_end_in_one_line_naming_the_element(case):
    change, reason = HOSTILE[case]
    if change == "unknown VR":  # pydicom will not write one: edit the bytes of (0028,0011) Columns, VR US
        data = _edit(lambda ds: None).replace(b"\x28\x00\x11\x00US", b"\x28\x00\x11\x00ZZ")
    else:
        data = _edit(change)
    try:
        image = decode_image_bytes(data, name="upload.dcm")
    except DataError as exc:
        message = str(exc)
        assert message.startswith("upload.dcm: ") and "\n" not in message and "force" not in message
        if reason:
            assert re.search(reason, message), message
        return
    # the only acceptable success: the declared 2 x 2 image, whole (an empty element counts as absent)
    assert reason is None and image.size == (2, 2) and _pixels(image).tolist() == [[0, 64], [191, 255]]


def test_padding_short_of_a_frame_is_read_as_the_declared_image():
    # MR_small_padded.dcm style: trailing bytes fewer than one more frame are padding; the image is the header's
    data = _edit(lambda ds: setattr(ds, "PixelData", ds.PixelData + bytes(6)))
    assert _pixels(decode_image_bytes(data)).tolist() == [[0, 64], [191, 255]]


def test_a_truncated_deflated_file_is_refused():
    ds = _gray()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = _bytes(ds)
    assert _pixels(decode_image_bytes(data)).tolist() == [[0, 64], [191, 255]]
    with pytest.raises(DataError, match=r"upload: deflated data set is truncated"):
        decode_image_bytes(data[:-6])


def _deflated_bomb(path, rows, columns, samples=3, bits=16):
    """A Deflated Explicit VR Little Endian file declaring rows x columns of zeros, written without ever holding
    the inflated pixel data (a few hundred KB on disk)."""
    ds = _dataset(np.zeros((1, 1), dtype=np.uint16))
    del ds.PixelData
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, samples, "RGB"
    ds.PlanarConfiguration, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 0, bits, bits, bits - 1
    header = DicomBytesIO()
    header.is_little_endian, header.is_implicit_VR = True, False
    write_dataset(header, ds)
    length = rows * columns * samples * bits // 8
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as f:
        meta = DicomBytesIO()
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
        f.write(b"\0" * 128 + b"DICM" + meta.getvalue())
        f.write(deflater.compress(header.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length)))
        chunk = bytes(1024 ** 2)
        for _ in range(length // len(chunk)):
            f.write(deflater.compress(chunk))
        f.write(deflater.compress(bytes(length % len(chunk))) + deflater.flush())
    return path


def test_a_deflate_bomb_is_refused_within_bounded_memory(tmp_path):
    # the file: 16-bit RGB 5000 x 5000 (150 MB inflated, +2.1 GiB before) in a small deflated file
    path = _deflated_bomb(tmp_path / "bomb.dcm", 5000, 5000)
    assert path.stat().st_size < 300_000
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLargeError, match=r"bomb.dcm: deflated data set inflates to more than"):
            read_dicom(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 ** 2  # streamed a chunk at a time, never the inflated data set


def test_the_decoded_size_is_bounded_from_the_header_before_decoding(tmp_path):
    ds = _dataset(np.zeros((1, 1, 3), dtype=np.uint8), photometric="RGB")
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 5000, 5000, 16, 16, 15
    # 5000 x 5000 x 3 x 2 bytes = 143 MiB > MAX_DECODED_BYTES, refused before pydicom sees the (short) pixel data
    assert 5000 * 5000 * 6 > MAX_DECODED_BYTES
    with pytest.raises(ImageTooLargeError, match=r"3 x 16-bit samples = 143 MiB decoded"):
        decode_image_bytes(_bytes(ds))


def test_a_data_set_without_preamble_is_read_and_advice_for_python_is_not_passed_on(tmp_path):
    ds = _gray()
    raw = io.BytesIO()
    dcmwrite(raw, ds, enforce_file_format=False, implicit_vr=False, little_endian=True)
    body = raw.getvalue()
    body = body[body.index(b"\x08\x00"):]  # the data set alone, as ACR-NEMA style exports write it
    (tmp_path / "raw.dcm").write_bytes(body)
    assert _pixels(read_dicom(tmp_path / "raw.dcm")).tolist() == [[0, 64], [191, 255]]
    (tmp_path / "text.dcm").write_text("not DICOM at all")
    with pytest.raises(DataError, match=r"text.dcm: not a DICOM file") as err:
        read_dicom(tmp_path / "text.dcm")
    assert "force" not in str(err.value)


def _test_file(name):
    return get_testdata_files(name)[0]  # files bundled with pydicom (never downloaded)


@pytest.mark.parametrize("compressed, reference", [
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS Lossless, .80
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),  # JPEG 2000 Lossless, .90
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # JPEG Lossless Process 14 SV1, .70
])
def test_lossless_pacs_syntaxes_decode_to_the_uncompressed_image(compressed, reference):
    np.testing.assert_array_equal(_pixels(read_dicom(_test_file(compressed))),
                                  _pixels(read_dicom(_test_file(reference))))


def test_lossy_jpeg_ls_and_12_bit_jpeg_extended_decode_to_plausible_images():
    near = _pixels(read_dicom(_test_file("SC_rgb_jls_lossy_sample.dcm")))  # JPEG-LS near-lossless, .81
    assert np.abs(near - _pixels(read_dicom(_test_file("SC_rgb_rle.dcm")))).max() <= 4
    ds = pydicom.dcmread(_test_file("JPGExtended.dcm"))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51" and ds.BitsStored == 12
    twelve_bit = _pixels(read_dicom(_test_file("JPGExtended.dcm")))
    same_scan = _pixels(read_dicom(_test_file("JPEG2000.dcm")))  # the same slice, encoded as JPEG 2000
    assert twelve_bit.std() > 10 and np.corrcoef(twelve_bit.ravel(), same_scan.ravel())[0, 1] > 0.9


def test_gdcm_is_never_handed_untrusted_bytes_even_when_installed():
    """GDCM's plugin aborts the process on a corrupt JPEG stream (benchmarks/fuzz.py, seed 0, with python-gdcm
    installed): pydicom registers it for every JPEG syntax whether installed or not, and medclass drops it."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless

    import medclass.data.dicom  # noqa: F401 - drops the plugin at import

    for syntax in (JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless):
        decoder = get_decoder(syntax)
        assert "gdcm" not in decoder.available_plugins and "gdcm" not in decoder._unavailable

"""Decoder fuzzing: seeded mutants of tiny valid PNG, JPEG and DICOM files, and what the bytes decoder makes of them.

`mutants(seed, count)` yields (name, bytes): byte-level mutants of every seed file (bit flips, truncation, byte
insertion and deletion) and, for DICOM, header edits made through pydicom (wrong VRs, text in numeric elements,
NumberOfFrames, transfer syntax UIDs, window/LUT/rescale elements, pixel data length). The seed files are made
here: PNG (8- and 16-bit), JPEG, and DICOM as native 16-bit, RGB, deflated and JPEG-compressed data sets.
`fuzz_decoder(seed, count)` runs them through `decode_image_bytes` and counts each outcome: refused with
medclass's own error, decoded, or escaped (by exception type): the promise is that nothing escapes.
"""

from __future__ import annotations

import io
import random
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from medclass.data.images import decode_image_bytes
from medclass.core.errors import MedclassError


@dataclass
class FuzzCounts:
    """Outcomes of a fuzz run: `escaped` maps an exception type to its count and first mutant's name."""

    refused: int = 0
    decoded: int = 0
    escaped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.refused + self.decoded + sum(self.escaped.values())


def seed_files() -> dict[str, bytes]:
    """Tiny valid files of every kind the bytes decoder takes."""
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (8, 8), dtype=np.uint8)
    files = {"png8": _pillow(Image.fromarray(gray), "PNG"),
             "png16": _pillow(Image.fromarray((gray.astype(np.uint16) * 257)), "PNG"),
             "jpeg": _pillow(Image.fromarray(np.stack([gray] * 3, axis=-1)), "JPEG")}
    from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit

    files["dicom16"] = _dicom(gray.astype(np.uint16) * 16, RescaleSlope=2, RescaleIntercept=-100,
                              WindowCenter=500, WindowWidth=800)
    files["dicom_rgb"] = _dicom(np.stack([gray] * 3, axis=-1), photometric="RGB")
    files["dicom_deflated"] = _dicom(gray, syntax=DeflatedExplicitVRLittleEndian)
    files["dicom_jpeg"] = _dicom(gray, syntax=JPEGBaseline8Bit, compressed=_pillow(Image.fromarray(gray), "JPEG"))
    files["dicom_lut"] = _dicom(gray.astype(np.uint16), voi_lut=True)
    return files


def mutants(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """`count` seeded mutants of the seed files, (name, bytes); the same seed gives the same mutants."""
    rng = random.Random(seed)
    files = seed_files()
    names = sorted(files)
    for number in range(count):
        kind = names[number % len(names)]
        edit = rng.choice(_BYTE_EDITS + (_DICOM_EDITS if kind.startswith("dicom") else []))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every hostile value it writes
            try:
                data = edit(files[kind], rng)
            except Exception:  # noqa: BLE001 - an edit pydicom cannot write: fall back to a bit flip
                edit, data = _flip_bits, _flip_bits(files[kind], rng)
        yield f"{number:05d}-{kind}-{edit.__name__.strip('_')}", data


def fuzz_decoder(seed: int = 0, count: int = 1000, decode: Callable[[bytes, str], object] = decode_image_bytes
                 ) -> FuzzCounts:
    """Run `count` mutants through `decode` (default `decode_image_bytes`) and count what happened."""
    counts = FuzzCounts()
    for name, data in mutants(seed, count):
        try:
            decode(data, name)
            counts.decoded += 1
        except MedclassError:
            counts.refused += 1
        except Exception as exc:  # noqa: BLE001 - what the harness is here to find
            kind = exc.__class__.__name__
            counts.escaped[kind] += 1
            counts.examples.setdefault(kind, f"{name}: {' '.join(str(exc).split())[:160]}")
    return counts


def fuzz_server(client, seed: int = 0, count: int = 200, model: str | None = None) -> Counter:
    """Post `count` mutants to a medclass server's /predict through `client` (FastAPI's TestClient, or any client
    with `post(url, files=, data=)`) and count the answers by status code; an answer that is not JSON with a
    one-line `detail` (or, for 200, finite probabilities) counts as "malformed <status>"."""
    statuses: Counter = Counter()
    for name, data in mutants(seed, count):
        response = client.post("/predict", files={"file": (name, data, "application/octet-stream")},
                               data={"model": model} if model else None)
        statuses[_answer_kind(response)] += 1
    return statuses


def _answer_kind(response) -> str | int:
    try:
        body = response.json()
    except ValueError:
        return f"malformed {response.status_code}"
    if response.status_code == 200:
        probabilities = [p for task in body["tasks"].values() for p in task["probabilities"].values()]
        return 200 if all(np.isfinite(probabilities)) else "malformed 200"
    detail = body.get("detail") if isinstance(body, dict) else None
    one_line = isinstance(detail, str) and detail and "\n" not in detail
    return response.status_code if one_line else f"malformed {response.status_code}"


def format_counts(counts: FuzzCounts, seed: int) -> str:
    lines = [f"Decoder fuzzing (seed {seed}): {counts.total} mutants of PNG, JPEG and DICOM through "
             "decode_image_bytes",
             "| outcome | mutants |", "|---|---|",
             f"| refused with medclass's own error | {counts.refused} |", f"| decoded | {counts.decoded} |"]
    lines += [f"| escaped: {kind} | {n} |" for kind, n in counts.escaped.most_common()]
    if not counts.escaped:
        lines.append("| escaped (any other exception) | 0 |")
    lines += [f"first {kind}: {example}" for kind, example in counts.examples.items()]
    return "\n".join(lines)


def _pillow(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def dicom_dataset(pixels: np.ndarray, photometric: str = "MONOCHROME2", syntax=None, **elements):
    """A minimal valid single-frame DICOM image (a pydicom Dataset): `pixels` (rows, cols) gray or (rows, cols, 3)
    RGB, of their dtype's bits; `elements` set further keywords."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.27"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    ds.PixelData = pixels.tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def _dicom(pixels: np.ndarray, photometric: str = "MONOCHROME2", syntax=None, compressed: bytes | None = None,
           voi_lut: bool = False, **elements) -> bytes:
    from pydicom import Dataset, dcmwrite
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence

    ds = dicom_dataset(pixels, photometric, syntax, **elements)
    if compressed:
        ds.PixelData = encapsulate([compressed])
        ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    if voi_lut:
        item = Dataset()
        item.LUTDescriptor = [256, 0, 8]
        item.add_new("LUTData", "US", list(range(256)))
        ds.VOILUTSequence = Sequence([item])
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


# Byte-level edits, any format.
def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(out))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))]


def _insert_bytes(data: bytes, rng: random.Random) -> bytes:
    position = rng.randrange(len(data))
    return data[:position] + rng.randbytes(rng.randint(1, 64)) + data[position:]


def _delete_bytes(data: bytes, rng: random.Random) -> bytes:
    position = rng.randrange(len(data))
    return data[:position] + data[position + rng.randint(1, 64):]


_BYTE_EDITS = [_flip_bits, _truncate, _insert_bytes, _delete_bytes]


# DICOM header edits, made through pydicom so the result is a well-formed file carrying a hostile value.
_NUMERIC = ["Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "PixelRepresentation",
            "NumberOfFrames", "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"]
_TEXTS = ["", "1A", "abc", "-1", "0", "3.5", "1e400", "nan", "65536", "2\\3", None]
_SYNTAXES = ["", "1.2.3", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99",
             "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.2", "not a uid"]


def _edited(data: bytes, change: Callable) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    change(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def _text_in_number(data: bytes, rng: random.Random) -> bytes:
    keyword, text = rng.choice(_NUMERIC), rng.choice(_TEXTS)

    def change(ds):
        from pydicom.dataelem import DataElement
        from pydicom.datadict import tag_for_keyword

        ds[tag_for_keyword(keyword)] = DataElement(tag_for_keyword(keyword), "LO", text)
    return _edited(data, change)


def _wrong_vr(data: bytes, rng: random.Random) -> bytes:
    keyword = rng.choice(_NUMERIC + ["PhotometricInterpretation", "PixelData"])
    vr = rng.choice(["ZZ", "UN", "SQ", "FD", "AT", "OB", "DS", "US", "SS"])

    def change(ds):
        from pydicom.datadict import tag_for_keyword

        tag = tag_for_keyword(keyword)
        raw = ds.get_item(tag)
        if raw is not None:
            value = raw.value if isinstance(raw.value, bytes) else str(raw.value).encode()
            ds[tag] = _raw_element(tag, vr, value)
    return _edited(data, change)


def _raw_element(tag, vr, value):
    from pydicom.dataelem import RawDataElement

    return RawDataElement(tag, vr, len(value), value, 0, False, True)


def _transfer_syntax(data: bytes, rng: random.Random) -> bytes:
    uid = rng.choice(_SYNTAXES)
    return _edited(data, lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", uid))


def _frames(data: bytes, rng: random.Random) -> bytes:
    value = rng.choice(["2", "1A", "0", "-3", "", "1000000000", "1"])
    return _edited(data, lambda ds: setattr(ds, "NumberOfFrames", value))


def _display_elements(data: bytes, rng: random.Random) -> bytes:
    def change(ds):
        choice = rng.randrange(5)
        if choice == 0:
            ds.WindowCenter, ds.WindowWidth = rng.choice([(None, 10), (10, None), (10, 0), (10, -5), ("", "")])
        elif choice == 1:
            ds.RescaleSlope, ds.RescaleIntercept = rng.choice([("abc", 0), (1, None), (None, 1), ("1e300", 0)])
        elif choice == 2 and "VOILUTSequence" in ds:
            item = ds.VOILUTSequence[0]
            item.LUTData = rng.choice([[], None, [1, 2]])
        elif choice == 3 and "VOILUTSequence" in ds:
            ds.VOILUTSequence[0].LUTDescriptor = rng.choice([[0, 0, 8], [5], None, [65535, 70000, 16]])
        else:
            ds.VOILUTFunction = rng.choice(["SIGMOID", "LINEAR_EXACT", "CUBIC", ""])
    return _edited(data, change)


def _pixel_length(data: bytes, rng: random.Random) -> bytes:
    def change(ds):
        pixels = ds.PixelData
        ds.PixelData = rng.choice([b"", pixels[:len(pixels) // 2], pixels + pixels, pixels * 64, pixels + b"\0\0"])
        if rng.random() < 0.3:
            ds.Rows = 1
        if rng.random() < 0.2:
            del ds.PixelData
    return _edited(data, change)


def _float_pixels(data: bytes, rng: random.Random) -> bytes:
    def change(ds):
        from pydicom.dataelem import DataElement

        del ds.PixelData
        ds.BitsAllocated = 32
        ds[0x7FE00008] = DataElement(0x7FE00008, "OF", rng.choice([b"", b"\0" * 16, b"\0\0\xc0\x7f" * 64]))
    return _edited(data, change)


_DICOM_EDITS = [_text_in_number, _wrong_vr, _transfer_syntax, _frames, _display_elements, _pixel_length,
                _float_pixels]

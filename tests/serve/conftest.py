"""Fixtures of the serving tests: an evaluated copy of the session's trained run, a client over it, uploads."""

from __future__ import annotations

import io
import shutil
import socket
import struct
import threading
import time
import urllib.request
import zlib
from contextlib import contextmanager
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from medclass.serve import create_app

LIMIT = 200_000  # upload limit of the test server, bytes


@pytest.fixture(scope="session")
def evaluated_run(trained_run, tmp_path_factory):
    """The trained run with evaluation/test/metrics.json (few bootstrap draws: seconds)."""
    from medclass.evaluation.evaluate import evaluate_run

    run = shutil.copytree(trained_run, tmp_path_factory.mktemp("serve") / "demo")
    evaluate_run(run, n_boot=20)
    return run


@pytest.fixture(scope="session")
def png_path(demo_data):
    return sorted(demo_data.rglob("*.png"))[0]


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app) -> Iterator[int]:
    """`app` under a real uvicorn server on 127.0.0.1, in a thread of this process: its port once /health is 200
    (for what only a real server shows: sockets, timeouts, connections closed)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:  # not listening yet, or 503 while the models load
                if time.monotonic() > deadline or not thread.is_alive():
                    raise
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def wait_ready(client: TestClient, timeout: float = 30.0):
    """Models load in the background at start-up; /health turns 200 once they are in."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/health")
        if response.status_code == 200 or response.json()["status"] == "failed" or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


@pytest.fixture
def audit_db(tmp_path):
    return tmp_path / "audit.sqlite"


@pytest.fixture
def client(evaluated_run, audit_db):
    with TestClient(create_app({"demo": evaluated_run}, audit_url=audit_db, max_upload_bytes=LIMIT)) as client:
        assert wait_ready(client).status_code == 200
        yield client


def png_with_size(width: int, height: int) -> bytes:
    """A valid 8 x 8 PNG whose IHDR claims width x height (CRC recomputed): a decompression bomb's header."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts at byte 16: width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC over chunk type + data
    return bytes(data)


def dicom_bytes(pixels) -> bytes:
    """A minimal single-frame MONOCHROME2 DICOM Part 10 file holding `pixels` (rows, cols) uint16."""
    from pydicom import Dataset, dcmwrite
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = pixels.astype("uint16").tobytes()
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()

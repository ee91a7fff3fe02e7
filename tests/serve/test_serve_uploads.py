"""Refused uploads: each answered with its status and a JSON reason, and none of them logged."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from medclass.serve import AuditLog

from .conftest import LIMIT, png_with_size


def truncated_png(path):
    data = path.read_bytes()
    return data[:len(data) // 2]


def gif_bytes():
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


CASES = {
    "oversize": (lambda png: b"\x89PNG\r\n\x1a\n" + bytes(LIMIT), "image.png", 413, "exceeds the limit"),
    "text named .png": (lambda png: b"hello, not an image\n" * 10, "image.png", 415, "not a PNG, JPEG or DICOM"),
    "gif": (lambda png: gif_bytes(), "image.gif", 415, "not a PNG, JPEG or DICOM"),
    "truncated png": (truncated_png, "image.png", 422, "not a readable image"),
    "bomb beyond pillow's limit": (lambda png: png_with_size(100_000, 100_000), "bomb.png", 413, "too large"),
    "bomb beyond MAX_PIXELS": (lambda png: png_with_size(12_000, 12_000), "bomb.png", 413, "too large"),
    "empty file": (lambda png: b"", "image.png", 415, "not a PNG, JPEG or DICOM"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_upload_is_refused_and_not_logged(client, png_path, audit_db, case):
    make, name, status, reason = CASES[case]
    response = client.post("/predict", files={"file": (name, make(png_path), "image/png")})
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"] and "\n" not in response.json()["detail"]
    assert list(AuditLog(audit_db).rows()) == []


def test_a_declared_oversize_body_is_refused_unread(client):
    response = client.post("/predict", content=b"x" * 10, headers={
        "content-type": "multipart/form-data; boundary=b", "content-length": str(10 * LIMIT)})
    assert response.status_code == 413


@pytest.mark.parametrize("request_kwargs, reason", [
    ({"data": {"model": "demo"}}, "multipart/form-data body with a 'file' field"),
    ({"json": {"file": "abc"}}, "expected a multipart/form-data body"),
    ({"files": {"image": ("a.png", b"...")}}, "missing form field 'file'"),
])
def test_missing_file_field(client, request_kwargs, reason):
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == 422 and reason in response.json()["detail"]


def test_unknown_model_and_explain_method(client, png_path):
    files = {"file": ("a.png", png_path.read_bytes())}
    assert client.post("/predict", files=files, data={"model": "nope"}).status_code == 404
    response = client.post("/predict", files=files, data={"explain": "lime"})
    assert response.status_code == 422 and "explain must be one of gradcam" in response.json()["detail"]


def test_uploads_never_touch_the_disk(evaluated_run, audit_db, monkeypatch):
    """Starlette spools uploads above 1 MiB to a temporary file; the server keeps them in memory."""
    import numpy as np
    from fastapi.testclient import TestClient
    from tempfile import SpooledTemporaryFile

    from medclass.serve import create_app

    from .conftest import wait_ready

    def no_rollover(self):
        raise AssertionError("an upload was spooled to disk")

    monkeypatch.setattr(SpooledTemporaryFile, "rollover", no_rollover)
    noise = np.random.default_rng(0).integers(0, 256, (1200, 1200), dtype=np.uint8)  # incompressible: ~1.4 MB
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    assert buffer.tell() > 1024 * 1024
    with TestClient(create_app({"demo": evaluated_run}, audit_url=audit_db, max_upload_bytes=4 << 20)) as client:
        wait_ready(client)
        response = client.post("/predict", files={"file": ("big.png", buffer.getvalue())})
        assert response.status_code == 200, response.text

"""The server's limits: decoded bytes (413), memory and decoder failures (503/422, never a 500), decodes at once,
security headers on every response, and a deadline for the upload's body (408), the last on a real uvicorn."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient

from medclass.data.images import DECODE_PEAK_BYTES
from medclass.serve import AuditLog, create_app
from medclass.serve.headers import DATA_POLICY, DOCS_POLICY, PAGE_POLICY
from tests.conftest import sixteen_bit_png

from .conftest import live_server, wait_ready


def post(client, data: bytes, name="image.png"):
    return client.post("/predict", files={"file": (name, data, "image/png")})


def test_a_small_16_bit_upload_over_the_decoded_bytes_bound_is_413(client, audit_db):
    data = sixteen_bit_png(9000, 9000)  # ~160 KB declaring 155 MiB of 16-bit samples
    response = post(client, data)
    assert response.status_code == 413, response.text
    assert "9000 x 9000 pixels of 1 x 16-bit samples" in response.json()["detail"]
    assert "MAX_DECODED_BYTES" in response.json()["detail"]
    assert list(AuditLog(audit_db).rows()) == []


@pytest.mark.parametrize("raised, status, reason", [
    (MemoryError(), 503, "image.png: not enough memory to decode the image now"),
    (TypeError("'NoneType' object is not subscriptable"), 422, "image.png: cannot decode the image (TypeError)"),
    (NotImplementedError("unknown VR"), 422, "image.png: cannot decode the image (NotImplementedError)"),
])
def test_a_failing_decoder_answers_json_never_500(client, png_path, audit_db, monkeypatch, caplog, raised, status,
                                                  reason):
    """Defence in depth: every decoder error should be the project's own (a 4xx); one that is not must still be."""
    def broken_decoder(data, name):
        raise raised

    monkeypatch.setattr("medclass.serve.app.decode_image_bytes", broken_decoder)
    with caplog.at_level(logging.ERROR, logger="medclass.serve"):
        response = post(client, png_path.read_bytes())
    assert response.status_code == status and response.json()["detail"].startswith(reason), response.text
    assert list(AuditLog(audit_db).rows()) == []
    if status == 422:  # an unexpected exception is a bug to find: logged with its traceback
        assert any(record.exc_info and record.exc_info[0] is type(raised) for record in caplog.records)
    else:
        assert response.headers["retry-after"]
    assert client.get("/health").status_code == 200  # the server goes on


@pytest.mark.parametrize("slots", [1, 2])
def test_decodes_beyond_the_slots_wait_and_all_succeed(evaluated_run, audit_db, png_path, monkeypatch, slots):
    from medclass.serve import app as serve_app

    decode, running, peak, lock = serve_app.decode_image_bytes, [0], [0], threading.Lock()

    def slow_decode(data, name):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return decode(data, name=name)

    monkeypatch.setattr(serve_app, "decode_image_bytes", slow_decode)
    app = create_app({"demo": evaluated_run}, audit_url=audit_db, decode_memory_bytes=slots * DECODE_PEAK_BYTES)
    with TestClient(app) as client:
        wait_ready(client)
        answers = []
        workers = [threading.Thread(target=lambda: answers.append(post(client, png_path.read_bytes())))
                   for _ in range(slots + 2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    assert [answer.status_code for answer in answers] == [200] * (slots + 2)
    assert peak[0] == slots == app.state.decode_slots


def test_create_app_checks_the_new_limits(evaluated_run):
    from medclass.core.errors import MedclassError

    with pytest.raises(MedclassError, match="must hold one decode: at least 512 MiB"):
        create_app({"demo": evaluated_run}, decode_memory_bytes=DECODE_PEAK_BYTES - 1)
    with pytest.raises(MedclassError, match="upload timeout must be positive"):
        create_app({"demo": evaluated_run}, upload_timeout=0)


def test_every_response_carries_the_security_headers(client, png_path):
    responses = {
        "page": (client.get("/"), PAGE_POLICY),
        "docs": (client.get("/docs"), DOCS_POLICY),
        "health": (client.get("/health"), DATA_POLICY),
        "models": (client.get("/models"), DATA_POLICY),
        "static script": (client.get("/page/page.js"), DATA_POLICY),
        "openapi": (client.get("/openapi.json"), DATA_POLICY),
        "not found": (client.get("/nothing-here"), DATA_POLICY),
        "wrong method": (client.delete("/predict"), DATA_POLICY),
        "refused upload": (post(client, b"not an image"), DATA_POLICY),
        "prediction": (post(client, png_path.read_bytes()), DATA_POLICY),
    }
    assert responses["refused upload"][0].status_code == 415 and responses["not found"][0].status_code == 404
    for name, (response, policy) in responses.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name
        assert response.headers.get("content-security-policy") == policy, name
        assert response.headers.get("referrer-policy") == "no-referrer", name
    assert "default-src 'none'" in DATA_POLICY and "frame-ancestors 'none'" in PAGE_POLICY


def read_until_closed(sock: socket.socket, limit: float, trickle: bool = False) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection (or `limit` seconds pass), and when it closed;
    `trickle`: meanwhile send one byte of body every 50 ms until the answer starts."""
    sock.settimeout(0.05)
    received, started = b"", time.monotonic()
    try:
        while time.monotonic() - started < limit:
            if trickle and not received:
                sock.sendall(b"x")
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return received, time.monotonic() - started
            received += chunk
    except ConnectionError:  # a reset is a close too (a byte may cross the server's hang-up)
        return received, time.monotonic() - started
    return received, float("inf")


def upload_head(port: int, length: int) -> bytes:
    return (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
            f"boundary=xyz\r\nContent-Length: {length}\r\n\r\n").encode() + b"--xyz\r\n"


@pytest.mark.parametrize("client_behaviour", ["stalls", "trickles"])
def test_a_stalled_or_trickling_upload_gets_408_and_the_connection_is_closed(evaluated_run, audit_db,
                                                                             client_behaviour):
    timeout = 0.5
    app = create_app({"demo": evaluated_run}, audit_url=audit_db, upload_timeout=timeout)
    with live_server(app) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(upload_head(port, 100_000))  # headers and a few bytes of a 100 kB body, then stalls or trickles
        response, closed_after = read_until_closed(sock, limit=10, trickle=client_behaviour == "trickles")
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), response
        assert b"x-content-type-options: nosniff" in head.lower()
        assert b"was not received within 0.5 s" in body
        assert timeout <= closed_after < 5  # the server hung up: no worker or buffer held for the stalled client
        with socket.create_connection(("127.0.0.1", port)) as other:  # and serves others meanwhile
            other.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_until_closed(other, limit=10)[0].startswith(b"HTTP/1.1 200")
    assert list(AuditLog(audit_db).rows()) == []


def test_a_model_that_gives_no_finite_answer_is_a_json_reason_and_no_audit_row(trained_run, audit_db, png_path):
    """The Predictor refuses outputs that are not finite; the server passes that on as one line, logging nothing."""
    import math

    from medclass.core.artifact import ModelArtifact
    from medclass.inference.predictor import Predictor

    artifact = ModelArtifact.load(trained_run)
    bias = next(name for name in artifact.state_dict if name.endswith("bias"))
    artifact.state_dict[bias].fill_(math.nan)  # an in-memory artefact skips the load-time weight checks
    with TestClient(create_app({"nan": Predictor(artifact)}, audit_url=audit_db)) as client:
        assert wait_ready(client).status_code == 200
        response = post(client, png_path.read_bytes())
    assert response.status_code == 500 and "gives no answer for this image" in response.json()["detail"]
    assert "\n" not in response.json()["detail"] and list(AuditLog(audit_db).rows()) == []

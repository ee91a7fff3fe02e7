"""The REST app: health, model cards, predictions equal to the Predictor's, Grad-CAM, several models, API key."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from medclass.inference import load_predictor
from medclass.serve import AuditLog, create_app

from .conftest import dicom_bytes, wait_ready


def post(client, data: bytes, name="image.png", **fields):
    return client.post("/predict", files={"file": (name, data, "application/octet-stream")}, data=fields)


def test_health_is_503_until_models_are_loaded(evaluated_run, audit_db):
    client = TestClient(create_app({"demo": evaluated_run}, audit_url=audit_db))
    # no start-up yet (the lifespan loads the models): not ready, and predictions are refused
    assert client.get("/health").status_code == 503
    assert client.get("/health").json()["status"] == "loading"
    with client:
        response = wait_ready(client)
        assert response.status_code == 200 and response.json() == {"status": "ready", "models": ["demo"],
                                                                  "api_key_required": False}


def test_health_reports_a_failed_load(tmp_path, audit_db):
    with TestClient(create_app({"broken": tmp_path}, audit_url=audit_db)) as client:
        response = wait_ready(client)
        assert response.status_code == 503 and response.json()["status"] == "failed"
        assert "model.safetensors" in response.json()["error"]
        assert post(client, b"x").status_code == 503


def test_models_describe_tasks_metrics_and_version(client, evaluated_run):
    model, = client.get("/models").json()["models"]
    assert model["name"] == "demo" and model["version"] == load_predictor(evaluated_run).version  # of what answers
    task, = model["tasks"]
    assert task["kind"] == "multiclass" and task["classes"] == ["benign", "malignant", "normal"]
    assert task["threshold"] is None and task["threshold_source"] == "argmax"
    assert task["calibrated"] == (task["temperature"] != 1.0)
    metrics = model["test_metrics"]["label"]
    low, high = metrics["auc_ci"]
    assert 0 <= low <= metrics["auc"] <= high <= 1 and metrics["n"] > 0
    assert metrics["names"]["auc"] == "ROC-AUC (macro one-vs-rest)"  # the evaluation report's rows and names


def test_predict_answers_as_the_predictor(client, evaluated_run, png_path, audit_db):
    data = png_path.read_bytes()
    response = post(client, data)
    assert response.status_code == 200, response.text
    body = response.json()
    predictor = load_predictor(evaluated_run)
    expected = predictor.predict_proba([png_path])[0]
    answer = body["tasks"]["label"]
    np.testing.assert_allclose([answer["probabilities"][c] for c in predictor.classes_], expected, atol=1e-6)
    assert answer["label"] == predictor.predict([png_path])[0]
    assert answer["threshold_source"] == "argmax" and answer["calibrated"] in (True, False)
    assert body["model"] == "demo" and body["input_sha256"] == hashlib.sha256(data).hexdigest()
    row, = AuditLog(audit_db).rows()
    assert row["id"] == body["audit_id"] and row["input_sha256"] == body["input_sha256"]
    assert row["model_version"] == body["model_version"] and row["outputs"]["tasks"] == body["tasks"]
    assert row["client"] == "testclient" and row["latency_ms"] > 0


def test_no_answer_goes_unrecorded(client, png_path, audit_db):
    """When the audit database refuses the row, the prediction is withheld (503), not answered off the record."""
    import sqlite3

    assert post(client, png_path.read_bytes()).status_code == 200
    with sqlite3.connect(audit_db) as db:
        db.execute("DROP TABLE predictions")
    response = post(client, png_path.read_bytes())
    assert response.status_code == 503
    assert "could not record the prediction" in response.json()["detail"] and "withheld" in response.json()["detail"]
    assert "tasks" not in response.json()


def test_type_comes_from_the_bytes_not_the_name(client, png_path):
    as_png = post(client, png_path.read_bytes()).json()
    disguised = post(client, png_path.read_bytes(), name="scan.dcm")
    assert disguised.status_code == 200 and disguised.json()["tasks"] == as_png["tasks"]


def test_dicom_upload(client, evaluated_run, tmp_path, png_path):
    pixels = np.asarray(Image.open(png_path).convert("L")).astype(np.uint16) * 256
    path = tmp_path / "scan"  # no suffix: PACS exports are named by UID, the marker tells DICOM
    path.write_bytes(dicom_bytes(pixels))
    response = post(client, path.read_bytes(), name="scan")
    assert response.status_code == 200, response.text
    expected = load_predictor(evaluated_run).predict_proba([path])[0]
    got = response.json()["tasks"]["label"]["probabilities"]
    np.testing.assert_allclose(list(got.values()), expected, atol=1e-6)
    assert "image_png" not in response.json()
    shown = post(client, path.read_bytes(), name="scan", preview="true").json()["image_png"]
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(shown))))
    assert decoded.shape == pixels.shape and decoded.std() > 0  # the windowed picture a browser cannot decode itself


def test_preview_is_bounded(client):
    from medclass.serve.app import PREVIEW_SIDE

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((300, PREVIEW_SIDE * 2), np.uint8)).save(buffer, format="PNG")
    shown = post(client, buffer.getvalue(), preview="true").json()["image_png"]
    assert Image.open(io.BytesIO(base64.b64decode(shown))).size == (PREVIEW_SIDE, 150)  # aspect kept


def test_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "not a diagnosis" in page.text
    for asset in ("page/page.js", "page/page.css"):
        assert client.get(f"/{asset}").status_code == 200 and asset in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no asset from another host
    assert client.get("/health").json()["api_key_required"] is False


def test_gradcam_overlay(client, png_path):
    response = post(client, png_path.read_bytes(), explain="gradcam")
    assert response.status_code == 200, response.text
    explanation = response.json()["explanation"]
    overlay = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png"])))
    assert overlay.format == "PNG" and min(overlay.size) >= 256  # small images are enlarged for the caption
    assert explanation["class"] == response.json()["tasks"]["label"]["label"]


def test_several_models_need_a_name(evaluated_run, audit_db, png_path):
    predictor = load_predictor(evaluated_run)
    app = create_app({"a": evaluated_run, "b": predictor}, audit_url=audit_db)
    with TestClient(app) as client:
        assert wait_ready(client).json()["models"] == ["a", "b"]
        assert post(client, png_path.read_bytes()).status_code == 422
        assert post(client, png_path.read_bytes(), model="b").json()["model"] == "b"
        assert post(client, png_path.read_bytes(), model="c").status_code == 404
        versions = {m["name"]: m["version"] for m in client.get("/models").json()["models"]}
        assert len(versions["b"]) == 64 and versions["a"] == versions["b"]  # the same model, from a file or memory


def test_api_key(evaluated_run, audit_db, png_path, monkeypatch):
    with TestClient(create_app({"demo": evaluated_run}, audit_url=audit_db, api_key="s3cret")) as client:
        assert wait_ready(client).status_code == 200  # health stays open to probes
        assert post(client, png_path.read_bytes()).status_code == 401
        client.headers["X-API-Key"] = "wrong"
        assert post(client, png_path.read_bytes()).status_code == 401
        assert client.get("/models").status_code == 401
        client.headers["X-API-Key"] = "s3cret"
        assert post(client, png_path.read_bytes()).status_code == 200
        assert client.get("/models").status_code == 200


def test_openapi_documents_the_upload(client):
    schema = client.get("/openapi.json").json()
    form = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"
    assert client.get("/docs").status_code == 200


def test_inference_does_not_block_the_event_loop(evaluated_run, audit_db, png_path):
    """A slow forward runs in a worker thread: /health answers while it computes."""
    import threading
    import time

    predictor = load_predictor(evaluated_run)
    forward = predictor.forward_outputs  # what the server's batch thread runs: logits and the guard's features
    started = threading.Event()

    def slow_forward(batch, problems):
        started.set()
        time.sleep(1.0)
        return forward(batch, problems)

    predictor.forward_outputs = slow_forward
    with TestClient(create_app({"slow": predictor}, audit_url=audit_db)) as client:
        wait_ready(client)
        answers = []
        worker = threading.Thread(target=lambda: answers.append(post(client, png_path.read_bytes())))
        worker.start()
        assert started.wait(10)
        tic = time.perf_counter()
        assert client.get("/health").status_code == 200
        assert time.perf_counter() - tic < 0.5 and worker.is_alive()  # answered during the forward
        worker.join()
        assert answers[0].status_code == 200


def test_a_run_is_served_on_ncnn_once_exported(evaluated_run, tmp_path, png_path):
    import shutil

    from medclass.core.errors import MedclassError
    from medclass.export.ncnn import export_ncnn
    from medclass.serve.models import model_sources

    run = shutil.copytree(evaluated_run, tmp_path / "demo")
    try:
        model_sources([run], None, backend="ncnn")
        raise AssertionError("a run without model.ncnn.param was accepted for the ncnn backend")
    except MedclassError as exc:
        assert "holds no model.ncnn.param" in str(exc) and "--format ncnn" in str(exc)
    export_ncnn(run)
    with TestClient(create_app(model_sources([run], None, backend="ncnn"), audit_url=tmp_path / "a.sqlite",
                               backend="ncnn")) as client:
        assert wait_ready(client).status_code == 200
        model, = client.get("/models").json()["models"]
        assert model["backend"] == "ncnn"
        served = [(run / "model.ncnn.param").read_bytes(), (run / "model.ncnn.bin").read_bytes()]
        assert model["version"] == load_predictor(run).artifact.version(served)  # the graph and its weights
        answer = post(client, png_path.read_bytes()).json()["tasks"]["label"]
    predictor = load_predictor(run)
    expected = predictor.predict_proba([png_path])[0]
    np.testing.assert_allclose([answer["probabilities"][c] for c in predictor.classes_], expected, atol=1e-4)


def test_explanations_answer_their_boxes_in_the_images_pixels(client, png_path, audit_db):
    """Otsu boxes (any polarity) and CAM boxes come back as coordinates with scores, the same as the Python
    result on the same image, and the audit log keeps them (not the overlay)."""
    from medclass.explain import explain
    from medclass.explain.options import ExplainOptions

    predictor = load_predictor(client.app.state.models["demo"].predictor.artifact)
    image = Image.open(png_path)
    for fields, options in (({"explain": "otsu", "polarity": "dark"}, ExplainOptions("otsu", "dark")),
                            ({"explain": "gradcam", "box_threshold": "0.3"}, ExplainOptions("gradcam", None, 0.3))):
        response = post(client, png_path.read_bytes(), **fields)
        assert response.status_code == 200, response.text
        explanation = response.json()["explanation"]
        assert explanation["method"] == options.method and explanation["image_size"] == list(image.size)
        expected = explain(predictor, [image], options)[0]
        assert [[b[k] for k in ("x0", "y0", "x1", "y1")] for b in explanation["boxes"]] == \
            [list(np.round(b.corners(), 1)) for b in expected.boxes]
        assert explanation["boxes"] and all(b["score"] >= 0 for b in explanation["boxes"])
        assert explanation.get("polarity") == ("dark" if options.method == "otsu" else None)
        logged = list(AuditLog(audit_db, create=False).rows())[-1]["outputs"]
        assert logged["explain"] == options.method and logged["explanation"]["boxes"] == explanation["boxes"]
        assert "overlay_png" not in logged["explanation"]


def test_explanation_fields_are_checked_like_the_command_lines(client, png_path):
    for fields, message in (({"explain": "otsu", "polarity": "dim"}, "polarity must be one of auto, dark, bright"),
                            ({"explain": "gradcam", "box_threshold": "2"}, "box_threshold must be a share"),
                            ({"polarity": "dark"}, "polarity shape(s) an explanation: give 'explain' too")):
        response = post(client, png_path.read_bytes(), **fields)
        assert response.status_code == 422 and message in response.json()["detail"], response.text


def test_models_say_what_a_model_is_for_and_warn_when_it_is_at_chance(evaluated_run, audit_db, tmp_path):
    """/models: description, data, modality, input size and channels, the explanations offered (Otsu's polarity
    from the modality); a model whose calibration temperature flattens everything is served with a warning."""
    import shutil
    from dataclasses import replace

    from medclass.inference import ModelArtifact
    from medclass.serve.about import chance_warnings

    run = shutil.copytree(evaluated_run, tmp_path / "flat")
    artifact = ModelArtifact.load(run)
    artifact.modality, artifact.description = "ultrasound", "phantom lesions; research only"
    artifact.heads[0] = replace(artifact.heads[0], temperature=16.7)
    artifact.save(run)
    with TestClient(create_app({"flat": run, "demo": evaluated_run}, audit_url=audit_db)) as client:
        assert wait_ready(client).status_code == 200
        cards = {card["name"]: card for card in client.get("/models").json()["models"]}
    flat = cards["flat"]
    assert flat["description"] == "phantom lesions; research only" and flat["modality"] == "ultrasound"
    assert flat["data"] == artifact.provenance["data"].rstrip("/").split("/")[-1]
    assert flat["input"] == {"size": 32, "channels": 1}
    assert flat["explain"] == {"methods": flat["explain"]["methods"], "polarity": "dark"}
    assert "otsu" in flat["explain"]["methods"] and "gradcam" in flat["explain"]["methods"]
    assert any("calibration temperature 16.7" in w for w in flat["warnings"]), flat["warnings"]
    assert cards["demo"]["description"] == "" and cards["demo"]["modality"] is None
    learned = replace(artifact, heads=[replace(artifact.heads[0], temperature=1.3)],
                      provenance=artifact.provenance | {"best_val_auc": 0.91})
    assert chance_warnings(learned, {"label": {"auc": 0.88, "n": 40}}) == []
    assert chance_warnings(learned, {"label": {"auc": 0.52, "n": 40}}) == [
        "task label: test AUC 0.520 (n = 40): no better than chance"]
    at_chance = replace(learned, provenance=artifact.provenance | {"best_val_auc": 0.5})
    assert chance_warnings(at_chance) == ["validation AUC 0.500 at training: no better than chance"]

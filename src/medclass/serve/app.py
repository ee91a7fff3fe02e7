"""The REST app and its page: GET / (the web page), GET /health, GET /models, POST /predict (OpenAPI at /docs).

Concurrency: the event loop only receives bytes and sends answers. Decoding, preprocessing, Grad-CAM and the audit
write run in Starlette's thread pool (`run_in_threadpool`), so a slow image never stalls other clients. The forward
passes of a model run on its own thread (serve/batching.py), each one over every request waiting at that moment
(micro-batching, up to `max_batch`): chosen over one forward per request by the load test of
benchmarks/serve_load.py (docs/serving.md has its numbers). One lock per model keeps Grad-CAM, whose hooks live on
the shared network, from overlapping a forward.

Uploads stay in memory: the body is read up to the size limit and within `upload_timeout` (a stalled or trickling
client gets 408), and parsed from memory, never spooled to disk. Decodes run at most
`decode_memory_bytes // DECODE_PEAK_BYTES` at a time; further uploads wait for a slot (they hold no thread meanwhile),
so simultaneous large images cannot together exhaust memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable, Mapping

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from medclass.data.images import DECODE_PEAK_BYTES, decode_image_bytes
from medclass.core.errors import DataError, ImageTooLargeError, MedclassError, UnsupportedImageError
from medclass.explain.explainer import method_names
from medclass.explain.options import CAM_THRESHOLD, FORM_NAMES, POLARITIES, ExplainOptions
from medclass.inference.predictor import Predictor
from medclass.serve.audit import AuditLog, AuditUnavailable
from medclass.serve.headers import SecurityHeaders
from medclass.serve.models import DEFAULT_MAX_BATCH, ServedModel, load_model, png_base64

DEFAULT_MAX_UPLOAD = 32 * 1024 * 1024
# Memory the decodes running at once may hold: 4 decodes of DECODE_PEAK_BYTES (512 MiB) each; more wait.
DEFAULT_DECODE_MEMORY = 4 * DECODE_PEAK_BYTES
DEFAULT_UPLOAD_TIMEOUT = 30.0  # seconds to receive a whole upload: 32 MiB needs ~1.1 MB/s
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and the small text fields around the file
API_KEY_HEADER = "X-API-Key"
PREVIEW_SIDE = 1024  # largest side of the decoded image sent back with `preview`
PAGE_DIR = Path(__file__).parent / "page"
CLOSE = {"Connection": "close"}  # sent when the request's body is left unread: the connection cannot carry another
log = logging.getLogger("medclass.serve")



def upload_schema() -> dict:
    """The OpenAPI description of POST /predict's form; its `explain` enum lists the registered methods."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary", "description": "A PNG, JPEG or DICOM image (told by its "
                                                                          "bytes, not its name)."},
            "model": {"type": "string", "description": "Model name (see /models); optional when one is served."},
            "explain": {"type": "string", "enum": method_names(),
                        "description": "Also explain the prediction: a CAM (torch backend) or otsu (classic boxes); "
                                       "the answer's `explanation` holds its boxes (x0, y0, x1, y1 in the image's "
                                       "pixels, score) and an overlay PNG."},
            "polarity": {"type": "string", "enum": list(POLARITIES),
                         "description": "Otsu: which side of the threshold a finding lies on (default: the model's "
                                        "modality's: ultrasound dark, xray bright, else auto)."},
            "box_threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                              "default": CAM_THRESHOLD,
                              "description": "CAM boxes: share of the heatmap's maximum a pixel needs to be inside."},
            "preview": {"type": "boolean", "description": "Also return the decoded image as base64 PNG (for DICOM, "
                                                          "which browsers cannot show)."}}}}}},
        "responses": {"200": {"description": ANSWER}}}


ANSWER = ("Per task (`tasks`): label, probabilities, threshold, threshold_source, calibrated, and prediction_set "
          "(its conformal set's classes) when the model has sets. `extras.input_guard`: whether this image looks like "
          "the training images: fitted, in_distribution (true, false, or null when no guard is fitted and the cheap "
          "checks found nothing), score, threshold, detector, reasons, message. Flagged answers keep their "
          "probabilities, which then describe an image unlike any the model learnt from.")


class HTTPProblem(Exception):
    """An answer other than 200, with a one-line reason."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, dict(headers or {})


# What a refused image becomes: its type unsupported (415), too many pixels or decoded bytes (413), else
# unreadable (422).
IMAGE_ERRORS = ((UnsupportedImageError, 415), (ImageTooLargeError, 413), (DataError, 422))


def create_app(models: Mapping[str, Predictor | str | Path], audit_url: str | Path | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD, api_key: str | None = None,
               backend: str = "torch", max_batch: int = DEFAULT_MAX_BATCH,
               on_loaded: Callable[[ServedModel], None] | None = None,
               decode_memory_bytes: int = DEFAULT_DECODE_MEMORY,
               upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT) -> FastAPI:
    """The server of `models` ({name: a Predictor, a run folder, an artefact or an .onnx file}; paths load on the
    `backend`). `audit_url`: SQLAlchemy URL or SQLite file of the audit log (default medclass-audit.sqlite in the
    working folder). `api_key`: when set, /models and /predict need it in the X-API-Key header. `max_batch`: most
    waiting requests one forward pass takes (1: one forward per request). `on_loaded`: called with each model once
    loaded (`medclass serve` prints its warnings). `decode_memory_bytes`: memory the decodes running at once may
    hold, each counted at DECODE_PEAK_BYTES (uploads beyond wait for a slot). `upload_timeout`: seconds a client has
    to send its whole upload (then 408).
    Paths load in the background at start-up: /health answers 503 until every model is ready."""
    slots = checked_settings(models, max_upload_bytes, max_batch, decode_memory_bytes, upload_timeout)
    audit = AuditLog(audit_url)
    loader = ModelLoader(models, backend, max_batch, on_loaded)
    app = FastAPI(title="medclass", summary="Medical image classifiers: predictions with calibrated "
                                            "probabilities, thresholds and Grad-CAM explanations.",
                  lifespan=lifespan_of(loader, audit))
    app.state.audit, app.state.models = audit, loader.served
    app.state.decode_slots, app.state.upload_timeout = slots, upload_timeout
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(HTTPProblem, problem)
    add_page_routes(app, loader, api_key)
    add_model_routes(app, loader, audit, require_key(api_key), max_upload_bytes, upload_timeout)
    return app


def checked_settings(models: Mapping, max_upload_bytes: int, max_batch: int, decode_memory_bytes: int,
                     upload_timeout: float) -> int:
    """`create_app`'s settings refused when wrong, in the order given; returns the decode slots."""
    if not models:
        raise MedclassError("no model to serve; give at least one run folder")
    if max_batch < 1:
        raise MedclassError(f"max_batch must be at least 1; got {max_batch}")
    if max_upload_bytes < 1:
        raise MedclassError(f"the upload limit must be at least 1 byte; got {max_upload_bytes}")
    slots = decode_slots(decode_memory_bytes)
    if not upload_timeout > 0:
        raise MedclassError(f"the upload timeout must be positive; got {upload_timeout}")
    return slots


class ModelLoader:
    """The served models, loaded in the background at start-up: `state` is loading, ready or failed (`error`
    says why), and what /health reports."""

    def __init__(self, models: Mapping[str, Predictor | str | Path], backend: str, max_batch: int,
                 on_loaded: Callable[[ServedModel], None] | None):
        self.models, self.backend, self.max_batch, self.on_loaded = models, backend, max_batch, on_loaded
        self.served: dict[str, ServedModel] = {}
        self.state, self.error = "loading", None

    def load_all(self) -> None:
        try:
            for name, source in self.models.items():
                self.served[name] = load_model(name, source, self.backend, self.max_batch)
                if self.on_loaded:
                    self.on_loaded(self.served[name])
            self.state = "ready"
        except MedclassError as exc:
            self.state, self.error = "failed", str(exc)
        except Exception as exc:  # any failure must show in /health, not leave it "loading" for ever
            self.state, self.error = "failed", f"{exc.__class__.__name__}: {exc}"

    def require_ready(self) -> None:
        """A route's dependency: 503 until every model is loaded."""
        if self.state != "ready":
            raise HTTPProblem(503, f"models {self.state}" + (f": {self.error}" if self.error else ""))


def lifespan_of(loader: ModelLoader, audit: AuditLog):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.decoding = asyncio.Semaphore(app.state.decode_slots)  # made on the loop that serves
        loading = asyncio.get_running_loop().run_in_executor(None, loader.load_all)
        yield
        await loading
        for model in loader.served.values():
            model.batcher.close()
        audit.dispose()

    return lifespan


async def problem(request: Request, exc: HTTPProblem) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


def require_key(api_key: str | None) -> Callable[[Request], None]:
    """A route's dependency: 401 unless the request carries `api_key` (none: every request passes)."""
    def check(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get(API_KEY_HEADER)
        if given is None or not secrets.compare_digest(given.encode(), api_key.encode()):
            raise HTTPProblem(401, f"missing or wrong API key (header {API_KEY_HEADER})")

    return check


def add_page_routes(app: FastAPI, loader: ModelLoader, api_key: str | None) -> None:
    """GET /health, the page at / and its files under /page: open to all, no key needed."""
    @app.get("/health", summary="200 once every model is loaded; 503 while loading or after a failed load")
    async def health() -> JSONResponse:
        ready = loader.state == "ready"
        body = {"status": loader.state, "models": sorted(loader.served) if ready else [],
                "api_key_required": api_key is not None}
        if loader.error:
            body["error"] = loader.error
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html")  # its Content-Security-Policy: serve/headers.py

    app.mount("/page", StaticFiles(directory=PAGE_DIR), name="page")


def add_model_routes(app: FastAPI, loader: ModelLoader, audit: AuditLog, key_check: Callable[[Request], None],
                     max_upload_bytes: int, upload_timeout: float) -> None:
    """GET /models and POST /predict, behind the key and the models being ready."""
    guarded = [Depends(key_check), Depends(loader.require_ready)]
    served = loader.served

    @app.get("/models", summary="Served models: tasks, classes, thresholds, calibration, test metrics, version",
             dependencies=guarded)
    async def list_models() -> dict:
        return {"models": [model.card() for model in served.values()]}

    @app.post("/predict", summary="Classify one uploaded image (multipart field 'file')",
              openapi_extra=upload_schema(), dependencies=guarded)
    async def predict(request: Request) -> dict:
        form = await read_form(request, max_upload_bytes, upload_timeout)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPProblem(422, "missing form field 'file' (a PNG, JPEG or DICOM image sent as a file)")
        model = pick_model(served, form.get("model"))
        explain = explain_options(form)
        if explain and explain.uses_network and model.predictor.backend.name != "torch":
            raise HTTPProblem(422, f"model {model.name!r} runs on {model.predictor.backend.name}: {explain.method} "
                                   "needs the torch backend (otsu boxes work on any)")
        preview = str(form.get("preview") or "").lower() in ("1", "true", "yes", "on")
        data = await upload.read()
        if len(data) > max_upload_bytes:
            raise HTTPProblem(413, f"upload of {len(data)} bytes exceeds the limit of {max_upload_bytes} bytes")
        client = request.client.host if request.client else None
        started = time.perf_counter()
        async with request.app.state.decoding:  # waits, holding no thread, while the slots are taken
            image = await run_in_threadpool(decode_upload, data, upload.filename or "upload")
        return await run_in_threadpool(answer, model, audit, data, image, explain, client, started, preview)


def decode_slots(memory_bytes: int) -> int:
    """How many decodes may run at once within `memory_bytes`, each counted at DECODE_PEAK_BYTES (one must fit)."""
    if memory_bytes < DECODE_PEAK_BYTES:
        raise MedclassError(f"the decode memory (--decode-memory-mb) must hold one decode: at least "
                            f"{DECODE_PEAK_BYTES // 1024 ** 2} MiB; got {memory_bytes / 1024 ** 2:g} MiB")
    return memory_bytes // DECODE_PEAK_BYTES


def explain_options(form) -> ExplainOptions | None:
    """The form's explanation fields (explain, polarity, box_threshold) as ExplainOptions; None without `explain`."""
    fields = {name: form.get(field) for name, field in FORM_NAMES.items()}
    if any(isinstance(value, UploadFile) for value in fields.values()):
        raise HTTPProblem(422, f"form fields {', '.join(FORM_NAMES.values())} must be text, not files")
    if not fields["method"]:
        given = [FORM_NAMES[name] for name, value in fields.items() if value]
        if given:
            raise HTTPProblem(422, f"{', '.join(given)} shape(s) an explanation: give 'explain' too")
        return None
    try:
        return ExplainOptions.parse(fields["method"], fields["polarity"], fields["box_threshold"], FORM_NAMES)
    except MedclassError as exc:
        raise HTTPProblem(422, str(exc)) from None


def decode_upload(data: bytes, name: str) -> Image.Image:
    """The upload's image (in a worker thread), every failure a one-line HTTPProblem: the project's refusals by kind
    (IMAGE_ERRORS), memory running out 503, and any other exception 422, logged: a decoder's bug is a bad upload to
    the client, never a 500 that also drops its connection."""
    try:
        return decode_image_bytes(data, name=name)
    except DataError as exc:
        status = next(code for kind, code in IMAGE_ERRORS if isinstance(exc, kind))
        raise HTTPProblem(status, str(exc)) from None
    except MemoryError:
        raise HTTPProblem(503, f"{name}: not enough memory to decode the image now; try again later",
                          {"Retry-After": "5"}) from None
    except Exception as exc:
        log.exception("unexpected %s decoding the upload %r", exc.__class__.__name__, name)
        raise HTTPProblem(422, f"{name}: cannot decode the image ({exc.__class__.__name__})") from None


def answer(model: ServedModel, audit: AuditLog, data: bytes, image: Image.Image, explain: ExplainOptions | None,
           client: str | None, started: float, preview: bool = False) -> dict:
    """Predict and log one decoded upload (in a worker thread); `started`: perf_counter() when it queued for its
    decode (the latency logged counts from there); `preview`: also send the decoded image back."""
    try:
        outputs = model.predict(image, explain)
    except MedclassError as exc:  # the model's fault (e.g. outputs that are not finite), not the upload's
        raise HTTPProblem(500, f"model {model.name!r} gives no answer for this image: {exc}") from None
    latency_ms = (time.perf_counter() - started) * 1000
    digest = hashlib.sha256(data).hexdigest()
    logged = {key: outputs[key] for key in ("tasks", "extras") if key in outputs}  # the guard's verdict too
    if explain:  # what was explained and boxed, not the overlay picture
        logged |= {"explain": explain.method,
                   "explanation": {k: v for k, v in outputs["explanation"].items() if k != "overlay_png"}}
    try:
        audit_id = audit.record(model.name, model.version, digest, logged, latency_ms, client)
    except AuditUnavailable as exc:  # every answer given is on record: none is given unrecorded
        raise HTTPProblem(503, f"{exc}; the prediction is withheld") from None
    shown = {"image_png": png_base64(preview_of(image))} if preview else {}
    return {"model": model.name, "model_version": model.version, "input_sha256": digest,
            "latency_ms": round(latency_ms, 3), "audit_id": audit_id, **outputs, **shown}


def preview_of(image: Image.Image, side: int = PREVIEW_SIDE) -> Image.Image:
    """The decoded image for display, at most `side` pixels wide and high (a 4k DICOM need not travel whole)."""
    shown = image.copy()
    shown.thumbnail((side, side))
    return shown


def pick_model(served: Mapping[str, ServedModel], name: str | UploadFile | None) -> ServedModel:
    if isinstance(name, UploadFile):
        raise HTTPProblem(422, "form field 'model' must be text (a model name), not a file")
    if not name:
        if len(served) == 1:
            return next(iter(served.values()))
        raise HTTPProblem(422, f"several models are served ({', '.join(served)}): give the form field 'model'")
    if name not in served:
        raise HTTPProblem(404, f"unknown model {name!r}; served: {', '.join(served)}")
    return served[name]


async def read_form(request: Request, limit: int, timeout: float = DEFAULT_UPLOAD_TIMEOUT):
    """The multipart form, read into memory up to `limit` bytes of file (plus the form's own overhead) within
    `timeout` seconds."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise HTTPProblem(422, f"expected a multipart/form-data body with a 'file' field; got "
                               f"{content_type or 'no content type'!r}")
    try:
        body = await asyncio.wait_for(read_body(request, limit + FORM_OVERHEAD, limit), timeout)
    except asyncio.TimeoutError:
        raise HTTPProblem(408, f"the upload was not received within {timeout:g} s (the client stalled or sent "
                               "too slowly); send it again", CLOSE) from None

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(request.headers, chunks(), max_files=1, max_fields=8)
    parser.spool_max_size = len(body) + 1  # the spooled file never rolls over to disk
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise HTTPProblem(422, f"malformed multipart body: {exc}") from None


async def read_body(request: Request, cap: int, limit: int) -> bytes:
    too_large = HTTPProblem(413, f"upload exceeds the limit of {limit} bytes", CLOSE)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large  # refused before reading a byte of it
    received, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_large
        received.append(chunk)
    return b"".join(received)


"""`medclass serve`: the REST API over one or more runs; `medclass log`: its audit log, printed or as CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from medclass.cli.app import app, user_errors
from medclass.inference.backends import backend_choices


@app.command()
@user_errors
def serve(
    runs: Annotated[Optional[list[Path]], typer.Argument(help="Run folders (or artefact/.onnx files) to serve, "
                                                              "each named by its folder.")] = None,
    models_dir: Annotated[Optional[Path], typer.Option(help="Serve every run folder inside DIR.")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to listen on (default 127.0.0.1: this machine "
                                                     "only).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default 8000).")] = None,
    backend: Annotated[Optional[str], typer.Option(help=f"{backend_choices()} (default torch; `medclass export RUN "
                                                        "--format F` first).")] = None,
    max_upload_mb: Annotated[Optional[float], typer.Option(help="Largest upload accepted, in MiB (default 32).")
                             ] = None,
    max_batch: Annotated[Optional[int], typer.Option(help="Most waiting requests one forward pass takes "
                                                         "(micro-batching; default 16, 1 turns it off).")] = None,
    decode_memory_mb: Annotated[Optional[float], typer.Option(help="Memory the image decodes running at once may "
                                                                   "use, in MiB; each counts 512 MiB, the most one "
                                                                   "decode holds (default 2048: 4 at once; more "
                                                                   "wait).")] = None,
    upload_timeout: Annotated[Optional[float], typer.Option(help="Seconds a client has to send its whole upload; "
                                                                 "then 408 (default 30).")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="MEDCLASS_API_KEY", show_envvar=True,
                                                   help="Require this key in the X-API-Key header.")] = None,
    audit_db: Annotated[Optional[str], typer.Option(envvar="MEDCLASS_AUDIT_DB", show_envvar=True,
                                                    help="Audit log: SQLite file or SQLAlchemy URL (default "
                                                         "medclass-audit.sqlite here).")] = None,
):
    """Serve the models over HTTP: GET /health, GET /models, POST /predict (OpenAPI at /docs)."""
    from medclass.core.errors import MedclassError
    from medclass.inference.backends import BACKENDS
    from medclass.serve import create_app
    from medclass.serve.app import DEFAULT_DECODE_MEMORY, DEFAULT_MAX_UPLOAD, DEFAULT_UPLOAD_TIMEOUT, decode_slots
    from medclass.serve.audit import database_url, shown_url
    from medclass.serve.models import DEFAULT_MAX_BATCH, model_sources

    import uvicorn

    backend = backend or "torch"
    if backend not in BACKENDS:
        raise MedclassError(f"--backend must be one of {', '.join(BACKENDS.names())}; got {backend!r}")
    if max_batch is not None and max_batch < 1:
        raise MedclassError(f"--max-batch must be at least 1; got {max_batch}")
    for option, value in (("--max-upload-mb", max_upload_mb), ("--decode-memory-mb", decode_memory_mb),
                          ("--upload-timeout", upload_timeout)):
        if value is not None and not value > 0:
            raise MedclassError(f"{option} must be positive; got {value}")
    decode_memory = int(decode_memory_mb * 1024 * 1024) if decode_memory_mb else DEFAULT_DECODE_MEMORY
    decode_slots(decode_memory)  # refused before any run is looked at
    sources = model_sources(runs, models_dir, backend)
    limit = int(max_upload_mb * 1024 * 1024) if max_upload_mb else DEFAULT_MAX_UPLOAD
    server = create_app(sources, audit_url=audit_db, max_upload_bytes=limit, api_key=api_key, backend=backend,
                        max_batch=max_batch or DEFAULT_MAX_BATCH, on_loaded=_warn_about,
                        decode_memory_bytes=decode_memory, upload_timeout=upload_timeout or DEFAULT_UPLOAD_TIMEOUT)
    typer.echo(f"serving {', '.join(sources)} on http://{host or '127.0.0.1'}:{port or 8000} (docs: /docs); "
               f"audit log: {shown_url(database_url(audit_db))}" + ("; API key required" if api_key else ""))
    uvicorn.run(server, host=host or "127.0.0.1", port=port or 8000)


def _warn_about(model) -> None:
    """A served model whose answers may be at chance: said on stderr once it is loaded (the page shows it too)."""
    for line in model.warnings:
        typer.echo(f"warning: model {model.name}: {line}; it is served, with this warning on the page and in "
                   "/models", err=True)


@app.command()
@user_errors
def log(
    database: Annotated[str, typer.Argument(help="Audit log of `medclass serve`: SQLite file, a folder holding "
                                                 "medclass-audit.sqlite (where serve ran), or SQLAlchemy URL.")],
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write every row to this CSV instead of printing.")
                   ] = None,
):
    """Print the served predictions of an audit log (time, model, version, input hash, labels, latency)."""
    from medclass.serve.audit import DEFAULT_DB, AuditLog

    if "://" not in database and Path(database).is_dir():
        database = str(Path(database) / DEFAULT_DB)
    audit = AuditLog(database, create=False)
    try:
        if csv:
            typer.echo(f"{audit.export_csv(csv)} prediction(s) written to {csv}")
            return
        count = 0
        for row in audit.rows():
            labels = "  ".join(f"{task}={_label_text(answer['label'])}" for task, answer in
                               (row["outputs"].get("tasks") or {}).items())
            typer.echo(f"{row['time']}\t{row['model']}\t{row['model_version'][:12]}\t{row['input_sha256'][:12]}\t"
                       f"{labels}\t{row['latency_ms']:.1f} ms\t{row['client'] or '-'}")
            count += 1
        typer.echo(f"{count} prediction(s)")
    finally:
        audit.dispose()


def _label_text(label) -> str:
    return ("|".join(label) or "(no finding)") if isinstance(label, list) else str(label)

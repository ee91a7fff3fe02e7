"""The audit log of served predictions: one row per answered /predict, in any database SQLAlchemy reaches.

A row records what was asked and answered, never the image: UTC time, model name and version (sha256 of what
answers: the weights or exported network and the metadata that changes an answer), sha256 of the uploaded bytes,
the outputs as JSON, latency and the client. Only requests that produced a prediction are logged; refused uploads
(bad type, too large, corrupt, unauthorised) are answered with their error and leave no row, so every row is a
prediction someone received.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import JSON, DateTime, Float, Integer, String, create_engine, inspect, make_url, select
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from medclass.core.errors import MedclassError

DEFAULT_DB = "medclass-audit.sqlite"
COLUMNS = ("id", "time", "model", "model_version", "input_sha256", "outputs", "latency_ms", "client")


class AuditUnavailable(MedclassError):
    """The database refused a row: the server withholds that prediction rather than answer unrecorded."""


class Base(DeclarativeBase):
    pass


class Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # Names and clients unbounded: PostgreSQL enforces VARCHAR(n) (SQLite ignores it), and a run folder's name,
    # which names its model, may be up to 255 bytes: a bounded column would turn a long name into failed predictions.
    model: Mapped[str] = mapped_column(String, index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    input_sha256: Mapped[str] = mapped_column(String(64), index=True)
    outputs: Mapped[dict] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    client: Mapped[str | None] = mapped_column(String, nullable=True)


def database_url(target: str | Path | None) -> str:
    """An SQLAlchemy URL as given (it has "://"), else a path to an SQLite file (default: DEFAULT_DB here)."""
    target = str(target or DEFAULT_DB)
    return target if "://" in target else f"sqlite:///{Path(target).resolve()}"


def shown_url(url: str) -> str:
    """The URL fit for messages and the console: its password, if any, as ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class AuditLog:
    """Append and read prediction rows. `target`: an SQLAlchemy URL or an SQLite file path. `create`: make the
    table when missing (the server); reading (`medclass log`) refuses a database that holds no log."""

    def __init__(self, target: str | Path | None = None, create: bool = True):
        self.url = database_url(target)
        self.name = shown_url(self.url) if "://" in str(target or "") else str(target or DEFAULT_DB)
        if not create and self.url.startswith("sqlite:///") and not Path(self.url[len("sqlite:///"):]).is_file():
            raise MedclassError(f"{self.name}: no such audit database")
        try:
            self.engine = create_engine(self.url)
            if create:
                Base.metadata.create_all(self.engine)
            else:  # connect now: an unreachable server is told apart from a database that holds no log
                has_log = inspect(self.engine).has_table(Prediction.__tablename__)
        except (SQLAlchemyError, ImportError) as exc:  # ImportError: the URL's database driver is not installed
            raise MedclassError(f"{self.name}: cannot open the audit database ({_first_line(exc)})") from None
        if not create and not has_log:
            self.engine.dispose()
            raise MedclassError(f"{self.name}: not a medclass audit log (no table {Prediction.__tablename__!r})")

    def record(self, model: str, model_version: str, input_sha256: str, outputs: dict, latency_ms: float,
               client: str | None = None) -> int:
        """Store one served prediction; returns its row id. AuditUnavailable when the database refuses it."""
        row = Prediction(time=datetime.now(timezone.utc), model=model, model_version=model_version,
                         input_sha256=input_sha256, outputs=outputs, latency_ms=latency_ms, client=client)
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
                session.flush()
                return row.id
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"{self.name}: the audit log could not record the prediction "
                                   f"({_first_line(exc)})") from None

    def rows(self) -> Iterator[dict]:
        """Every row, oldest first, as plain values (time in ISO 8601 UTC)."""
        try:
            with Session(self.engine) as session:
                for row in session.scalars(select(Prediction).order_by(Prediction.id)):
                    yield {"id": row.id, "time": _utc(row.time).isoformat(), "model": row.model,
                           "model_version": row.model_version, "input_sha256": row.input_sha256,
                           "outputs": row.outputs, "latency_ms": row.latency_ms, "client": row.client}
        except SQLAlchemyError as exc:
            raise MedclassError(f"{self.name}: not a medclass audit log ({_first_line(exc)})") from None

    def export_csv(self, path: str | Path) -> int:
        """Write every row to a CSV (outputs as JSON text); returns the number of rows."""
        count = 0
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            for row in self.rows():
                writer.writerow(row | {"outputs": json.dumps(row["outputs"], sort_keys=True)})
                count += 1
        return count

    def dispose(self) -> None:
        self.engine.dispose()


def _utc(time: datetime) -> datetime:
    # SQLite keeps no time zone: what was written as UTC comes back naive. PostgreSQL's timestamptz comes back in
    # the session's time zone (the server's TimeZone setting, often local): convert, or the log reads +05:30.
    return time.astimezone(timezone.utc) if time.tzinfo else time.replace(tzinfo=timezone.utc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {lines[0] if lines else ''}"


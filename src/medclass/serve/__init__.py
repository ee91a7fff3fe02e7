"""Serving: a FastAPI app over medclass models (`create_app`) and the audit log of its predictions (`AuditLog`).

FastAPI, uvicorn, python-multipart and SQLAlchemy come with the `serve` extra: pip install 'medclass[serve]'.
"""

from __future__ import annotations

try:
    from medclass.serve.app import create_app
    from medclass.serve.audit import AuditLog
except ImportError as exc:  # an optional extra: say how to get it instead of a bare ImportError
    raise ImportError(f"medclass serving needs FastAPI, uvicorn, python-multipart and SQLAlchemy "
                      f"(pip install 'medclass[serve]'): {exc}") from exc

__all__ = ["create_app", "AuditLog"]

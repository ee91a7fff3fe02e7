"""Security headers on every response the app sends: JSON answers, refusals, the page, its static files, 404s.

One ASGI middleware rather than a header per route, so no response can leave without them (the page's
Content-Security-Policy was once set on `/` alone, and nothing carried `nosniff`).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The page loads only its own script, style and the images it is sent (data: URLs, or blob: for the upload).
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'none'")
# FastAPI's /docs (Swagger UI) and /redoc pages load their bundles from jsDelivr and start them inline.
DOCS_POLICY = ("default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
               "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
               "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
               "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; base-uri 'none'; frame-ancestors 'none'")
# Everything else (JSON, the page's script and style, errors) is data, never a document that may load anything.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")


def policy_for(path: str) -> str:
    if path == "/":
        return PAGE_POLICY
    return DOCS_POLICY if path in DOCS_PATHS else DATA_POLICY


class SecurityHeaders:
    """Adds nosniff (browsers must not guess a type other than the one sent), no Referer to other sites, and the
    Content-Security-Policy of the path to every HTTP response of `app`."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = policy_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Content-Security-Policy"] = policy
            await send(message)

        await self.app(scope, receive, send_with_headers)

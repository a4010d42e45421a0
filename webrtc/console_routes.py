"""The clinician's consultation page: three static files served by the API under /console.

The page signs in with the API's own endpoints and keeps the access token in sessionStorage;
its Content-Security-Policy allows nothing but this origin (and camera blobs), so an injected
script or a third-party resource cannot run or load.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from litestar import Controller, Response, get

CONSOLE_DIR = Path(__file__).resolve().parent / "console"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; media-src 'self' blob:; connect-src 'self' ws: wss:; "
    "img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Camera and microphone for this origin only; nothing else the page does not use.
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()",
}


@cache
def _file(name: str) -> bytes:
    return (CONSOLE_DIR / name).read_bytes()


def _served(name: str, media_type: str, cache_control: str) -> Response[bytes]:
    headers = {**_COMMON_HEADERS, "Cache-Control": cache_control}
    if name.endswith(".html"):
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["X-Frame-Options"] = "DENY"
    return Response(_file(name), media_type=media_type, headers=headers)


class ConsoleController(Controller):
    path = "/console"
    include_in_schema = False

    @get("/", sync_to_thread=False, include_in_schema=False)
    def page(self) -> Response[bytes]:
        return _served("index.html", "text/html; charset=utf-8", "no-store")

    @get("/console.js", sync_to_thread=False, include_in_schema=False)
    def script(self) -> Response[bytes]:
        return _served("console.js", "text/javascript; charset=utf-8", "no-cache")

    @get("/console.css", sync_to_thread=False, include_in_schema=False)
    def stylesheet(self) -> Response[bytes]:
        return _served("console.css", "text/css; charset=utf-8", "no-cache")

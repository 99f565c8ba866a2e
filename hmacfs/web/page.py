"""The web page at ``/`` and its assets under ``/static/`` (all served here: no CDN).

The page is static HTML; its script is the browser client (``clients/js/src``,
served as ``/static/hmacfs/``) plus ``static/app.js``. Every page response
carries a strict Content-Security-Policy: scripts, styles and connections only
from this origin, nothing inline, no framing.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# Assets change with the package version; a short cache keeps a deploy visible within minutes.
ASSET_MAX_AGE = 300

page = Blueprint("page", __name__)


def _protect(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@page.get("/")
def index() -> Response:
    response = send_from_directory(TEMPLATES, "index.html", mimetype="text/html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return _protect(response)


@page.get("/static/<path:name>")
def asset(name: str) -> Response:
    """A file under ``static/`` (404 for anything else, including paths that climb out)."""
    return _protect(send_from_directory(STATIC, name, max_age=ASSET_MAX_AGE))

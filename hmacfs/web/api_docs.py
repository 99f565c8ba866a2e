"""``GET /openapi.json`` (the OpenAPI 3.1 document) and ``GET /docs`` (it, rendered).

The rendering is a small script of our own (``static/docs.js``) served from
this origin under the page's strict Content-Security-Policy: no CDN, nothing
inline. The document is built once per app from its settings.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, send_from_directory

from hmacfs.web.api_spec.document import build_document
from hmacfs.web.context import services
from hmacfs.web.page import CONTENT_SECURITY_POLICY, TEMPLATES

api_docs = Blueprint("api_docs", __name__)

_CACHE_KEY = "hmacfs.openapi"


@api_docs.get("/openapi.json")
def openapi_document() -> Response:
    document = current_app.extensions.get(_CACHE_KEY)
    if document is None:
        document = current_app.extensions[_CACHE_KEY] = build_document(services().settings)
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-cache"
    return response


@api_docs.get("/docs")
def rendered() -> Response:
    response = send_from_directory(TEMPLATES, "docs.html", mimetype="text/html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response

"""The OpenAPI document matches the app's routes, its schemas are valid, and it is served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from hmacfs.web.api_spec.document import build_document

METHODS = {"get", "head", "options", "post", "put", "patch", "delete"}
_ANY = re.compile(r"<any\(([^)]*)\):[^>]+>")
_PARAM = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


def _openapi_paths(rule: str) -> list[str]:
    """A Flask rule as the OpenAPI path(s) it answers: ``<x>`` is ``{x}``, an ``any(...)``
    converter is one path per choice, and a slot path is ``{slot}/{filename}``."""
    found = _ANY.search(rule)
    if found:
        choices = [c.strip() for c in found.group(1).split(",")]
        return [p for c in choices for p in _openapi_paths(rule[: found.start()] + c + rule[found.end() :])]
    rule = rule.replace("<path:_slot>", "<slot>/<filename>")
    return [_PARAM.sub(r"{\1}", rule)]


def _routed(app: Flask) -> set[tuple[str, str]]:
    """(path, method) of every rule; implicit HEAD for GET and automatic OPTIONS are left out."""
    routed = set()
    for rule in app.url_map.iter_rules():
        methods = {m.lower() for m in rule.methods or ()}
        if rule.provide_automatic_options:
            methods.discard("options")
        if "get" in methods:
            methods.discard("head")
        routed |= {(path, method) for path in _openapi_paths(rule.rule) for method in methods}
    return routed


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, m) for path, item in document["paths"].items() for m in item if m in METHODS}


def test_every_route_is_documented_and_every_operation_routed(app: Flask) -> None:
    document = build_document(app.extensions["hmacfs"].settings)
    documented = _documented(document)
    # A GET route answers HEAD too; documenting HEAD (downloads, tus) is optional.
    documented_without_head = {(p, m) for p, m in documented if m != "head"}
    routed = _routed(app)
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    heads = {(p, m) for p, m in documented if m == "head"}
    gets_or_heads = {(p, "head") for p, m in routed if m in {"get", "head"}}
    assert documented_without_head - routed == set(), "documented operations with no route"
    assert heads - gets_or_heads == set(), "documented HEAD with no GET or HEAD route"


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "schema" in node and isinstance(node["schema"], dict):
            yield node["schema"]
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_every_schema_is_valid_json_schema(app: Flask) -> None:
    document = build_document(app.extensions["hmacfs"].settings)
    schemas = [*document["components"]["schemas"].values(), *_schemas(document["paths"])]
    assert len(schemas) > 100
    for schema in schemas:
        Draft202012Validator.check_schema(schema)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(document).replace("'", '"')))
    assert refs <= set(document["components"]["schemas"]), "dangling $ref"


def test_the_document_is_served(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert "/api/files/upload/create" in document["paths"]
    assert "/upload/{slot}/{filename}" in document["paths"]
    assert document["paths"]["/ws"]["get"]["x-websocket"]["server"]


def test_the_docs_page_is_vendored_and_under_a_strict_csp(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "http" not in html.replace('href="/', "").split("<body>")[0]
    for asset in ("/static/docs.js", "/static/docs.css"):
        assert asset in html
        served = client.get(asset)
        assert served.status_code == 200 and served.data
        assert b"openapi.json" in served.data or asset.endswith(".css")


def _matches(app: Flask, path: str, method: str, status: int, body: Any) -> list[str]:
    """Errors of ``body`` against the document's schema for (path template, method, status)."""
    document = build_document(app.extensions["hmacfs"].settings)
    media = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    schema = {**media["schema"], "components": document["components"]}
    return [error.message for error in Draft202012Validator(schema).iter_errors(body)]


# Regression tests of what schemathesis found (tests/e2e/test_fuzz.py), each kept here.


def test_fuzz_finding_an_upload_listed_as_a_task_matches_the_task_schema(
    client: FlaskClient, auth: dict[str, str], app: Flask
) -> None:
    """Found by schemathesis: /api/tasks lists uploads as FileUpload tasks with readOnly,
    which the Task schema first refused."""
    from tests.web.test_tasks_file_uploads import _upload

    task_id = _upload(client, auth, b"x" * 1000, "listed.bin")
    listed = client.get("/api/tasks", headers=auth)
    assert any(task.get("readOnly") for task in listed.json)
    assert _matches(app, "/api/tasks", "get", 200, listed.json) == []
    shown = client.get(f"/api/tasks/{task_id}", headers=auth)
    assert _matches(app, "/api/tasks/{task_id}", "get", 200, shown.json) == []
    details = client.get(f"/api/tasks/{task_id}/details", headers=auth)
    assert _matches(app, "/api/tasks/{task_id}/details", "get", 200, details.json) == []


def test_fuzz_finding_a_huge_offset_is_a_documented_400_not_a_500(
    client: FlaskClient, auth: dict[str, str], app: Flask
) -> None:
    """Found by schemathesis: ``offset`` past a 64-bit integer reached the database (500)."""
    response = client.get("/api/files/upload/tasks?offset=460228414178867683784663437934592", headers=auth)
    assert response.status_code == 400
    assert _matches(app, "/api/files/upload/tasks", "get", 400, response.json) == []


def test_fuzz_finding_a_slot_path_flask_cannot_route_is_a_documented_404(client: FlaskClient) -> None:
    """Found by schemathesis: a slot path with a newline matches no route (404), which
    PUT and OPTIONS on slots did not list."""
    document = client.get("/openapi.json").json
    slot = document["paths"]["/upload/{slot}/{filename}"]
    assert client.put("/upload/a%0Ab/c.txt", data=b"x").status_code == 404
    assert {"404"} <= set(slot["put"]["responses"]) & set(slot["options"]["responses"])


def test_fuzz_finding_cancelling_a_cancelled_upload_is_a_documented_410(
    client: FlaskClient, auth: dict[str, str], app: Flask
) -> None:
    """Found by schemathesis (stateful phase): a second DELETE of a Drive upload is 410."""
    from tests.web.test_tasks_file_uploads import _upload

    task_id = _upload(client, auth, b"y" * 1000, "twice.bin")
    assert client.delete(f"/api/files/upload/task/{task_id}", headers=auth).status_code == 204
    again = client.delete(f"/api/files/upload/task/{task_id}", headers=auth)
    assert again.status_code == 410
    assert _matches(app, "/api/files/upload/task/{task_id}", "delete", 410, again.json) == []

"""Validating real responses of the end-to-end suite against the served OpenAPI document.

``tests/e2e/conftest.py`` records every response ``requests`` gets from a live
hmacfs server during a test and checks each here: the path and method are
documented, the status is one the operation lists, the documented required
headers are present, and a JSON body matches its schema (JSON Schema 2020-12,
``$ref``s resolved within the document).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_PARAM = re.compile(r"\{[^}/]+\}")
# Path parameters that may span several segments, as their descriptions say: an XMPP
# server issues slot directories of its own shape (ejabberd: two segments).
_MULTI_SEGMENT = {"{slot}"}


def _segment(match: re.Match[str]) -> str:
    return ".+" if match.group(0) in _MULTI_SEGMENT else "[^/]+"


@dataclass
class Operation:
    path: str
    method: str
    spec: dict[str, Any]


class OpenApiCheck:
    """One document and its compiled path templates."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource("urn:hmacfs:openapi", resource)
        self._templates = [
            (
                re.compile(
                    "^" + _PARAM.sub(_segment, re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$"
                ),
                path,
            )
            for path in document["paths"]
        ]
        # A literal path beats a template (``/api/tasks/stats`` is not ``/api/tasks/{task_id}``).
        self._templates.sort(key=lambda item: item[1].count("{"))

    def operation(self, method: str, path: str) -> Operation | None:
        for pattern, template in self._templates:
            item = self.document["paths"][template]
            if pattern.match(path) and method in item:
                return Operation(template, method, item[method])
        return None

    def violations(self, response: requests.Response, *, body_read: bool) -> list[str]:
        """What is wrong with ``response`` (empty when it matches the document)."""
        request = response.request
        method = (request.method or "GET").lower()
        path = requests.utils.urlparse(request.url).path or "/"
        where = f"{method.upper()} {path} -> {response.status_code}"
        if path.startswith("/static/"):
            return []  # the page's assets, not an API
        operation = self.operation(method, path)
        if operation is None:
            if response.status_code in (404, 405):
                return []  # routing answers for paths no API has
            return [f"{where}: no documented operation"]
        answer = operation.spec["responses"].get(str(response.status_code)) or operation.spec[
            "responses"
        ].get("default")
        if answer is None:
            return [f"{where}: status not documented for {operation.method.upper()} {operation.path}"]
        problems = [
            f"{where}: required header {name} missing"
            for name, header in (answer.get("headers") or {}).items()
            if header.get("required") and name not in response.headers
        ]
        if body_read and method != "head":
            problems += self._body_violations(where, answer, response)
        return problems

    def _body_violations(self, where: str, answer: dict[str, Any], response: requests.Response) -> list[str]:
        content = answer.get("content") or {}
        mimetype = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not response.content:
            return (
                []
                if not content or "*/*" in content
                else [f"{where}: empty body, documented {sorted(content)}"]
            )
        if not content:
            return [f"{where}: a {mimetype} body where none is documented"]
        media = content.get(mimetype) or content.get("*/*")
        if media is None:
            return [f"{where}: Content-Type {mimetype} not in {sorted(content)}"]
        if mimetype != "application/json":
            return []
        validator = Draft202012Validator(_replace_refs(media["schema"]), registry=self._registry)
        return [
            f"{where}: {error.json_path}: {error.message}" for error in validator.iter_errors(response.json())
        ]


def _replace_refs(node: Any) -> Any:
    """Point the document's local ``#/components/...`` refs at the registered document."""
    if isinstance(node, dict):
        return {
            key: (
                "urn:hmacfs:openapi" + value
                if key == "$ref" and value.startswith("#/")
                else _replace_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_replace_refs(value) for value in node]
    return node

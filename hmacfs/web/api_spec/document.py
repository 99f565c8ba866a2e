"""Assembling the OpenAPI 3.1 document from each blueprint's part."""

from __future__ import annotations

from hmacfs import __version__
from hmacfs.config import Settings
from hmacfs.web.api_spec import (
    bundles,
    chunked,
    components,
    drive,
    files,
    network,
    pools,
    quotas,
    service,
    tasks,
    tus,
)
from hmacfs.web.api_spec.components import Json

DESCRIPTION = """\
Every HTTP API of hmacfs: the Drive upload-task API, the chunked session API,
tus 1.0, XEP-0363 slots, multipart POST, downloads, background tasks, bundles, pools, health and
metrics, plus the messages of the `/ws` event socket (`x-websocket` and the
`Ws*` schemas). Errors share one JSON shape, `Problem`, with a stable `code`.
"""


def build_document(settings: Settings) -> Json:
    """The document for an app running with ``settings`` (the XEP-0363 base path and
    the public base URL come from them)."""
    server = settings.server.base_url.rstrip("/") or "/"
    return {
        "openapi": "3.1.0",
        "info": {"title": "hmacfs", "version": __version__, "description": DESCRIPTION},
        "servers": [{"url": server}],
        "paths": {
            **service.paths(),
            **drive.paths(),
            **chunked.paths(),
            **tus.paths(),
            **files.paths(settings.xep0363.base_path),
            **tasks.paths(),
            **bundles.paths(),
            **pools.paths(),
            **quotas.paths(),
            **network.paths(),
        },
        "components": {
            "securitySchemes": components.SECURITY_SCHEMES,
            "schemas": {
                **components.SCHEMAS,
                **drive.SCHEMAS,
                **chunked.SCHEMAS,
                **files.SCHEMAS,
                **tasks.SCHEMAS,
                **bundles.SCHEMAS,
                **pools.SCHEMAS,
                **quotas.SCHEMAS,
                **network.SCHEMAS,
                **service.SCHEMAS,
            },
        },
    }

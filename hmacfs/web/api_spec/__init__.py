"""The OpenAPI 3.1 document, one module per blueprint next to the code it describes.

``hmacfs.web.api_spec.document.build_document`` assembles it; ``hmacfs.web.api_docs``
serves it at ``/openapi.json`` and renders it at ``/docs``. A test compares the
document's operations with the app's URL rules, and the end-to-end suite
validates every real response against it (tests/e2e/openapi_check.py).
"""

"""schemathesis hooks for tests/e2e/test_fuzz.py (loaded through ``SCHEMATHESIS_HOOKS``).

tus bodies are ``application/offset+octet-stream``: raw bytes, serialised like
``application/octet-stream``.
"""

from __future__ import annotations

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

"""The resumable upload engine shared by the chunked, Drive and tus protocols.

Importing this package registers the stale-upload cleanup step.
"""

from __future__ import annotations

from hmacfs.maintenance import register_step
from hmacfs.uploads.queries import expire_stale_uploads

register_step("uploads.stale", expire_stale_uploads, before="blobs.orphaned")

"""The resumable upload engine shared by the chunked, Drive and tus protocols.

Importing this package registers the stale-upload and stale-scratch cleanup steps.
"""

from __future__ import annotations

from hmacfs.maintenance import register_step
from hmacfs.uploads.chunks import remove_stale_scratch
from hmacfs.uploads.queries import expire_stale_uploads

register_step("uploads.stale", expire_stale_uploads, before="blobs.orphaned")
register_step("uploads.scratch", remove_stale_scratch)

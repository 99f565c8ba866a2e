"""hmacfs: a self-hosted file upload server (XEP-0363, resumable uploads, tus, tasks).

The application is built by :func:`hmacfs.app.create_app`; importing this
package does no I/O.
"""

from __future__ import annotations

__version__ = "0.1.0"

"""Downloads: Range and conditional requests (pure functions), zero-copy bodies, finding the file.

The HTTP response itself is built by the web adapter (``hmacfs.web.download_response``).
"""

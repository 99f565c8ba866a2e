"""Downloads: Range and conditional requests, safe headers, zero-copy bodies."""

from hmacfs.downloads.response import Download, download_response, load_download

__all__ = ["Download", "download_response", "load_download"]

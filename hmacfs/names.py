"""What a stored file name and media type may hold, shared by every upload path and by downloads.

Pure functions, no I/O. Besides path separators and C0/DEL controls (a NUL cannot
even be stored in PostgreSQL text), the Unicode bidirectional controls are
refused: U+202E turns ``invoice\u202efdp.exe`` into "invoiceexe.pdf" on screen,
disguising the extension in a browser's save dialog.
"""

from __future__ import annotations

import re

# ALM, LRM, RLM, the embeddings/overrides U+202A..E and the isolates U+2066..9.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
UNSAFE_NAME_CHARACTER = re.compile(f"[/\\\\\\x00-\\x1f\\x7f{BIDI_CONTROLS}]")


def has_bidi_control(text: str) -> bool:
    return _BIDI.search(text) is not None


def without_bidi_controls(text: str) -> str:
    """``text`` with every bidirectional control removed (names stored before they were refused)."""
    return _BIDI.sub("", text)


# RFC 9110 media type: type "/" subtype, optional parameters, no control characters.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"{_TCHARS}/{_TCHARS}(\s*;[\x20-\x7e\t]*)?")
MAX_MEDIA_TYPE_LENGTH = 255  # the content_type columns


def is_media_type(value: str) -> bool:
    """True for an RFC 9110 media type (``text/plain; charset=utf-8``) that fits the
    content_type columns: a Content-Type a download can send back as it is."""
    return len(value) <= MAX_MEDIA_TYPE_LENGTH and _MEDIA_TYPE.fullmatch(value) is not None

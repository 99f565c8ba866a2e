"""Event publishing: one function every service calls for every state change."""

from __future__ import annotations

from hmacfs.events.publisher import publish
from hmacfs.events.sql import NOTIFY_CHANNEL

__all__ = ["NOTIFY_CHANNEL", "publish"]

"""Event publishing: one function every service calls for every state change."""

from __future__ import annotations

from hmacfs.events.publisher import NOTIFY_CHANNEL, publish

__all__ = ["NOTIFY_CHANNEL", "publish"]

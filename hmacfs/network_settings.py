"""Settings of the network half: the interface monitor, per-class tuning and chunk handoff.

Part of the frozen settings (``hmacfs.config`` includes these sections); kept
in their own module so that ``config.py`` stays readable. Keys the seeds name
that have no meaning on a server are refused at start-up with the reason,
instead of being accepted and ignored.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from hmacfs.units import parse_duration, parse_size

Size = Annotated[int, BeforeValidator(parse_size)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

# The network classes a client or an interface is put in.
NETWORK_CLASSES = ("ethernet", "wifi", "lte", "cellular", "vpn", "unknown")
# The account of the node-wide events (network.changed) unless one is configured.
SYSTEM_ACCOUNT = uuid.UUID(int=0)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _refuse(data: Any, reasons: dict[str, str], *, even_false: frozenset[str] = frozenset()) -> Any:
    """Raise for the first seed key of ``reasons`` set in ``data`` (a section's table) to
    anything but ``false``: switching a feature the server does not have off is true.
    Keys in ``even_false`` name something the server does do, so ``false`` would be a lie
    too, and they are refused whatever their value."""
    if not isinstance(data, dict):
        return data
    for key, reason in reasons.items():
        if key in data and (data[key] is not False or key in even_false):
            raise ValueError(f"{key}: refused: {reason}")
    return {key: value for key, value in data.items() if key not in reasons}


_PROFILES_SWITCH = (
    "client profiles and network classes are kept while [network_resilience] enabled = true; set that"
)
_LOGGING = (
    "the adaptive engine's decisions are in its metrics (docs/adaptive.md, section 6) and in "
    "client_profiles; log verbosity is [logging] level"
)
# The dual-stack and adaptive-io seeds' [performance] keys that hmacfs does not take as
# they are, and why; each says what to set instead.
_PERFORMANCE_SEED_KEYS = {
    "buffer_optimization_interval": (
        "the read size is re-chosen before every block from the body's own measured rate, "
        "not on a timer (docs/adaptive.md, section 4)"
    ),
    "initial_buffer_size": (
        "a body starts at 64 KiB (less if its profile says so) and grows with its measured rate, "
        "so a thousand slow clients cannot each take a large first buffer"
    ),
    "client_profiling": _PROFILES_SWITCH,
    "connection_type_detection": _PROFILES_SWITCH,
    "intelligent_chunking": 'chunk sizes follow the profile while chunk_strategy = "adaptive"; set that',
    "chunk_adaptation_algorithm": (
        'use chunk_strategy = "fixed" or "adaptive"; there is no "predictive" rule'
    ),
    "min_chunk_size": "the chunk bounds every protocol enforces are [uploads] min_chunk_size; set it there",
    "max_chunk_size": "the chunk bounds every protocol enforces are [uploads] max_chunk_size; set it there",
    "fully_adaptive": (
        "there are no separate adaptive handlers to swap in: every route serves both arms "
        "(adaptive_uploads, testing_mode)"
    ),
    "detailed_logging": _LOGGING,
    "optimization_logging": _LOGGING,
    "client_profile_logging": _LOGGING,
}


def refuse_performance_seed_keys(data: Any) -> Any:
    """``[performance]``: refuse the seeds' keys listed above, naming why. Switching profiles,
    class detection or adaptive chunking off with a seed name would silently keep them on,
    so those are refused even when ``false``."""
    always = frozenset(
        ("client_profiling", "connection_type_detection", "intelligent_chunking", "min_chunk_size",
         "max_chunk_size", "chunk_adaptation_algorithm", "buffer_optimization_interval",
         "initial_buffer_size")
    )  # fmt: skip
    return _refuse(data, _PERFORMANCE_SEED_KEYS, even_false=always)


_NOT_CHOSEN_BY_SERVER = (
    "the server does not choose its network interface, the operating system's routing does; "
    "hmacfs watches the interfaces and publishes network.changed (docs/handoff.md)"
)


_CLIENTS_RETRY = (
    "retries are the client's to pace (hmacfs upload and the JS client back off exponentially); "
    "the server answers busy and limited requests 503/429 with Retry-After"
)
# The dual-stack seed's [streaming] keys beyond range_requests, and why each is refused.
_STREAMING_SEED_KEYS = {
    "bandwidth_estimation": (
        "every upload connection is measured while [network_resilience] enabled = true; set that"
    ),
    "connection_multiplexing": "HTTP/2 multiplexing is the reverse proxy's (nginx) job in front of hmacfs",
    "quality_adaptation": (
        "files are stored and served as uploaded (no transcoding); sizes adapt per client through "
        "[performance] chunk_strategy and buffer_strategy"
    ),
    "automatic_retry": _CLIENTS_RETRY,
    "exponential_backoff": _CLIENTS_RETRY,
    "circuit_breaker": (
        "a database or store fault is answered 503 at once and /health/uploads reports it; a proxy or client "
        "decides when to try again"
    ),
}


def refuse_streaming_seed_keys(data: Any) -> Any:
    """``[streaming]``: refuse the dual-stack seed's keys above, naming why; switching
    measurement off by ``bandwidth_estimation = false`` would not, so it is refused too."""
    return _refuse(data, _STREAMING_SEED_KEYS, even_false=frozenset({"bandwidth_estimation"}))


class NetworkResilienceSettings(_Section):
    enabled: bool = True
    multi_interface_enabled: bool = True
    interface_poll_interval: Duration = Field(timedelta(seconds=5), ge=timedelta(milliseconds=100))
    events_account: uuid.UUID = SYSTEM_ACCOUNT

    @model_validator(mode="before")
    @classmethod
    def _seed_keys(cls, data: Any) -> Any:
        reasons = dict.fromkeys(
            ("interface_priority", "auto_switch_enabled", "switch_threshold_latency",
             "switch_threshold_packet_loss"),
            _NOT_CHOSEN_BY_SERVER,
        )  # fmt: skip
        return _refuse(data, reasons)


class NetworkClassSettings(_Section):
    """Tuning for clients (and server interfaces) of one network class."""

    buffer_size: Size = Field(parse_size("256KB"), ge=32 * 1024, le=1024 * 1024)
    chunk_size: Size = Field(parse_size("5MB"), gt=0)
    timeout_multiplier: float = Field(1.0, gt=0, le=10)
    priority: int = Field(50, ge=0, le=1000)


def _class(buffer: str, chunk: str, multiplier: float, priority: int) -> NetworkClassSettings:
    return NetworkClassSettings(
        buffer_size=parse_size(buffer), chunk_size=parse_size(chunk),
        timeout_multiplier=multiplier, priority=priority,
    )  # fmt: skip


class NetworkInterfacesSettings(_Section):
    """``[network_interfaces]``: one table per network class (the seed's defaults)."""

    ethernet: NetworkClassSettings = _class("1MB", "10MB", 1.0, 10)
    wifi: NetworkClassSettings = _class("512KB", "5MB", 1.0, 20)
    lte: NetworkClassSettings = _class("256KB", "2MB", 1.5, 30)
    cellular: NetworkClassSettings = _class("128KB", "512KB", 2.0, 40)
    vpn: NetworkClassSettings = _class("256KB", "2MB", 1.5, 50)
    unknown: NetworkClassSettings = _class("256KB", "5MB", 1.0, 60)

    @model_validator(mode="before")
    @classmethod
    def _partial_tables_keep_their_class_defaults(cls, data: Any) -> Any:
        """``lte = { buffer_size = "128KB" }`` changes lte's buffer only: the keys left out
        keep lte's defaults above (timeout_multiplier 1.5, priority 30), not the generic ones."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if (
                isinstance(value, dict)
                and field is not None
                and isinstance(field.default, NetworkClassSettings)
            ):
                filled[name] = {**field.default.model_dump(), **value}
        return filled

    def of(self, network_class: str | None) -> NetworkClassSettings:
        """The settings of ``network_class``; unknown ones get ``unknown``'s."""
        found: NetworkClassSettings = getattr(self, network_class or "unknown", self.unknown)
        return found if network_class in NETWORK_CLASSES else self.unknown


class HandoffSettings(_Section):
    """``[handoff]``: chunks that survive a client's network switch (``hmacfs.uploads.handoff``)."""

    seamless_switching: bool = True
    chunk_retry_on_switch: bool = True
    switch_notification_enabled: bool = True
    interface_quality_history: int = Field(10, ge=1, le=1000)
    writer_silence: Duration = Field(timedelta(seconds=2), ge=timedelta(milliseconds=100))
    writer_poll: Duration = Field(
        timedelta(milliseconds=250), ge=timedelta(milliseconds=10), le=timedelta(seconds=5)
    )

    @model_validator(mode="before")
    @classmethod
    def _seed_keys(cls, data: Any) -> Any:
        return _refuse(data, {
            "pause_transfers_on_switch": (
                "the server cannot pause a client's transfer; a client pauses on its own network change "
                "and resumes from the server's offset (hmacfs upload does), and a stalled request is "
                "taken over by its retry"
            ),
            "performance_comparison_window": (
                "the adaptive and fixed strategies are compared by the adaptive engine's own window "
                "(docs/handoff.md), not per network switch"
            ),
        })  # fmt: skip

    @model_validator(mode="after")
    def _poll_within_silence(self) -> HandoffSettings:
        if self.writer_poll > self.writer_silence:
            raise ValueError("writer_poll must not exceed writer_silence")
        return self


_ENGINE_OWNS = "the adaptive engine (docs/adaptive.md)"


class ClientStrategySettings(_Section):
    """``[client_optimization] strategy_<kind>``: what differs for a kind of client."""

    timeout_multiplier: float = Field(1.0, gt=0, le=10)

    @model_validator(mode="before")
    @classmethod
    def _seed_keys(cls, data: Any) -> Any:
        sizes = (
            "sizes follow the client's network class ([network_interfaces]) and its measured link, "
            "not the kind of device it is"
        )
        return _refuse(data, {
            "buffer_size": sizes,
            "chunk_size": sizes,
            "retry_multiplier": (
                "retries are the client's to pace; the server answers busy and limited requests "
                "with Retry-After"
            ),
        })  # fmt: skip


class ClientOptimizationSettings(_Section):
    """``[client_optimization]``: per kind of client (mobile, desktop, server), told from its
    User-Agent. What it changes on a server is how long a body may stay silent."""

    enabled: bool = True
    user_agent_analysis: bool = True
    strategy_mobile: ClientStrategySettings = ClientStrategySettings(timeout_multiplier=1.5)
    strategy_desktop: ClientStrategySettings = ClientStrategySettings()
    strategy_server: ClientStrategySettings = ClientStrategySettings()

    @model_validator(mode="before")
    @classmethod
    def _seed_keys(cls, data: Any) -> Any:
        return _refuse(data, {
            "learning_enabled": (
                "client profiles are learned while [network_resilience] enabled = true; set that"
            ),
            "adaptation_speed": f"the profiles' moving-average weight is fixed by {_ENGINE_OWNS}",
            "connection_fingerprinting": (
                f"a client is always identified by {_ENGINE_OWNS}: its Hmacfs-Client-Id header, "
                "else its User-Agent and network prefix"
            ),
            "performance_classification": (
                "clients are classed by network (Hmacfs-Network and measurement, [network_interfaces])"
            ),
        })  # fmt: skip

    def timeout_multiplier(self, kind: str) -> float:
        """The body-idle multiplier for a client of ``kind`` (mobile, desktop or server)."""
        if not self.enabled or not self.user_agent_analysis:
            return 1.0
        strategy: ClientStrategySettings = getattr(self, f"strategy_{kind}", self.strategy_desktop)
        return strategy.timeout_multiplier

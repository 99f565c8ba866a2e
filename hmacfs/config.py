"""Typed, frozen settings loaded once from one TOML file and the environment.

This is the only module that reads ``os.environ``. Precedence, lowest first:
built-in defaults, the TOML file (``HMACFS_CONFIG``, default ``etc/hmacfs.toml``),
the seed's environment names (``DATABASE_URL``, ``STORAGE_UPLOADS_PATH``, ...),
then ``HMACFS_<SECTION>__<KEY>``. Any unknown key or bad value raises
:class:`ConfigError` naming the key, e.g. ``uploads.chunksize: unknown key``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hmacfs.network_settings import (
    ClientOptimizationSettings,
    HandoffSettings,
    NetworkInterfacesSettings,
    NetworkResilienceSettings,
    refuse_performance_seed_keys,
    refuse_streaming_seed_keys,
)
from hmacfs.s3_settings import S3Settings
from hmacfs.units import format_duration, parse_duration, parse_size

DEFAULT_CONFIG_PATH = Path("etc/hmacfs.toml")
ENV_PREFIX = "HMACFS_"

Size = Annotated[int, BeforeValidator(parse_size)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
# A browser's Origin: scheme, host and optional port; no path, no trailing slash.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s]+", re.IGNORECASE)


class ConfigError(Exception):
    """A setting is unknown, malformed or missing; ``str()`` names every bad key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ServerSettings(_Section):
    bind: str = "127.0.0.1:8080"
    workers: int = Field(2, ge=1, le=256)
    worker_connections: int = Field(4096, ge=1)
    base_url: str = ""
    trusted_hosts: tuple[str, ...] = ()
    trusted_proxy_count: int = Field(0, ge=0, le=10)
    cors_allowed_origins: tuple[str, ...] = ()

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not '*' or scheme://host[:port]")
        return origins


def normalise_database_url(url: str) -> str:
    """``url`` with the driver hmacfs ships named: plain ``postgresql://`` and Heroku's
    ``postgres://`` become ``postgresql+psycopg2://`` (``postgres+DRIVER://`` becomes
    ``postgresql+DRIVER://``); any other URL is returned unchanged.

    SQLAlchemy 2.1 reads a plain ``postgresql://`` as psycopg 3, which is not
    installed: the form every hosting guide uses would crash the workers at boot.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    backend, plus, driver = scheme.partition("+")
    if backend.lower() not in ("postgres", "postgresql"):
        return url
    return f"postgresql+{driver if plus else 'psycopg2'}://{rest}"


class DatabaseSettings(_Section):
    url: str = ""
    pool_size: int = Field(20, ge=1)
    max_overflow: int = Field(10, ge=0)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _named_driver(cls, url: str) -> str:
        return normalise_database_url(url)


class SecuritySettings(_Section):
    secret: str = ""
    previous_secrets: tuple[str, ...] = ()
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_private_key: str = ""
    jwt_leeway: Duration = timedelta(seconds=30)
    # UNSAFE compatibility with hmac-file-server: accept X-Signature as the HMAC of the path alone.
    allow_static_signature: bool = False


class StorageSettings(_Section):
    backend: Literal["local", "s3"] = "local"
    path: Path = Path("var/storage")
    fsync: bool = True
    min_free_space: Size = parse_size("1GB")
    global_quota: Size = 0
    s3: S3Settings = S3Settings()

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> StorageSettings:
        if self.backend == "s3" and not self.s3.bucket:
            raise ValueError("s3.bucket: required when backend = 's3'")
        return self


class UploadsSettings(_Section):
    max_upload_size: Size = parse_size("10GB")
    allowed_extensions: tuple[str, ...] = ()
    chunked_uploads_enabled: bool = True
    resumable_uploads_enabled: bool = True
    chunk_size: Size = parse_size("5MB")
    min_chunk_size: Size = parse_size("256KB")
    max_chunk_size: Size = parse_size("16MB")
    max_resumable_age: Duration = timedelta(hours=48)
    cleanup_interval: Duration = timedelta(minutes=60)
    default_quota: Size = 0
    max_reserved: Size = 0
    reservation_timeout: Duration = Field(timedelta(hours=6), gt=timedelta(0))

    @model_validator(mode="after")
    def _chunk_bounds(self) -> UploadsSettings:
        if not self.min_chunk_size <= self.chunk_size <= self.max_chunk_size:
            raise ValueError("chunk_size must lie within min_chunk_size..max_chunk_size")
        if self.reservation_timeout >= self.max_resumable_age:
            raise ValueError("reservation_timeout must be shorter than max_resumable_age")
        return self


class DeduplicationSettings(_Section):
    enabled: bool = True
    maxsize: Size = parse_size("1GB")


class TimeoutsSettings(_Section):
    readtimeout: Duration = timedelta(seconds=4800)
    writetimeout: Duration = timedelta(seconds=4800)
    idletimeout: Duration = Field(timedelta(seconds=75), ge=timedelta(seconds=1))
    request_head: Duration = Field(timedelta(seconds=10), gt=timedelta(0))
    graceful: Duration = timedelta(seconds=30)
    body_idle: Duration = Field(timedelta(seconds=60), gt=timedelta(0))


class WorkersSettings(_Section):
    numworkers: int = Field(4, ge=1, le=256)
    # The network-resilience seed's names (it lists them under [server]); here they steer
    # the processes of `hmacfs worker` by the depth of the claimable task queue.
    enable_dynamic_workers: bool = False
    min_workers: int = Field(1, ge=1, le=256)
    worker_scale_up_thresh: int = Field(50, ge=1)
    worker_scale_down_thresh: int = Field(10, ge=0)
    worker_scale_interval: Duration = Field(timedelta(seconds=5), gt=timedelta(0))
    metrics_bind: str = ""

    @model_validator(mode="after")
    def _scaling_bounds(self) -> WorkersSettings:
        if self.worker_scale_down_thresh >= self.worker_scale_up_thresh:
            raise ValueError("worker_scale_down_thresh must be below worker_scale_up_thresh")
        if self.min_workers > self.numworkers:
            raise ValueError("min_workers must not exceed numworkers")
        if self.metrics_bind and not re.fullmatch(r"[^\s:]*:\d{1,5}", self.metrics_bind):
            raise ValueError("metrics_bind must be host:port")
        return self


Strategy = Literal["fixed", "adaptive"]


class PerformanceSettings(_Section):
    """Adaptive chunk and buffer sizes (docs/adaptive.md); names from the adaptive-io seed."""

    adaptive_buffers: bool = True
    adaptive_uploads: bool = True
    adaptive_downloads: bool = False
    testing_mode: bool = False
    adaptive_share: float = Field(50.0, ge=0, le=100)
    chunk_strategy: Strategy = "adaptive"
    buffer_strategy: Strategy = "adaptive"
    min_buffer_size: Size = Field(parse_size("32KB"), ge=4096)
    max_buffer_size: Size = Field(parse_size("1MB"), le=parse_size("16MB"))
    max_buffer_memory: Size = Field(parse_size("256MB"), ge=parse_size("1MB"))
    chunk_target_time: Duration = Field(timedelta(seconds=8), gt=timedelta(0))
    profile_persistence_duration: Duration = Field(timedelta(hours=24), gt=timedelta(0))
    performance_history_samples: int = Field(16, ge=0, le=256)
    fallback_window: Duration = Field(timedelta(minutes=10), gt=timedelta(0))
    fallback_ratio: float = Field(1.1, ge=1.0)
    fallback_min_bodies: int = Field(20, ge=1)
    fallback_cooldown: Duration = Field(timedelta(minutes=30), gt=timedelta(0))

    @model_validator(mode="before")
    @classmethod
    def _seed_keys(cls, data: Any) -> Any:
        return refuse_performance_seed_keys(data)

    @field_validator("adaptive_downloads")
    @classmethod
    def _downloads_do_not_adapt(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "downloads are sent with sendfile (zero-copy) or in max_buffer_size blocks the "
                "kernel paces; there is no per-connection read buffer to adapt (set false)"
            )
        return value

    @model_validator(mode="after")
    def _buffer_bounds(self) -> PerformanceSettings:
        if self.min_buffer_size > self.max_buffer_size:
            raise ValueError("min_buffer_size must not exceed max_buffer_size")
        if self.max_buffer_memory < 4 * self.max_buffer_size:
            raise ValueError("max_buffer_memory must hold at least four max_buffer_size buffers")
        return self

    def adaptive(self, kind: Literal["chunk", "buffer"]) -> bool:
        """Whether the adaptive arm adapts ``kind`` at all (the master switch, the upload
        flag and that strategy)."""
        strategy = self.chunk_strategy if kind == "chunk" else self.buffer_strategy
        return self.adaptive_buffers and self.adaptive_uploads and strategy == "adaptive"


class StreamingSettings(_Section):
    range_requests: bool = True
    sendfile: bool = True
    x_accel_redirect: bool = False
    x_accel_prefix: str = "/internal/"

    @model_validator(mode="before")
    @classmethod
    def _seed_keys(cls, data: Any) -> Any:
        return refuse_streaming_seed_keys(data)


class Xep0363Settings(_Section):
    base_path: str = "/upload/"
    signed_path: Literal["relative", "full"] = "relative"
    require_signature_for_get: bool = False
    cors_allowed_origins: tuple[str, ...] = ()
    file_ttl: Duration = timedelta(0)
    daily_quota: Size = 0
    max_path_length: int = Field(1024, ge=16, le=8192)
    get_cache_entries: int = Field(10000, ge=0)

    @model_validator(mode="after")
    def _slash_delimited(self) -> Xep0363Settings:
        if not (self.base_path.startswith("/") and self.base_path.endswith("/")):
            raise ValueError("base_path must start and end with '/'")
        return self


class TasksSettings(_Section):
    max_attempts: int = Field(5, ge=1)
    lease_duration: Duration = timedelta(seconds=30)
    poll_interval: Duration = timedelta(seconds=1)
    retention: Duration = timedelta(days=30)
    checkpoint_interval: Duration = timedelta(milliseconds=500)
    claim_batch: int = Field(8, ge=1, le=100)
    durable_commits: bool = True
    handler_modules: tuple[str, ...] = ()
    decompress_max_total_size: Size = parse_size("10GB")
    decompress_max_ratio: float = Field(200.0, gt=1)
    decompress_max_entries: int = Field(10000, ge=1)
    encryption_segment_size: Size = parse_size("64KB")
    migration_roots: tuple[str, ...] = ()
    migration_grace: Duration = timedelta(seconds=5)


class WebhookSettings(_Section):
    url: str
    secret: str
    types: tuple[str, ...] = ("*",)


class EventsSettings(_Section):
    retention: Duration = timedelta(hours=24)
    progress_min_interval: Duration = timedelta(seconds=1)
    progress_min_step: float = Field(5.0, gt=0, le=100)
    ping_interval: Duration = timedelta(seconds=25)
    subscriber_queue_size: int = Field(1000, ge=1)
    webhooks: tuple[WebhookSettings, ...] = ()
    webhook_max_retry: Duration = timedelta(hours=24)
    webhook_backoff: Duration = timedelta(seconds=1)
    webhook_timeout: Duration = timedelta(seconds=10)


class MetricsSettings(_Section):
    enabled: bool = True
    # Set by `hmacfs serve` (PROMETHEUS_MULTIPROC_DIR) so counters add up across workers.
    multiprocess_dir: str = ""
    # Restrict /metrics and /health/uploads (hmacfs.web.monitoring).
    access_token: str = ""
    allowed_networks: tuple[str, ...] = ()

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(value)


def _check_networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return value


class RateLimitSettings(_Section):
    """Token buckets (docs/rate-limits.md); names follow hmac-file-server's ``[rate_limit]``."""

    enabled: bool = True
    storage: Literal["auto", "database", "memory", "redis"] = "auto"
    # Flask-Limiter's names (RATELIMIT_STORAGE_URI, RATELIMIT_KEY_PREFIX), for storage = "redis".
    storage_uri: str = ""
    key_prefix: str = Field("hmacfs:ratelimit:", max_length=200)
    requests_per_minute: float = Field(3000, gt=0)
    burst_size: int = Field(500, ge=1)
    by_jid: bool = True
    by_ip: bool = True
    whitelisted_ips: tuple[str, ...] = ()
    whitelisted_jids: tuple[uuid.UUID, ...] = ()
    create_per_minute: float = Field(120, gt=0)
    create_burst: int = Field(30, ge=1)
    auth_failures_per_minute: float = Field(6, gt=0)
    auth_failures_burst: int = Field(20, ge=1)

    @field_validator("whitelisted_ips")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(value)

    @field_validator("storage_uri")
    @classmethod
    def _redis_uri(cls, value: str) -> str:
        if value and not re.match(r"(rediss?|unix)://\S", value):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    access_log: bool = True


class Settings(_Section):
    """Every setting of hmacfs; documented one by one in ``etc/hmacfs.toml``."""

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    security: SecuritySettings = SecuritySettings()
    storage: StorageSettings = StorageSettings()
    uploads: UploadsSettings = UploadsSettings()
    deduplication: DeduplicationSettings = DeduplicationSettings()
    timeouts: TimeoutsSettings = TimeoutsSettings()
    workers: WorkersSettings = WorkersSettings()
    performance: PerformanceSettings = PerformanceSettings()
    streaming: StreamingSettings = StreamingSettings()
    xep0363: Xep0363Settings = Xep0363Settings()
    network_resilience: NetworkResilienceSettings = NetworkResilienceSettings()
    network_interfaces: NetworkInterfacesSettings = NetworkInterfacesSettings()
    handoff: HandoffSettings = HandoffSettings()
    client_optimization: ClientOptimizationSettings = ClientOptimizationSettings()
    tasks: TasksSettings = TasksSettings()
    events: EventsSettings = EventsSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()

    @model_validator(mode="after")
    def _shared_buckets_need_postgresql(self) -> Settings:
        if self.rate_limit.storage == "database" and not self.serves_many_processes:
            raise ValueError("rate_limit.storage: 'database' needs PostgreSQL (use 'auto' or 'memory')")
        if (self.rate_limit.storage == "redis") != bool(self.rate_limit.storage_uri):
            raise ValueError("rate_limit.storage_uri: set it exactly when storage = 'redis'")
        return self

    @model_validator(mode="after")
    def _class_chunks_within_limits(self) -> Settings:
        low, high = self.uploads.min_chunk_size, self.uploads.max_chunk_size
        for name, tuning in self.network_interfaces:
            if not low <= tuning.chunk_size <= high:
                raise ValueError(
                    f"network_interfaces.{name}.chunk_size: must lie within uploads.min_chunk_size"
                    f"..max_chunk_size ({low}..{high} bytes)"
                )
        return self

    @model_validator(mode="after")
    def _s3_roots_need_a_bucket(self) -> Settings:
        if not self.storage.s3.bucket and any(r.startswith("s3://") for r in self.tasks.migration_roots):
            raise ValueError("tasks.migration_roots: an s3:// root needs storage.s3.bucket (and credentials)")
        return self

    @model_validator(mode="after")
    def _uploads_fit_s3_parts(self) -> Settings:
        s3 = self.storage.s3
        if self.storage.backend == "s3" and self.uploads.max_upload_size > s3.max_object_size():
            raise ValueError(
                f"storage.s3.part_size: {s3.part_size} bytes x 10,000 parts is less than "
                f"uploads.max_upload_size ({self.uploads.max_upload_size} bytes)"
            )
        return self

    @property
    def database_url(self) -> str:
        """The configured URL, or the embedded SQLite database under ``./var/``."""
        return self.database.url or f"sqlite:///{Path('var/hmacfs.db').resolve()}"

    @property
    def serves_many_processes(self) -> bool:
        """PostgreSQL; SQLite serves one process (its locks and wake-ups live in memory)."""
        return self.database_url.startswith("postgresql")


# The seed's environment names, mapped to (section, key, value converter).
_SEED_ENV: dict[str, tuple[str, str, Any]] = {
    "DATABASE_URL": ("database", "url", str),
    "STORAGE_UPLOADS_PATH": ("storage", "path", str),
    "UPLOAD_DEFAULT_CHUNK_SIZE": ("uploads", "chunk_size", str),
    "UPLOAD_MAX_CHUNK_SIZE": ("uploads", "max_chunk_size", str),
    "UPLOAD_STALE_THRESHOLD_HOURS": ("uploads", "max_resumable_age", lambda v: f"{v}h"),
    "UPLOAD_CLEANUP_INTERVAL_MINUTES": ("uploads", "cleanup_interval", lambda v: f"{v}m"),
    "PROMETHEUS_MULTIPROC_DIR": ("metrics", "multiprocess_dir", str),
}


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    require_secrets: bool = True,
) -> Settings:
    """Load settings from ``path`` (or ``HMACFS_CONFIG``) and the environment.

    Raises ConfigError naming each bad key. A missing default file is not an
    error (defaults and environment apply); a missing explicit file is.
    """
    env = os.environ if environ is None else environ
    data = _read_toml(path, env)
    problems: list[str] = []
    _apply_environment(data, env, problems)
    if problems:
        raise ConfigError(problems)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    _check_driver(settings.database_url)
    if require_secrets:
        _check_secrets(settings)
    return settings


def _read_toml(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> dict[str, Any]:
    explicit = path is not None or "HMACFS_CONFIG" in env
    target = Path(path if path is not None else env.get("HMACFS_CONFIG", DEFAULT_CONFIG_PATH))
    if not target.exists():
        if explicit:
            raise ConfigError([f"{target}: configuration file not found"])
        return {}
    try:
        with target.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{target}: {exc}"]) from None


def _apply_environment(data: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> None:
    """The seed's variables, then ``HMACFS_<SECTION>__<KEY>``; a nested table's key takes one
    more ``__`` per level (``HMACFS_STORAGE__S3__BUCKET``)."""
    for name, (section, key, convert) in _SEED_ENV.items():
        if env.get(name):
            data.setdefault(section, {})[key] = convert(env[name])
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == "HMACFS_CONFIG" or "__" not in name:
            continue
        section, *tables, key = name[len(ENV_PREFIX) :].lower().split("__")
        if section not in Settings.model_fields:
            problems.append(f"{section}: unknown section (from {name})")
            continue
        table = _table(data, [section, *tables], problems)
        if table is not None:
            table[key] = _env_value(raw)


def _table(data: dict[str, Any], path: list[str], problems: list[str]) -> dict[str, Any] | None:
    """The table at ``path`` in ``data``, made where missing; None (with a problem) where a
    value that is not a table is in the way."""
    table = data
    for depth, name in enumerate(path):
        table = table.setdefault(name, {})
        if not isinstance(table, dict):
            problems.append(f"{'.'.join(path[: depth + 1])}: must be a table")
            return None
    return table


def _env_value(raw: str) -> Any:
    """Lists and tables may be given as JSON; everything else stays a string."""
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _describe(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {message}" if key else message)
    return problems


def database_driver_problem(url: str) -> str | None:
    """Why the database driver of ``url`` cannot be used, or None when it imports.

    Loads SQLAlchemy's dialect and imports its DBAPI module, so a missing driver
    stops start-up (and ``hmacfs config check``) here, naming the driver,
    instead of killing every worker with a traceback at its first connection.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "not a database URL (e.g. postgresql://user@host/db or sqlite:///path)"
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        return f"unknown database or driver {parsed.drivername!r}"
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        return f"driver {parsed.drivername!r} cannot be imported ({exc}); hmacfs ships postgresql+psycopg2"
    return None


def _check_driver(url: str) -> None:
    problem = database_driver_problem(url)
    if problem is not None:
        raise ConfigError([f"database.url: {problem}"])


def _check_secrets(settings: Settings) -> None:
    security = settings.security
    problems = []
    if not security.secret:
        problems.append("security.secret: required (the HMAC key shared with the XMPP server)")
    if not security.jwt_secret and not security.jwt_public_key:
        problems.append("security.jwt_secret: required (or security.jwt_public_key for RS256)")
    if problems:
        raise ConfigError(problems)


def _plain(value: Any) -> Any:
    """JSON-ready data with durations written the way the TOML file takes them."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, (Path, uuid.UUID)):
        return str(value)
    return value


_REDACTED = "***"


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with every secret replaced by ``"***"``."""
    data: dict[str, Any] = _plain(settings.model_dump())
    hidden = _REDACTED
    security = data["security"]
    for key in ("secret", "jwt_secret", "jwt_private_key"):
        if security[key]:
            security[key] = hidden
    security["previous_secrets"] = [hidden for _ in security["previous_secrets"]]
    if data["metrics"]["access_token"]:
        data["metrics"]["access_token"] = hidden
    for hook in data["events"]["webhooks"]:
        hook["secret"] = hidden
    return data

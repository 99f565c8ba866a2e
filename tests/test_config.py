from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from hmacfs.config import ConfigError, load_settings, redacted

SECRETS = {"HMACFS_SECURITY__SECRET": "s", "HMACFS_SECURITY__JWT_SECRET": "j"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hmacfs.toml"
    path.write_text(text)
    return path


def problems(path: Path | None, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env)
    return caught.value.problems


def test_example_file_documents_every_key() -> None:
    """etc/hmacfs.toml names every setting, so none is undocumented."""
    import tomllib

    from hmacfs.config import Settings
    from hmacfs.s3_settings import S3Settings

    example = tomllib.loads(Path("etc/hmacfs.toml").read_text())
    for section, model in Settings.model_fields.items():
        assert section in example, section
        documented = set(example[section])
        assert documented == set(model.annotation.model_fields), section  # type: ignore[union-attr]
    assert set(example["storage"]["s3"]) == set(S3Settings.model_fields)


def test_defaults_and_types(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), SECRETS)
    assert settings.uploads.chunk_size == 5 * 1024**2
    assert settings.uploads.max_resumable_age == timedelta(hours=48)
    assert settings.timeouts.readtimeout == timedelta(seconds=4800)
    assert settings.database_url.startswith("sqlite:///") and "/var/hmacfs.db" in settings.database_url


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[uploads]\nchunksize = "5MB"\n')
    assert problems(path, SECRETS) == ["uploads.chunksize: unknown key"]


def test_unknown_section_is_named(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "[upload]\nx = 1\n"), SECRETS) == ["upload: unknown key"]


def test_wrong_type_is_named(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[server]\nworkers = "many"\n[uploads]\nchunk_size = "big"\n'), SECRETS)
    assert any(p.startswith("server.workers:") for p in found)
    assert any(p.startswith("uploads.chunk_size: invalid size") for p in found)


def test_missing_secrets_are_named(tmp_path: Path) -> None:
    found = problems(write(tmp_path, ""), {})
    assert found[0].startswith("security.secret: required")
    assert found[1].startswith("security.jwt_secret: required")


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[uploads]\nchunk_size = "8MB"\n')
    env = {**SECRETS, "HMACFS_UPLOADS__CHUNK_SIZE": "10MB", "HMACFS_SECURITY__PREVIOUS_SECRETS": '["a","b"]'}
    settings = load_settings(path, env)
    assert settings.uploads.chunk_size == 10 * 1024**2
    assert settings.security.previous_secrets == ("a", "b")


def test_unknown_environment_key_is_named(tmp_path: Path) -> None:
    env = {**SECRETS, "HMACFS_UPLOADS__CHUNKSIZE": "1"}
    assert problems(write(tmp_path, ""), env) == ["uploads.chunksize: unknown key"]
    env = {**SECRETS, "HMACFS_NOPE__X": "1"}
    assert problems(write(tmp_path, ""), env)[0].startswith("nope: unknown section")


def test_environment_reaches_nested_tables(tmp_path: Path) -> None:
    """One more ``__`` per level: [storage.s3] and the per-class [network_interfaces] tables."""
    path = write(tmp_path, '[storage.s3]\nbucket = "from-file"\n')
    env = {
        **SECRETS,
        "HMACFS_STORAGE__BACKEND": "s3",
        "HMACFS_STORAGE__S3__BUCKET": "uploads",
        "HMACFS_STORAGE__S3__ENDPOINT": "http://127.0.0.1:8333",
        "HMACFS_STORAGE__S3__PATH_STYLE": "true",
    }
    s3 = load_settings(path, env).storage.s3
    assert (s3.bucket, s3.endpoint, s3.path_style) == ("uploads", "http://127.0.0.1:8333", True)
    assert problems(path, {**SECRETS, "HMACFS_STORAGE__S3__BUKET": "x"}) == ["storage.s3.buket: unknown key"]
    with_path = write(tmp_path, '[storage]\npath = "/srv/up"\n')
    assert problems(with_path, {**SECRETS, "HMACFS_STORAGE__PATH__X": "1"}) == [
        "storage.path: must be a table"
    ]


def test_seed_environment_names(tmp_path: Path) -> None:
    env = {
        **SECRETS,
        "DATABASE_URL": "postgresql://db/x",
        "STORAGE_UPLOADS_PATH": "/srv/up",
        "UPLOAD_DEFAULT_CHUNK_SIZE": "5242880",
        "UPLOAD_MAX_CHUNK_SIZE": "16777216",
        "UPLOAD_STALE_THRESHOLD_HOURS": "24",
        "UPLOAD_CLEANUP_INTERVAL_MINUTES": "15",
    }
    settings = load_settings(write(tmp_path, ""), env)
    assert settings.database_url == "postgresql+psycopg2://db/x"  # the shipped driver, named
    assert settings.storage.path == Path("/srv/up")
    assert settings.uploads.chunk_size == 5242880
    assert settings.uploads.max_chunk_size == 16777216
    assert settings.uploads.max_resumable_age == timedelta(hours=24)
    assert settings.uploads.cleanup_interval == timedelta(minutes=15)


def test_chunk_bounds_are_checked(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[uploads]\nchunk_size = "64MB"\n'), SECRETS)
    assert found == ["uploads: chunk_size must lie within min_chunk_size..max_chunk_size"]


def test_body_idle_must_be_positive(tmp_path: Path) -> None:
    """Zero would make every body read non-blocking: each upload would fail at once."""
    found = problems(write(tmp_path, '[timeouts]\nbody_idle = "0s"\n'), SECRETS)
    assert len(found) == 1 and found[0].startswith("timeouts.body_idle:")
    assert load_settings(write(tmp_path, '[timeouts]\nbody_idle = "90s"\n'), SECRETS).timeouts.body_idle == (
        timedelta(seconds=90)
    )


def test_missing_explicit_file(tmp_path: Path) -> None:
    assert "configuration file not found" in problems(tmp_path / "nope.toml", SECRETS)[0]


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), SECRETS)
    with pytest.raises(Exception):
        settings.uploads.chunk_size = 1  # type: ignore[misc]


def test_redacted_hides_every_secret(tmp_path: Path) -> None:
    text = '[security]\nprevious_secrets = ["old"]\n[events]\nwebhooks = [{url = "http://h", secret = "w"}]\n'
    shown = redacted(load_settings(write(tmp_path, text), SECRETS))
    assert shown["security"]["secret"] == "***"
    assert shown["security"]["jwt_secret"] == "***"
    assert shown["security"]["previous_secrets"] == ["***"]
    assert shown["events"]["webhooks"][0]["secret"] == "***"
    assert shown["uploads"]["max_resumable_age"] == "2d"


def test_seed_keys_without_server_meaning_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "[handoff]\npause_transfers_on_switch = true\n")
    [problem] = problems(path, SECRETS)
    assert problem.startswith("handoff: pause_transfers_on_switch: refused: the server cannot pause")
    path = write(tmp_path, '[network_resilience]\ninterface_priority = ["eth0"]\n')
    [problem] = problems(path, SECRETS)
    assert problem.startswith("network_resilience: interface_priority: refused: the server does not choose")
    # switching off what the server does not do anyway is true, so it is accepted
    assert load_settings(write(tmp_path, "[handoff]\npause_transfers_on_switch = false\n"), SECRETS)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('min_chunk_size = "256KB"', "the chunk bounds every protocol enforces are [uploads]"),
        ('buffer_optimization_interval = "5m"', "the read size is re-chosen before every block"),
        ("client_profiling = false", "client profiles and network classes are kept while"),
        ('chunk_adaptation_algorithm = "predictive"', 'use chunk_strategy = "fixed" or "adaptive"'),
        ("fully_adaptive = true", "there are no separate adaptive handlers"),
        ("optimization_logging = true", "the adaptive engine's decisions are in its metrics"),
    ],
)
def test_the_seeds_performance_keys_are_refused_saying_why(tmp_path: Path, line: str, reason: str) -> None:
    """No seed key is silently accepted: each says why and what to set instead; one that
    would switch off something hmacfs does (client_profiling = false) is refused too."""
    [problem] = problems(write(tmp_path, f"[performance]\n{line}\n"), SECRETS)
    key = line.split(" ", 1)[0]
    assert problem.startswith(f"performance: {key}: refused: {reason}"), problem
    assert load_settings(write(tmp_path, "[performance]\nfully_adaptive = false\n"), SECRETS)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("bandwidth_estimation = false", "every upload connection is measured"),
        ("connection_multiplexing = true", "HTTP/2 multiplexing is the reverse proxy's"),
        ("exponential_backoff = true", "retries are the client's to pace"),
        ("circuit_breaker = true", "a database or store fault is answered 503 at once"),
    ],
)
def test_the_seeds_streaming_keys_are_refused_saying_why(tmp_path: Path, line: str, reason: str) -> None:
    [problem] = problems(write(tmp_path, f"[streaming]\n{line}\n"), SECRETS)
    assert problem.startswith(f"streaming: {line.split(' ', 1)[0]}: refused: {reason}"), problem
    assert load_settings(write(tmp_path, "[streaming]\nquality_adaptation = false\n"), SECRETS)


def test_network_classes_are_validated(tmp_path: Path) -> None:
    path = write(tmp_path, '[network_interfaces]\nlte = { buffer_size = "4MB" }\n')
    assert any(p.startswith("network_interfaces.lte.buffer_size:") for p in problems(path, SECRETS))
    path = write(tmp_path, '[network_interfaces]\nwifi = { chunk_size = "64MB" }\n')
    assert problems(path, SECRETS) == [
        "network_interfaces.wifi.chunk_size: must lie within uploads.min_chunk_size..max_chunk_size "
        "(262144..16777216 bytes)"
    ]
    settings = load_settings(
        write(tmp_path, "[network_interfaces]\ncellular = { timeout_multiplier = 3 }\n"), SECRETS
    )
    assert settings.network_interfaces.of("cellular").timeout_multiplier == 3
    cellular = settings.network_interfaces.of("cellular")  # the keys left out keep cellular's defaults
    assert (cellular.buffer_size, cellular.chunk_size, cellular.priority) == (128 * 1024, 512 * 1024, 40)
    assert settings.network_interfaces.of("satellite") == settings.network_interfaces.unknown
    path = write(tmp_path, '[handoff]\nwriter_silence = "100ms"\nwriter_poll = "1s"\n')
    assert problems(path, SECRETS) == ["handoff: writer_poll must not exceed writer_silence"]


def test_client_optimization_keys_work_or_are_refused(tmp_path: Path) -> None:
    text = "[client_optimization]\nstrategy_server = { timeout_multiplier = 2.5 }\n"
    settings = load_settings(write(tmp_path, text), SECRETS).client_optimization
    assert settings.timeout_multiplier("server") == 2.5 and settings.timeout_multiplier("mobile") == 1.5
    off = load_settings(write(tmp_path, text + "user_agent_analysis = false\n"), SECRETS).client_optimization
    assert off.timeout_multiplier("server") == 1.0
    [problem] = problems(write(tmp_path, "[client_optimization]\nlearning_enabled = true\n"), SECRETS)
    assert problem.startswith("client_optimization: learning_enabled: refused: client profiles are learned")
    refused = '[client_optimization]\nstrategy_mobile = { chunk_size = "2MB" }\n'
    [problem] = problems(write(tmp_path, refused), SECRETS)
    assert problem.startswith("client_optimization.strategy_mobile: chunk_size: refused: sizes follow")


def test_quota_and_reservation_keys_are_checked(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[uploads]\nreservation_timeout = "48h"\n'), SECRETS)
    assert found == ["uploads: reservation_timeout must be shorter than max_resumable_age"]
    for text, key in (
        ('[uploads]\nmax_reserved = "lots"\n', "uploads.max_reserved"),
        ('[xep0363]\ndaily_quota = "-1MB"\n', "xep0363.daily_quota"),
        ('[storage]\nglobal_quota = "1XB"\n', "storage.global_quota"),
        ('[uploads]\nreservation_timeout = "0s"\n', "uploads.reservation_timeout"),
    ):
        found = problems(write(tmp_path, text), SECRETS)
        assert len(found) == 1 and found[0].startswith(f"{key}:"), found
    settings = load_settings(
        write(tmp_path, '[uploads]\nmax_reserved = "2GB"\nreservation_timeout = "2h"\n'
              '[xep0363]\ndaily_quota = "100MB"\n[storage]\nglobal_quota = "1TB"\n'),
        SECRETS,
    )  # fmt: skip
    assert settings.uploads.max_reserved == 2 * 1024**3 and settings.uploads.reservation_timeout == timedelta(
        hours=2
    )
    assert settings.xep0363.daily_quota == 100 * 1024**2 and settings.storage.global_quota == 1024**4


def test_s3_settings_are_checked_naming_their_key(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[storage]\nbackend = "s3"\n'), SECRETS)
    assert found == ["storage: s3.bucket: required when backend = 's3'"]
    bad = (
        '[storage.s3]\nbucket = "B_"\npart_size = "1MB"\ndownload = "x"\nendpoint = "ftp://h"\n'
        'prefix = "../x"\n'
    )
    found = problems(write(tmp_path, bad), SECRETS)
    for key in ("bucket", "part_size", "download", "endpoint", "prefix"):
        assert any(p.startswith(f"storage.s3.{key}:") for p in found), (key, found)
    small = (
        '[storage]\nbackend = "s3"\n[storage.s3]\nbucket = "bkt"\npart_size = "5MiB"\n'
        '[uploads]\nmax_upload_size = "100GB"\n'
    )
    assert any(p.startswith("storage.s3.part_size:") for p in problems(write(tmp_path, small), SECRETS))
    good = '[storage]\nbackend = "s3"\n[storage.s3]\nbucket = "files"\nprefix = "/hmacfs"\n'
    s3 = load_settings(write(tmp_path, good), SECRETS).storage.s3
    assert (s3.bucket, s3.prefix, s3.part_size, s3.download) == ("files", "hmacfs/", 8 * 1024**2, "proxy")


def test_an_s3_migration_root_needs_the_s3_store(tmp_path: Path) -> None:
    found = problems(write(tmp_path, '[tasks]\nmigration_roots = ["s3://bucket/x/"]\n'), SECRETS)
    assert found == ["tasks.migration_roots: an s3:// root needs storage.s3.bucket (and credentials)"]

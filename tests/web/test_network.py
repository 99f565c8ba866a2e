"""Recommendations on create and GET /api/network/profile, on both backends."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from hmacfs.app import create_app
from hmacfs.config import Settings
from hmacfs.models import ClientProfile, UploadTask
from hmacfs.network.estimate import NetworkClass
from hmacfs.network.profiles import NetworkHint
from hmacfs.web.network_header import parse_network_header
from tests.conftest import make_settings
from tests.web.test_tus import TUS, path_of
from tests.web.test_tus import create as tus_create

LTE = {"Hmacfs-Network": "type=lte; downlink=8; rtt=60", "Hmacfs-Client-Id": "phone-7"}
MIB = 1024 * 1024
EIGHT_SECONDS_AT_8_MBIT = 8_000_000 - 8_000_000 % (64 * 1024)
LTE_CHUNK = 2 * MIB  # [network_interfaces] lte.chunk_size bounds the 8 s at 8 Mbit/s


def test_the_header_codec() -> None:
    assert parse_network_header("type=lte; downlink=8.5; rtt=60") == NetworkHint(NetworkClass.LTE, 8.5, 60.0)
    assert parse_network_header('rtt=100;type="4g";saveData=1') == NetworkHint(NetworkClass.LTE, None, 100.0)
    assert parse_network_header("type=bluetooth") == NetworkHint(NetworkClass.UNKNOWN)
    assert parse_network_header("TYPE=WiFi") == NetworkHint(NetworkClass.WIFI)
    assert parse_network_header("") is None and parse_network_header(None) is None
    for bad in ("lte", "downlink=fast", "rtt=-1", "rtt=inf", "type=x;" * 60):
        with pytest.raises(Exception, match="Hmacfs-Network"):
            parse_network_header(bad)


def test_the_profile_endpoint_sizes_by_the_hint_of_a_new_client(client: FlaskClient) -> None:
    answer = client.get("/api/network/profile", headers=LTE)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["networkClass"] == "lte" and body["source"] == "hint" and body["clientId"] == "phone-7"
    assert body["chunkSize"] == LTE_CHUNK < EIGHT_SECONDS_AT_8_MBIT
    assert body["bufferSize"] == 32 * 1024
    assert body["estimate"]["rttMs"] == 60.0 and body["arm"] == "adaptive"
    unknown = client.get("/api/network/profile").get_json()
    assert (
        unknown["source"] == "none" and unknown["chunkSize"] == 5 * MIB and unknown["bufferSize"] == 64 * 1024
    )


def test_a_bad_hint_is_a_400_with_a_stable_code(client: FlaskClient) -> None:
    answer = client.get("/api/network/profile", headers={"Hmacfs-Network": "downlink=fast"})
    assert answer.status_code == 400 and answer.get_json()["code"] == "INVALID_NETWORK_HINT"


def _drive(client: FlaskClient, auth: dict[str, str], **fields: Any) -> Any:
    body = {"fileName": "a.bin", "fileSize": 100 * MIB, "contentType": "application/octet-stream",
            "hash": hashlib.sha256(b"x").hexdigest(), **fields}  # fmt: skip
    return client.post("/api/files/upload/create", json=body, headers={**auth, **LTE})


def test_drive_create_uses_the_recommendation_unless_the_client_chose(
    client: FlaskClient, auth: dict[str, str], session: Session, account: uuid.UUID
) -> None:
    chosen = _drive(client, auth).get_json()
    assert chosen["chunkSize"] == LTE_CHUNK == chosen["recommendedChunkSize"]
    task = session.query(UploadTask).filter_by(task_id=chosen["taskId"]).one()
    assert task.client_profile_key == f"{account}:phone-7:lte"
    assert session.get(ClientProfile, task.client_profile_key) is not None
    own = _drive(client, auth, chunkSize=MIB).get_json()
    assert own["chunkSize"] == MIB and own["recommendedChunkSize"] == LTE_CHUNK


def test_chunked_and_tus_creates_return_the_recommendation(client: FlaskClient, auth: dict[str, str]) -> None:
    started = client.post(
        "/upload/chunked", headers={**auth, **LTE, "X-Filename": "a.bin", "X-Total-Size": str(50 * MIB)}
    )
    assert started.status_code == 201 and started.get_json()["chunk_size"] == LTE_CHUNK
    created = tus_create(client, auth, 50 * MIB, **LTE)
    assert created.status_code == 201
    assert created.headers["Hmacfs-Chunk-Size"] == str(LTE_CHUNK)
    head = client.head(path_of(created), headers={**TUS, **auth, **LTE})
    assert head.headers["Hmacfs-Chunk-Size"] == str(LTE_CHUNK)


@pytest.mark.parametrize(
    "performance",
    [{"adaptive_uploads": False}, {"adaptive_buffers": False}, {"chunk_strategy": "fixed"},
     {"testing_mode": True, "adaptive_share": 0}],
)  # fmt: skip
def test_the_fixed_arm_recommends_the_configured_size(
    tmp_path: Path, settings: Settings, performance: dict[str, Any], auth: dict[str, str], app: Any
) -> None:
    data = settings.model_dump()
    data["performance"].update(performance)
    fixed = create_app(Settings.model_validate(data), db=app.extensions["hmacfs"].db)
    answer = fixed.test_client().get("/api/network/profile", headers=LTE).get_json()
    assert answer["chunkSize"] == 5 * MIB
    assert answer["arm"] == ("fixed" if "chunk_strategy" not in performance else "adaptive")


def test_adaptive_downloads_is_refused_at_start_up_saying_why(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sendfile"):
        make_settings(tmp_path, performance={"adaptive_downloads": True})
    with pytest.raises(ValueError, match="max_buffer_memory"):
        make_settings(tmp_path, performance={"max_buffer_memory": "2MB"})


def test_a_wifi_class_is_bounded_by_its_network_interfaces_sizes(client: FlaskClient) -> None:
    fast_wifi = {"Hmacfs-Network": "type=wifi; downlink=400", "Hmacfs-Client-Id": "laptop"}
    body = client.get("/api/network/profile", headers=fast_wifi).get_json()
    assert body["chunkSize"] == 5 * MIB and body["bufferSize"] == 512 * 1024  # [network_interfaces] wifi

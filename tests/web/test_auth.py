from __future__ import annotations

import time
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, jsonify
from flask.testing import FlaskClient

from hmacfs.auth import TokenCodec, current_account
from hmacfs.config import SecuritySettings
from hmacfs.errors import Unauthorized
from tests.conftest import JWT_SECRET, bearer


@pytest.fixture
def protected(app: Flask) -> FlaskClient:
    @app.get("/_test/me")
    def me():  # type: ignore[no-untyped-def]
        return jsonify({"account": str(current_account())})

    return app.test_client()


def test_valid_token_gives_account(protected: FlaskClient, account: uuid.UUID) -> None:
    response = protected.get("/_test/me", headers=bearer(account))
    assert response.status_code == 200
    assert response.get_json() == {"account": str(account)}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-jwt"},
        {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": str(uuid.uuid4()), "exp": 9999999999},
                "wrong-key-wrong-key-wrong-key-32",
                algorithm="HS256",
            )
        },
        {
            "Authorization": "Bearer "
            + jwt.encode({"sub": "not-a-uuid", "exp": 9999999999}, JWT_SECRET, algorithm="HS256")
        },
        {"Authorization": "Bearer " + jwt.encode({"sub": str(uuid.uuid4())}, JWT_SECRET, algorithm="HS256")},
    ],
)
def test_bad_credentials_are_401_with_challenge(protected: FlaskClient, headers: dict[str, str]) -> None:
    response = protected.get("/_test/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="hmacfs"')
    assert response.get_json()["code"] == "UNAUTHORIZED"


def test_expired_token(protected: FlaskClient, account: uuid.UUID) -> None:
    codec = TokenCodec("HS256", JWT_SECRET, JWT_SECRET, timedelta(0))
    token = codec.issue(account, timedelta(seconds=-120))  # beyond the 30 s leeway
    response = protected.get("/_test/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.get_json()["message"] == "token expired"


def test_a_remembered_token_still_expires(account: uuid.UUID, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verified tokens are remembered per codec (a tus upload sends one with each PATCH),
    but each use checks the expiry again; another token is verified on its own."""
    codec = TokenCodec("HS256", JWT_SECRET, JWT_SECRET, timedelta(0))
    token = codec.issue(account, timedelta(seconds=1))
    assert codec.account(token) == account
    monkeypatch.setattr(jwt, "decode", lambda *args, **kwargs: pytest.fail("verified again"))
    assert codec.account(token) == account  # remembered: not decoded again
    monkeypatch.undo()
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(Unauthorized):
        codec.account(forged)
    time.sleep(2.1)  # past the expiry (whole seconds)
    with pytest.raises(Unauthorized, match="token expired"):
        codec.account(token)


def test_none_algorithm_is_refused(account: uuid.UUID) -> None:
    codec = TokenCodec("HS256", JWT_SECRET, JWT_SECRET, timedelta(0))
    token = jwt.encode({"sub": str(account), "exp": 9999999999}, None, algorithm="none")
    with pytest.raises(Exception):
        codec.account(token)


def test_rs256_public_key(tmp_path: object, account: uuid.UUID) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    codec = TokenCodec.from_settings(SecuritySettings(jwt_public_key=public, jwt_private_key=private))
    assert codec.algorithm == "RS256"
    assert codec.account(codec.issue(account, timedelta(minutes=5))) == account
    # An HS256 token signed with the public key as secret must not pass (key confusion).
    forged = jwt.encode({"sub": str(account), "exp": 9999999999}, "x" * 32, algorithm="HS256")
    with pytest.raises(Exception):
        codec.account(forged)

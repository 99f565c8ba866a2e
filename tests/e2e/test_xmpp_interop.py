"""XEP-0363 interoperability: real XMPP servers hand out the slot URLs, a real
XMPP client (slixmpp) uploads to the real ``hmacfs serve``.

Issuers, all sharing ``[security] secret`` with hmacfs:

- Prosody 0.12 with ``mod_http_upload_external`` (prosody-modules), protocol
  v1 (``?v=``) and v2 (``?v2=``, which also signs the content type);
- Prosody 0.12's own ``mod_http_file_share`` in external mode (a JWT in
  ``Authorization: Bearer``);
- ejabberd with ``mod_http_upload`` and ``external_secret`` (``?v=`` over a
  three-segment slot path).

Needs the Debian packages ``prosody prosody-modules ejabberd`` (``.ci/run``
installs them); without them these tests skip, under ``CI=true`` they fail.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import pytest
import requests
from slixmpp.exceptions import IqError

from tests.e2e.conftest import StartServer
from tests.live import LiveServer
from tests.xmpp_client import Account, request_slot, upload
from tests.xmpp_servers import (
    EJABBERD_BEAM,
    PASSWORD,
    PROSODY_MODULES,
    Ejabberd,
    Prosody,
    ProsodyHost,
    ejabberd_libs,
    require,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

SECRET = "interop-shared-sécret"  # non-ASCII: every side must HMAC its UTF-8 bytes
TEXT_NAME = "Résumé 2026.txt"
TEXT = "Résumé: 2026, naïve café\n".encode() * 40
PROSODY_HOSTS = {  # test parameter: the VirtualHost that issues its slots
    "prosody-upload-external-v1": "v1.interop.test",
    "prosody-upload-external-v2": "v2.interop.test",
    "prosody-file-share": "share.interop.test",
}
EJABBERD_HOST = "ej.interop.test"
# Every byte value; over 1 MiB, where hmacfs checks the slot is free before reading the body.
BINARY = bytes(range(256)) * 5 * 1024 + b"\x00\xff\r\n"


@dataclass(frozen=True)
class Issuer:
    """A slot issuer under test: whom to log in as, and what it signs."""

    name: str
    account: Account
    signs_content_type: bool

    def stored_name(self, filename: str) -> str:
        """The file name the issuer puts into the slot URL (ejabberd replaces specials by ``_``)."""
        return re.sub(r"[^\w.-]", "_", filename) if self.name == "ejabberd" else filename


def _require_prosody() -> None:
    require("prosody prosody-modules", "prosody", "prosodyctl", PROSODY_MODULES / "mod_http_upload_external")


def _require_ejabberd() -> None:
    require("ejabberd", "erl", ejabberd_libs() or Path(EJABBERD_BEAM))


@pytest.fixture(scope="module")
def hmacfs(start_server: StartServer) -> LiveServer:
    return start_server(security={"secret": SECRET})


def _prosody_hosts(base_url: str) -> list[ProsodyHost]:
    external = {"http_upload_external_base_url": base_url, "http_upload_external_secret": SECRET}
    share = {"http_file_share_base_url": base_url, "http_file_share_secret": SECRET}
    v1, v2, share_host = PROSODY_HOSTS.values()
    return [
        ProsodyHost(v1, "http_upload_external", external | {"http_upload_external_protocol": "v1"}),
        ProsodyHost(v2, "http_upload_external", external | {"http_upload_external_protocol": "v2"}),
        ProsodyHost(share_host, "http_file_share", share),
    ]


Server = TypeVar("Server", Prosody, Ejabberd)


def _running(server: Server) -> Iterator[Server]:
    """A fixture's body: the server started, and always stopped afterwards."""
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def prosody(hmacfs: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    _require_prosody()
    yield from _running(Prosody(tmp_path_factory.mktemp("prosody"), _prosody_hosts(f"{hmacfs.url}/upload/")))


@pytest.fixture(scope="module")
def prosody_ahead(hmacfs: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    """A mod_http_file_share issuer whose clock runs two minutes ahead of hmacfs's."""
    _require_prosody()
    share = {"http_file_share_base_url": f"{hmacfs.url}/upload/", "http_file_share_secret": SECRET}
    host = ProsodyHost(PROSODY_HOSTS["prosody-file-share"], "http_file_share", share)
    yield from _running(Prosody(tmp_path_factory.mktemp("prosody-ahead"), [host], clock_ahead=120))


@pytest.fixture(scope="module")
def ejabberd(hmacfs: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ejabberd]:
    _require_ejabberd()
    # No trailing slash: ejabberd joins the prefix and the slot with "/".
    workdir = tmp_path_factory.mktemp("ejabberd")
    yield from _running(Ejabberd(workdir, EJABBERD_HOST, f"{hmacfs.url}/upload", SECRET))


# Function-scoped, so the module-scoped servers are ordered by backend only.
@pytest.fixture(params=[*PROSODY_HOSTS, "ejabberd"])
def issuer(request: pytest.FixtureRequest) -> Issuer:
    """Skips (before hmacfs starts) without the issuer's packages."""
    name: str = request.param
    if name == "ejabberd":
        _require_ejabberd()
        ejabberd: Ejabberd = request.getfixturevalue("ejabberd")
        return Issuer(
            name, Account(f"alice@{EJABBERD_HOST}", PASSWORD, ejabberd.port), signs_content_type=False
        )
    _require_prosody()
    server: Prosody = request.getfixturevalue("prosody")
    account = Account(f"alice@{PROSODY_HOSTS[name]}", PASSWORD, server.port)
    return Issuer(name, account, signs_content_type=not name.endswith("v1"))


def _assert_served(hmacfs: LiveServer, url: str, data: bytes, filename: str) -> requests.Response:
    assert url.startswith(f"{hmacfs.url}/upload/"), url
    assert unquote(urlsplit(url).path).rsplit("/", 1)[-1] == filename
    head = requests.head(url, timeout=10)  # clients look before they fetch
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert response.content == data
    assert _disposition_name(response.headers["Content-Disposition"]) == filename
    return response


def _disposition_name(disposition: str) -> str:
    """The file name of a Content-Disposition, RFC 6266 ``filename*`` first."""
    extended = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition)
    if extended:
        return unquote(extended.group(1))
    plain = re.search(r'filename="((?:[^"\\]|\\.)*)"', disposition)
    assert plain is not None, disposition
    return re.sub(r"\\(.)", r"\1", plain.group(1))


def test_client_uploads_on_issued_slots(issuer: Issuer, hmacfs: LiveServer) -> None:
    """slixmpp gets a slot from the real issuer and PUTs; hmacfs accepts the issuer's
    signature and serves the same bytes (a non-ASCII name with a space, and binary)."""
    text_url = upload(issuer.account, TEXT_NAME, TEXT)
    text = _assert_served(hmacfs, text_url, TEXT, issuer.stored_name(TEXT_NAME))
    binary_url = upload(issuer.account, "blob.bin", BINARY, content_type="application/octet-stream")
    binary = _assert_served(hmacfs, binary_url, BINARY, "blob.bin")

    # mod_http_upload_external's serving rules: text/plain (image/*, ...) keeps its
    # type, anything else is an attachment; never sniffed, never run.
    assert text.headers["Content-Type"].startswith("text/plain")  # what slixmpp declared
    assert text.headers["Content-Disposition"].startswith("inline")
    assert binary.headers["Content-Disposition"].startswith("attachment")
    for served in (text, binary):
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert served.headers["Content-Security-Policy"].startswith("default-src 'none'")


def _tampered(slot_url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The slot with one character of its signature changed: the last hex digit of the
    query's HMAC, or the first of the JWT's (its last carries padding bits, where a
    change may decode to the same signature)."""
    if "Authorization" in headers:
        signed, _, signature = headers["Authorization"].rpartition(".")
        changed = ("B" if signature[0] == "A" else "A") + signature[1:]
        return slot_url, headers | {"Authorization": f"{signed}.{changed}"}
    return slot_url[:-1] + ("0" if slot_url[-1] != "0" else "1"), headers


@pytest.fixture
def connection() -> Iterator[requests.Session]:
    """One kept-alive connection for all the PUTs of a test, as clients do: a refused
    body that hmacfs did not read must not spill into the next request. Closed after
    the test, or the server's graceful stop would wait for it."""
    with requests.Session() as session:
        yield session


def _assert_refused(response: requests.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["code"] in {"BAD_SIGNATURE", "TOKEN_MISMATCH"}


def test_tampered_slots_are_refused(issuer: Issuer, hmacfs: LiveServer, connection: requests.Session) -> None:
    """A real slot with its signature, the size or (where signed) the content type
    changed gets 403; the untouched slot then still works, so the change was the cause;
    using it once more gets 409 (never overwrite, says mod_http_upload_external)."""
    content_type = "application/octet-stream"
    slot = request_slot(issuer.account, "tamper me.bin", len(BINARY), content_type)
    headers = slot.headers | {"Content-Type": content_type}

    def put(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return connection.put(url, data=body, headers=headers, timeout=10)

    forged_url, forged_headers = _tampered(slot.put_url, headers)
    _assert_refused(put(forged_url, BINARY, forged_headers))
    _assert_refused(put(slot.put_url, BINARY + b"!", headers))
    _assert_refused(put(slot.put_url, BINARY[:-1], headers))
    retyped = put(slot.put_url, BINARY, headers | {"Content-Type": "image/png"})
    if issuer.signs_content_type:
        _assert_refused(retyped)
        assert put(slot.put_url, BINARY, headers).status_code == 201
    else:
        assert retyped.status_code == 201, retyped.text
    _assert_served(hmacfs, slot.get_url, BINARY, issuer.stored_name("tamper me.bin"))
    reused = put(slot.put_url, BINARY, headers)  # a client retrying a finished upload
    assert reused.status_code == 409 and reused.json()["code"] == "SLOT_TAKEN", reused.text


@pytest.mark.parametrize(
    ("filename", "data", "content_type"),
    [
        ("a+b&c=d$e,f'(g)*!:@;h%i#j?k[l]~.txt", b"URL specials", None),
        ("😀 emoji + dash.txt", b"outside the BMP", None),
        ("empty.txt", b"", None),
        ("params.txt", b"a content type with parameters", "text/plain; charset=utf-8"),
    ],
    ids=["url-specials", "emoji", "empty", "type-with-parameters"],
)
def test_names_and_types_survive_each_issuers_encoding(
    issuer: Issuer, hmacfs: LiveServer, filename: str, data: bytes, content_type: str | None
) -> None:
    """Each issuer escapes the name its own way (Prosody v1/v2: everything but
    ``[A-Za-z0-9._~-]``; mod_http_file_share: LuaSocket, keeping ``+&=$,'()*!:@``
    literal; ejabberd: replaces them by ``_``) and signs the unescaped name."""
    if issuer.name == "ejabberd" and not data:
        with pytest.raises(IqError, match="size"):  # ejabberd wants a positive size
            upload(issuer.account, filename, data, content_type=content_type)
        return
    url = upload(issuer.account, filename, data, content_type=content_type)
    served = _assert_served(hmacfs, url, data, issuer.stored_name(filename))
    if content_type is not None:
        assert served.headers["Content-Type"] == content_type


def test_file_share_issuer_with_a_clock_ahead_of_hmacfs(hmacfs: LiveServer, prosody_ahead: Prosody) -> None:
    """Prosody stamps the token's ``iat`` with its own clock; two hosts never agree to
    the second, and an issuer ahead of hmacfs must not have every fresh slot refused."""
    account = Account(f"alice@{PROSODY_HOSTS['prosody-file-share']}", PASSWORD, prosody_ahead.port)
    url = upload(account, TEXT_NAME, TEXT)
    _assert_served(hmacfs, url, TEXT, TEXT_NAME)

"""``GET``/``HEAD /download/<file id>``: the link other APIs hand out for a stored file."""

from __future__ import annotations

from flask import Blueprint, Response, request

from hmacfs.auth import optional_account
from hmacfs.downloads.service import find_downloadable
from hmacfs.web.context import db_session, services
from hmacfs.web.download_response import download_response, load_download

downloads = Blueprint("downloads", __name__)


@downloads.route("/download/<file_id>", methods=["GET", "HEAD"])
def download_file(file_id: str) -> Response:
    svc = services()
    file, blob = find_downloadable(db_session(), file_id, optional_account(), svc.clock.now())
    download = load_download(svc.store, file, blob)
    return download_response(download, request, svc.settings, svc.metrics)

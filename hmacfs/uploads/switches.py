"""Noticing that an upload's chunks come over another network than before.

Each chunk's client address and network class are kept on the upload
(``upload_tasks.client_address``, ``client_network``). A chunk from another
address or class means the client switched networks (Wi-Fi to LTE, a new
carrier address): ``upload.network_changed`` is published to the upload's
owner with the old and the new address and class, and the switch is counted
(``hmacfs_upload_network_changes_total``). The first chunk only records where
the upload starts.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hmacfs.container import Services
from hmacfs.events import publish
from hmacfs.models import UploadTask
from hmacfs.uploads.handoff import ClientLink

_ADDRESS_LENGTH = 45  # the longest textual IPv6 address, with an embedded IPv4 one


def note_client(session: Session, services: Services, task: UploadTask, client: ClientLink) -> bool:
    """Record that a chunk of ``task`` came from ``client``; True when that is a network
    switch (then published and counted). Of concurrent chunks that see the same
    switch, one wins the row's compare-and-set, so a switch is reported once."""
    old = ClientLink(task.client_address, task.client_network or "unknown")
    new = ClientLink((client.address or "")[:_ADDRESS_LENGTH] or None, client.network)
    first = task.client_network is None  # the first chunk: where the upload starts
    if not first and old == new:
        return False
    moved = session.execute(
        update(UploadTask)
        .where(UploadTask.id == task.id)
        .where(UploadTask.client_address.is_not_distinct_from(task.client_address))
        .where(UploadTask.client_network.is_not_distinct_from(task.client_network))
        .values(client_address=new.address, client_network=new.network)
    )
    if getattr(moved, "rowcount", 0) != 1:
        return False  # another chunk recorded the move first (and reported it)
    set_committed_value(task, "client_address", new.address)
    set_committed_value(task, "client_network", new.network)
    if first:
        return False
    _report(session, services, task, old, new)
    return True


def _report(session: Session, services: Services, task: UploadTask, old: ClientLink, new: ClientLink) -> None:
    if services.metrics is not None:
        services.metrics.upload_network_changes_total.labels(task.protocol, old.network, new.network).inc()
    if task.account_id is None or not services.settings.handoff.switch_notification_enabled:
        return  # an anonymous upload has no one to tell
    publish(session, task.account_id, "upload.network_changed", {
        "taskId": task.task_id,
        "protocol": task.protocol,
        "previous": {"address": old.address, "networkClass": old.network},
        "current": {"address": new.address, "networkClass": new.network},
    })  # fmt: skip

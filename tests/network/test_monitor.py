"""The interface monitor over a real database: one publication per change, one monitor per node."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.models import Event
from hmacfs.network.interfaces import Interface, Snapshot
from hmacfs.network.monitor import monitor_forever, node_name
from hmacfs.network_settings import SYSTEM_ACCOUNT

UP = Snapshot(
    {"lo": Interface(True, frozenset({"127.0.0.1"})), "eth0": Interface(True, frozenset({"10.1.0.2"}))},
    "eth0",
)
DOWN = Snapshot({"lo": UP.interfaces["lo"], "eth0": Interface(False, frozenset({"10.1.0.2"}))}, None)


def _rounds(snapshots: list[Snapshot]) -> tuple[Callable[[], Snapshot], Callable[[], bool]]:
    """A reader returning ``snapshots`` in turn, and ``alive`` until they are used up."""
    feed: Iterator[Snapshot] = iter(snapshots)
    left = [len(snapshots)]

    def read() -> Snapshot:
        left[0] -= 1
        return next(feed)

    return read, lambda: left[0] > 0


def _published(session: Session) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.type == "network.changed").order_by(Event.id)))


def test_each_change_is_published_once_to_the_events_account(app: Flask, session: Session) -> None:
    services = app.extensions["hmacfs"]
    read, alive = _rounds([UP, UP, DOWN, DOWN, UP])
    monitor_forever(services, lambda seconds: None, read=read, alive=alive)
    events = _published(session)
    assert [event.account_id for event in events] == [SYSTEM_ACCOUNT, SYSTEM_ACCOUNT]
    first, second = (event.data for event in events)
    assert first["changes"] == [
        {"kind": "link_down", "interface": "eth0"},
        {"kind": "default_route", "interface": None, "old": "eth0", "new": None},
    ]
    assert first["interfaces"]["eth0"] == {"up": False, "addresses": ["10.1.0.2"], "class": "ethernet"}
    assert first["node"] == node_name() and first["preferred"] is None
    assert second["changes"][0] == {"kind": "link_up", "interface": "eth0"} and second["preferred"] == "eth0"
    assert len(second["history"]) == 4  # the last rounds' changes, [handoff] interface_quality_history


def test_only_the_holder_of_the_node_lock_watches(app: Flask, session: Session) -> None:
    services = app.extensions["hmacfs"]
    read, alive = _rounds([UP, DOWN, UP])
    polls: list[float] = []
    with services.locker.hold(f"network-monitor:{node_name()}"):  # another worker of this node
        monitor_forever(services, polls.append, read=lambda: DOWN, alive=lambda: len(polls) < 3)
    assert polls == [5.0, 5.0, 5.0] and _published(session) == []
    monitor_forever(services, polls.append, read=read, alive=alive)  # that worker died
    assert len(_published(session)) == 2

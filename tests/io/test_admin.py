"""The Admin UI's server side, with aiosio's own client and real sockets on 127.0.0.1 (the
comparison with the reference is tests/interop/test_admin_ui.py): the adapter's room events,
``instrument``'s options, what the admin sees of ``socket.data`` and of an upgrade, and the
statistics' packet counts."""

from __future__ import annotations

import functools
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import _eio
import bcrypt
import pytest

import aiosio
from aiosio import Server
from aiosio import Socket
from aiosio.admin import BasicAuth
from aiosio.admin import instrument
from aiosio.server.adapter import InMemoryAdapter
from aiosio.server.adapter import NamespaceView

HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()


eventually = functools.partial(
    _eio.eventually, timeout=10.0
)  # the admin's statistics come every 2 s


# -- the adapter's room events ----------------------------------------------------------------


async def test_room_events_in_the_reference_order(serve: Any, clients: Any) -> None:
    sio = Server()
    events: list[tuple[str, ...]] = []
    adapter = sio.sockets.adapter
    for name in ("create-room", "delete-room", "join-room", "leave-room"):
        adapter.on(name, lambda *args, name=name: events.append((name, *args)))
    sockets: list[Socket] = []
    sio.on("connection", sockets.append)
    client = clients(await serve(sio))
    await client.connect()
    await eventually(lambda: len(sockets) == 1)
    socket = sockets[0]
    sid = socket.id
    assert events == [("create-room", sid), ("join-room", sid, sid)]
    events.clear()
    socket.join("r")
    socket.join("r")  # already in it: no event
    socket.leave("r")
    socket.leave("r")  # no longer in it: no event
    assert events == [
        ("create-room", "r"),
        ("join-room", "r", sid),
        ("leave-room", "r", sid),
        ("delete-room", "r"),
    ]
    events.clear()
    socket.join("r")
    await client.disconnect()
    await eventually(lambda: ("delete-room", "r") in events)
    assert events == [
        ("create-room", "r"),
        ("join-room", "r", sid),
        ("leave-room", sid, sid),
        ("delete-room", sid),
        ("leave-room", "r", sid),
        ("delete-room", "r"),
    ]


async def test_set_adapter_keeps_the_room_listeners(serve: Any, clients: Any) -> None:
    sio = Server()
    joined: list[str] = []
    sio.sockets.adapter.on("join-room", lambda room, _sid: joined.append(room))
    made: list[InMemoryAdapter] = []

    def factory(nsp: NamespaceView) -> InMemoryAdapter:
        made.append(InMemoryAdapter(nsp))
        return made[-1]

    sio.set_adapter(factory)
    assert sio.sockets.adapter is made[0]
    client = clients(await serve(sio))
    await client.connect()
    await eventually(lambda: len(joined) == 1)


async def test_startup_listeners_run_when_the_server_starts(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # What the admin's statistics start with, on the native server and in the ASGI app (at its
    # lifespan startup): a listener that raises is logged, the others run.
    sio = Server()
    started: list[str] = []

    @sio.on_startup
    def broken() -> None:
        raise RuntimeError("boom")

    sio.on_startup(lambda: started.append("after"))
    await serve(sio)
    assert started == ["after"]
    assert any(
        "startup listener" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records
    )


# -- instrument's options ---------------------------------------------------------------------


def test_the_server_id_is_the_host_or_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # As the reference: the host name; in a worker of aiosio serve --workers (Node: a cluster
    # worker), the host name and the process id.
    monkeypatch.delenv("AIOSIO_WORKER", raising=False)
    assert instrument(Server(), auth=False).server_id == socket.gethostname()
    monkeypatch.setenv("AIOSIO_WORKER", "1")
    assert instrument(Server(), auth=False).server_id == f"{socket.gethostname()}#{os.getpid()}"
    assert instrument(Server(), auth=False, server_id="mine").server_id == "mine"


def test_auth_must_be_said() -> None:
    with pytest.raises(TypeError, match="must be False"):
        instrument(Server(), auth=None)
    with pytest.raises(TypeError, match="must be False"):
        instrument(Server(), auth={"username": "admin", "password": HASH})  # no "type"


def test_the_password_is_a_bcrypt_hash() -> None:
    with pytest.raises(ValueError, match="bcrypt hash"):
        BasicAuth("admin", "pw")
    with pytest.raises(ValueError, match="bcrypt hash"):
        instrument(Server(), auth={"type": "basic", "username": "admin", "password": "pw"})


def test_mode_is_development_or_production() -> None:
    with pytest.raises(ValueError, match="'development' or 'production'"):
        instrument(Server(), auth=False, mode="debug")  # type: ignore[arg-type]


def test_basic_auth_without_bcrypt_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "aiosio\[admin\]"'):
        instrument(Server(), auth=BasicAuth("admin", HASH))


def test_mount_refuses_the_socketio_path() -> None:
    sio = Server()

    async def handler(_request: Any) -> Any:
        raise AssertionError

    with pytest.raises(ValueError, match="overlaps"):
        sio.mount("/socket.io/admin", handler)
    with pytest.raises(ValueError, match="overlaps"):
        sio.mount("/", handler)


# -- what an admin sees -----------------------------------------------------------------------


class Admin:
    """An admin connected with aiosio's client, recording every event it receives."""

    def __init__(self, client: aiosio.Client) -> None:
        self.client = client
        self.events: list[tuple[Any, ...]] = []
        client.on_any(lambda *args: self.events.append(args))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [event[1:] for event in self.events if event[0] == name]

    async def wait(self, name: str, predicate: Callable[[Any], bool] = lambda _: True) -> Any:
        await eventually(lambda: any(predicate(args) for args in self.named(name)))
        return next(args for args in self.named(name) if predicate(args))


async def admin_of(url: str, clients: Any, **auth: Any) -> Admin:
    client = clients(url + "/admin", auth=auth or {"username": "admin", "password": "pw"})
    admin = Admin(client)
    await client.connect()
    return admin


async def test_data_changes_are_sent_as_the_reference_does(serve: Any, clients: Any) -> None:
    sio = Server()
    instrument(sio, auth=BasicAuth("admin", HASH))
    sockets: list[Socket] = []

    @sio.use
    def middleware(socket: Socket) -> None:
        socket.data["from_middleware"] = 1

    sio.on("connection", sockets.append)
    url = await serve(sio)
    admin = await admin_of(url, clients)
    await admin.wait("all_sockets")
    await clients(url).connect()
    await eventually(lambda: len(sockets) == 1)
    socket = sockets[0]

    def updates() -> list[dict[str, Any]]:  # of the data (an upgrade sends its own)
        return [u for (u,) in admin.named("socket_updated") if u["id"] == socket.id and "data" in u]

    # What a middleware put there is sent once the socket is known, key by key.
    await eventually(lambda: len(updates()) == 1)
    assert updates()[0] == {"id": socket.id, "nsp": "/", "data": {"from_middleware": 1}}
    socket.data["user"] = {"name": "a", "prefs": {"x": 1}}
    socket.data["user"]["name"] = "b"  # a dict assigned is watched, as the reference's proxy
    socket.data["user"]["prefs"]["x"] = 2  # ... one level down only, as the reference
    socket.data.update(more=True)
    await eventually(lambda: len(updates()) == 4)
    assert [u["data"] for u in updates()[1:]] == [
        {"from_middleware": 1, "user": {"name": "a", "prefs": {"x": 1}}},
        {"from_middleware": 1, "user": {"name": "b", "prefs": {"x": 1}}},
        {"from_middleware": 1, "user": {"name": "b", "prefs": {"x": 2}}, "more": True},
    ]
    assert socket.data["_admin"]["transport"] in ("polling", "websocket")


async def test_an_upgrade_is_seen(serve: Any, clients: Any) -> None:
    sio = Server()
    instrument(sio, auth=False)
    url = await serve(sio)
    admin = await admin_of(url, clients)
    await admin.wait("all_sockets")
    client = clients(url, transports=("polling", "websocket"))
    await client.connect()
    connected = await admin.wait("socket_connected", lambda args: args[0]["nsp"] == "/")
    sid = connected[0]["id"]
    if connected[0]["transport"] == "polling":  # else upgraded before the namespace accepted it
        update = await admin.wait("socket_updated", lambda args: args[0]["id"] == sid)
        assert update == ({"id": sid, "nsp": "/", "transport": "websocket"},)


async def test_packets_are_counted(serve: Any, clients: Any) -> None:
    sio = Server()
    sio.on("echo", lambda _socket, value: value)
    instrument(sio, auth=False, mode="production")
    url = await serve(sio)
    admin = await admin_of(url, clients)
    client = clients(url, transports=("websocket",))
    await client.connect()
    assert await client.emit_with_ack("echo", "é" * 10) == "é" * 10

    def total(kind: str) -> int:
        return sum(
            event["count"]
            for (stats,) in admin.named("server_stats")
            for event in stats["aggregatedEvents"]
            if event["type"] == kind
        )

    # The echo's EVENT in (2["echo","éé..."]: 10 two-byte characters) and its ACK out, at least.
    await eventually(lambda: total("packetsIn") >= 3 and total("bytesIn") >= 30, timeout=15)
    assert total("packetsOut") >= 3
    assert total("rawConnection") >= 2


async def test_polling_clients_are_counted_until_they_upgrade_or_leave(
    serve: Any, clients: Any
) -> None:
    sio = Server()
    instrument(sio, auth=False, mode="production")
    url = await serve(sio)
    admin = Admin(clients(url + "/admin", transports=("websocket",)))
    await admin.client.connect()

    def polling_now() -> int | None:
        stats = admin.named("server_stats")
        return stats[-1][0]["pollingClientsCount"] if stats else None

    stays = clients(url, transports=("polling",))
    await stays.connect()
    await eventually(lambda: polling_now() == 1)
    upgrades = clients(url, transports=("polling", "websocket"))
    await upgrades.connect()
    await stays.disconnect()
    await eventually(lambda: polling_now() == 0)
    assert upgrades.connected

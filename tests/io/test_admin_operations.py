"""The Admin UI's operations and its login, with aiosio's own client as the admin: ``emit``,
``join``, ``leave`` and ``_disconnect`` acting on the sockets they name, malformed operations
logged and ignored, a read-only admin refused every operation, the password and the session id
the UI reconnects with, and the options the UI reads (features, server id).

An admin's packets are handled in order: once a probe event sent after an operation has been
answered, the operation has run (or was refused), so a check that nothing happened is exact.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from typing import Any

import _eio
import bcrypt
import pytest

import aiosio
from aiosio import ConnectError
from aiosio import Server
from aiosio import Socket
from aiosio import Stage
from aiosio.admin import Admin
from aiosio.admin import BasicAuth
from aiosio.admin import RedisStore
from aiosio.admin import instrument
from conftest import free_port

TIMEOUT = 10.0
HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
OPERATIONS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]


eventually = functools.partial(_eio.eventually, timeout=TIMEOUT)


class Instrumented:
    """A server with the admin namespace, its sockets of ``/`` kept, and a ``probe`` event on
    the admin namespace that answers once what the admin sent before it has been handled."""

    def __init__(self, **options: Any) -> None:
        self.sio = Server()
        self.admin: Admin = instrument(self.sio, **{"auth": False, **options})
        self.sockets: list[Socket] = []
        self.sio.on("connection", self.sockets.append)
        self.sio.of("/admin").on("probe", lambda _socket: "handled")


async def user(url: str, clients: Any) -> tuple[aiosio.Client, list[tuple[Any, ...]]]:
    client = clients(url)
    received: list[tuple[Any, ...]] = []
    client.on_any(lambda *args: received.append(args))
    await client.connect()
    return client, received


class AdminClient:
    """An admin connected with aiosio's client; every event it receives is kept, from before
    it connected (``config`` comes with the connection)."""

    def __init__(self, client: aiosio.Client) -> None:
        self.client = client
        self.seen: list[tuple[Any, ...]] = []
        client.on_any(lambda *args: self.seen.append(args))

    def emit(self, event: str, *args: Any) -> None:
        self.client.emit(event, *args)

    async def first(self, event: str) -> Any:
        await eventually(lambda: any(args[0] == event for args in self.seen))
        return next(args[1] for args in self.seen if args[0] == event)

    async def settled(self) -> None:
        """What the admin sent so far has been handled by the server."""
        assert await self.client.emit_with_ack("probe", timeout=TIMEOUT) == "handled"


async def admin_client(url: str, clients: Any, **auth: Any) -> AdminClient:
    admin = AdminClient(clients(url + "/admin", auth=auth))
    await asyncio.wait_for(admin.client.connect(), TIMEOUT)
    return admin


async def test_operations_act_on_the_sockets_they_name(serve: Any, clients: Any) -> None:
    server = Instrumented()
    url = await serve(server.sio)
    one, received = await user(url, clients)
    other, other_received = await user(url, clients)
    await eventually(lambda: len(server.sockets) == 2)
    socket = next(s for s in server.sockets if s.id == one.id)
    admin = await admin_client(url, clients)

    admin.emit("join", "/", "team", socket.id)  # the filter is the socket's own room
    await admin.settled()
    assert "team" in socket.rooms
    admin.emit("emit", "/", "team", "news", 1, {"a": 2})
    admin.emit("emit", "/", None, "everyone")
    await eventually(lambda: ("everyone",) in other_received and ("everyone",) in received)
    assert ("news", 1, {"a": 2}) in received
    assert all(event[0] != "news" for event in other_received)

    admin.emit("leave", "/", "team", socket.id)
    await admin.settled()
    assert "team" not in socket.rooms
    disconnected: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    one.on("disconnect", lambda reason, *_: disconnected.set_result(reason))
    admin.emit("_disconnect", "/", False, socket.id)
    assert await asyncio.wait_for(disconnected, TIMEOUT) == "io server disconnect"
    await admin.settled()
    assert other.connected


async def test_malformed_operations_are_logged_and_change_nothing(
    serve: Any, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiosio.admin")
    server = Instrumented()
    url = await serve(server.sio)
    one, received = await user(url, clients)
    await eventually(lambda: len(server.sockets) == 1)
    admin = await admin_client(url, clients)
    admin.emit("emit", "/nowhere", None, "x")
    admin.emit("emit", "/", None, 42)
    admin.emit("emit", "/", ["not", "a", "room"], "x")
    admin.emit("join", "/", 7, None)
    admin.emit("leave", "/", None, None)
    await admin.settled()
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 5, ignored
    assert "no namespace '/nowhere' on this server" in ignored[0]
    assert "an event name is a string, got int" in ignored[1]
    assert "a room is a string, got list" in ignored[2]
    assert "a room is a string, got int" in ignored[3]
    assert "a room is a string, got NoneType" in ignored[4]
    assert received == []
    assert server.sockets[0].rooms == {server.sockets[0].id}
    assert one.connected


async def test_a_read_only_admin_may_look_not_act(serve: Any, clients: Any) -> None:
    server = Instrumented(read_only=True)
    url = await serve(server.sio)
    one, received = await user(url, clients)
    await eventually(lambda: len(server.sockets) == 1)
    admin = await admin_client(url, clients)
    assert await admin.first("config") == {"supportedFeatures": ["AGGREGATED_EVENTS", "ALL_EVENTS"]}
    admin.emit("emit", "/", None, "x")
    admin.emit("join", "/", "team", None)
    admin.emit("_disconnect", "/", True, None)
    await admin.settled()
    assert received == []
    assert "team" not in server.sockets[0].rooms
    assert one.connected


async def test_production_mode_offers_no_live_events(serve: Any, clients: Any) -> None:
    server = Instrumented(mode="production", server_id="the-server")
    url = await serve(server.sio)
    admin = await admin_client(url, clients)
    assert await admin.first("config") == {"supportedFeatures": [*OPERATIONS, "AGGREGATED_EVENTS"]}
    assert (await admin.first("server_stats"))["serverId"] == "the-server"
    server.admin.close()
    server.admin.close()  # twice: nothing left to stop


async def test_the_password_then_the_session_id(serve: Any, clients: Any) -> None:
    server = Instrumented(auth={"type": "basic", "username": "admin", "password": HASH})
    url = await serve(server.sio)
    for auth in (
        {"username": "admin", "password": "wrong"},
        {"username": "other", "password": "pw"},
        {"username": "admin", "password": 1234},
        {"sessionId": "never-given"},
        {},
    ):
        with pytest.raises(ConnectError) as refused:
            await admin_client(url, clients, **auth)
        assert refused.value.stage is Stage.NAMESPACE
        assert refused.value.message == "invalid credentials", auth
    logged_in = await admin_client(url, clients, username="admin", password="pw")
    session_id = await logged_in.first("session")
    # The UI reconnects with the session id it was given, without the password.
    again = await admin_client(url, clients, sessionId=session_id)
    await again.settled()


async def test_a_session_id_is_looked_up_up_to_64_characters(serve: Any, clients: Any) -> None:
    # Those handed out have 16; a longer one is refused before any look in the store.
    server = Instrumented(auth={"type": "basic", "username": "admin", "password": HASH})
    await server.admin.store.save("s" * 64)
    await server.admin.store.save("s" * 65)
    url = await serve(server.sio)
    accepted = await admin_client(url, clients, sessionId="s" * 64)
    await accepted.settled()
    for refused_id in ("s" * 65, ""):
        with pytest.raises(ConnectError) as refused:
            await admin_client(url, clients, sessionId=refused_id)
        assert refused.value.message == "invalid credentials"


async def test_a_session_store_redis_cannot_reach(
    serve: Any, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The password still logs in (its session is not kept); a session id is refused; both say
    # why in the log.
    caplog.set_level(logging.WARNING, logger="aiosio.admin")
    store = RedisStore(f"redis://127.0.0.1:{free_port()}")
    server = Instrumented(auth=BasicAuth("admin", HASH), store=store)
    url = await serve(server.sio)
    try:
        logged_in = await admin_client(url, clients, username="admin", password="pw")
        session_id = await logged_in.first("session")
        with pytest.raises(ConnectError) as refused:
            await admin_client(url, clients, sessionId=session_id)
        assert refused.value.message == "invalid credentials"
    finally:
        await store.client.aclose()
    logged = [r.getMessage() for r in caplog.records]
    assert any("could not save a session in redis" in m for m in logged), logged
    assert any("could not check a session id in redis" in m for m in logged), logged


def test_a_session_lasts_at_least_a_second() -> None:
    assert RedisStore(session_duration=1).session_duration == 1
    for wrong in (0, -5, 1.5):
        with pytest.raises(ValueError, match="session_duration is a number of seconds"):
            RedisStore(session_duration=wrong)  # type: ignore[arg-type]


def test_basic_auth_as_an_object(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiosio.admin")
    admin = instrument(Server(), auth=BasicAuth("admin", HASH), namespace_name="/ops")
    assert admin.namespace.name == "/ops"
    assert not [r for r in caplog.records if "no authentication" in r.getMessage()]
    instrument(Server(), auth=False, read_only=True)
    assert caplog.records[-1].getMessage().endswith("can see its sockets")


async def test_what_the_admin_sees_of_socket_data(serve: Any, clients: Any) -> None:
    server = Instrumented()
    url = await serve(server.sio)
    await user(url, clients)
    await user(url, clients)
    await eventually(lambda: len(server.sockets) == 2)
    watched, replaced = server.sockets
    admin = await admin_client(url, clients)
    await admin.first("all_sockets")

    def updates() -> list[Any]:  # of the data (an upgrade sends its own)
        return [
            args[1]["data"]
            for args in admin.seen
            if args[0] == "socket_updated" and "data" in args[1]
        ]

    assert watched.data.setdefault("tags", ["a", {"b": 1}]) == ["a", {"b": 1}]
    assert watched.data.setdefault("tags", []) == ["a", {"b": 1}]  # there: no update
    await eventually(lambda: len(updates()) == 1)
    assert updates() == [{"tags": ["a", {"b": 1}]}]
    copied = copy.deepcopy(watched.data)  # a plain dict: the admin's callback stays behind
    assert type(copied) is dict
    assert copied["tags"] == ["a", {"b": 1}]
    # An application that replaces socket.data: the admin shows what is there, and no longer
    # knows the socket's transport.
    replaced.data = "a string"
    late = await admin_client(url, clients)
    shown = {s["id"]: s for s in await late.first("all_sockets")}
    assert shown[replaced.id]["data"] == "a string"
    assert "transport" not in shown[replaced.id]
    assert shown[watched.id]["transport"] in ("polling", "websocket")

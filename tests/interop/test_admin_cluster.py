"""The Admin UI across a cluster (issue 14 item 3): an admin connected to one server sees every
server's statistics and every server's sockets, and its operations reach the sockets of the
other servers, as with Node's adapter.

* Two aiosio servers on one real Redis (classic and sharded), instrumented as ``aiosio serve``
  does it, at import, before there is an event loop: the server nobody connected to reports
  anyway (its statistics start with the server).
* A mixed cluster: a socket.io 4.8 server instrumented by ``@socket.io/admin-ui`` 0.5 on
  ``@socket.io/redis-adapter`` 8.3 (``tests/js/admin_redis_node.mjs``) and an aiosio server, one
  admin on each, each seeing both servers and acting on the other kind's sockets; the Node
  server's live events carry JavaScript Dates, which reach the aiosio side as their JSON text.
* One login for every server: sessions in Redis (``RedisStore``, the reference's keys), a
  session handed out by the aiosio server opens the Node server's admin namespace and the
  reverse.
* ``aiosio serve --workers 2``: one admin sees both workers, each named ``host#pid``, and acts on
  the other worker's sockets over the workers' bus.

The admins are aiosio's client on the admin namespace (what the UI sends and receives is
compared with the reference's, for one server, in ``test_admin_ui.py``). An operation published
to the other servers is seen where it lands (the socket's rooms, its client's disconnection, the
Node server's report), never after a fixed delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import redis.asyncio as redis_asyncio
from cluster_harness import REDIS_URL
from cluster_harness import skip_unless_redis

import aiosio
from aiosio import Server
from aiosio import Socket
from aiosio.adapters.redis import RedisAdapter
from aiosio.admin import BasicAuth
from aiosio.admin import RedisStore
from aiosio.admin import instrument
from conftest import JS_DIR
from conftest import ServeFn
from conftest import _node
from conftest import free_port

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


skip_unless_redis()


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"not within {TIMEOUT}s: {what}")


class Watcher:
    """A client that keeps every event it receives, and its disconnection reason."""

    def __init__(self, client: aiosio.Client) -> None:
        self.client = client
        self.seen: list[tuple[Any, ...]] = []
        self.reasons: list[str] = []
        self._id = ""
        client.on_any(lambda *args: self.seen.append(args))
        client.on("disconnect", lambda reason, *_: self.reasons.append(str(reason)))

    @property
    def id(self) -> str:
        """The socket's id (kept after it disconnected)."""
        if self.client.id is not None:
            self._id = self.client.id
        return self._id

    def events(self, name: str) -> list[tuple[Any, ...]]:
        return [args[1:] for args in self.seen if args[0] == name]

    def stats_of(self) -> dict[str, dict[str, Any]]:
        """The last ``server_stats`` of each server, by ``serverId``."""
        return {stats["serverId"]: stats for (stats,) in self.events("server_stats")}

    async def wait(
        self, what: str, predicate: Callable[[tuple[Any, ...]], bool]
    ) -> tuple[Any, ...]:
        found: list[tuple[Any, ...]] = []

        def check() -> bool:
            found.extend(args for args in self.seen if predicate(args))
            return bool(found)

        await eventually(check, what)
        return found[0]

    async def all_sockets(self) -> dict[str, dict[str, Any]]:
        await eventually(lambda: bool(self.events("all_sockets")), "all_sockets")
        return {s["id"]: s for s in self.events("all_sockets")[0][0]}


async def connect(clients: Callable[..., aiosio.Client], url: str, **options: Any) -> Watcher:
    watcher = Watcher(clients(url, **options))
    await asyncio.wait_for(watcher.client.connect(), TIMEOUT)
    assert watcher.id
    return watcher


def aiosio_server(name: str, key: str, sharded: bool) -> tuple[Server, list[Socket]]:
    """A cluster member, instrumented with ``server_id=name``; its sockets of ``/`` have
    ``data.server`` and join ``home-<name>``."""
    sio = Server(adapter=RedisAdapter(REDIS_URL, key=key, sharded=sharded))
    instrument(sio, auth=False, server_id=name)
    sockets: list[Socket] = []

    @sio.on("connection")
    def connected(socket: Socket) -> None:
        socket.data["server"] = name
        socket.join(f"home-{name}")
        sockets.append(socket)

    return sio, sockets


async def built_at_import(name: str, key: str, sharded: bool) -> tuple[Server, list[Socket]]:
    """:func:`aiosio_server` made where no event loop runs, as at the import of the
    application of ``aiosio serve``."""
    return await asyncio.to_thread(aiosio_server, name, key, sharded)


def socket_of(sockets: list[Socket], sid: str) -> Socket:
    return next(s for s in sockets if s.id == sid)


# -- two aiosio servers ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_one_admin_sees_and_acts_on_every_aiosio_server(
    mode: str, serve_native: ServeFn, clients: Callable[..., aiosio.Client]
) -> None:
    key = f"t{uuid.uuid4().hex[:12]}"
    a, a_sockets = await built_at_import("A", key, mode == "sharded")
    b, b_sockets = await built_at_import("B", key, mode == "sharded")
    url_a, url_b = await serve_native(a), await serve_native(b)

    admin = await connect(clients, url_a + "/admin")
    # B reports though nobody has connected to it: its statistics started with it.
    await eventually(lambda: {"A", "B"} <= admin.stats_of().keys(), "server_stats of A and B")
    assert b.engine.clients_count == 0

    user_b = await connect(clients, url_b)
    user_a = await connect(clients, url_a)
    (connected, date) = (
        await admin.wait(
            "socket_connected from B",
            lambda args: args[0] == "socket_connected" and args[1]["id"] == user_b.id,
        )
    )[1:]
    assert connected["nsp"] == "/"
    assert ISO_DATE.fullmatch(date)
    # Sent before the application's connection handler ran (as the reference does), then the
    # data it set.
    await admin.wait(
        "B's socket_updated of its data",
        lambda args: args[0] == "socket_updated" and args[1].get("data") == {"server": "B"},
    )
    await eventually(
        lambda: admin.stats_of()["B"]["namespaces"][0] == {"name": "/", "socketsCount": 1},
        "B's statistics count its socket",
    )

    # A second admin, on A, is given B's sockets as the first was given A's (fetch_sockets).
    second = await connect(clients, url_a + "/admin")
    listed = await second.all_sockets()
    there = listed[user_b.id]
    assert there["nsp"] == "/"
    assert there["data"] == {"server": "B"}
    assert there["rooms"] == [user_b.id, "home-B"]  # its own first, then sorted
    assert there["clientId"]
    assert there["transport"] in ("polling", "websocket")
    assert there["handshake"]["address"] == "127.0.0.1"
    assert listed[user_a.id]["data"] == {"server": "A"}
    assert {admin.id, second.id} <= listed.keys()  # the admins themselves, as in Node

    # Operations reach B's socket: join, emit to its new room, leave, disconnect.
    on_b = socket_of(b_sockets, user_b.id)
    admin.client.emit("join", "/", "team", user_b.id)
    await eventually(lambda: "team" in on_b.rooms, "B's socket joined 'team'")
    await admin.wait(
        "room_joined from B", lambda args: args[0] == "room_joined" and args[2] == "team"
    )
    admin.client.emit("emit", "/", "team", "news", {"for": "team"})
    await eventually(lambda: ("news", {"for": "team"}) in user_b.seen, "the news reached B")
    admin.client.emit("leave", "/", "team", user_b.id)
    await eventually(lambda: "team" not in on_b.rooms, "B's socket left 'team'")
    await admin.wait("room_left from B", lambda args: args[0] == "room_left" and args[2] == "team")

    # Without a filter: every socket of the namespace, on every server (MJOIN).
    admin.client.emit("join", "/", "everyone", None)
    on_a = socket_of(a_sockets, user_a.id)
    await eventually(lambda: "everyone" in on_b.rooms and "everyone" in on_a.rooms, "MJOIN")

    admin.client.emit("_disconnect", "/", False, user_b.id)
    await eventually(lambda: user_b.reasons == ["io server disconnect"], "B's client disconnected")
    reason = (
        await admin.wait(
            "socket_disconnected from B",
            lambda args: args[0] == "socket_disconnected" and args[2] == user_b.id,
        )
    )[3]
    assert reason == "server namespace disconnect"
    assert user_a.client.connected


# -- a mixed cluster: Node and aiosio -------------------------------------------------------------


class NodeServer:
    """tests/js/admin_redis_node.mjs: its JSON lines kept."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self, *args: str) -> None:
        self.proc = proc = await asyncio.create_subprocess_exec(
            _node(),
            str(JS_DIR / "admin_redis_node.mjs"),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(JS_DIR),
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self.reader = asyncio.create_task(self._read())
        await eventually(lambda: self.ready is not None or proc.returncode is not None, "ready")
        assert self.ready is not None, "admin_redis_node.mjs exited before it was ready"
        self.url = f"http://127.0.0.1:{self.ready['port']}"

    @property
    def ready(self) -> dict[str, Any] | None:
        return next((line for line in self.lines if line["type"] == "ready"), None)

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                self.lines.append(json.loads(raw))

    def rooms_of(self, sid: str) -> list[str] | None:
        found = [line["rooms"] for line in self.lines if line.get("id") == sid and "rooms" in line]
        return found[-1] if found else None

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)


@pytest.fixture
async def node_server() -> AsyncIterator[Callable[..., Awaitable[NodeServer]]]:
    started: list[NodeServer] = []

    async def start(*args: str) -> NodeServer:
        server = NodeServer()
        started.append(server)
        await server.start(*args)
        return server

    yield start
    for server in started:
        await server.close()


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_a_mixed_cluster_of_node_and_aiosio_in_one_ui(
    mode: str,
    serve_native: ServeFn,
    clients: Callable[..., aiosio.Client],
    node_server: Callable[..., Awaitable[NodeServer]],
) -> None:
    key = f"t{uuid.uuid4().hex[:12]}"
    a, a_sockets = await built_at_import("A", key, mode == "sharded")
    b, _b_sockets = await built_at_import("B", key, mode == "sharded")
    url_a, url_b = await serve_native(a), await serve_native(b)
    node = await node_server(
        "--key", key, "--server-id", "N", *(["--sharded"] * (mode == "sharded"))
    )

    # Two aiosio servers and a Node server in one UI, on either kind.
    admin_a = await connect(clients, url_a + "/admin")  # the UI on an aiosio server
    admin_n = await connect(clients, node.url + "/admin")  # the UI on the Node server
    for admin in (admin_a, admin_n):
        await eventually(
            lambda admin=admin: {"A", "B", "N"} <= admin.stats_of().keys(), "A, B and N"
        )
    assert admin_a.stats_of()["N"]["pid"] == node.proc.pid  # type: ignore[union-attr]
    assert admin_n.stats_of()["A"]["pid"] == os.getpid()

    user_a = await connect(clients, url_a)
    user_b = await connect(clients, url_b)
    user_n = await connect(clients, node.url)
    # Node's live events reach the admin on aiosio, their Dates as JSON text, and the reverse.
    _, connected, date = await admin_a.wait(
        "socket_connected from N",
        lambda args: args[0] == "socket_connected" and args[1]["id"] == user_n.id,
    )
    assert connected["nsp"] == "/"
    assert ISO_DATE.fullmatch(date)
    await admin_a.wait(
        "N's socket_updated of its data",
        lambda args: args[0] == "socket_updated" and args[1].get("data") == {"server": "N"},
    )
    await admin_n.wait(
        "socket_connected from A",
        lambda args: args[0] == "socket_connected" and args[1]["id"] == user_a.id,
    )

    # Each side lists the other's sockets (fetchSockets one way, fetch_sockets the other).
    late_a = await connect(clients, url_a + "/admin")
    late_n = await connect(clients, node.url + "/admin")
    on_aiosio, on_node = await late_a.all_sockets(), await late_n.all_sockets()
    for listed in (on_aiosio, on_node):
        assert listed[user_n.id]["data"] == {"server": "N"}
        assert listed[user_a.id]["data"] == {"server": "A"}
        assert listed[user_b.id]["data"] == {"server": "B"}
        assert listed[user_n.id]["rooms"] == [user_n.id, "home-N"]
        assert listed[user_n.id]["clientId"]
        assert listed[user_a.id]["clientId"]
    # A socket of the server the UI is on: in join order; of another server, in the UI of an
    # aiosio server: its own room first, the others sorted; in a Node server's: as aiosio sends
    # them, sorted.
    assert on_aiosio[user_a.id]["rooms"] == [user_a.id, "home-A"]
    assert on_node[user_a.id]["rooms"] == sorted([user_a.id, "home-A"])

    # The admin on aiosio acts on the Node server's socket.
    admin_a.client.emit("join", "/", "team", user_n.id)
    await eventually(lambda: node.rooms_of(user_n.id) == [user_n.id, "home-N", "team"], "N joined")
    _, nsp, _, sid, date = await admin_a.wait(
        "room_joined from N", lambda args: args[0] == "room_joined" and args[2] == "team"
    )
    assert (nsp, sid) == ("/", user_n.id)
    assert ISO_DATE.fullmatch(date)
    admin_a.client.emit("emit", "/", "team", "news", 1)
    await eventually(lambda: ("news", 1) in user_n.seen, "the news reached N's socket")
    admin_a.client.emit("leave", "/", "team", user_n.id)
    await eventually(lambda: node.rooms_of(user_n.id) == [user_n.id, "home-N"], "N left")

    # The admin on Node acts on the aiosio server's socket.
    on_a = socket_of(a_sockets, user_a.id)
    admin_n.client.emit("join", "/", "crew", user_a.id)
    await eventually(lambda: "crew" in on_a.rooms, "A's socket joined 'crew'")
    await admin_n.wait(
        "room_joined from A", lambda args: args[0] == "room_joined" and args[2] == "crew"
    )
    admin_n.client.emit("leave", "/", "crew", user_a.id)
    await eventually(lambda: "crew" not in on_a.rooms, "A's socket left 'crew'")

    # And each disconnects the other's.
    admin_a.client.emit("_disconnect", "/", False, user_n.id)
    await eventually(lambda: user_n.reasons == ["io server disconnect"], "N's socket disconnected")
    await admin_a.wait(
        "socket_disconnected from N",
        lambda args: args[0] == "socket_disconnected" and args[2] == user_n.id,
    )
    admin_n.client.emit("_disconnect", "/", True, user_a.id)
    await eventually(lambda: user_a.reasons == ["io server disconnect"], "A's socket disconnected")
    await admin_n.wait(
        "socket_disconnected from A",
        lambda args: args[0] == "socket_disconnected" and args[2] == user_a.id,
    )


async def test_one_login_for_every_server_with_a_redis_store(
    serve_native: ServeFn,
    clients: Callable[..., aiosio.Client],
    node_server: Callable[..., Awaitable[NodeServer]],
) -> None:
    key = f"t{uuid.uuid4().hex[:12]}"
    password_hash = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    sio = Server(adapter=RedisAdapter(REDIS_URL, key=key))
    store = RedisStore(REDIS_URL, prefix=f"{key}-admin")
    instrument(sio, auth=BasicAuth("admin", password_hash), server_id="A", store=store)
    url_a = await serve_native(sio)
    node = await node_server("--key", key, "--server-id", "N", "--hash", password_hash)
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        sessions = {}
        for name, url in (("A", url_a), ("N", node.url)):
            login = await connect(
                clients, url + "/admin", auth={"username": "admin", "password": "pw"}
            )
            (sessions[name],) = (await login.wait("session", lambda args: args[0] == "session"))[1:]
        # Each server's session opens the other's admin namespace, without the password.
        for name, url in (("A", node.url), ("N", url_a)):
            again = await connect(clients, url + "/admin", auth={"sessionId": sessions[name]})
            await again.wait("config", lambda args: args[0] == "config")
        # The same keys as the reference's RedisStore, for a day.
        for session in sessions.values():
            assert await raw.get(f"{key}-admin#{session}") == b"true"
            assert 0 < await raw.ttl(f"{key}-admin#{session}") <= 86_400
        with pytest.raises(aiosio.ConnectError) as refused:
            await connect(clients, url_a + "/admin", auth={"sessionId": "0123456789abcdef"})
        assert refused.value.message == "invalid credentials"
    finally:
        await raw.delete(*[f"{key}-admin#{s}" for s in sessions.values()])
        await raw.aclose()
        await store.client.aclose()


async def test_a_session_lasts_session_duration_seconds(
    serve_native: ServeFn, clients: Callable[..., aiosio.Client]
) -> None:
    key = f"t{uuid.uuid4().hex[:12]}"
    password_hash = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    sio = Server()
    store = RedisStore(REDIS_URL, prefix=key, session_duration=7)
    instrument(sio, auth=BasicAuth("admin", password_hash), store=store)
    url = await serve_native(sio)
    login = await connect(clients, url + "/admin", auth={"username": "admin", "password": "pw"})
    (session,) = (await login.wait("session", lambda args: args[0] == "session"))[1:]
    try:
        assert 0 < await store.client.ttl(f"{key}#{session}") <= 7
    finally:
        await store.client.delete(f"{key}#{session}")
        await store.client.aclose()


# -- aiosio serve --workers ------------------------------------------------------------------------

WORKERS_APP = textwrap.dedent(
    """
    import aiosio
    from aiosio.admin import BasicAuth, RedisStore, instrument

    sio = aiosio.Server()
    instrument(sio, auth=False)

    @sio.on("connection")
    def connected(socket):
        socket.join("home")
    """
)


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[str]:
    (tmp_path / "admin_workers_app.py").write_text(WORKERS_APP)
    port = free_port()
    log = tmp_path / "server.log"
    # The app's folder first, then the PYTHONPATH this test runs with (a checkout's src).
    paths = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "aiosio", "serve", "admin_workers_app:sio"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--workers", "2", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await eventually(lambda: b"listening" in log.read_bytes(), "the workers listening")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_one_admin_sees_and_acts_on_every_worker(
    workers: str, clients: Callable[..., aiosio.Client]
) -> None:
    admin = await connect(clients, workers + "/admin")
    host = socket.gethostname()
    named = re.compile(re.escape(host) + r"#(\d+)")

    def worker_ids() -> set[str]:
        return {sid for sid in admin.stats_of() if named.fullmatch(sid)}

    # Both workers report, the one nobody connected to included, each as host#pid.
    await eventually(lambda: len(worker_ids()) == 2, "server_stats of both workers")
    assert {s["pid"] for s in admin.stats_of().values()} == {
        int(named.fullmatch(sid).group(1))  # type: ignore[union-attr]
        for sid in worker_ids()
    }
    # Handshakes go to the workers in turn: of two users, one is on the admin's worker and
    # one on the other; the admin sees both and acts on both.
    users = [await connect(clients, workers), await connect(clients, workers)]
    found: dict[str, dict[str, Any]] = {}
    for user in users:
        _, connected, _ = await admin.wait(
            "socket_connected",
            lambda args, user=user: args[0] == "socket_connected" and args[1]["id"] == user.id,
        )
        found[user.id] = connected
    assert len({s["clientId"][0] for s in found.values()}) == 2  # one on each worker
    # A later admin is given both (fetch_sockets over the bus), wherever it lands.
    late = await connect(clients, workers + "/admin")
    listed = await late.all_sockets()
    for user in users:
        assert listed[user.id]["rooms"] == [user.id, "home"]
        assert listed[user.id]["clientId"] == found[user.id]["clientId"]
    for user in users:
        admin.client.emit("join", "/", "team", user.id)
        await admin.wait(
            "room_joined",
            lambda args, user=user: args[0] == "room_joined" and args[2:4] == ("team", user.id),
        )
    admin.client.emit("emit", "/", "team", "news", 2)
    for user in users:
        await eventually(lambda user=user: ("news", 2) in user.seen, "news to both workers")
    for user in users:
        admin.client.emit("_disconnect", "/", False, user.id)
        await eventually(lambda user=user: user.reasons == ["io server disconnect"], "disconnect")

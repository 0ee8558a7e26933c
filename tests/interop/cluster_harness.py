"""The harness of the adapter tests (Redis, Redis Streams, PostgreSQL): a mixed cluster of aiosio
servers and the reference's Node server (``tests/js/cluster_node.mjs``) with official
``socket.io-client`` sockets (``tests/js/redis_clients.mjs``), the barriers that make delivery
checks exact, a redis-server of the test's own, a TCP proxy to cut or stall, and the check that
Redis is up. Not a test module: imported by the adapter tests.

A cluster is two aiosio servers (``A`` on the native server, ``B`` under uvicorn) and, when the
test needs it, one Node server (``N``). Each client sends ``auth = {name, rooms}``: every server
joins the socket to ``rooms`` and sets ``socket.data = {name, server}``. Clients answer every
acknowledgement request with their name, except the silent ones."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
import redis.asyncio as redis_asyncio
from node_procs import Line
from node_procs import NodeProc
from node_procs import node_procs
from node_procs import py
from node_procs import until

import aiosio
from aiosio import Server
from conftest import ServeFn
from conftest import free_port

REDIS_URL = "redis://127.0.0.1:6379"

Spawn = Callable[..., Awaitable[NodeProc]]
# A client of the cluster: (server, rooms, transports, silent).
Spec = tuple[str, list[str], list[str], bool]

CLIENTS: dict[str, Spec] = {
    "a1": ("A", ["r1"], ["websocket"], False),
    "a2": ("A", ["r2"], ["polling"], False),
    "b1": ("B", ["r1"], ["polling"], False),
    "b2": ("B", ["r2"], ["websocket"], False),
    "n1": ("N", ["r1"], ["websocket"], False),
    "n2": ("N", ["r2"], ["polling"], False),
    "q": ("N", ["quiet"], ["websocket"], True),
}
ALL = frozenset(CLIENTS)
ANSWERING = ALL - {"q"}
WEBSOCKET = frozenset(n for n, spec in CLIENTS.items() if spec[2] == ["websocket"])


def members(room: str) -> set[str]:
    return {n for n, spec in CLIENTS.items() if room in spec[1]}


# -- fixtures: a test module imports those it uses (named apart so that its parameters do not
# shadow the imported names) ---------------------------------------------------------------------


@pytest.fixture(name="server_kind")
def b_under_uvicorn() -> str:
    """``server_kind``: ``serve`` runs server B under uvicorn; server A runs on ``serve_native``."""
    return "asgi"


@pytest.fixture(name="spawn")
async def node_scripts() -> AsyncIterator[Spawn]:
    """``spawn``: ``start(script, *args)`` starts a script of tests/js, closed at the end of
    the test."""
    async with node_procs() as start:
        yield start


def skip_unless_redis() -> None:
    """Skip the calling test module, at its import, when Redis is not on 127.0.0.1:6379."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        pytest.skip(
            f"Redis is not reachable on 127.0.0.1:6379 ({type(exc).__name__}: {exc}); start it "
            "with scripts/services.sh",
            allow_module_level=True,
        )


# -- the aiosio members ---------------------------------------------------------------------------


def as_member(sio: Server, name: str, server_side: list[tuple[str, list[Any]]]) -> Server:
    """Give ``sio`` what cluster_node.mjs does as server ``name``: a connecting socket gets
    ``data = {name, server}`` and joins the rooms of its auth (unless its session was
    recovered, rooms and all); the client event ``relay({to, except, event, args})``
    broadcasts; the server-side event ``sse`` is kept in ``server_side`` and its ack answered
    ``{server, args}``."""

    @sio.on("connection")
    def connected(socket: aiosio.Socket) -> None:
        auth = socket.handshake.auth
        socket.data = {"name": auth.get("name"), "server": name}
        rooms = auth.get("rooms") or []
        if rooms and not socket.recovered:
            socket.join(*rooms)

    @sio.on("relay")
    def relay(_socket: aiosio.Socket, cmd: dict[str, Any]) -> None:
        op = sio.to(cmd["to"]) if cmd.get("to") else sio.except_()
        if cmd.get("except"):
            op = op.except_(cmd["except"])
        op.emit(cmd["event"], *cmd.get("args", []))

    # Server-side events (the handler's return value answers the ack).
    @sio.on_server_side("sse")
    def sse(*args: Any) -> dict[str, Any]:
        server_side.append(("sse", list(args)))
        return {"server": name, "args": list(args)}

    return sio


async def server_count(sio: Server) -> int:
    return int(await sio.sockets.adapter.server_count())  # type: ignore[misc]


async def server_count_is(sio: Server, n: int) -> bool:
    return await server_count(sio) == n


# -- the cluster ----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Cluster:
    """The members (``sios`` A and B, ``node`` N), the clients' process and what it saw, and the
    barriers. ``patience`` is how long a barrier waits."""

    sios: dict[str, Server] = field(default_factory=dict)
    server_side: dict[str, list[tuple[str, list[Any]]]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    node: NodeProc | None = None
    clients: NodeProc | None = None
    ids: dict[str, str] = field(default_factory=dict)
    specs: dict[str, Spec] = field(default_factory=dict)
    patience: float = 5.0
    _markers: int = 0

    @property
    def a(self) -> Server:
        return self.sios["A"]

    @property
    def b(self) -> Server:
        return self.sios["B"]

    @property
    def n(self) -> NodeProc:
        assert self.node is not None
        return self.node

    @property
    def c(self) -> NodeProc:
        assert self.clients is not None
        return self.clients

    # -- what the clients saw --

    def events(self, client: str, event: str) -> list[list[Any]]:
        return [
            py(line["args"])
            for line in self.c.lines
            if line["type"] == "event" and line["client"] == client and line["event"] == event
        ]

    def got(self, event: str) -> set[str]:
        return {
            line["client"]
            for line in self.c.lines
            if line["type"] == "event" and line["event"] == event
        }

    def count(self, client: str, event: str) -> int:
        return len(self.events(client, event))

    def disconnected(self) -> dict[str, str]:
        return {
            line["client"]: line["reason"] for line in self.c.lines if line["type"] == "disconnect"
        }

    def connected(self) -> set[str]:
        return set(self.ids) - set(self.disconnected())

    # -- barriers --

    async def flush(self, origin: str) -> None:
        """Broadcast a marker to everyone from ``origin`` (A, B or N) and wait until every
        connected client has it: what ``origin`` broadcast before has arrived too."""
        self._markers += 1
        token = f"{origin}-{self._markers}"
        if origin == "N":
            await self.n.call("emit", event="marker", args=[token])
        else:
            self.sios[origin].emit("marker", token)
        await self.wait_marker(token)

    async def wait_marker(self, token: str, timeout: float | None = None) -> None:
        expected = self.connected()
        await until(
            lambda: all([token] in self.events(n, "marker") for n in expected),
            timeout or self.patience,
            f"marker {token} at {sorted(expected)}: "
            f"{sorted(n for n in expected if [token] not in self.events(n, 'marker'))} miss it",
        )

    async def wait_event(self, clients: set[str] | frozenset[str], event: str) -> None:
        await until(
            lambda: clients <= self.got(event),
            self.patience,
            f"{event} at {sorted(clients)} (got {sorted(self.got(event))})",
        )

    async def fetch_rooms(self) -> dict[str, set[str]]:
        sockets = await self.a.fetch_sockets()
        by_id = {s.id: set(s.rooms) for s in sockets}
        return {name: by_id[sid] for name, sid in self.ids.items() if sid in by_id}

    async def settle(
        self, expect: dict[str, set[str]], absent: dict[str, set[str]] | None = None
    ) -> None:
        """Wait until (seen from A's fetch_sockets) each client is in its ``expect`` rooms and in
        none of its ``absent`` rooms, and the servers :meth:`listen` to them."""
        absent = absent or {}

        async def check() -> bool:
            rooms = await self.fetch_rooms()
            return (
                all(wanted <= rooms.get(n, set()) for n, wanted in expect.items())
                and not any(unwanted & rooms.get(n, set()) for n, unwanted in absent.items())
                and await self.listen(rooms, expect, absent)
            )

        await until(check, self.patience, f"rooms {expect} / not {absent}")

    async def settle_clients(self) -> None:
        """Wait until every client is in the rooms of its spec and its own."""
        await self.settle({name: {*spec[1], self.ids[name]} for name, spec in self.specs.items()})

    async def listen(
        self, rooms: dict[str, set[str]], expect: dict[str, set[str]], absent: dict[str, set[str]]
    ) -> bool:
        """Whether the servers hear the rooms of ``expect`` and ``absent`` as ``rooms`` says
        they should: always, unless an adapter subscribes per room."""
        return True

    async def close(self) -> None:
        """Stop the clients' and the Node server's processes."""
        for proc in (self.clients, self.node):
            if proc is not None:
                await proc.close()


@dataclass(kw_only=True)
class RedisCluster(Cluster):
    """A cluster on one Redis key (``raw`` is a client of that Redis for the test's own
    commands); ``mode`` is the sharded adapter's subscription mode."""

    key: str
    raw: redis_asyncio.Redis
    sharded: bool = False
    mode: str = "dynamic"

    async def listen(
        self, rooms: dict[str, set[str]], expect: dict[str, set[str]], absent: dict[str, set[str]]
    ) -> bool:
        """With the sharded adapter, whether every server with a member in those rooms
        subscribed to the room's dynamic channel, and no other server (SSUBSCRIBE and
        SUNSUBSCRIBE are asynchronous in both implementations)."""
        if not self.sharded or self.mode == "static":
            return True
        watched = set().union(*expect.values(), *absent.values())
        if self.mode == "dynamic":
            watched -= set(self.ids.values())  # socket rooms use the main channel
        for room in watched:
            servers = {self.specs[n][0] for n, r in rooms.items() if room in r}
            if await self.shard_subscribers(room) != len(servers):
                return False
        return True

    async def shard_subscribers(self, room: str) -> int:
        channel = f"{self.key}#/#{room}#"
        result = await self.raw.pubsub_shardnumsub(channel)
        return int(result[0][1]) if result else 0

    async def close(self) -> None:
        await super().close()
        await self.raw.aclose()


@dataclass(kw_only=True)
class PostgresCluster(Cluster):
    """A cluster on one channel prefix."""

    prefix: str
    patience: float = 8.0


# -- starting a cluster ---------------------------------------------------------------------------


async def serve_members(cluster: Cluster, serve: ServeFn, serve_native: ServeFn) -> None:
    """Serve A on the native server and B under uvicorn; wait until both adapters are ready."""
    cluster.urls["A"] = await serve_native(cluster.a)
    cluster.urls["B"] = await serve(cluster.b)
    for sio in cluster.sios.values():
        factory: Any = sio.adapter_factory
        assert await factory.ready(), factory.health


async def start_node(cluster: Cluster, spawn: Spawn, *args: str) -> Line:
    """Start N, ``cluster_node.mjs`` with ``args``; its "ready" line."""
    cluster.node = await spawn("cluster_node.mjs", *args)
    ready = await cluster.n.wait(lambda line: line.get("type") == "ready", 10)
    cluster.urls["N"] = f"http://127.0.0.1:{ready['port']}"
    return ready


def client_args(specs: dict[str, Spec], urls: dict[str, str], **extra: Any) -> list[str]:
    """The arguments of redis_clients.mjs for ``specs``, each client on its server's URL."""
    return [
        arg
        for name, (server, rooms, transports, silent) in specs.items()
        for arg in (
            "--client",
            json.dumps(
                {
                    "name": name,
                    "url": urls[server],
                    "auth": {"rooms": rooms},
                    "transports": transports,
                    "silent": silent,
                    **extra,
                }
            ),
        )
    ]


async def connect_clients(cluster: Cluster, spawn: Spawn) -> None:
    """Connect the clients of ``cluster.specs`` and keep their ids."""
    cluster.clients = await spawn("redis_clients.mjs", *client_args(cluster.specs, cluster.urls))
    for name in cluster.specs:
        line = await cluster.c.wait(
            lambda line, name=name: (
                line.get("type") in ("connect", "connect_error") and line.get("client") == name
            ),
            10,
        )
        assert line["type"] == "connect", line
        cluster.ids[name] = line["id"]


# -- Redis ----------------------------------------------------------------------------------------


async def next_message(pubsub: Any, *, type_key: str, types: set[int]) -> dict[str, Any]:
    """The next message ``pubsub`` got (JSON or msgpack) whose ``type_key`` is one of
    ``types``; the others are skipped."""
    async with asyncio.timeout(5):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            data = message["data"]
            decoded = json.loads(data) if data[:1] == b"{" else msgpack.unpackb(data)
            if decoded.get(type_key) in types:
                return dict(decoded)


class RedisServer:
    """A redis-server of the test's own on a free port, to kill (SIGKILL: no goodbye to the
    clients) and start again: its settings (``timeout``) and its clients are the test's,
    whatever else runs on the machine. With a ``directory``, it keeps an append-only file
    there, written before each reply: what it acknowledged survives the kill. Without
    redis-server on the machine, the test is skipped, or fails when ``required``."""

    def __init__(self, directory: Path | None = None, *, required: bool = False) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.directory = directory
        self.required = required
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if self.required:
                pytest.fail("redis-server is needed: run scripts/install.sh")
            pytest.skip("redis-server is not installed")
        if self.directory is None:
            persistence: tuple[str, ...] = ("--appendonly", "no")
        else:
            persistence = ("--appendonly", "yes", "--appendfsync", "always")
            persistence += ("--dir", str(self.directory))
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *persistence,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = redis_asyncio.Redis.from_url(self.url)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await client.ping()
                    return
                except redis.RedisError:  # connection refused, or loading the AOF
                    assert self.proc.returncode is None, "redis-server exited"
                    assert time.monotonic() < deadline, "redis-server did not answer in 10 s"
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@contextlib.asynccontextmanager
async def redis_server(
    directory: Path | None = None, *, required: bool = False
) -> AsyncIterator[RedisServer]:
    """A started :class:`RedisServer`, killed at the end."""
    server = RedisServer(directory, required=required)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


# -- a TCP proxy ----------------------------------------------------------------------------------


class Balancer:
    """A TCP proxy in front of the servers: ``target`` is where new connections go; ``cut()``
    closes every connection through it; while ``refusing``, new connections are closed at
    once (the client retries). ``stall()`` stops forwarding on every connection, either way,
    without closing anything (what it read is held, what it did not stays in the sockets'
    buffers) until ``resume()``, or until ``cut()`` drops it all."""

    def __init__(self) -> None:
        self.target = 0
        self.refusing = False
        self._pipes: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._pipes.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    await self._flowing.wait()
                    if dst.is_closing():
                        break  # cut while stalled: what was held is dropped
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._pipes.difference_update((writer, up_writer))

    def cut(self) -> None:
        for writer in list(self._pipes):
            writer.close()

    async def close(self) -> None:
        self.cut()
        self.resume()  # the pumps held by a stall see the cut and end
        if self._server is not None:
            self._server.close()

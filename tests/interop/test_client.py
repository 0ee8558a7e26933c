"""Our client (``aiosio.Client``) against the official ``socket.io`` 4.8 server from npm and against
our own server, natively and under uvicorn, with the same behaviours on every side.

``tests/js/node_server.mjs`` runs the reference server and prints one JSON object per line for
what it observes; :func:`python_server` builds an :class:`aiosio.Server` with the same handlers
that records the same lines. Each test drives the client and checks both sides. The expected
client behaviour is socket.io-client 4.8's (see the notes where ours deliberately differs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

import aiosio
from aiosio.client.http import WebSocketConnection
from aiosio.client.manager import Backoff
from aiosio.client.manager import ManagerState
from aiosio.client.socket import SocketState
from aiosio.protocol.client_session import ClientState
from conftest import JS_DIR
from conftest import ServeFn
from conftest import _node
from conftest import free_port

pytestmark = pytest.mark.interop

Line = dict[str, Any]

# Reasons after which a server keeps the session for connection state recovery.
RECOVERABLE = {"transport error", "transport close", "forced close", "ping timeout"}

FAST = {"reconnection_delay": 0.1, "reconnection_delay_max": 0.3, "timeout": 5.0}


@pytest.fixture(autouse=True)
async def _client_websockets_closed() -> AsyncIterator[None]:
    """After each test (and its servers), wait for the client WebSockets still closing on this
    loop: WebSocketConnection.close() ends by a 1 s timer that disconnect() does not wait for
    (see test_sync_client_disconnect_closes_everything), and a loop closed before it fires leaks
    the socket into whichever test runs when the garbage collector does."""
    yield
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        closing = [
            o
            for o in gc.get_objects()
            if type(o) is WebSocketConnection and not o.closed and o.loop is loop
        ]
        if not closing:
            return
        await asyncio.sleep(0.05)


# -- helpers ----------------------------------------------------------------------------------


def py(value: Any) -> Any:
    """A value printed by node_server.mjs with ``{"$bin": base64}`` back to bytes."""
    if isinstance(value, list):
        return [py(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        return {k: py(v) for k, v in value.items()}
    return value


def js(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return [js(v) for v in value]
    if isinstance(value, dict):
        return {k: js(v) for k, v in value.items()}
    return value


def pausing(client: aiosio.Client) -> bool:
    """The client's upgrade is pausing polling (its GET and POST in flight are ending)."""
    engine = client.io.engine
    return engine is not None and engine.state is ClientState.PAUSING


async def until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not met within {timeout}s: {what or predicate}")
        await asyncio.sleep(0.01)


class Backend:
    """A server under test: its URL, the lines it printed (or recorded), and ``emit_to(room,
    event, *args)`` (the server emits to a room; an ``emitted`` line follows)."""

    kind = ""
    url = ""

    def __init__(self) -> None:
        self.lines: list[Line] = []

    def of(self, kind: str, **match: Any) -> list[Line]:
        return [
            line
            for line in self.lines
            if line["type"] == kind and all(line.get(k) == v for k, v in match.items())
        ]

    async def wait(self, kind: str, count: int = 1, timeout: float = 5.0, **match: Any) -> Line:
        await until(
            lambda: len(self.of(kind, **match)) >= count,
            timeout,
            f"{count} {kind} line(s) {match} from the {self.kind} server; got {self.lines}",
        )
        return self.of(kind, **match)[count - 1]

    def events(self, event: str, **match: Any) -> list[list[Any]]:
        return [line["args"] for line in self.of("event", event=event, **match)]

    def emit_to(
        self, room: str, event: str, *args: Any, nsp: str = "/", volatile: bool = False
    ) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class NodeServer(Backend):
    """One ``node_server.mjs`` process."""

    kind = "node"

    def __init__(self, port: int, options: dict[str, Any], drop_acks: int) -> None:
        super().__init__()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.args = ["--port", str(port), "--options", json.dumps(options)]
        self.args += ["--drop-acks", str(drop_acks)]
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = b""
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> NodeServer:
        self.proc = await asyncio.create_subprocess_exec(
            _node(),
            str(JS_DIR / "node_server.mjs"),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(JS_DIR),
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]
        try:
            await self.wait("ready", timeout=10.0)
        except BaseException:
            await self.close()
            raise
        return self

    async def _read_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                line = json.loads(raw)
                self.lines.append(py(line))

    async def _read_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    async def wait(self, kind: str, count: int = 1, timeout: float = 5.0, **match: Any) -> Line:
        if self.proc is not None and self.proc.returncode is not None and kind != "ready":
            pytest.fail(f"node_server.mjs exited {self.proc.returncode}: {self.stderr.decode()}")
        return await super().wait(kind, count, timeout, **match)

    def emit_to(
        self, room: str, event: str, *args: Any, nsp: str = "/", volatile: bool = False
    ) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        command = {"do": "emit", "nsp": nsp, "to": room, "event": event, "args": js(list(args))}
        command["volatile"] = volatile
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")

    async def kill(self) -> None:
        """SIGKILL: the connections are dropped by the OS, as when a server crashes."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        if self.proc is not None:
            await self.proc.wait()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()

    async def close(self) -> None:
        await self.kill()


class DropAck(Exception):
    """Raised by the ``count`` handler of our server to leave a message unacknowledged (a handler
    of ours always acknowledges with its return value; raising is the only way not to)."""


def python_server(
    lines: list[Line],
    *,
    recovery: bool = False,
    drop_acks: int = 0,
    transports: tuple[str, ...] = ("polling", "websocket"),
    ping: tuple[float, float] = (2.0, 2.0),
) -> aiosio.Server:
    """An :class:`aiosio.Server` with node_server.mjs's behaviours, recording the same lines."""
    sio = aiosio.Server(
        ping_interval=ping[0],
        ping_timeout=ping[1],
        transports=transports,
        connection_state_recovery=aiosio.Recovery(max_disconnection_duration=30.0)
        if recovery
        else None,
    )
    state = {"drop": drop_acks}
    seen: set[Any] = set()

    def setup(nsp: aiosio.Namespace) -> None:
        name = nsp.name

        @nsp.on("connection")
        def connection(socket: aiosio.Socket) -> None:
            base = {"nsp": name, "id": socket.id}
            lines.append(
                {
                    "type": "connection",
                    **base,
                    "conn": socket.conn.id,
                    "auth": socket.handshake.auth,
                    "transport": socket.conn.transport,
                    "recovered": socket.recovered,
                }
            )
            socket.conn.on(
                "upgrade",
                lambda: lines.append({"type": "upgrade", **base, "transport": "websocket"}),
            )
            socket.on_any(
                lambda event, *args: lines.append(
                    {"type": "event", **base, "event": event, "args": list(args)}
                )
            )

        @nsp.on("disconnect")
        def disconnect(socket: aiosio.Socket, reason: str, _description: Any) -> None:
            lines.append({"type": "disconnect", "nsp": name, "id": socket.id, "reason": reason})
            n = socket.data.get("burst")
            if n and reason in RECOVERABLE:
                for i in range(n):
                    nsp.to(socket.id).emit("missed", i)
                lines.append({"type": "burst", "nsp": name, "id": socket.id, "n": n})

        @nsp.on("echo")
        def echo(_socket: aiosio.Socket, *args: Any) -> tuple[Any, ...]:
            return args

        @nsp.on("ask")
        async def ask(socket: aiosio.Socket, event: str, args: list[Any]) -> tuple[Any, ...]:
            base = {"nsp": name, "id": socket.id, "event": event}
            try:
                reply = await socket.timeout(5.0).emit_with_ack_all(event, *args)
            except Exception as exc:
                lines.append({"type": "reply", **base, "err": str(exc), "reply": []})
                return (str(exc),)
            lines.append({"type": "reply", **base, "err": None, "reply": reply})
            return (None, *reply)

        @nsp.on("kick")
        def kick(socket: aiosio.Socket) -> None:
            socket.disconnect()

        @nsp.on("count")
        def count(socket: aiosio.Socket, msg: Any) -> dict[str, Any]:
            dup = msg in seen
            seen.add(msg)
            dropped = state["drop"] > 0
            if dropped:
                state["drop"] -= 1
            lines.append(
                {"type": "count", "nsp": name, "id": socket.id, "msg": msg, "dup": dup,
                 "dropped": dropped}
            )  # fmt: skip
            if dropped:
                raise DropAck(f"not acknowledging message {msg!r}")
            return {"id": msg, "dup": dup}

        @nsp.on("arm")
        def arm(socket: aiosio.Socket, n: int) -> None:
            socket.data["burst"] = n
            socket.emit("armed", n)

    setup(sio.of("/"))
    setup(sio.of("/admin"))
    secure = sio.of("/secure")

    def middleware(socket: aiosio.Socket) -> None:
        token = str(socket.handshake.auth.get("token", ""))
        lines.append({"type": "middleware", "nsp": "/secure", "token": token})
        if token.startswith("expired"):
            raise aiosio.ConnectionRefused("token expired", data={"code": "EXPIRED"})

    secure.use(middleware)
    setup(secure)
    return sio


class PythonServer(Backend):
    def __init__(self, kind: str, **options: Any) -> None:
        super().__init__()
        self.kind = kind
        self.sio = python_server(self.lines, **options)

    def emit_to(
        self, room: str, event: str, *args: Any, nsp: str = "/", volatile: bool = False
    ) -> None:
        operator = self.sio.of(nsp).to(room)
        (operator.volatile if volatile else operator).emit(event, *args)
        self.lines.append({"type": "emitted", "nsp": nsp, "to": room, "event": event})


def node_options(
    *,
    recovery: bool = False,
    transports: tuple[str, ...] = ("polling", "websocket"),
    ping: tuple[float, float] = (2.0, 2.0),
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "pingInterval": int(ping[0] * 1000),
        "pingTimeout": int(ping[1] * 1000),
        "transports": list(transports),
    }
    if recovery:
        options["connectionStateRecovery"] = {
            "maxDisconnectionDuration": 30000,
            "skipMiddlewares": True,
        }
    return options


StartFn = Callable[..., Awaitable[Backend]]


@pytest.fixture(params=["node", "native", "asgi"])
def server_kind(request: pytest.FixtureRequest) -> str:
    """Overrides conftest's: the reference server as well as ours (native and uvicorn)."""
    return str(request.param)


@pytest.fixture
async def backend(server_kind: str, serve: ServeFn) -> AsyncIterator[StartFn]:
    """``server = await backend(recovery=, drop_acks=, transports=, ping=)``: the server of this
    test's kind with the shared behaviours."""
    started: list[Backend] = []

    async def start(*, drop_acks: int = 0, **options: Any) -> Backend:
        server: Backend
        if server_kind == "node":
            server = await NodeServer(free_port(), node_options(**options), drop_acks).start()
        else:
            ours = PythonServer(server_kind, drop_acks=drop_acks, **options)
            ours.url = await serve(ours.sio)
            server = ours
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


class Clients:
    """Creates clients and disconnects them at the end of the test (before the servers stop)."""

    def __init__(self) -> None:
        self.made: list[aiosio.Client] = []

    def __call__(self, url: str, **options: Any) -> aiosio.Client:
        client = aiosio.Client(url, **{**FAST, **options})
        self.made.append(client)
        return client

    async def close(self) -> None:
        for client in reversed(self.made):
            # Not while the upgrade pauses polling: disconnect() would hang until a timeout
            # (test_disconnect_during_the_upgrade_is_prompt); that bug has its own test.
            await until(lambda c=client: not pausing(c), 2.0)
            await asyncio.wait_for(client.disconnect(), 10)


@pytest.fixture
async def clients(backend: StartFn) -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close()


class Recorder:
    """Everything a client and its manager report, in order, as ``(source, event, *args)``."""

    MANAGER = ("open", "close", "reconnect_attempt", "reconnect_error", "reconnect_failed",
               "reconnect")  # fmt: skip

    def __init__(self, client: aiosio.Client) -> None:
        self.log: list[tuple[Any, ...]] = []
        for event in ("connect", "connect_error", "disconnect"):
            client.on(event, self._add("socket", event))
        for event in self.MANAGER:
            client.io.on(event, self._add("io", event))

    def _add(self, source: str, event: str) -> Callable[..., None]:
        def add(*args: Any) -> None:
            self.log.append((source, event, *args))

        return add

    def of(self, source: str, *events: str) -> list[tuple[Any, ...]]:
        return [e for e in self.log if e[0] == source and (not events or e[1] in events)]

    def names(self, source: str, *events: str) -> list[str]:
        return [e[1] for e in self.of(source, *events)]


class Proxy:
    """A TCP proxy between the client and the server: ``drop()`` cuts every connection at once
    (as a network failure does), ``refuse`` makes new connections fail while it is set, and
    ``delay`` holds what the server sends for that many seconds (a slow network), ``freeze()``
    holds it until ``thaw()`` (a network that stalls)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.refuse = False
        self.delay = 0.0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self.pairs.add(pair)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer, slow=True)
            )
        finally:
            self.pairs.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: bool = False
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if slow and self.delay:
                    await asyncio.sleep(self.delay)
                if slow:
                    await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def drop(self) -> None:
        for client_side, server_side in list(self.pairs):
            client_side.transport.abort()
            server_side.transport.abort()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def close(self) -> None:
        self.thaw()
        self.drop()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def proxy() -> AsyncIterator[Callable[[int], Awaitable[tuple[Proxy, str]]]]:
    made: list[Proxy] = []

    async def start(port: int) -> tuple[Proxy, str]:
        p = Proxy(port)
        made.append(p)
        return p, await p.start()

    yield start
    for p in made:
        await p.close()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- transports -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transports", "final"),
    [
        (["polling"], "polling"),
        (["websocket"], "websocket"),
        (["polling", "websocket"], "websocket"),
    ],
    ids=["polling", "websocket", "upgrade"],
)
async def test_transports(
    backend: StartFn, clients: Clients, transports: list[str], final: str
) -> None:
    server = await backend()
    c = clients(server.url, transports=transports)
    await c.connect()
    assert c.connected
    assert c.io.engine is not None
    line = await server.wait("connection", id=c.id)
    assert line["conn"] == c.io.engine.id
    if final != transports[0]:
        # The CONNECT goes out before the probe, so it normally arrives over polling.
        assert line["transport"] in transports
        if line["transport"] == "polling":
            await server.wait("upgrade", id=c.id)
        await until(lambda: c.io.engine is not None and c.io.engine.transport == final)
    else:
        assert line["transport"] == transports[0]
        await asyncio.sleep(0.3)  # nothing changes: no upgrade
    assert c.io.engine.transport == final
    assert await c.emit_with_ack("echo", "over " + final) == "over " + final


# -- namespaces and multiplexing --------------------------------------------------------------


async def test_namespaces_share_one_manager_unless_force_new(
    backend: StartFn, clients: Clients
) -> None:
    server = await backend()
    main = clients(server.url)
    admin = clients(server.url + "/admin")
    assert main.io is admin.io
    assert (main.namespace, admin.namespace) == ("/", "/admin")
    await main.connect()
    await admin.connect()
    assert main.id != admin.id
    first = await server.wait("connection", id=main.id, nsp="/")
    second = await server.wait("connection", id=admin.id, nsp="/admin")
    assert first["conn"] == second["conn"] == main.io.engine.id  # one Engine.IO session

    # force_new: a Manager (and an Engine.IO session) of its own.
    own = clients(server.url + "/admin", force_new=True)
    assert own.io is not main.io
    await own.connect()
    third = await server.wait("connection", id=own.id, nsp="/admin")
    assert third["conn"] != first["conn"]
    # As in socket.io-client: a second client of a namespace the cached Manager already has
    # gets a new Manager (lookup's `nsp in cache[id].nsps`).
    again = clients(server.url)
    assert again.io is not main.io
    await again.connect()
    assert (await server.wait("connection", id=again.id))["conn"] != first["conn"]

    # Events are routed to the right namespace on the shared session.
    assert await main.emit_with_ack("echo", "main") == "main"
    assert await admin.emit_with_ack("echo", "admin") == "admin"
    assert server.events("echo", nsp="/") == [["main"]]
    assert server.events("echo", nsp="/admin") == [["admin"]]

    # Leaving one namespace keeps the shared session for the other.
    admin_id = admin.id
    await admin.disconnect()
    assert admin.id is None
    await server.wait("disconnect", id=admin_id, reason="client namespace disconnect")
    assert main.connected
    assert await main.emit_with_ack("echo", "still") == "still"


# -- auth -------------------------------------------------------------------------------------


async def test_auth_is_fetched_again_for_every_connect(backend: StartFn, clients: Clients) -> None:
    server = await backend()
    tokens = iter(["expired-1", "fresh-2", "fresh-3", "fresh-4"])
    calls: list[str] = []

    async def auth() -> dict[str, Any]:
        await asyncio.sleep(0)
        token = next(tokens)
        calls.append(token)
        return {"token": token}

    c = clients(server.url + "/secure", auth=auth)
    rec = Recorder(c)
    with pytest.raises(aiosio.ConnectError) as caught:
        await c.connect()
    error = caught.value
    assert error.stage is aiosio.Stage.NAMESPACE
    assert error.message == "token expired"
    assert error.data == {"code": "EXPIRED"}
    assert error.hint
    assert rec.of("socket") == [("socket", "connect_error", error)]

    # socket.io-client destroys the socket on CONNECT_ERROR: the Manager closes (no other socket
    # is active) and nothing reconnects; the application calls connect() again.
    await asyncio.sleep(0.5)  # well past reconnection_delay
    assert rec.names("io", "reconnect_attempt") == []
    assert not c.connected
    assert not c.active
    assert c.io.ready_state == "closed"
    assert [line["token"] for line in server.of("middleware")] == ["expired-1"]

    await c.connect()
    assert c.connected
    line = await server.wait("connection", nsp="/secure")
    assert line["auth"] == {"token": "fresh-2"}
    assert line["id"] == c.id

    # A reconnection (here: the engine closed under the client, which socket.io-client also
    # treats as a drop and reconnects) calls auth again.
    first_id = c.id
    assert c.io.engine is not None
    c.io.engine.close()
    await server.wait("connection", 2, nsp="/secure")
    await until(lambda: c.connected)
    assert calls == ["expired-1", "fresh-2", "fresh-3"]
    assert server.of("connection", nsp="/secure")[1]["auth"] == {"token": "fresh-3"}
    assert c.id != first_id
    assert ("socket", "disconnect", "forced close", None) in rec.log
    assert rec.names("socket") == ["connect_error", "connect", "disconnect", "connect"]


# -- events, binary and acknowledgements --------------------------------------------------------

PAYLOAD = {
    "text": "héllo 😀",
    "blob": b"\x00\x01\x02\xff",
    "nested": [b"a", {"deep": b"\x10" * 300, "n": 1}, [b"", None, True, 1.5]],
}


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]], ids=["polling", "websocket"])
async def test_no_ping_from_the_server_is_a_ping_timeout(
    backend: StartFn,
    proxy: Callable[[int], Awaitable[tuple[Proxy, str]]],
    clients: Clients,
    transports: list[str],
) -> None:
    """socket.ts: no ping within pingInterval + pingTimeout closes the session with "ping
    timeout" (the heartbeat deadline of the client's session core, on its timer)."""
    server = await backend(ping=(0.3, 0.3))
    tcp, url = await proxy(port_of(server.url))
    c = clients(url, transports=transports, reconnection=False)
    rec = Recorder(c)
    pings: list[None] = []
    c.io.on("ping", lambda: pings.append(None))
    await c.connect()
    await until(lambda: len(pings) >= 2, what="two pings answered")
    assert c.connected
    tcp.freeze()  # the network stalls: nothing from the server arrives any more
    await until(lambda: not c.connected, what="ping timeout")
    assert rec.of("socket", "disconnect") == [("socket", "disconnect", "ping timeout", None)]
    assert rec.names("io", "close") == ["close"]


async def test_binary_and_acks_both_ways(backend: StartFn, clients: Clients) -> None:
    server = await backend()
    c = clients(server.url)
    asked: list[tuple[Any, ...]] = []

    @c.on("question")
    def question(*args: Any) -> tuple[Any, ...]:
        asked.append(args)
        return "answer", {"bin": b"\xfe\xff", "list": [b"x", 2]}, [b"y"]

    await c.connect()

    # client -> server: binary nested in dicts and lists, several ack arguments.
    assert await c.emit_with_ack_all("echo", PAYLOAD, b"top", 3) == [PAYLOAD, b"top", 3]
    assert await c.emit_with_ack("echo", PAYLOAD) == PAYLOAD
    assert await c.emit_with_ack_all("echo") == []
    c.emit("echo", b"no ack")  # the server sees it and does not answer (no ack id)
    assert server.events("echo")[:2] == [[PAYLOAD, b"top", 3], [PAYLOAD]]

    # server -> client: the server's emitWithAck, answered by the handler's return value (a
    # tuple answers with several arguments).
    reply = await c.emit_with_ack_all("ask", "question", [PAYLOAD, b"\x00"])
    assert reply == [None, "answer", {"bin": b"\xfe\xff", "list": [b"x", 2]}, [b"y"]]
    assert asked == [(PAYLOAD, b"\x00")]
    line = await server.wait("reply", event="question")
    assert line["err"] is None
    assert line["reply"] == ["answer", {"bin": b"\xfe\xff", "list": [b"x", 2]}, [b"y"]]
    await until(lambda: [b"no ack"] in server.events("echo"))

    # A handler that returns nothing answers with no arguments.
    c.on("nothing", lambda *args: None)
    assert await c.emit_with_ack_all("ask", "nothing", []) == [None]


async def test_server_side_disconnect_does_not_reconnect(
    backend: StartFn, clients: Clients
) -> None:
    server = await backend()
    c = clients(server.url)
    rec = Recorder(c)
    await c.connect()
    sid = c.id
    c.emit("kick")
    await until(lambda: not c.connected)
    assert rec.of("socket") == [
        ("socket", "connect"),
        ("socket", "disconnect", "io server disconnect", None),
    ]
    line = await server.wait("disconnect", id=sid)
    assert line["reason"] == "server namespace disconnect"
    await asyncio.sleep(0.5)  # well past reconnection_delay
    assert rec.names("io", "reconnect_attempt", "reconnect") == []
    assert c.io.ready_state == "closed"
    assert len(server.of("connection")) == 1
    # The application may connect again.
    await c.connect()
    assert c.connected
    assert c.id != sid


async def test_disconnect_during_the_upgrade_is_prompt() -> None:
    # A disconnect that waited for the long poll or for a request to time out would take a
    # minute (the server's ping interval, the client's timeout): far beyond the bound below.
    lines: list[Line] = []
    server = await aiosio.serve(python_server(lines, ping=(60.0, 60.0)), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    try:
        for _ in range(10):
            client = aiosio.Client(url, reconnection=False, timeout=60.0, force_new=True)
            await client.connect()
            sid = client.id
            caught = False
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                engine = client.io.engine
                if engine is None or engine.transport == "websocket":
                    break
                if engine.state is ClientState.PAUSING:  # polling waits for its requests to end
                    caught = True
                    break
                await asyncio.sleep(0)
            async with asyncio.timeout(10):
                await client.disconnect()
            if caught:
                break
        else:
            pytest.skip("the upgrade's pause was not observed")
        await until(lambda: any(x["type"] == "disconnect" and x["id"] == sid for x in lines))
    finally:
        await server.close()
    reasons = [x["reason"] for x in lines if x["type"] == "disconnect" and x["id"] == sid]
    assert reasons == ["client namespace disconnect"]


class ProbeBreaker:
    """A TCP proxy that closes the client's WebSocket probe right after it forwards the server's
    "3probe" (the client is then pausing polling), and holds what the server sends on polling
    connections from the probe's start until ``release`` is set: the GET in flight when polling
    pauses cannot end before the client has seen its probe close."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.probing = asyncio.Event()
        self.broken = asyncio.Event()
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, up_writer]
        first = await reader.read(65536)
        websocket = b"transport=websocket" in first.split(b"\r\n", 1)[0]
        if websocket:
            self.probing.set()
        up_writer.write(first)
        with contextlib.suppress(OSError):
            await asyncio.gather(
                self._pipe(reader, up_writer), self._from_server(up_reader, writer, websocket)
            )
        writer.close()
        up_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _from_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, websocket: bool
    ) -> None:
        while data := await reader.read(65536):
            if not websocket and self.probing.is_set():
                await self.release.wait()
            writer.write(data)
            await writer.drain()
            if websocket and b"3probe" in data:
                writer.close()  # "3probe" reaches the client, then the probe's end
                self.broken.set()
                return
        writer.close()

    async def close(self) -> None:
        self.release.set()
        for writer in self.writers:
            writer.transport.abort()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_probe_that_closes_while_polling_pauses_leaves_the_client_on_polling() -> None:
    """The probe WebSocket answered "3probe" and closed while the client paused polling for the
    GET in flight: the client resumes polling (the server is back on polling too) and keeps its
    session. It used to wait for the GET, then switch to the closed WebSocket: nothing it sent
    arrived any more, until a ping timeout."""
    sio = aiosio.Server()

    @sio.on("echo")
    async def echo(socket: aiosio.Socket, value: Any) -> Any:
        return value

    server = await aiosio.serve(sio, "127.0.0.1", 0)
    breaker = ProbeBreaker(server.port)
    url = await breaker.start()
    client = aiosio.Client(url, reconnection=False, timeout=5.0, force_new=True)
    disconnects: list[tuple[Any, ...]] = []
    client.on("disconnect", lambda *args: disconnects.append(args))
    connecting = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(breaker.broken.wait(), 5)
        engine = client.io.engine
        assert engine is not None
        # The probe's end is seen while the GET is still held by the proxy.
        await until(lambda: engine.state is ClientState.OPEN, what="probe close seen")
        assert engine.transport == "polling"
        breaker.release.set()
        await asyncio.wait_for(connecting, 5)
        assert await client.emit_with_ack("echo", "still here", timeout=5) == "still here"
        assert client.io.engine is engine
        assert engine.transport == "polling"
        assert disconnects == []
    finally:
        breaker.release.set()
        if not connecting.done():
            connecting.cancel()
        await asyncio.wait_for(client.disconnect(), 10)
        await breaker.close()
        await server.close()


async def test_a_socket_disconnected_for_good_ignores_its_namespace_packets() -> None:
    """An event the server sent to a namespace right before it read the client's DISCONNECT is
    not delivered to that client (socket.io-client's socket unsubscribes on disconnect): it was
    kept and delivered when the application connected the socket again, as if new."""
    sio = aiosio.Server()

    @sio.of("/x").on("later")
    def later(socket: aiosio.Socket) -> None:
        socket.emit("late", 1)  # sent before the server reads the DISCONNECT that follows

    @sio.on("echo")
    def echo(socket: aiosio.Socket, value: Any) -> Any:
        return value

    server = await aiosio.serve(sio, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    main = aiosio.Client(url, reconnection=False, timeout=5.0)  # a new server: a new manager
    other = aiosio.Client(url + "/x", reconnection=False, timeout=5.0)
    late: list[tuple[Any, ...]] = []
    other.on("late", lambda *args: late.append(args))
    try:
        await main.connect()
        await other.connect()
        assert other.io is main.io  # one connection: what the server sends to /x comes first
        other.emit("later")
        await other.disconnect()
        assert await main.emit_with_ack("echo", 1, timeout=5) == 1  # "late" arrived before this
        await other.connect()
        assert await main.emit_with_ack("echo", 2, timeout=5) == 2
        assert late == []
    finally:
        await other.disconnect()
        await main.disconnect()
        await server.close()


# -- reconnection after a server restart -----------------------------------------------------


async def check_reconnection(
    c: aiosio.Client,
    rec: Recorder,
    kill: Callable[[], Awaitable[None]],
    restart: Callable[[], Awaitable[Backend]],
) -> Backend:
    """Kill the server under a connected client, emit while it is gone, restart it on the same
    port; check the manager's and the socket's events and the buffered emits."""
    assert rec.names("socket") == ["connect"]
    await kill()
    await until(lambda: not c.connected, what="the client sees the server gone")
    # Emitted while disconnected: buffered, sent once after the reconnection.
    for i in range(3):
        c.emit("note", i)
    late = asyncio.ensure_future(c.emit_with_ack("echo", "late"))
    await until(lambda: "reconnect_error" in rec.names("io"), what="a failed reconnect attempt")
    server = await restart()
    await until(lambda: c.connected, 10.0, "reconnected")
    assert await asyncio.wait_for(late, 5) == "late"
    await server.wait("event", 3, event="note")
    assert server.events("note") == [[0], [1], [2]]
    assert server.events("echo") == [["late"]]

    attempts = [e[2] for e in rec.of("io", "reconnect_attempt")]
    n = len(attempts)
    # As socket.io-client: every failed attempt is also a connect_error of the (not connected)
    # socket, with the same error as the manager's reconnect_error.
    assert rec.names("socket") == ["connect", "disconnect"] + ["connect_error"] * (n - 1) + [
        "connect"
    ]
    assert rec.of("socket", "disconnect")[0][2] == "transport close"
    assert [e[2] for e in rec.of("socket", "connect_error")] == [
        e[2] for e in rec.of("io", "reconnect_error")
    ]
    assert n >= 2
    assert attempts == list(range(1, n + 1))
    expected: list[tuple[Any, ...]] = []
    for i in range(1, n):
        expected += [("reconnect_attempt", i), ("reconnect_error",)]
    expected += [("reconnect_attempt", n), ("open",), ("reconnect", n)]
    manager = [e[1:] for e in rec.of("io")]
    assert manager[0][0] == "open"  # the first connection
    assert manager[1][0] == "close"
    assert manager[1][1] == "transport close"
    got = [e if e[0] != "reconnect_error" else (e[0],) for e in manager[2:]]
    assert got == expected, rec.log
    for error in [e[2] for e in rec.of("io", "reconnect_error")]:
        assert isinstance(error, aiosio.ConnectError)
        assert error.stage is aiosio.Stage.TCP
    return server


async def test_manager_and_socket_states_through_a_reconnection(
    proxy: Callable[[int], Awaitable[tuple[Proxy, str]]], caplog: pytest.LogCaptureFixture
) -> None:
    """``client.io.state`` (ManagerState) and ``client.state`` (SocketState) as each event of a
    connection, a network failure, a refused attempt, the reconnection and a disconnect sees
    them; no transition outside the tables (a LocalProtocolError raised in a callback would only
    be logged)."""
    caplog.set_level(logging.ERROR)
    server = await aiosio.serve(aiosio.Server(), "127.0.0.1", 0)
    tcp, url = await proxy(server.port)
    c = aiosio.Client(url, force_new=True, **FAST)
    seen: list[tuple[str, ManagerState, SocketState]] = []

    def note(event: str) -> Callable[..., None]:
        return lambda *args: seen.append((event, c.io.state, c.state))

    for event in ("open", "close", "reconnect_attempt", "reconnect_error", "reconnect"):
        c.io.on(event, note(event))
    for event in ("connect", "connect_error", "disconnect"):
        c.on(event, note(event))
    assert (c.io.state, c.state) == (ManagerState.IDLE, SocketState.DISCONNECTED)
    try:
        await c.connect()
        tcp.refuse = True
        tcp.drop()
        await until(lambda: any(e[0] == "reconnect_error" for e in seen), what="a refused attempt")
        tcp.refuse = False
        await until(lambda: c.connected, what="reconnected")
    finally:
        await c.disconnect()
        await server.close()
    assert (c.io.state, c.state) == (ManagerState.STOPPED, SocketState.DISCONNECTED)
    first_error = next(i for i, e in enumerate(seen) if e[0] == "reconnect_error")
    last_error = max(i for i, e in enumerate(seen) if e[0] == "reconnect_error")
    m, s = ManagerState, SocketState
    assert seen[: first_error + 1] == [
        ("open", m.OPEN, s.CONNECTING),
        ("connect", m.OPEN, s.CONNECTED),
        ("close", m.IDLE, s.CONNECTED),
        ("disconnect", m.IDLE, s.CONNECTING),
        ("reconnect_attempt", m.RECONNECT_WAIT, s.CONNECTING),
        ("connect_error", m.RECONNECT_WAIT, s.CONNECTING),
        ("reconnect_error", m.RECONNECT_WAIT, s.CONNECTING),
    ]
    assert seen[last_error + 1 :] == [
        ("reconnect_attempt", m.RECONNECT_WAIT, s.CONNECTING),
        ("open", m.OPEN, s.CONNECTING),
        ("reconnect", m.OPEN, s.CONNECTING),
        ("connect", m.OPEN, s.CONNECTED),
        ("close", m.STOPPED, s.DISCONNECTING),
        ("disconnect", m.STOPPED, s.DISCONNECTED),
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records


async def test_reconnects_after_node_server_restart() -> None:
    port = free_port()
    options = node_options(transports=("websocket",))
    servers = [await NodeServer(port, options, 0).start()]
    clients = Clients()
    try:
        c = clients(f"http://127.0.0.1:{port}", transports=["websocket"])
        rec = Recorder(c)
        await c.connect()

        async def restart() -> Backend:
            servers.append(await NodeServer(port, options, 0).start())
            return servers[-1]

        server = await check_reconnection(c, rec, servers[0].kill, restart)
        await server.wait("connection", id=c.id)
    finally:
        await clients.close()
        for s in servers:
            await s.close()


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_reconnects_after_native_server_restart(transports: list[str]) -> None:
    port = free_port()
    running: list[aiosio.NativeServer] = []
    clients = Clients()

    async def start() -> Backend:
        backend = PythonServer("native")
        running.append(await aiosio.serve(backend.sio, "127.0.0.1", port))
        backend.url = f"http://127.0.0.1:{port}"
        return backend

    try:
        first = await start()
        c = clients(first.url, transports=transports)
        rec = Recorder(c)
        await c.connect()
        await until(lambda: c.io.engine is not None and c.io.engine.transport == "websocket")

        async def stop() -> None:
            await running[0].close()

        await check_reconnection(c, rec, stop, start)
    finally:
        await clients.close()
        for server in running:
            await server.close()


# -- connection state recovery -----------------------------------------------------------------


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_connection_state_recovery_after_a_transport_drop(
    backend: StartFn,
    proxy: Callable[[int], Awaitable[tuple[Proxy, str]]],
    clients: Clients,
    transports: list[str],
) -> None:
    server = await backend(recovery=True, ping=(1.0, 1.0))
    tcp, url = await proxy(port_of(server.url))
    c = clients(url, transports=transports)
    rec = Recorder(c)
    missed: list[tuple[Any, ...]] = []
    armed: list[tuple[Any, ...]] = []
    armed_all: list[tuple[Any, ...]] = []
    said: list[tuple[Any, ...]] = []
    said_all: list[tuple[Any, ...]] = []
    any_said: list[tuple[Any, ...]] = []

    @c.on("missed")
    def on_missed(n: int, extra: Any = None) -> None:  # an optional parameter gets no offset
        missed.append((n,) if extra is None else (n, extra))

    c.on("armed", lambda n: armed.append((n,)))
    c.on("armed", lambda *args: armed_all.append(args))  # *args: everything, as in node
    c.on("said", lambda user, text: said.append((user, text)))
    c.on("said", lambda *args: said_all.append(args))
    c.on_any(lambda event, *args: any_said.append(args) if event == "said" else None)
    await c.connect()
    sid = c.id
    assert not c.recovered
    assert not (await server.wait("connection", id=sid))["recovered"]
    # "armed" (an event with an offset, so the client has one to send back); on the drop the
    # server emits "missed" 0..4 to the socket's room while it is disconnected, then 5.
    c.emit("arm", 5)
    await until(lambda: armed == [(5,)], what="armed, without the offset")
    await until(lambda: len(armed_all) == 1)
    assert armed_all[0][0] == 5
    assert len(armed_all[0]) == 2
    assert isinstance(armed_all[0][1], str)  # the offset
    # A volatile event carries no offset: its last string argument reaches the handlers whole
    # (before: taken for the offset, "hello" was lost), and it is not taken for the offset
    # (recovery below still works).
    # (over polling, a volatile packet is dropped while no GET waits: sent again until one
    # arrives, at most 20 times)
    for _ in range(20):
        server.emit_to(sid, "said", "user", "hello", volatile=True)
        await server.wait("emitted", to=sid, event="said")
        for _ in range(25):
            if said:
                break
            await asyncio.sleep(0.01)
        if said:
            break
    await until(lambda: len(any_said) == len(said_all) == len(said), what="every handler")
    assert said
    assert set(said) == set(said_all) == set(any_said) == {("user", "hello")}

    tcp.refuse = True
    tcp.drop()
    # (over polling, a server with no request in flight at the drop sees a ping timeout)
    line = await server.wait("disconnect", id=sid, timeout=10.0)
    assert line["reason"] in RECOVERABLE
    await server.wait("burst", id=sid)
    # and one more, emitted to its room from outside (node: a command on stdin)
    server.emit_to(sid, "missed", 5, {"bin": b"\x01"})
    await server.wait("emitted", to=sid)
    await until(lambda: not c.connected)
    await until(lambda: "reconnect_error" in rec.names("io"), what="a refused reconnection")
    assert missed == []
    tcp.refuse = False

    await until(lambda: c.connected, 10.0, "reconnected")
    assert c.recovered is True
    assert c.id == sid
    assert (await server.wait("connection", 2, id=sid))["recovered"] is True
    await until(lambda: len(missed) == 6)
    await asyncio.sleep(0.2)  # nothing more comes
    # once, in order, without the offset
    assert missed == [(0,), (1,), (2,), (3,), (4,), (5, {"bin": b"\x01"})]
    reason = rec.of("socket", "disconnect")[0][2]
    assert reason in ("transport close", "transport error")
    # (the refused attempts were connect_errors of the not connected socket)
    assert [n for n in rec.names("socket") if n != "connect_error"] == [
        "connect",
        "disconnect",
        "connect",
    ]
    assert rec.names("socket").count("connect_error") == rec.names("io").count("reconnect_error")
    assert await c.emit_with_ack("echo", "after") == "after"


async def test_recovery_offset_is_not_taken_from_events_with_an_ack(
    backend: StartFn, clients: Clients
) -> None:
    server = await backend(recovery=True)
    c = clients(server.url, transports=["websocket"])
    got: list[tuple[Any, ...]] = []

    @c.on("question")
    def question(*args: Any) -> str:
        got.append(args)
        return "answer"

    await c.connect()
    assert await c.emit_with_ack_all("ask", "question", ["what?"]) == [None, "answer"]
    assert got == [("what?",)]


# -- retries -----------------------------------------------------------------------------------


async def test_retries_deliver_each_message_once_in_order(
    backend: StartFn, clients: Clients
) -> None:
    server = await backend(drop_acks=2)
    c = clients(server.url, retries=3, ack_timeout=0.5)
    await c.connect()
    started = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(c.emit_with_ack("count", i) for i in range(5))), 10
    )
    waited = time.monotonic() - started
    # Message 0 was sent three times (two acks dropped, 0.5 s each), the others once.
    assert results == [
        {"id": 0, "dup": True},
        {"id": 1, "dup": False},
        {"id": 2, "dup": False},
        {"id": 3, "dup": False},
        {"id": 4, "dup": False},
    ]
    assert waited > 0.9  # two ack timeouts of 0.5 s before the third try (never early)
    counted = server.of("count")
    assert [line["msg"] for line in counted] == [0, 0, 0, 1, 2, 3, 4]  # one in flight, in order
    assert [line["dropped"] for line in counted] == [True, True] + [False] * 5
    first_time = [line["msg"] for line in counted if not line["dup"]]
    assert first_time == [0, 1, 2, 3, 4]  # the idempotent handler processed each exactly once


async def test_retries_give_up_after_the_last_try(backend: StartFn, clients: Clients) -> None:
    server = await backend(drop_acks=10)
    c = clients(server.url, retries=1, ack_timeout=0.3)
    await c.connect()
    with pytest.raises(aiosio.AckTimeout):
        await asyncio.wait_for(c.emit_with_ack("count", "x"), 5)
    assert [line["msg"] for line in server.of("count")] == ["x", "x"]  # retries + 1 tries


# -- backoff ------------------------------------------------------------------------------------


def reference_durations(
    min_s: float, max_s: float, jitter: float, rands: list[float], n: int
) -> list[float]:
    """socket.io-client's Backoff.duration(), written out again from contrib/backo2.ts."""
    ms_min = min_s * 1000 or 100
    ms_max = max_s * 1000 or 10000
    jitter = jitter if 0 < jitter <= 1 else 0
    out = []
    for attempt in range(n):
        ms = ms_min * 2.0**attempt
        if jitter:
            rand = rands[attempt % len(rands)]
            deviation = math.floor(rand * jitter * ms)
            ms = ms - deviation if math.floor(rand * 10) % 2 == 0 else ms + deviation
        out.append(math.trunc(min(ms, ms_max)) / 1000)
    return out


def cycling(values: list[float]) -> Callable[[], float]:
    it: Iterator[float] = iter(values * 100)
    return lambda: next(it)


BACKOFF_CASES = [
    (1.0, 5.0, 0.5, [0.3]),
    (1.0, 5.0, 0.5, [0.2]),
    (1.0, 5.0, 0.5, [0.0, 0.99, 0.15, 0.5, 0.77, 0.01, 0.42, 0.6]),
    (0.1, 0.3, 0.5, [0.3, 0.8]),
    (0.5, 30.0, 1.0, [0.95, 0.05, 0.55]),
    (1.0, 5.0, 0.0, [0.3]),
    (1.0, 5.0, 1.5, [0.3]),  # jitter out of (0, 1]: none
    (0.0, 0.0, 0.5, [0.7]),  # 0 means the defaults (100 ms, 10 s)
    (0.25, 4.0, 0.33, [0.123, 0.456, 0.789]),
]


def js_durations(cases: list[dict[str, Any]]) -> list[list[int]]:
    """The reference Backoff (the npm build), Math.random stubbed, one list per case."""
    import subprocess

    module = (
        JS_DIR / "node_modules" / "socket.io-client" / "build" / "cjs" / "contrib" / "backo2.js"
    )
    script = (
        f"const {{ Backoff }} = require({json.dumps(str(module))});"
        "const cases = JSON.parse(process.argv[1]); const out = [];"
        "for (const c of cases) { let i = 0; Math.random = () => c.rands[i++ % c.rands.length];"
        "  const b = new Backoff({ min: c.min, max: c.max, jitter: c.jitter });"
        "  if (c.start) b.attempts = c.start;"
        "  out.push(Array.from({ length: c.n }, () => b.duration())); }"
        "console.log(JSON.stringify(out));"
    )
    done = subprocess.run(
        [_node(), "-e", script, json.dumps(cases)],
        capture_output=True,
        check=True,
        timeout=20,
        cwd=JS_DIR,
    )
    return list(json.loads(done.stdout))


def test_backoff_matches_the_reference() -> None:
    n = 12
    cases = []
    for min_s, max_s, jitter, rands in BACKOFF_CASES:
        ours = Backoff(min_s, max_s, jitter, rand=cycling(rands))
        durations = [ours.duration() for _ in range(n)]
        assert durations == reference_durations(min_s, max_s, jitter, rands, n)
        assert ours.attempts == n
        cases.append(
            {"min": min_s * 1000, "max": max_s * 1000, "jitter": jitter, "rands": rands, "n": n}
        )
    expected = js_durations(cases)
    for (min_s, max_s, jitter, rands), js_ms in zip(BACKOFF_CASES, expected, strict=True):
        ours = Backoff(min_s, max_s, jitter, rand=cycling(rands))
        assert [round(ours.duration() * 1000) for _ in range(n)] == js_ms, (min_s, jitter, rands)
    # The documented example: Backoff(1, 5, 0.5) with random() = 0.3 (3 is odd: plus).
    fixed = Backoff(1.0, 5.0, 0.5, rand=lambda: 0.3)
    assert [fixed.duration() for _ in range(5)] == [1.15, 2.3, 4.6, 5.0, 5.0]
    fixed.reset()
    assert fixed.attempts == 0
    assert fixed.duration() == 1.15


def test_manager_uses_the_backoff_for_reconnection_delays() -> None:
    c = aiosio.Client(
        "http://127.0.0.1:9",
        reconnection_delay=0.2,
        reconnection_delay_max=1.0,
        randomization_factor=0.0,
        force_new=True,
    )
    assert [c.io.backoff.duration() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_survives_a_very_long_outage() -> None:
    start, n = 1010, 10
    cases = [
        {"min": 1000, "max": 5000, "jitter": 0.5, "rands": [0.3], "n": n, "start": start},
        {"min": 1000, "max": 5000, "jitter": 0, "rands": [0.3], "n": n, "start": start},
    ]
    expected = js_durations(cases)
    assert expected[0] == expected[1] == [5000] * n
    for case, js_ms in zip(cases, expected, strict=True):
        ours = Backoff(1.0, 5.0, float(case["jitter"]), rand=lambda: 0.3)
        ours.attempts = start
        assert [round(ours.duration() * 1000) for _ in range(n)] == js_ms


async def test_reconnection_goes_on_after_a_very_long_outage() -> None:
    c = aiosio.Client(
        f"http://127.0.0.1:{free_port()}", reconnection_delay=0.05, reconnection_delay_max=0.1
    )
    rec = Recorder(c)

    def long_outage(attempt: int) -> None:
        if attempt == 2:
            c.io.backoff.attempts = 1020  # as after ~1020 failed attempts

    c.io.on("reconnect_attempt", long_outage)
    try:
        with pytest.raises(aiosio.ConnectError):
            await c.connect()
        await until(lambda: len(rec.of("io", "reconnect_attempt")) >= 4, 3.0, "more attempts")
    finally:
        await c.disconnect()


# -- SyncClient ---------------------------------------------------------------------------------


async def test_sync_client(backend: StartFn) -> None:
    server = await backend()

    def scenario() -> tuple[Any, ...]:
        client = aiosio.SyncClient(server.url, reconnection_delay=0.1)
        notes: list[Any] = []
        client.on("armed", notes.append)
        try:
            client.connect(timeout=5)
            assert client.connected
            sid = client.id
            reply = client.call("echo", {"b": b"\x00"}, 2, timeout=5)
            client.emit("arm", 7)
            deadline = time.monotonic() + 5
            while not notes and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            client.disconnect()
        return sid, reply, notes, client.connected

    # Whatever a SyncClient's thread leaves behind is contained here (a regression shows in
    # test_sync_client_disconnect_closes_everything).
    with contained_leaks():
        sid, reply, notes, connected = await asyncio.wait_for(asyncio.to_thread(scenario), 20)
    assert reply == {"b": b"\x00"}
    assert notes == [7]
    assert connected is False
    await server.wait("disconnect", id=sid, reason="client namespace disconnect")
    assert server.events("echo", id=sid) == [[{"b": b"\x00"}, 2]]

    # As a context manager.
    def scoped() -> Any:
        with aiosio.SyncClient(server.url + "/admin") as client:
            return client.call("echo", "ctx", timeout=5)

    with contained_leaks():
        assert await asyncio.wait_for(asyncio.to_thread(scoped), 20) == "ctx"


@contextlib.contextmanager
def contained_leaks() -> Iterator[list[str]]:
    """Collect what closed event loops leave behind (unclosed sockets and transports: their
    ResourceWarnings, errors for exceptions, end up in ``sys.unraisablehook`` whenever the garbage
    collector runs, in any thread) instead of failing whichever test runs at that moment."""
    found: list[str] = []
    hook = sys.unraisablehook

    def collect(unraisable: Any) -> None:
        found.append(f"{unraisable.exc_value!r} in {unraisable.object!r}")

    sys.unraisablehook = collect
    try:
        yield found
    finally:
        gc.collect()
        sys.unraisablehook = hook


async def test_sync_client_disconnect_closes_everything() -> None:
    lines: list[Line] = []
    server = await aiosio.serve(python_server(lines), "127.0.0.1", 0)
    # Behind a proxy that makes the server's answers slow once connected: the close takes a
    # round trip that disconnect() must wait for.
    tcp = Proxy(server.port)
    url = await tcp.start()

    def scenario(transports: list[str]) -> Any:
        tcp.delay = 0.0
        client = aiosio.SyncClient(url, transports=transports)
        try:
            client.connect(timeout=5)
            return client.call("echo", "hi", timeout=5)
        finally:
            tcp.delay = 0.3
            client.disconnect()

    with contained_leaks() as leaks:
        try:
            for transports in (["polling"], ["websocket"]):
                assert await asyncio.wait_for(asyncio.to_thread(scenario, transports), 20) == "hi"
        finally:
            await tcp.close()
            await server.close()
        gc.collect()
    assert leaks == []


async def test_two_sync_clients_of_one_server() -> None:
    lines: list[Line] = []
    server = await aiosio.serve(python_server(lines), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    result: dict[str, Any] = {}

    def scenario() -> None:
        # (WebSocket only: nothing then ever wakes the second loop; over polling its requests
        # would run on the second loop with the first loop's connections, which sometimes works)
        main = aiosio.SyncClient(url, transports=["websocket"])
        admin = aiosio.SyncClient(url + "/admin", transports=["websocket"])
        try:
            main.connect(timeout=5)
            result["main"] = main.call("echo", "main", timeout=3)
            admin.connect(timeout=3)
            result["admin"] = admin.call("echo", "admin", timeout=3)
        except Exception as exc:
            result["error"] = exc
        finally:
            admin.disconnect()
            main.disconnect()

    with contained_leaks():
        thread = threading.Thread(target=scenario)
        thread.start()
        try:
            await until(lambda: not thread.is_alive(), 20, "the sync clients' thread")
        finally:
            await server.close()
    assert result.get("error") is None, repr(result.get("error"))
    assert result == {"main": "main", "admin": "admin"}


async def test_polling_disconnect_sends_close_before_dropping_the_poll(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over polling, the close packet reaches the server while the waiting GET is still open
    (as the reference client does): the server closes the session for "transport close" and
    logs nothing. Dropping the GET first made it close for "transport error" and then refuse
    the close packet with "Session ID unknown" at WARNING, on every disconnect."""
    caplog.set_level(logging.INFO, logger="aiosio")
    sio = aiosio.Server()
    reasons: list[str] = []
    sio.engine.on("connection", lambda conn: conn.on("close", lambda r, d=None: reasons.append(r)))
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    try:
        for _ in range(3):
            client = aiosio.Client(
                f"http://127.0.0.1:{server.port}", transports=["polling"], reconnection=False
            )
            await client.connect()
            await asyncio.sleep(0.05)  # the client's GET is waiting on the server
            await client.disconnect()
        await until(lambda: len(reasons) == 3, what="three sessions closed")
    finally:
        await server.close()
    assert reasons == ["transport close"] * 3
    server_lines = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("aiosio.server", "aiosio.engine")) and r.levelno >= logging.WARNING
    ]
    assert server_lines == []


async def test_managers_go_with_their_event_loop() -> None:
    """Clients to one server share a Manager per event loop (multiplexing). A program that runs
    many loops (asyncio.run in a loop, a SyncClient per task) must not keep every Manager it
    ever made: the cache holds them only as long as their loop lives."""
    from aiosio.client import multiplex

    server = await aiosio.serve(aiosio.Server(), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    managers: list[weakref.ref[Any]] = []
    loops: list[weakref.ref[Any]] = []

    async def one() -> None:
        client = aiosio.Client(url, transports=["websocket"], reconnection=False)
        managers.append(weakref.ref(client.io))
        loop = asyncio.get_running_loop()
        loops.append(weakref.ref(loop))
        connected = loop.create_future()  # a handler holding something of its loop
        client.on("connect", lambda: connected.done() or connected.set_result(None))
        await client.connect()
        await connected
        await client.disconnect()

    def several_loops() -> None:
        for _ in range(3):
            asyncio.run(one())

    try:
        await asyncio.to_thread(several_loops)
    finally:
        await server.close()
    gc.collect()
    assert len(managers) == 3
    assert [ref() for ref in managers] == [None, None, None]
    assert [ref() for ref in loops] == [None, None, None]
    assert not any(ref() in multiplex.cached_loops() for ref in loops)

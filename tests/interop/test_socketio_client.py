"""Interop with the official ``socket.io-client`` from npm (4.8, and 2.5 for protocol 4), against
both servers and every transport mode.

Each test runs ``tests/js/sio_client.mjs``: one Node process drives one or more client sockets,
prints one JSON object per line for everything they observe, and does what the server tells it
(the ``cmd`` event). Every client socket announces itself with ``ready({name, ...})`` once
connected (and upgraded, in the upgrade mode), and answers every acknowledgement request with
``ack(name, ...the event's arguments)``. The test is the script: it waits for the clients, acts
on the server, then checks what both sides saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator
from collections.abc import Callable
from typing import Any
from typing import ClassVar

import pytest
from node_procs import js
from node_procs import py

import aiosio
from aiosio import Server
from aiosio import Socket
from conftest import JS_DIR
from conftest import ServeFn
from conftest import _node

pytestmark = pytest.mark.interop

SCRIPT = "sio_client.mjs"

TRANSPORTS: dict[str, list[str]] = {
    "polling": ["--transports", "polling"],
    "websocket": ["--transports", "websocket"],
    "upgrade": ["--transports", "polling,websocket", "--upgrade", "true"],
}
# The transport of the first CONNECT (in the upgrade mode the upgrade may finish first), and the
# one the socket uses once ready.
FIRST_TRANSPORT = {
    "polling": {"polling"},
    "websocket": {"websocket"},
    "upgrade": {"polling", "websocket"},
}
READY_TRANSPORT = {"polling": "polling", "websocket": "websocket", "upgrade": "websocket"}

Line = dict[str, Any]


@pytest.fixture(params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- helpers -------------------------------------------------------------------------------------


def emit_cmd(event: str, *args: Any, ack: bool = False) -> dict[str, Any]:
    return {"do": "emit", "event": event, "args": js(list(args)), "ack": ack}


def of(lines: list[Line], kind: str, socket: str | None = None) -> list[Line]:
    return [
        line
        for line in lines
        if line["type"] == kind and (socket is None or line.get("socket") == socket)
    ]


def events(lines: list[Line], socket: str, *, strip_offset: bool = False) -> list[list[Any]]:
    """``[event, *args]`` of every event ``socket`` received, commands excluded; bytes decoded.
    With ``strip_offset``, the offset connection state recovery appends is dropped."""
    out = []
    for line in of(lines, "event", socket):
        if line["event"] == "cmd":
            continue
        args = py(line["args"])
        if strip_offset:
            assert isinstance(args[-1], str), line
            args = args[:-1]
        out.append([line["event"], *args])
    return out


def names(lines: list[Line], socket: str) -> list[str]:
    return [e[0] for e in events(lines, socket)]


def timeline(lines: list[Line], socket: str) -> list[str]:
    """What happened to ``socket``, in order: connect / disconnect:REASON / event names."""
    out = []
    for line in lines:
        if line.get("socket") != socket:
            continue
        if line["type"] == "event":
            if line["event"] != "cmd":
                out.append(line["event"])
        elif line["type"] == "disconnect":
            out.append(f"disconnect:{line['reason']}")
        elif line["type"] in ("connect", "connect_error", "error"):
            out.append(line["type"])
    return out


class Peers:
    """The server side of the client sockets of one namespace (or dynamic namespace family):
    each socket by the name it announced in ``ready``, and the disconnect reasons."""

    def __init__(self, nsp: Any) -> None:
        self.sockets: dict[str, Socket] = {}
        self.ready: list[tuple[str, dict[str, Any]]] = []
        self.disconnects: dict[str, list[str]] = {}
        self.on_disconnect: Callable[[Socket, str], None] | None = None
        nsp.on("ready", self._ready)
        nsp.on("disconnect", self._disconnect)

    def _ready(self, socket: Socket, info: dict[str, Any]) -> None:
        self.sockets[info["name"]] = socket
        self.ready.append((info["name"], info))

    def _disconnect(self, socket: Socket, reason: str, _description: Any) -> None:
        name = self.name_of(socket)
        self.disconnects.setdefault(name, []).append(reason)
        if self.on_disconnect is not None:
            self.on_disconnect(socket, reason)

    def name_of(self, socket: Socket) -> str:
        for name, known in self.sockets.items():
            if known is socket or known.id == socket.id:
                return name
        return f"?{socket.id}"

    def __getitem__(self, name: str) -> Socket:
        return self.sockets[name]


class Node:
    """One running ``sio_client.mjs`` (killed at the end of the test if still running)."""

    running: ClassVar[list[Node]] = []

    def __init__(self, url: str, *args: str, timeout: float = 8.0) -> None:
        self.args = ["--url", url, *args, "--timeout", str(int(timeout * 1000))]
        self.proc: asyncio.subprocess.Process | None = None
        self.task = asyncio.create_task(self._run(timeout + 5))
        Node.running.append(self)

    async def _run(self, timeout: float) -> list[Line]:
        self.proc = await asyncio.create_subprocess_exec(
            _node(),
            str(JS_DIR / SCRIPT),
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(JS_DIR),
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        try:
            stdout, stderr = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            self.proc.kill()
            stdout, stderr = await self.proc.communicate()
            pytest.fail(f"{SCRIPT} ran over {timeout}s\n{stdout.decode()}\n{stderr.decode()}")
        if self.proc.returncode != 0:
            pytest.fail(
                f"{SCRIPT} {' '.join(self.args)} exited {self.proc.returncode}\n"
                f"stdout:\n{stdout.decode()}\nstderr:\n{stderr.decode()}"
            )
        return [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; fail at once if the script ends first."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.task.done():
                lines = self.task.result()  # raises (pytest.fail) if the script failed
                pytest.fail(f"the script ended first: {json.dumps(lines, indent=1)}")
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout}s ({' '.join(self.args)})")
            await asyncio.sleep(0.01)

    async def ready(self, peers: Peers, *names: str, timeout: float = 5.0) -> list[Socket]:
        await self.until(lambda: all(n in peers.sockets for n in names), timeout)
        return [peers[n] for n in names]

    async def done(self) -> list[Line]:
        return await self.task

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        with contextlib.suppress(BaseException):
            await self.task


@pytest.fixture(autouse=True)
async def _kill_leftover_scripts() -> AsyncIterator[None]:
    yield
    while Node.running:
        await Node.running.pop().kill()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def sockets_args(*specs: str) -> list[str]:
    out = []
    for spec in specs:
        out += ["--socket", spec]
    return out


# -- connecting -----------------------------------------------------------------------------------


async def test_connect_main_and_custom_namespace(serve: ServeFn, transport: str) -> None:
    sio = Server()
    main, admin = Peers(sio), Peers(sio.of("/admin"))
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport], *sockets_args("m=/", "a=/admin"))
    sm, sa = await node.ready(main, "m") + await node.ready(admin, "a")

    assert sm.nsp.name == "/"
    assert sa.nsp.name == "/admin"
    assert sm.conn is not sa.conn  # one Manager (Engine.IO connection) each
    for s in (sm, sa):
        assert s.connected
        assert s.conn.transport == READY_TRANSPORT[transport]
        assert s.handshake.auth == {}
        assert s.handshake.query["EIO"] == "4"
        assert s.rooms == {s.id}
    assert main.ready == [
        ("m", {"name": "m", "transport": READY_TRANSPORT[transport], "recovered": False})
    ]
    sm.emit("cmd", {"do": "disconnect"})
    sa.emit("cmd", {"do": "disconnect"})
    lines = await node.done()

    for name, s in (("m", sm), ("a", sa)):
        (connect,) = of(lines, "connect", name)
        assert connect["id"] == s.id
        assert connect["transport"] in FIRST_TRANSPORT[transport]
        assert connect["engine"] == s.conn.id
        assert connect["recovered"] is False
        assert of(lines, "disconnect", name) == [
            {"type": "disconnect", "socket": name, "reason": "io client disconnect"}
        ]
    assert len(of(lines, "upgrade")) == (2 if transport == "upgrade" else 0)
    await until(lambda: len(main.disconnects) + len(admin.disconnects) == 2)
    assert main.disconnects == {"m": ["client namespace disconnect"]}
    assert admin.disconnects == {"a": ["client namespace disconnect"]}
    assert not sm.connected
    assert not sio.sockets.sockets
    assert not sio.of("/admin").sockets


async def test_dynamic_namespaces_created_on_first_connect(serve: ServeFn) -> None:
    sio = Server()
    by_regex = sio.of(re.compile(r"^/dyn-\d+$"))
    asked: list[tuple[str, dict[str, Any]]] = []

    async def matcher(name: str, auth: dict[str, Any]) -> bool:
        asked.append((name, auth))
        await asyncio.sleep(0.01)
        return name.startswith("/fn-") and auth.get("ok") is True

    by_fn = sio.of(matcher)
    connected: list[str] = []

    @by_regex.use
    def tag(socket: Socket) -> None:  # the family's middlewares run for its namespaces
        socket.data["tagged"] = socket.nsp.name

    by_regex.on("connection", lambda s: connected.append(s.nsp.name))
    by_fn.on("connection", lambda s: connected.append(s.nsp.name))
    regex_peers, fn_peers = Peers(by_regex), Peers(by_fn)
    url = await serve(sio)
    assert "/dyn-1" not in sio.namespaces

    node = Node(
        url,
        *TRANSPORTS["upgrade"],
        "--auth",
        json.dumps({"ok": True}),
        *sockets_args("r=/dyn-1", "r2=/dyn-1", "f=/fn-x", "bad=/dyn-x"),
    )
    sr, sr2 = await node.ready(regex_peers, "r", "r2")
    (sf,) = await node.ready(fn_peers, "f")
    assert sr.nsp is sio.namespaces["/dyn-1"]
    assert sr2.nsp is sr.nsp  # created once, then reused
    assert sr.nsp.name == "/dyn-1"
    assert sr.data == {"tagged": "/dyn-1"}
    assert sf.nsp is sio.namespaces["/fn-x"]
    assert sf.handshake.auth == {"ok": True}
    assert sf.data == {}
    assert sorted(connected) == ["/dyn-1", "/dyn-1", "/fn-x"]
    assert ("/fn-x", {"ok": True}) in asked
    assert "/dyn-x" not in sio.namespaces
    # A dynamic namespace is a namespace like any other: broadcast to it.
    sio.of("/dyn-1").emit("hello", "regex")
    sio.of("/fn-x").emit("hello", "fn")
    sio.of("/dyn-1").emit("cmd", {"do": "disconnect"})
    sf.emit("cmd", {"do": "disconnect"})
    lines = await node.done()

    assert events(lines, "r") == [["hello", "regex"]]
    assert events(lines, "r2") == [["hello", "regex"]]
    assert events(lines, "f") == [["hello", "fn"]]
    assert of(lines, "connect_error", "bad") == [
        {"type": "connect_error", "socket": "bad", "message": "Invalid namespace", "data": None}
    ]
    assert of(lines, "connect", "bad") == []


async def test_unknown_namespace_is_refused(serve: ServeFn, transport: str) -> None:
    sio = Server()
    sio.of("/known")
    url = await serve(sio)
    lines = await Node(url, *TRANSPORTS[transport], "--namespace", "/nope").done()
    assert [line for line in lines if line["type"] != "upgrade"] == [
        {"type": "connect_error", "socket": "c0", "message": "Invalid namespace", "data": None}
    ]
    assert "/nope" not in sio.namespaces


# -- auth and middlewares -------------------------------------------------------------------------


async def test_handshake_auth_reaches_the_server(serve: ServeFn) -> None:
    sio = Server()
    peers = Peers(sio.of("/private"))
    auth = {"token": "abc", "n": 1, "nested": {"ünï": [1, None, True]}}
    url = await serve(sio)
    node = Node(
        url,
        *TRANSPORTS["upgrade"],
        "--namespace",
        "/private",
        "--auth",
        json.dumps(auth),
        "--query",
        json.dumps({"room": "lobby", "x": "1"}),
    )
    (s,) = await node.ready(peers, "c0")
    assert s.handshake.auth == auth
    # The client's query is on the Engine.IO request: handshake.query.
    assert s.handshake.query["room"] == "lobby"
    assert s.handshake.query["x"] == "1"
    assert s.handshake.query["transport"] == "polling"
    assert s.handshake.query["EIO"] == "4"
    assert s.handshake.address == "127.0.0.1"
    assert s.handshake.url.startswith("/socket.io/?")
    s.emit("cmd", {"do": "disconnect"})
    lines = await node.done()
    assert of(lines, "connect", "c0")[0]["id"] == s.id


async def test_middleware_refusal_reaches_connect_error(serve: ServeFn) -> None:
    sio = Server()
    seen: list[tuple[str, bool, set[str]]] = []

    @sio.of("/with-data").use
    def refuse_with_data(socket: Socket) -> None:
        seen.append((socket.nsp.name, socket.connected, socket.rooms))
        raise aiosio.ConnectionRefused("not authorized", data={"code": 42, "why": ["é"]})

    @sio.of("/no-data").use
    async def refuse(socket: Socket) -> None:
        await asyncio.sleep(0.01)
        raise aiosio.ConnectionRefused("go away")

    url = await serve(sio)
    lines = await Node(
        url, *TRANSPORTS["upgrade"], *sockets_args("d=/with-data", "n=/no-data")
    ).done()
    assert of(lines, "connect_error", "d") == [
        {
            "type": "connect_error",
            "socket": "d",
            "message": "not authorized",
            "data": {"code": 42, "why": ["é"]},
        }
    ]
    assert of(lines, "connect_error", "n") == [
        {"type": "connect_error", "socket": "n", "message": "go away", "data": None}
    ]
    assert of(lines, "connect") == []
    # Inside a middleware the socket is not connected yet and in no room.
    assert seen == [("/with-data", False, set())]
    assert not sio.of("/with-data").sockets
    assert not sio.of("/with-data").adapter.rooms


async def test_middleware_accepts_after_an_await(serve: ServeFn) -> None:
    sio = Server()
    peers = Peers(sio)
    order: list[str] = []

    @sio.use
    async def first(socket: Socket) -> None:
        order.append("first")
        await asyncio.sleep(0.05)
        socket.data["user"] = socket.handshake.auth["user"]

    @sio.use
    def second(socket: Socket) -> None:
        order.append(f"second:{socket.data['user']}")

    sio.on("connection", lambda s: order.append(f"connection:{s.data['user']}"))
    url = await serve(sio)
    node = Node(url, *TRANSPORTS["upgrade"], "--auth", json.dumps({"user": "ada"}))
    (s,) = await node.ready(peers, "c0")
    assert order == ["first", "second:ada", "connection:ada"]
    assert s.data == {"user": "ada"}
    s.emit("cmd", {"do": "disconnect"})
    lines = await node.done()
    assert len(of(lines, "connect", "c0")) == 1
    assert of(lines, "connect_error") == []


# -- events and acknowledgements ------------------------------------------------------------------

UNICODE = "héllo ☃ 😀 中文 \u2028"
NESTED_BINARY = {
    "a": b"\x00\x01\x02\xff",
    "list": [b"", b"\xff" * 3, {"deep": bytes(range(256))}],
    "text": "not binary",
}


def client_emits() -> list[dict[str, Any]]:
    """The client's side of the events test: what it emits (the server answers its acks)."""
    return [
        emit_cmd("echo", 1, "two", {"3": [True, None]}, UNICODE, ack=True),
        emit_cmd("binary", NESTED_BINARY, [b"\x10", b"\x20"], ack=True),
        emit_cmd("no-reply", ack=True),
        emit_cmd("slow", 0.05, ack=True),
        emit_cmd("note", "no ack wanted"),
        emit_cmd("bytes", ack=True),
    ]


def serve_events(sio_or_nsp: Any, received: list[list[Any]]) -> None:
    """The server's side: answer the client's events."""

    @sio_or_nsp.on("echo")
    def echo(socket: Socket, *args: Any) -> tuple[Any, ...]:
        received.append(["echo", *args])
        return args  # a tuple answers with several arguments

    @sio_or_nsp.on("binary")
    def binary(socket: Socket, obj: Any, pair: Any) -> dict[str, Any]:
        received.append(["binary", obj, pair])
        return {"got": obj, "pair": pair, "extra": b"\x00\xff"}

    @sio_or_nsp.on("no-reply")
    def no_reply(socket: Socket) -> None:
        received.append(["no-reply"])

    @sio_or_nsp.on("slow")
    async def slow(socket: Socket, delay: float) -> str:
        await asyncio.sleep(delay)
        received.append(["slow", delay])
        return "slept"

    @sio_or_nsp.on("note")
    def note(socket: Socket, text: str) -> str:
        received.append(["note", text])
        return "ignored: the client asked for no ack"

    @sio_or_nsp.on("bytes")
    def only_bytes(socket: Socket) -> bytes:
        received.append(["bytes"])
        return b"\x00\x01"


CLIENT_ACKS = {
    "echo": [1, "two", {"3": [True, None]}, UNICODE],
    "binary": [{"got": NESTED_BINARY, "pair": [b"\x10", b"\x20"], "extra": b"\x00\xff"}],
    "no-reply": [],
    "slow": ["slept"],
    "bytes": [b"\x00\x01"],
}


async def server_emits(s: Socket, name: str) -> list[Any]:
    """The server's emits to the client; returns the client's ack replies."""
    s.emit("plain", 1, "two", {"3": [True, None]}, UNICODE)
    s.emit("bin", NESTED_BINARY, b"\x07")
    s.emit("empty")
    first = await s.timeout(3).emit_with_ack("question", "q?")
    all_args = await s.timeout(3).emit_with_ack_all("question", "q?", {"b": b"\x09\x08"})
    assert first == name
    assert all_args == [name, "q?", {"b": b"\x09\x08"}]
    return [first, all_args]


SERVER_EVENTS = [
    ["plain", 1, "two", {"3": [True, None]}, UNICODE],
    ["bin", NESTED_BINARY, b"\x07"],
    ["empty"],
    ["question", "q?"],
    ["question", "q?", {"b": b"\x09\x08"}],
]


async def test_events_and_acks_both_ways(serve: ServeFn, transport: str) -> None:
    sio = Server()
    peers = Peers(sio)
    received: list[list[Any]] = []
    serve_events(sio, received)
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport])
    (s,) = await node.ready(peers, "c0")

    s.emit("cmd", client_emits())
    await node.until(lambda: len(received) == 6)
    await server_emits(s, "c0")
    s.emit("cmd", {"do": "disconnect"})
    lines = await node.done()

    assert sorted(received, key=lambda e: e[0]) == sorted(
        [
            ["echo", 1, "two", {"3": [True, None]}, UNICODE],
            ["binary", NESTED_BINARY, [b"\x10", b"\x20"]],
            ["no-reply"],
            ["slow", 0.05],
            ["note", "no ack wanted"],
            ["bytes"],
        ],
        key=lambda e: e[0],
    )
    acks = {line["event"]: py(line["args"]) for line in of(lines, "ack", "c0")}
    assert acks == CLIENT_ACKS
    assert events(lines, "c0") == SERVER_EVENTS
    acked = [line["acked"] for line in of(lines, "event", "c0") if line["event"] != "cmd"]
    assert acked == [False, False, False, True, True]
    assert peers.disconnects == {"c0": ["client namespace disconnect"]}


@pytest.mark.parametrize("client", ["v4", "v2"])
async def test_bursts_keep_order(serve: ServeFn, transport: str, client: str) -> None:
    """Many events at once each way (batched in one polling payload), text and binary mixed,
    unicode event names: all delivered, in order."""
    sio = Server(allow_eio3=True)
    peers = Peers(sio)
    received: list[list[Any]] = []
    sio.on("évènement ☃", lambda s, *args: received.append(list(args)))
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport], "--client", client)
    (s,) = await node.ready(peers, "c0")
    burst = [
        [i, bytes([i % 256]) * (i % 5)] if i % 3 == 0 else [i, "é" * (i % 7)] for i in range(60)
    ]
    s.emit("cmd", [emit_cmd("évènement ☃", *args) for args in burst])
    for args in burst:
        s.emit("😀 event", *args)
    await node.until(lambda: len(received) == len(burst))
    s.emit("cmd", {"do": "disconnect"})
    lines = await node.done()
    assert received == burst
    assert events(lines, "c0") == [["😀 event", *args] for args in burst]


async def test_any_listeners_and_socket_middleware(serve: ServeFn) -> None:
    sio = Server()
    peers = Peers(sio)
    incoming: list[list[Any]] = []
    outgoing: list[list[Any]] = []
    errors: list[str] = []
    handled: list[int] = []

    @sio.on("connection")
    def connection(socket: Socket) -> None:
        socket.on_any(lambda event, *args: incoming.append([event, *args]))
        socket.on_any_outgoing(lambda event, *args: outgoing.append([event, *args]))
        socket.on("error", lambda exc: errors.append(str(exc)))

        @socket.use
        async def refuse_forbidden(event: str, args: list[Any]) -> None:
            await asyncio.sleep(0)
            if event == "forbidden":
                raise ValueError(f"{event} is not allowed")

    @sio.on("allowed")
    @sio.on("forbidden")
    def handle(socket: Socket, x: int) -> str:
        handled.append(x)
        return f"ok {x}"

    url = await serve(sio)
    node = Node(url, *TRANSPORTS["upgrade"])
    (s,) = await node.ready(peers, "c0")
    s.emit("cmd", [emit_cmd("forbidden", 1, ack=True), emit_cmd("allowed", 2, ack=True)])
    await node.until(lambda: handled == [2] and len(errors) == 1)
    sio.emit("news", b"\x01")
    s.emit("cmd", {"do": "disconnect"})
    lines = await node.done()
    # onAny sees every event, before the middleware; the refused one gets no ack.
    assert incoming == [["ready", {"name": "c0", "transport": "websocket", "recovered": False}],
                        ["forbidden", 1], ["allowed", 2]]  # fmt: skip
    assert errors == ["forbidden is not allowed"]
    assert of(lines, "ack") == [
        {"type": "ack", "socket": "c0", "event": "allowed", "args": ["ok 2"]}
    ]
    assert [o[0] for o in outgoing] == ["cmd", "news", "cmd"]
    assert outgoing[1] == ["news", b"\x01"]


# -- rooms and broadcasts -------------------------------------------------------------------------

THREE = ("c0", "c1", "c2")


async def test_rooms_and_broadcast_flags(serve: ServeFn, transport: str) -> None:
    sio = Server()
    peers = Peers(sio)
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport], *sockets_args(*THREE))
    s0, s1, s2 = await node.ready(peers, *THREE)
    assert len({s0.conn.id, s1.conn.id, s2.conn.id}) == 3
    s0.join("a")
    s1.join("a", "b")
    s2.join("b")
    assert s1.rooms == {s1.id, "a", "b"}

    # volatile: delivered to every client whose transport can take it now (a long-poll GET
    # waiting, or a WebSocket with nothing queued).
    await node.until(lambda: all(s.conn.writable for s in (s0, s1, s2)))
    sio.volatile.emit("volatile", 0)

    sio.to("a").emit("to_a", 1)
    sio.in_("b").emit("in_b", 2)
    sio.to("a").to("b").emit("to_a_b", 3)  # c1, in both rooms, gets it once
    sio.to(["a", "b"]).emit("to_list", 4)
    sio.except_("a").emit("except_a", 5)
    sio.to("b").except_("a").emit("b_except_a", 6)
    sio.to("nobody").emit("to_empty_room", 7)
    s0.broadcast.emit("broadcast_from_c0", 8)
    s1.to("a").emit("to_a_from_c1", 9)  # excludes the sender
    s1.to(s2.id).emit("to_c2_id", 10)
    s0.except_("b").emit("except_b_from_c0", 11)  # neither c0 (sender) nor the "b" room
    sio.compress(False).emit("not_compressed", "x" * 2000)
    sio.local.emit("local", 12)
    sio.of("/").except_(s2.id).emit("except_c2_id", 13)
    s2.emit("direct", 14)
    s1.leave("a")
    sio.to("a").emit("to_a_after_leave", 15)
    sio.emit("cmd", {"do": "disconnect"})
    lines = await node.done()

    assert names(lines, "c0") == [
        "volatile", "to_a", "to_a_b", "to_list", "to_a_from_c1", "not_compressed", "local",
        "except_c2_id", "to_a_after_leave",
    ]  # fmt: skip
    assert names(lines, "c1") == [
        "volatile", "to_a", "in_b", "to_a_b", "to_list", "broadcast_from_c0", "not_compressed",
        "local", "except_c2_id",
    ]  # fmt: skip
    assert names(lines, "c2") == [
        "volatile", "in_b", "to_a_b", "to_list", "except_a", "b_except_a", "broadcast_from_c0",
        "to_c2_id", "not_compressed", "local", "direct",
    ]  # fmt: skip
    by_name = {e[0]: e[1:] for e in events(lines, "c2")}
    assert by_name["not_compressed"] == ["x" * 2000]
    assert by_name["to_c2_id"] == [10]
    assert all(timeline(lines, n)[-1] == "disconnect:io client disconnect" for n in THREE)


async def test_volatile_burst_keeps_only_what_the_transport_takes(
    serve: ServeFn, transport: str, server_kind: str, request: pytest.FixtureRequest
) -> None:
    """Volatile events emitted together: the reference sends the first (the transport is then
    busy: the long-poll GET is answered, or the WebSocket send is in flight until its callback)
    and drops the others; a normal event is never dropped."""
    sio = Server()
    peers = Peers(sio)
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport])
    (s,) = await node.ready(peers, "c0")
    await node.until(lambda: s.conn.writable)
    sio.volatile.emit("v1")
    sio.volatile.emit("v2")
    s.volatile.emit("v3")
    sio.emit("normal")
    await node.until(lambda: s.conn.writable)
    sio.volatile.emit("v4")
    s.emit("cmd", {"do": "disconnect"})
    lines = await node.done()
    assert names(lines, "c0") == ["v1", "normal", "v4"]


async def test_sockets_join_leave_fetch_and_disconnect_sockets(serve: ServeFn) -> None:
    sio = Server()
    peers = Peers(sio)

    @sio.on("connection")
    def connection(socket: Socket) -> None:
        socket.data["since"] = "connection"

    url = await serve(sio)
    node = Node(url, *TRANSPORTS["upgrade"], *sockets_args(*THREE))
    s0, s1, s2 = await node.ready(peers, *THREE)
    for name, s in zip(THREE, (s0, s1, s2), strict=True):
        s.data["name"] = name
    s0.join("a")
    s1.join("a")

    sio.in_("a").sockets_join("x")  # c0, c1
    sio.to("x").emit("to_x", 1)
    sio.in_(s1.id).sockets_leave("x")
    sio.to("x").emit("to_x_after_leave", 2)
    sio.except_("a").sockets_join("y")  # c2
    sio.to("y").emit("to_y", 3)

    fetched = await sio.fetch_sockets()
    assert [f.id for f in fetched] == [s0.id, s1.id, s2.id]
    assert {f.id: f.rooms for f in fetched} == {
        s0.id: {s0.id, "a", "x"},
        s1.id: {s1.id, "a"},
        s2.id: {s2.id, "y"},
    }
    assert [f.data for f in fetched] == [{"since": "connection", "name": name} for name in THREE]
    assert [f.id for f in await sio.in_("x").fetch_sockets()] == [s0.id]
    assert [f.id for f in await sio.in_("a").except_("x").fetch_sockets()] == [s1.id]
    assert await sio.in_("nobody").fetch_sockets() == []

    sio.in_("a").disconnect_sockets()  # c0, c1
    await until(lambda: len(peers.disconnects) == 2)
    assert [f.id for f in await sio.fetch_sockets()] == [s2.id]
    sio.disconnect_sockets()
    lines = await node.done()

    assert events(lines, "c0") == [["to_x", 1], ["to_x_after_leave", 2]]
    assert events(lines, "c1") == [["to_x", 1]]
    assert events(lines, "c2") == [["to_y", 3]]
    for name in THREE:
        assert of(lines, "disconnect", name) == [
            {"type": "disconnect", "socket": name, "reason": "io server disconnect"}
        ]
    await until(lambda: len(peers.disconnects) == 3)
    assert peers.disconnects == {n: ["server namespace disconnect"] for n in THREE}
    assert await sio.fetch_sockets() == []


async def test_broadcast_with_acks(serve: ServeFn, transport: str) -> None:
    sio = Server()
    peers = Peers(sio)
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport], *sockets_args(*THREE), "--silent", "c2")
    _s0, s1, s2 = await node.ready(peers, *THREE)

    # One reply per client (its first ack argument: the client's name), in arrival order.
    replies = await sio.except_(s2.id).timeout(3).emit_with_ack("q", 1, b"\x01")
    assert sorted(replies) == ["c0", "c1"]
    # c2 never answers: the others' replies and the silent socket's id.
    started = time.monotonic()
    with pytest.raises(aiosio.AckTimeout) as caught:
        await sio.timeout(0.5).emit_with_ack("q", 2)
    assert time.monotonic() - started > 0.4  # the 0.5 s given (timers are never early)
    assert sorted(caught.value.replies) == ["c0", "c1"]
    assert caught.value.missing == [s2.id]
    # No target: no reply to wait for.
    assert await sio.to("nobody").timeout(3).emit_with_ack("q", 3) == []
    # The same, one socket at a time.
    assert await s1.timeout(3).emit_with_ack("q", 4) == "c1"
    with pytest.raises(aiosio.AckTimeout):
        await s2.timeout(0.2).emit_with_ack("q", 5)
    sio.emit("cmd", {"do": "disconnect"})
    lines = await node.done()

    assert events(lines, "c0") == [["q", 1, b"\x01"], ["q", 2]]
    assert events(lines, "c1") == [["q", 1, b"\x01"], ["q", 2], ["q", 4]]
    assert events(lines, "c2") == [["q", 2], ["q", 5]]
    assert all(line["acked"] for line in of(lines, "event") if line["event"] == "q")


# -- disconnecting --------------------------------------------------------------------------------


async def test_server_side_disconnect(serve: ServeFn, transport: str) -> None:
    sio = Server()
    peers = Peers(sio)
    admin = Peers(sio.of("/admin"))
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport], "--shared", "true", *sockets_args("n=/", "a=/admin"))
    (sn,) = await node.ready(peers, "n")
    (sa,) = await node.ready(admin, "a")
    conn = sn.conn
    assert sa.conn is conn
    # Only the namespace: the Engine.IO connection (and "/admin" on it) stays.
    sn.disconnect()
    await until(lambda: "n" in peers.disconnects)
    assert conn.ready_state == "open"
    assert sa.connected
    sa.emit("still-here")
    # The namespace can be connected again on the same connection: a new socket.
    sa.emit("cmd", {"do": "connect", "socket": "n"})
    await node.until(lambda: len(peers.ready) == 2)
    sn2 = peers["n"]
    assert sn2 is not sn
    assert sn2.id != sn.id
    assert sn2.conn is conn
    # close=True: every namespace of the connection, then the connection.
    sa.disconnect(close=True)
    await until(lambda: "a" in admin.disconnects)
    lines = await node.done()
    await until(lambda: conn.ready_state == "closed")

    # As the reference: the DISCONNECT packets go first, so the reason is the namespace one.
    assert peers.disconnects["n"] == ["server namespace disconnect"] * 2
    assert admin.disconnects == {"a": ["server namespace disconnect"]}
    assert timeline(lines, "n") == ["connect", "disconnect:io server disconnect"] * 2
    assert timeline(lines, "a") == ["connect", "still-here", "disconnect:io server disconnect"]


async def test_pending_acks_fail_when_the_client_leaves(serve: ServeFn) -> None:
    # A documented deviation: the reference leaves such callbacks pending forever (or until
    # their timeout); aiosio fails them with aiosio.Disconnected.
    sio = Server()
    peers = Peers(sio)
    url = await serve(sio)
    node = Node(url, *TRANSPORTS["websocket"], "--silent", "c0")
    (s,) = await node.ready(peers, "c0")
    pending = asyncio.create_task(s.emit_with_ack("never-answered"))
    with_timeout = asyncio.create_task(s.timeout(30).emit_with_ack("never-answered"))
    await asyncio.sleep(0.05)
    s.emit("cmd", {"do": "disconnect"})
    for task in (pending, with_timeout):
        with pytest.raises(aiosio.Disconnected):
            await asyncio.wait_for(task, 5)
    lines = await node.done()
    assert names(lines, "c0") == ["never-answered", "never-answered"]


async def test_server_close(serve: ServeFn, transport: str) -> None:
    sio = Server()
    peers = Peers(sio)
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport], *sockets_args("c0", "c1"), "--reconnection", "false")
    await node.ready(peers, "c0", "c1")
    await sio.close()
    assert peers.disconnects == {"c0": ["server shutting down"], "c1": ["server shutting down"]}
    lines = await node.done()
    # What socket.io-client reports against the reference server too.
    for name in ("c0", "c1"):
        assert timeline(lines, name) == ["connect", "disconnect:transport close"]


# -- multiplexing ---------------------------------------------------------------------------------


async def test_two_namespaces_on_one_connection(serve: ServeFn, transport: str) -> None:
    sio = Server()
    main, admin = Peers(sio), Peers(sio.of("/admin"))
    received: list[tuple[str, str]] = []

    def hi(socket: Socket, who: str) -> str:
        received.append((socket.nsp.name, who))
        return f"{'main' if socket.nsp.name == '/' else 'admin'}:{who}"

    sio.on("hi", hi)
    sio.of("/admin").on("hi", hi)
    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport], "--shared", "true", *sockets_args("m=/", "a=/admin"))
    (sm,) = await node.ready(main, "m")
    (sa,) = await node.ready(admin, "a")
    assert sm.conn is sa.conn
    assert sm.client is sa.client
    assert sm.id != sa.id

    sm.emit("cmd", emit_cmd("hi", "m", ack=True))
    sa.emit("cmd", emit_cmd("hi", "a", ack=True))
    await node.until(lambda: len(received) == 2)
    sio.emit("to-main", 1)
    sio.of("/admin").emit("to-admin", b"\x02")
    assert await sa.timeout(3).emit_with_ack("ask-admin") == "a"
    assert await sm.timeout(3).emit_with_ack("ask-main") == "m"
    sio.emit("cmd", {"do": "disconnect"})
    sio.of("/admin").emit("cmd", {"do": "disconnect"})
    lines = await node.done()

    assert sorted(received) == [("/", "m"), ("/admin", "a")]
    connects = {line["socket"]: line for line in of(lines, "connect")}
    assert connects["m"]["engine"] == connects["a"]["engine"] == sm.conn.id
    assert connects["m"]["id"] == sm.id
    assert connects["a"]["id"] == sa.id
    assert events(lines, "m") == [["to-main", 1], ["ask-main"]]
    assert events(lines, "a") == [["to-admin", b"\x02"], ["ask-admin"]]
    assert {line["socket"]: line["args"] for line in of(lines, "ack")} == {
        "m": ["main:m"],
        "a": ["admin:a"],
    }
    assert len(of(lines, "upgrade")) == (1 if transport == "upgrade" else 0)
    assert main.disconnects == {"m": ["client namespace disconnect"]}
    await until(lambda: bool(admin.disconnects))
    assert admin.disconnects == {"a": ["client namespace disconnect"]}


# -- connection state recovery --------------------------------------------------------------------


async def test_connection_state_recovery(serve: ServeFn, transport: str) -> None:
    sio = Server(connection_state_recovery=aiosio.Recovery(max_disconnection_duration=5))
    peers = Peers(sio)
    middleware_runs: list[str] = []

    @sio.use
    def count(socket: Socket) -> None:
        middleware_runs.append(socket.handshake.auth.get("pid", "-"))

    @sio.on("connection")
    def connection(socket: Socket) -> None:
        socket.emit("welcome", socket.recovered)

    url = await serve(sio)
    node = Node(
        url, *TRANSPORTS[transport], *sockets_args("c0", "c1"), "--reconnection-delay", "200"
    )
    s0, _s1 = await node.ready(peers, "c0", "c1")
    sid, pid = s0.id, s0.pid
    assert pid is not None
    assert s0.recovered is False
    s0.join("room1")
    s0.data["k"] = "v"
    disconnected_at: list[float] = []

    def while_disconnected(socket: Socket, reason: str) -> None:
        # Emitted while c0 is gone (in the disconnect handler, before it can reconnect).
        disconnected_at.append(time.monotonic())
        sio.to("room1").emit("missed1", 1)
        sio.emit("missed2", b"\x01", {"n": [b"\x02"]})
        sio.to(sid).emit("missed3")
        s0.emit("missed4", "to the old socket object")
        sio.except_("room1").emit("not-for-c0")
        sio.to("other").emit("for-nobody")
        sio.volatile.emit("volatile-not-kept")

    s0.emit("before", 1)  # gives the client an offset
    s0.emit("cmd", {"do": "drop"})
    peers.on_disconnect = while_disconnected
    await node.until(lambda: bool(disconnected_at))
    peers.on_disconnect = None
    assert peers.disconnects["c0"] == ["transport close"]

    await node.until(lambda: len(peers.ready) == 3)
    recovered = peers["c0"]
    assert recovered is not s0
    assert recovered.recovered is True
    assert recovered.id == sid
    assert recovered.pid == pid
    assert recovered.rooms == {sid, "room1"}
    assert recovered.data == {"k": "v"}
    assert len(middleware_runs) == 2  # skip_middlewares: not run for the recovered socket
    recovered.emit("after", 2)
    sio.emit("cmd", {"do": "disconnect"})
    lines = await node.done()

    # As the reference: the missed events go before the CONNECT packet (the client buffers
    # them and delivers them before "connect"), then the connection handler's events.
    assert timeline(lines, "c0") == [
        "connect", "welcome", "before", "disconnect:forced close",
        "missed1", "missed2", "missed3", "missed4", "connect",
        "welcome", "after", "disconnect:io client disconnect",
    ]  # fmt: skip
    assert events(lines, "c0", strip_offset=True) == [
        ["welcome", False],
        ["before", 1],
        ["missed1", 1],
        ["missed2", b"\x01", {"n": [b"\x02"]}],
        ["missed3"],
        ["missed4", "to the old socket object"],
        ["welcome", True],
        ["after", 2],
    ]
    first, second = of(lines, "connect", "c0")
    assert first["recovered"] is False
    assert second["recovered"] is True
    assert second["id"] == sid
    assert second["engine"] != first["engine"]
    # Every event is delivered once, each with its own offset.
    offsets = [line["args"][-1] for line in of(lines, "event", "c0")]
    assert len(set(offsets)) == len(offsets)
    # c1 was connected all along (the volatile event depends on its transport being writable).
    assert [n for n in names(lines, "c1") if n != "volatile-not-kept"] == [
        "welcome",
        "missed2",
        "not-for-c0",
    ]
    assert peers.disconnects["c0"] == ["transport close", "client namespace disconnect"]


async def test_connection_state_recovery_expired(serve: ServeFn) -> None:
    sio = Server(connection_state_recovery=aiosio.Recovery(max_disconnection_duration=0.2))
    peers = Peers(sio)
    url = await serve(sio)
    node = Node(url, *TRANSPORTS["websocket"], "--reconnection-delay", "500")
    (s0,) = await node.ready(peers, "c0")
    s0.join("room1")
    s0.emit("before")
    s0.emit("cmd", {"do": "drop"})
    await node.until(lambda: len(peers.ready) == 2)
    again = peers["c0"]
    assert again.recovered is False
    assert again.id != s0.id
    assert again.pid != s0.pid
    assert again.rooms == {again.id}
    again.emit("cmd", {"do": "disconnect"})
    lines = await node.done()
    first, second = of(lines, "connect", "c0")
    assert second["recovered"] is False
    assert second["id"] == again.id != first["id"]


async def test_recovery_with_middlewares_loses_nothing_broadcast_while_they_run(
    serve: ServeFn, transport: str
) -> None:
    """Without skip_middlewares a recovered socket waits for them, in its rooms (as in the
    reference); what is broadcast to them meanwhile reaches socket.io-client after the missed
    events, before "connect", once each."""
    recovery = aiosio.Recovery(max_disconnection_duration=5, skip_middlewares=False)
    sio = Server(connection_state_recovery=recovery)
    peers = Peers(sio)
    gate = asyncio.Event()
    waiting: list[Socket] = []

    @sio.use
    async def slow(socket: Socket) -> None:
        if socket.recovered:
            waiting.append(socket)
            await gate.wait()

    url = await serve(sio)
    node = Node(url, *TRANSPORTS[transport], "--reconnection-delay", "200")
    (s0,) = await node.ready(peers, "c0")
    sid = s0.id
    s0.join("room1")
    s0.emit("before", 1)  # gives the client an offset
    peers.on_disconnect = lambda _socket, _reason: sio.to("room1").emit("missed", 1)
    s0.emit("cmd", {"do": "drop"})
    await node.until(lambda: bool(waiting))
    peers.on_disconnect = None
    pending = waiting[0]
    assert pending.id == sid
    assert not pending.connected
    assert pending.rooms == {sid, "room1"}
    sio.to("room1").emit("during", 1)
    sio.emit("during", 2, b"\x02")
    sio.to(sid).emit("during", 3)
    sio.except_("room1").emit("not-for-c0")
    gate.set()
    await node.until(lambda: len(peers.ready) == 2)
    recovered = peers["c0"]
    assert recovered is pending
    assert recovered.recovered is True
    recovered.emit("after", 2)
    recovered.emit("cmd", {"do": "disconnect"})
    lines = await node.done()
    assert timeline(lines, "c0") == [
        "connect", "before", "disconnect:forced close",
        "missed", "during", "during", "during", "connect",
        "after", "disconnect:io client disconnect",
    ]  # fmt: skip
    assert events(lines, "c0", strip_offset=True) == [
        ["before", 1],
        ["missed", 1],
        ["during", 1],
        ["during", 2, b"\x02"],
        ["during", 3],
        ["after", 2],
    ]
    assert of(lines, "connect", "c0")[1]["recovered"] is True


# -- socket.io-client 2.x (Engine.IO protocol 3) --------------------------------------------------

V2 = ("--client", "v2")


async def test_v2_client_events_acks_and_binary(serve: ServeFn, transport: str) -> None:
    sio = Server(allow_eio3=True)
    main, admin = Peers(sio), Peers(sio.of("/admin"))
    received: list[list[Any]] = []
    serve_events(sio, received)
    auths: list[tuple[str, dict[str, Any]]] = []
    sio.on("connection", lambda s: auths.append((s.id, s.handshake.auth)))
    url = await serve(sio)
    node = Node(
        url,
        *TRANSPORTS[transport],
        *V2,
        *sockets_args("m=/", "a=/admin"),
        "--query",
        json.dumps({"token": "abc"}),
    )
    (sm,) = await node.ready(main, "m")
    (sa,) = await node.ready(admin, "a")
    # Protocol 4 ids: the Engine.IO id, prefixed by the namespace outside "/".
    assert sm.id == sm.conn.id
    assert sa.id == f"/admin#{sa.conn.id}"
    assert sm.conn.protocol == sa.conn.protocol == 3
    # The namespace's query string is its auth; the Engine.IO query is the handshake query.
    assert sa.handshake.auth == {"token": "abc"}
    assert sa.handshake.query["token"] == "abc"
    assert sa.handshake.query["EIO"] == "3"
    assert sm.handshake.auth == {}
    # "/" is connected implicitly on each connection, also the one "a" opened for "/admin".
    assert sorted(sid for sid, _ in auths) == sorted([sm.id, sa.conn.id])

    sm.emit("cmd", client_emits())
    await node.until(lambda: len(received) == 6)
    await server_emits(sm, "m")
    sa.emit("plain", "to admin")
    assert await sa.timeout(3).emit_with_ack("question", b"\x01") == "a"
    sm.emit("cmd", {"do": "disconnect"})
    sa.emit("cmd", {"do": "disconnect"})
    lines = await node.done()

    acks = {line["event"]: py(line["args"]) for line in of(lines, "ack", "m")}
    assert acks == CLIENT_ACKS
    assert events(lines, "m") == SERVER_EVENTS
    assert events(lines, "a") == [["plain", "to admin"], ["question", b"\x01"]]
    connects = {line["socket"]: line for line in of(lines, "connect")}
    assert connects["m"]["id"] == sm.id
    assert connects["a"]["id"] == sa.id
    await until(lambda: bool(admin.disconnects))
    assert main.disconnects["m"] == ["client namespace disconnect"]
    assert admin.disconnects == {"a": ["client namespace disconnect"]}


async def test_v2_client_middleware_refusal(serve: ServeFn) -> None:
    sio = Server(allow_eio3=True)

    @sio.of("/refuse").use
    def refuse(socket: Socket) -> None:
        raise aiosio.ConnectionRefused("not authorized")

    @sio.of("/refuse-data").use
    async def refuse_with_data(socket: Socket) -> None:
        raise aiosio.ConnectionRefused("not authorized", data={"code": 42})

    url = await serve(sio)
    lines = await Node(
        url, *TRANSPORTS["upgrade"], *V2, *sockets_args("r=/refuse", "d=/refuse-data", "u=/nope")
    ).done()
    # As with the reference server: the "error" event with the data, else the message.
    assert of(lines, "error", "r") == [{"type": "error", "socket": "r", "data": "not authorized"}]
    assert of(lines, "error", "d") == [{"type": "error", "socket": "d", "data": {"code": 42}}]
    # An unknown namespace: the reference sends {"message": "Invalid namespace"} to 2.x too.
    assert of(lines, "error", "u") == [
        {"type": "error", "socket": "u", "data": {"message": "Invalid namespace"}}
    ]
    assert of(lines, "connect") == []

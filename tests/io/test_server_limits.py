"""What one connection may create at the Socket.IO layer, and that nothing it created outlives it
(issue 12, section 3): repeated CONNECT packets, namespaces per connection, dynamic child
namespaces, handler return values and emit arguments that cannot be encoded.

Raw clients write Engine.IO/Socket.IO frames by hand over real sockets on 127.0.0.1 (a WebSocket
written byte by byte, so that several frames arrive in one read, and polling POSTs); every test
runs against the native server and uvicorn (the ``serve`` fixture), and fails if anything reaches
the event loop's exception handler.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _eio import TIMEOUT
from _eio import eventually
from _eio import host_port
from _eio import url

import aiosio

PATH = "/socket.io/"


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fails the test if anything reached the event loop's exception handler (HARDENING 14)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)
    assert seen == [], seen


# -- a WebSocket written by hand -------------------------------------------------------------------


def frame(data: str) -> bytes:
    """A masked text frame (zero mask key: the payload goes as is)."""
    payload = data.encode()
    size = len(payload)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    elif size < 1 << 16:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


class RawWebSocket:
    """A Socket.IO client over a WebSocket whose bytes the test writes: several frames can go out
    in one write, so the server reads them at once. Pings are answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.texts: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base: str) -> RawWebSocket:
        host, port = host_port(base)
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {PATH}?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        async with asyncio.timeout(TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        ws = cls(reader, writer)
        opening = await ws.next()
        assert opening.startswith("0{"), opening
        return ws

    async def _read(self) -> None:
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    size = int.from_bytes(await self.reader.readexactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(await self.reader.readexactly(8), "big")
                payload = await self.reader.readexactly(size)
                opcode = first & 0x0F
                if opcode == 0x8:
                    return
                if opcode == 0x1:
                    text = payload.decode()
                    if text == "2":
                        self.writer.write(frame("3"))
                    else:
                        self.texts.put_nowait(text)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.closed.set()

    def send(self, *texts: str) -> None:
        """Write every text frame at once."""
        self.writer.write(b"".join(frame(text) for text in texts))

    async def next(self) -> str:
        async with asyncio.timeout(TIMEOUT):
            return await self.texts.get()

    async def wait_closed(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self.closed.wait()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
async def raw_ws() -> AsyncIterator[Any]:
    opened: list[RawWebSocket] = []

    async def open_ws(base: str) -> RawWebSocket:
        ws = await RawWebSocket.open(base)
        opened.append(ws)
        return ws

    yield open_ws
    for ws in opened:
        await ws.close()


# -- polling by hand ------------------------------------------------------------------------------


async def polling_session(client: httpx.AsyncClient, base: str) -> str:
    response = await client.get(url(base, PATH, EIO="4", transport="polling"))
    assert response.status_code == 200, response.text
    return str(json.loads(response.text[1:])["sid"])


async def polling_post(client: httpx.AsyncClient, base: str, sid: str, *packets: str) -> int:
    response = await client.post(
        url(base, PATH, EIO="4", transport="polling", sid=sid),
        content="\x1e".join(packets).encode(),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    return response.status_code


async def polling_get(client: httpx.AsyncClient, base: str, sid: str) -> list[str]:
    response = await client.get(url(base, PATH, EIO="4", transport="polling", sid=sid))
    return response.text.split("\x1e") if response.status_code == 200 else []


def count_sockets(sio: aiosio.Server, *names: str) -> int:
    return sum(len(sio.of(name).sockets) for name in names)


# -- 1. several CONNECT packets for one namespace on one connection -------------------------------


async def _slow_middleware(_socket: aiosio.Socket) -> None:
    await asyncio.sleep(0.05)


@pytest.mark.parametrize("middleware", ["none", "async"])
async def test_repeated_connect_in_one_read_leaves_no_socket(
    serve: Any, raw_ws: Any, caplog: pytest.LogCaptureFixture, middleware: str
) -> None:
    """``40`` five times in one read: one socket at most, the connection closed as a protocol
    error (a second CONNECT for a namespace connected or being connected), and once the client
    has gone the namespace holds no socket of it."""
    sio = aiosio.Server()
    if middleware == "async":
        sio.use(_slow_middleware)
    connections: list[str] = []
    sio.on("connection", lambda socket: connections.append(socket.id))
    base = await serve(sio)
    caplog.set_level(logging.WARNING, logger="aiosio.server")
    ws = await raw_ws(base)
    ws.send(*["40"] * 5)
    await ws.wait_closed()  # the server closes the connection
    await ws.close()
    await eventually(lambda: count_sockets(sio, "/") == 0)
    await asyncio.sleep(0.1)  # what was pending has finished by now
    assert count_sockets(sio, "/") == 0
    assert len(await sio.fetch_sockets()) == 0
    assert len(connections) <= 1
    assert any("CONNECT packet for namespace '/'" in r.getMessage() for r in caplog.records)
    # the server still serves, and a well-behaved client connects
    good = await raw_ws(base)
    good.send("40")
    assert (await good.next()).startswith('40{"sid":')
    assert count_sockets(sio, "/") == 1


async def test_repeated_connect_in_one_polling_post_leaves_no_socket(serve: Any) -> None:
    """2,000 CONNECT packets for one namespace in one POST (and as many for a second namespace
    before them): the session is closed at the duplicate, and nothing stays in either
    namespace."""
    sio = aiosio.Server()
    connections: list[str] = []
    sio.on("connection", lambda socket: connections.append(socket.id))
    sio.of("/other").on("connection", lambda socket: connections.append(socket.id))
    base = await serve(sio)
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        sid = await polling_session(client, base)
        await polling_post(client, base, sid, "40/other,", *["40"] * 2000)
        await eventually(lambda: count_sockets(sio, "/", "/other") == 0)
        # the session is closed: the next poll is refused, or answered with the close packet
        packets = await polling_get(client, base, sid)
        assert packets == [] or packets[-1] == "1", packets
    await asyncio.sleep(0.1)
    assert count_sockets(sio, "/", "/other") == 0
    assert len(connections) <= 2


async def test_every_namespace_of_a_connection_is_closed_with_it(serve: Any, raw_ws: Any) -> None:
    """A connection on several namespaces, one of them still waiting for its middleware: when
    the client goes, none of its sockets stays anywhere."""
    sio = aiosio.Server()
    gate = asyncio.Event()

    async def held(_socket: aiosio.Socket) -> None:
        await gate.wait()

    sio.of("/held").use(held)
    sio.of("/a")
    sio.of("/b")
    base = await serve(sio)
    ws = await raw_ws(base)
    ws.send("40", "40/a,", "40/b,", "40/held,")
    replies = {(await ws.next()).split("{")[0] for _ in range(3)}
    assert replies == {"40", "40/a,", "40/b,"}
    assert count_sockets(sio, "/", "/a", "/b") == 3
    await ws.close()
    await eventually(lambda: count_sockets(sio, "/", "/a", "/b", "/held") == 0)
    gate.set()
    await asyncio.sleep(0.1)
    assert count_sockets(sio, "/", "/a", "/b", "/held") == 0


# -- 2. namespaces per connection, dynamic child namespaces ---------------------------------------


async def test_namespaces_per_connection_are_bounded(
    serve: Any, raw_ws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """At ``max_namespaces_per_connection`` namespaces connected (or connecting) on one
    connection, one more is refused with CONNECT_ERROR and a logged line naming the option; the
    connection and its namespaces carry on, and leaving one makes room for another."""
    sio = aiosio.Server(max_namespaces_per_connection=3)
    sio.of(re.compile(r"^/n\d+$"))
    base = await serve(sio)
    caplog.set_level(logging.WARNING, logger="aiosio.server")
    ws = await raw_ws(base)
    ws.send("40/n1,", "40/n2,", "40/n3,")
    for _ in range(3):
        assert (await ws.next()).startswith("40/n")
    ws.send("40/n4,")
    refusal = await ws.next()
    assert refusal.startswith("44/n4,"), refusal
    message = json.loads(refusal[len("44/n4,") :])["message"]
    assert message == "too many namespaces on one connection: 3 connected, the server allows 3"
    logged = [r.getMessage() for r in caplog.records if "max_namespaces_per_connection" in r.msg]
    assert len(logged) == 1, logged
    assert "max_namespaces_per_connection=3" in logged[0]
    ws.send("41/n1,", "40/n4,")
    assert (await ws.next()).startswith('40/n4,{"sid":')
    assert not ws.closed.is_set()


def test_max_namespaces_per_connection_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"max_namespaces_per_connection must be .* got 0"):
        aiosio.Server(max_namespaces_per_connection=0)


@pytest.mark.parametrize("family", ["regex", "callable"])
async def test_empty_child_namespaces_are_removed_when_asked(
    serve: Any, raw_ws: Any, family: str
) -> None:
    """``cleanup_empty_child_namespaces=True``: a child namespace created by a client goes away
    (and its adapter is closed) when its last socket leaves, whether the socket disconnects, its
    connection closes, or a middleware refuses it; a later connection creates it again."""
    sio = aiosio.Server(cleanup_empty_child_namespaces=True)
    parent = sio.of(re.compile(r"^/dyn-\d+$") if family == "regex" else _dyn_matcher)

    @parent.use
    def refuse_odd(socket: aiosio.Socket) -> None:
        if int(socket.nsp.name.rsplit("-", 1)[1]) % 2:
            raise aiosio.ConnectionRefused("odd")

    base = await serve(sio)
    ws = await raw_ws(base)
    ws.send(*[f"40/dyn-{i}," for i in range(20)])
    replies = sorted([await ws.next() for _ in range(20)])
    assert sum(r.startswith("44/dyn-") for r in replies) == 10
    assert sum(r.startswith("40/dyn-") for r in replies) == 10
    assert len(parent.children) == 10  # the refused ones are gone already
    first = parent.children["/dyn-0"]
    ws.send("41/dyn-0,")
    await eventually(lambda: "/dyn-0" not in parent.children)
    assert len(parent.children) == 9
    await ws.close()
    await eventually(lambda: not parent.children)
    # a new connection creates the child again, a fresh one
    again = await raw_ws(base)
    again.send("40/dyn-0,")
    assert (await again.next()).startswith('40/dyn-0,{"sid":')
    assert parent.children["/dyn-0"] is not first
    assert len(sio.of("/dyn-0").sockets) == 1


def _dyn_matcher(name: str, _auth: dict[str, Any]) -> bool:
    return re.fullmatch(r"/dyn-\d+", name) is not None


async def test_empty_child_namespaces_stay_by_default(serve: Any, raw_ws: Any) -> None:
    """The reference's default: children stay when empty (the handlers a program attached to
    one stay with it)."""
    sio = aiosio.Server()
    parent = sio.of(re.compile(r"^/dyn-\d+$"))
    base = await serve(sio)
    ws = await raw_ws(base)
    ws.send("40/dyn-1,")
    assert (await ws.next()).startswith("40/dyn-1,")
    await ws.close()
    await eventually(lambda: len(sio.of("/dyn-1").sockets) == 0)
    assert list(parent.children) == ["/dyn-1"]


# -- 3. values that cannot be encoded -------------------------------------------------------------


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


async def test_a_return_value_that_cannot_be_encoded_is_the_handlers_error(
    serve: Any, raw_ws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler returning a set or a custom object, sync or async: one error logged per event,
    naming the event and the type, the acknowledgement not answered (as when a handler raises),
    the connection kept, and nothing reaching the loop's exception handler."""
    sio = aiosio.Server()

    @sio.on("sync_set")
    def sync_set(_socket: aiosio.Socket) -> Any:
        return {1, 2}

    @sio.on("async_object")
    async def async_object(_socket: aiosio.Socket) -> Any:
        await asyncio.sleep(0)
        return {"where": [Point(1)]}

    @sio.on("several")
    def several(_socket: aiosio.Socket) -> Any:
        return "fine", frozenset({1})

    sio.on("echo", lambda _socket, value: value)
    base = await serve(sio)
    caplog.set_level(logging.ERROR, logger="aiosio.server")
    ws = await raw_ws(base)
    ws.send("40")
    assert (await ws.next()).startswith('40{"sid":')
    ws.send('421["sync_set"]', '422["async_object"]', '423["several"]', '424["echo","after"]')
    assert await ws.next() == '434["after"]'  # nothing for 1, 2 and 3
    await eventually(lambda: len(caplog.records) >= 3)
    await asyncio.sleep(0.1)
    ws.send('425["echo","later"]')
    assert await ws.next() == '435["later"]'
    assert ws.texts.empty()
    assert not ws.closed.is_set()
    messages = sorted(r.getMessage() for r in caplog.records)
    assert len(messages) == 3, messages
    assert messages[0].startswith(
        "handler of event 'async_object' on /: return value['where'][0] is a Point, which JSON "
        "cannot carry"
    ), messages[0]
    assert messages[0].endswith(
        "its acknowledgement 2 is not answered (the client's ack times out)"
    )
    assert messages[1].startswith(
        "handler of event 'several' on /: return value[1] is a frozenset"
    ), messages[1]
    assert messages[2].startswith(
        "handler of event 'sync_set' on /: return value is a set, which JSON cannot carry; send "
        "dict, list, str, int, float, bool, None or bytes"
    ), messages[2]


async def test_emit_arguments_that_cannot_be_encoded_raise_at_the_call(
    serve: Any, raw_ws: Any
) -> None:
    """Every way to emit raises a TypeError at the call naming the argument and its type, on a
    connected socket as on a disconnected one, and sends nothing; the connection carries on."""
    sio = aiosio.Server()
    sockets: list[aiosio.Socket] = []
    sio.on("connection", sockets.append)
    base = await serve(sio)
    ws = await raw_ws(base)
    ws.send("40")
    assert (await ws.next()).startswith('40{"sid":')
    socket = sockets[0]
    bad = {"tags": {"a"}}
    expected = r"args\[1\]\['tags'\] is a set, which JSON cannot carry"
    with pytest.raises(TypeError, match=r"^socket\.emit\('news'\): " + expected):
        socket.emit("news", 1, bad)
    with pytest.raises(TypeError, match=r"^socket\.emit_with_ack\('news'\): " + expected):
        await socket.timeout(1).emit_with_ack("news", 1, bad)
    with pytest.raises(TypeError, match=r"^emit\('news'\): " + expected):
        sio.emit("news", 1, bad)
    with pytest.raises(TypeError, match=r"^emit\('news'\): " + expected):
        sio.to("nobody").emit("news", 1, bad)
    with pytest.raises(TypeError, match=r"^emit\('news'\): " + expected):
        socket.broadcast.emit("news", 1, bad)
    with pytest.raises(TypeError, match=r"^emit_with_ack\('news'\): " + expected):
        await sio.timeout(1).emit_with_ack("news", 1, bad)
    with pytest.raises(TypeError, match=r"args\[0\] is a Point"):
        socket.emit("news", Point(1))
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(TypeError, match=r"args\[0\]\[1\] contains itself"):
        socket.emit("news", loop)
    socket.emit("news", "fine")
    assert await ws.next() == '42["news","fine"]'
    await ws.close()
    await eventually(lambda: not socket.connected)
    with pytest.raises(TypeError, match=r"^socket\.emit\('news'\): " + expected):
        socket.emit("news", 1, bad)


async def test_client_emit_arguments_that_cannot_be_encoded_raise_at_the_call(
    serve: Any,
) -> None:
    """The client too: connected, or buffering while not connected yet (where the packet would
    only be encoded once connected)."""
    sio = aiosio.Server()
    received: list[Any] = []
    sio.on("news", lambda _socket, value: received.append(value))
    base = await serve(sio)
    client = aiosio.Client(base)
    try:
        expected = r"^emit\('news'\): args\[0\] is a set, which JSON cannot carry"
        with pytest.raises(TypeError, match=expected):
            client.emit("news", {1})  # not connected: buffered
        await client.connect()
        with pytest.raises(TypeError, match=expected):
            client.emit("news", {1})
        with pytest.raises(TypeError, match=r"^emit_with_ack\('news'\): args\[0\] is a set"):
            await client.emit_with_ack("news", {1}, timeout=1)
        client.emit("news", "fine")
        await eventually(lambda: received == ["fine"])
    finally:
        await client.disconnect()


# -- 4. handlers running per connection -----------------------------------------------------------


class Slow:
    """An async handler of "slow" that waits for ``gate``; counts what runs at once."""

    def __init__(self, sio: aiosio.Server) -> None:
        self.gate = asyncio.Event()
        self.running = 0
        self.peak = 0
        self.started: list[int] = []
        self.finished: list[int] = []
        self.sockets: list[aiosio.Socket] = []
        sio.on("connection", self.sockets.append)
        sio.on("slow", self.slow)
        sio.on("fast", lambda _socket, i: self.started.append(i))

    async def slow(self, _socket: aiosio.Socket, i: int) -> int:
        self.started.append(i)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        self.finished.append(i)
        return i


async def test_handlers_per_connection_are_bounded_over_websocket(
    serve: Any, raw_ws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """60 slow events in one write with max_handlers_per_connection=5: 5 handlers run, the
    connection is not read from (its engine socket paused) and the rest wait, in order; once
    the handlers end every event runs and is answered; nothing is dropped. Another client is
    served all along."""
    sio = aiosio.Server(max_handlers_per_connection=5)
    slow = Slow(sio)
    base = await serve(sio)
    caplog.set_level(logging.INFO, logger="aiosio.server")
    ws = await raw_ws(base)
    ws.send("40")
    assert (await ws.next()).startswith('40{"sid":')
    ws.send(*[f'42{i}["slow",{i}]' for i in range(60)], '42["fast",-1]')
    await eventually(lambda: len(slow.started) == 5)
    conn = slow.sockets[0].conn
    assert conn.reading_paused
    other = await raw_ws(base)
    other.send("40")
    assert (await other.next()).startswith('40{"sid":')
    other.send('421["slow",100]')
    await eventually(lambda: len(slow.started) == 6)  # the other connection's own handler
    await asyncio.sleep(0.2)
    assert len(slow.started) == 6
    assert slow.peak == 6
    assert -1 not in slow.started  # behind the slow ones, in order
    logged = [r.getMessage() for r in caplog.records if "max_handlers_per_connection" in r.msg]
    assert len(logged) == 1, logged
    assert "max_handlers_per_connection=5" in logged[0]
    slow.gate.set()
    replies = [await ws.next() for _ in range(60)]
    assert replies == [f"43{i}[{i}]" for i in range(60)]
    assert await other.next() == "431[100]"
    await eventually(lambda: -1 in slow.started)
    assert slow.started[:5] == [0, 1, 2, 3, 4]
    assert sorted(slow.finished) == [*range(60), 100]
    await eventually(lambda: not conn.reading_paused)
    ws.send('4260["slow",60]')
    assert await ws.next() == "4360[60]"


async def test_handlers_per_connection_are_bounded_over_polling(serve: Any) -> None:
    """Over polling: the POST that finds the connection at its bound waits for a handler to end
    before its packets are taken, so the client's next POST waits too."""
    sio = aiosio.Server(max_handlers_per_connection=3)
    slow = Slow(sio)
    base = await serve(sio)
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        sid = await polling_session(client, base)
        assert await polling_post(client, base, sid, "40") == 200
        assert (await polling_get(client, base, sid))[0].startswith('40{"sid":')
        events = [f'42{i}["slow",{i}]' for i in range(10)]
        assert await polling_post(client, base, sid, *events) == 200
        await eventually(lambda: len(slow.started) == 3)
        held = asyncio.ensure_future(polling_post(client, base, sid, '42["fast",-1]'))
        await asyncio.sleep(0.2)
        assert not held.done()
        assert len(slow.started) == 3
        slow.gate.set()
        assert await asyncio.wait_for(held, TIMEOUT) == 200
        await eventually(lambda: -1 in slow.started)
        answers: list[str] = []
        while len(answers) < 10:
            answers += await polling_get(client, base, sid)
        assert answers == [f"43{i}[{i}]" for i in range(10)]


async def test_a_departed_clients_waiting_events_are_dropped_and_running_ones_finish(
    serve: Any, raw_ws: Any
) -> None:
    """When the connection closes, the events no handler had started yet are dropped, and the
    handlers already running are not cancelled: they run to their end. (A paused connection
    does not read, so the server learns that its client left from the heartbeat: a ping that
    finds the socket closed, or no pong within ping_timeout.)"""
    sio = aiosio.Server(max_handlers_per_connection=4, ping_interval=0.2, ping_timeout=0.5)
    slow = Slow(sio)
    base = await serve(sio)
    ws = await raw_ws(base)
    ws.send("40")
    assert (await ws.next()).startswith('40{"sid":')
    ws.send(*[f'42["slow",{i}]' for i in range(40)])
    await eventually(lambda: len(slow.started) == 4)
    socket = slow.sockets[0]
    await ws.close()
    await eventually(lambda: not socket.connected)
    slow.gate.set()
    await eventually(lambda: len(slow.finished) == 4)
    await asyncio.sleep(0.1)
    assert slow.started == [0, 1, 2, 3]
    assert slow.finished == [0, 1, 2, 3]


def test_max_handlers_per_connection_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"max_handlers_per_connection must be .* got 0"):
        aiosio.Server(max_handlers_per_connection=0)


async def test_a_paused_connection_is_not_read_from(serve: Any, raw_ws: Any) -> None:
    """At the bound the server stops reading from the connection itself (backpressure in the
    network), rather than reading on into memory: what the client writes then stays in its own
    buffer. Once the handlers end, every message is read and handled."""
    sio = aiosio.Server(max_handlers_per_connection=2)
    slow = Slow(sio)
    blobs: list[int] = []
    sio.on("blob", lambda _socket, i, _data: blobs.append(i))
    base = await serve(sio)
    ws = await raw_ws(base)
    ws.send("40")
    assert (await ws.next()).startswith('40{"sid":')
    ws.send('42["slow",0]', '42["slow",1]')
    await eventually(lambda: len(slow.started) == 2)
    data = "x" * 60_000
    transport = ws.writer.transport
    sent = 0
    while transport.get_write_buffer_size() < 1_000_000:  # the kernel's buffers are full
        assert sent < 500, "the server read on: 30 MB taken while at its bound"
        ws.send(f'42["blob",{sent},"{data}"]')
        sent += 1
        await asyncio.sleep(0.001)
    assert blobs == []
    slow.gate.set()
    await eventually(lambda: len(blobs) == sent, timeout=30)
    assert blobs == list(range(sent))


async def test_a_client_handler_return_value_that_cannot_be_encoded_is_its_error(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The client's handlers too: logged once with the event and the type, the server's ack not
    answered, the connection kept, nothing in the loop's exception handler."""
    sio = aiosio.Server()
    sockets: list[aiosio.Socket] = []
    sio.on("connection", sockets.append)
    base = await serve(sio)
    client = aiosio.Client(base)

    @client.on("ask")
    def ask() -> Any:
        return {1}

    @client.on("ask_later")
    async def ask_later() -> Any:
        await asyncio.sleep(0)
        return [Point(2)]

    client.on("fine", lambda: "yes")
    caplog.set_level(logging.ERROR, logger="aiosio.client")
    try:
        await client.connect()
        await eventually(lambda: len(sockets) == 1)
        socket = sockets[0]
        with pytest.raises(aiosio.AckTimeout):
            await socket.timeout(0.3).emit_with_ack("ask")
        with pytest.raises(aiosio.AckTimeout):
            await socket.timeout(0.3).emit_with_ack("ask_later")
        assert await socket.timeout(TIMEOUT).emit_with_ack("fine") == "yes"
        messages = sorted(r.getMessage() for r in caplog.records)
        messages = [m for m in messages if "return value" in m]
        assert len(messages) == 2, messages
        assert messages[0].startswith(
            "handler of event 'ask' on /: return value is a set, which JSON cannot carry"
        ), messages[0]
        assert messages[1].startswith(
            "handler of event 'ask_later' on /: return value[0] is a Point"
        ), messages[1]
    finally:
        await client.disconnect()


def test_many_children_kept_when_empty_are_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    """Without cleanup_empty_child_namespaces, a dynamic namespace whose clients choose the names
    grows with every name: at 1,000 children one warning names the option."""
    sio = aiosio.Server()
    parent = sio.of(re.compile(r"^/doc-\d+$"))
    caplog.set_level(logging.WARNING, logger="aiosio.server")
    for i in range(1500):
        sio.of(f"/doc-{i}")
    assert len(parent.children) == 1500
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "the dynamic namespace re.compile('^/doc-\\\\d+$') has 1000 child namespaces, and they "
        "stay when empty: each name a client connects to is kept; set "
        "Server(cleanup_empty_child_namespaces=True) if clients choose the names"
    ], messages
    quiet = aiosio.Server(cleanup_empty_child_namespaces=True)
    quiet.of(re.compile(r"^/doc-\d+$"))
    caplog.clear()
    for i in range(1500):
        quiet.of(f"/doc-{i}")
    assert caplog.records == []

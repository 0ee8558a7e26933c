"""HARDENING.md cases that had no test that would fail if they broke (docs/hardening.md lists,
case by case, every test; this file holds the ones written when that note was).

- 3, 4, 7: the limits a program sets on its Server (``aiosio.Limits``) are the ones applied to
  what clients send, over both servers: at each bound the packet passes, one past it closes that
  connection with ``parse error``, and the others keep talking.
- 6: a binary packet still waiting for its attachments when its client simply goes away (not a
  bad frame) leaves nothing behind.
- 17: the broadcast operators (``sio.in_(...).sockets_join/sockets_leave``) cannot move a socket
  into another socket's id-room or out of its own, as ``socket.join``/``socket.leave`` cannot.
- 18: the client applies its parser limits to what a server sends: reserved event names, JSON
  deeper than ``Limits.max_depth``, messages over its ``max_http_buffer_size``; the server it
  talks to is an ``aiosio.EngineServer`` whose messages the test writes byte for byte.
- 21: acknowledgements the server waits for are freed when they time out, however many.

Raw WebSocket clients over real sockets on 127.0.0.1; the ``serve`` fixture runs each test against
the native server and uvicorn. Nothing reaching the event loop's exception handler (14).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from collections.abc import Callable
from typing import Any

import pytest
from _eio import TIMEOUT
from _eio import eventually
from _eio import recv
from _eio import ws_connect
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

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


def nested(depth: int) -> Any:
    """A value that makes ``["msg", value]`` exactly ``depth`` deep (the outer array counted)."""
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


def ph(num: int) -> str:
    return '{"_placeholder":true,"num":' + str(num) + "}"


class Peer:
    """A Socket.IO client whose WebSocket frames the test writes; pings are answered."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base: str) -> Peer:
        ws = await ws_connect(base, PATH)
        opened = await recv(ws)
        assert isinstance(opened, str)
        assert opened.startswith("0{"), opened
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame == "2":
                    await self.ws.send("3")
                else:
                    self.frames.put_nowait(frame)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send(self, *frames: str | bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            for frame in frames:
                await self.ws.send(frame)

    async def next(self) -> str | bytes:
        async with asyncio.timeout(TIMEOUT):
            return await self.frames.get()

    async def connect(self, nsp: str = "/") -> str:
        prefix = "40" if nsp == "/" else f"40{nsp},"
        await self.send(prefix)
        reply = await self.next()
        assert isinstance(reply, str)
        assert reply.startswith(prefix + "{"), reply
        return str(json.loads(reply[len(prefix) :])["sid"])

    async def wait_closed(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self.closed.wait()

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def peers() -> AsyncIterator[Callable[[str], Any]]:
    opened: list[Peer] = []

    async def open_peer(base: str) -> Peer:
        peer = await Peer.open(base)
        opened.append(peer)
        return peer

    yield open_peer
    for peer in opened:
        await peer.close()


class Watch:
    """The server side: what reached ``msg`` (answered with its value), who left and why."""

    def __init__(self, sio: aiosio.Server, *namespaces: str) -> None:
        self.received: list[Any] = []
        self.disconnects: dict[str, str] = {}
        self.sockets: dict[str, aiosio.Socket] = {}
        for name in ("/", *namespaces):
            nsp = sio.of(name)
            nsp.on("connection", self._connection)
            nsp.on("disconnect", self._disconnect)
            nsp.on("msg", self._msg)

    def _connection(self, socket: aiosio.Socket) -> None:
        self.sockets[socket.id] = socket

    def _disconnect(self, socket: aiosio.Socket, reason: str, _description: Any) -> None:
        self.disconnects[socket.id] = reason

    def _msg(self, _socket: aiosio.Socket, *args: Any) -> Any:
        self.received.append(args)
        return "ok"

    async def disconnected(self, sid: str) -> str:
        await eventually(lambda: sid in self.disconnects)
        return self.disconnects[sid]


# -- HARDENING 3, 4, 7: the Server's limits are the ones applied ---------------------------------

SMALL = aiosio.Limits(max_attachments=2, max_depth=3, max_namespace_length=8, max_ack_id=100)
NSP = "/" + "n" * 7  # exactly max_namespace_length=8

# (frames at the bound, frames one past it); each EVENT asks for an ack, so a packet that passes
# is answered.
CASES: dict[str, tuple[list[str | bytes], list[str | bytes]]] = {
    "max_depth": (
        ["421" + json.dumps(["msg", nested(3)])],
        ["421" + json.dumps(["msg", nested(4)])],
    ),
    "max_ack_id": (['42100["msg",1]'], ['42101["msg",1]']),
    "max_attachments": (
        [f'452-1["msg",{ph(0)},{ph(1)}]', b"a", b"b"],
        [f'453-1["msg",{ph(0)},{ph(1)},{ph(2)}]', b"a", b"b", b"c"],
    ),
    "max_namespace_length": ([f'42{NSP},1["msg",1]'], [f'42{NSP}x,1["msg",1]']),
}


@pytest.mark.parametrize("limit", list(CASES))
async def test_the_servers_limits_are_applied_at_their_bound(
    serve: Any, peers: Callable[[str], Any], limit: str
) -> None:
    sio = aiosio.Server(limits=SMALL)
    watch = Watch(sio, NSP)
    base = await serve(sio)
    at_bound, past = CASES[limit]
    good = await peers(base)
    good_sid = await good.connect()
    bad = await peers(base)
    bad_sid = await bad.connect()
    if limit == "max_namespace_length":
        await good.connect(NSP)
        await bad.connect(NSP)
    await good.send(*at_bound)
    answer = await good.next()
    assert isinstance(answer, str)
    assert answer.endswith('["ok"]'), answer
    assert len(watch.received) == 1
    await bad.send(*past)
    await bad.wait_closed()
    assert await watch.disconnected(bad_sid) == "parse error"
    assert len(watch.received) == 1  # nothing of the refused packet reached a handler
    # the other connection is unaffected
    await good.send('422["msg",2]')
    assert await good.next() == '432["ok"]'
    assert good_sid not in watch.disconnects


# -- HARDENING 1: reserved names are not sent either --------------------------------------------

RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "error"]


@pytest.mark.parametrize("name", RESERVED)
async def test_reserved_names_cannot_be_emitted(
    serve: Any, peers: Callable[[str], Any], name: str
) -> None:
    """A reserved name is refused at the call (ValueError), by every way to emit, on the server
    and on the client, and nothing goes out: a peer would close the connection on it."""
    sio = aiosio.Server()
    watch = Watch(sio)
    base = await serve(sio)
    peer = await peers(base)
    socket = watch.sockets[await peer.connect()]
    emits: list[Callable[[], Any]] = [
        lambda: socket.emit(name, 1),
        lambda: sio.emit(name, 1),
        lambda: sio.to(socket.id).emit(name, 1),
        lambda: socket.broadcast.emit(name, 1),
    ]
    for emit in emits:
        with pytest.raises(ValueError, match="reserved"):
            emit()
    with pytest.raises(ValueError, match="reserved"):
        await socket.emit_with_ack(name, 1)
    client = aiosio.Client(base, reconnection=False)
    try:
        await client.connect()
        with pytest.raises(ValueError, match="reserved"):
            client.emit(name, 1)
        with pytest.raises(ValueError, match="reserved"):
            await client.emit_with_ack(name, 1, timeout=1)
    finally:
        await client.disconnect()
    socket.emit("after", 1)
    assert await peer.next() == '42["after",1]'  # nothing went out before it
    assert not watch.disconnects.get(socket.id)


# -- HARDENING 6: pending binary state goes with a connection that simply closes -----------------


async def test_a_partial_binary_packet_is_dropped_when_its_client_goes(
    serve: Any, peers: Callable[[str], Any]
) -> None:
    sio = aiosio.Server()
    watch = Watch(sio)
    base = await serve(sio)
    peer = await peers(base)
    sid = await peer.connect()
    await peer.send(f'452-["msg",{ph(0)},{ph(1)}]', b"first of two")
    decoder = watch.sockets[sid].client.decoder
    await eventually(lambda: bool(decoder.pending))
    await peer.close()  # a clean close, nothing malformed
    assert await watch.disconnected(sid) == "transport close"
    assert not decoder.pending
    assert watch.received == []


# -- HARDENING 17: broadcast operators and id-rooms ----------------------------------------------


async def test_operators_cannot_move_a_socket_into_or_out_of_an_id_room(
    serve: Any, peers: Callable[[str], Any]
) -> None:
    sio = aiosio.Server()
    watch = Watch(sio)
    base = await serve(sio)
    a, b = await peers(base), await peers(base)
    a_sid, b_sid = await a.connect(), await b.connect()
    rooms = sio.sockets.adapter.rooms
    # out of its own room: nothing happens
    sio.in_(a_sid).sockets_leave(a_sid)
    sio.sockets_leave(a_sid, b_sid)
    assert rooms[a_sid] == {a_sid: None}
    assert rooms[b_sid] == {b_sid: None}
    # into another's: refused, and nobody joined it
    with pytest.raises(ValueError, match="another socket"):
        sio.in_(a_sid).sockets_join(b_sid)
    with pytest.raises(ValueError, match="another socket"):
        sio.sockets_join(b_sid)
    assert rooms[b_sid] == {b_sid: None}
    assert watch.sockets[a_sid].rooms == {a_sid}
    sio.to(b_sid).emit("private", 1)
    assert await b.next() == '42["private",1]'
    await a.send('421["msg",1]')
    assert await a.next() == '431["ok"]'  # nothing private came first


# -- HARDENING 21: acknowledgements the server waits for are bounded in time and freed ----------


async def test_acks_that_time_out_are_freed(serve: Any, peers: Callable[[str], Any]) -> None:
    sio = aiosio.Server()
    watch = Watch(sio)
    base = await serve(sio)
    peer = await peers(base)
    sid = await peer.connect()
    socket = watch.sockets[sid]

    questions = [socket.timeout(0.2).emit_with_ack("q", i) for i in range(500)]
    assert socket.pending_acks == 500
    outcomes = await asyncio.gather(*questions, return_exceptions=True)
    assert all(isinstance(outcome, aiosio.AckTimeout) for outcome in outcomes)
    assert socket.pending_acks == 0
    # a late answer to one of them is ignored and the connection carries on
    first = await peer.next()
    assert isinstance(first, str)
    assert first.endswith('["q",0]'), first
    await peer.send("43" + first[2:].split("[", 1)[0] + '["late"]', '421["msg",1]')
    for _ in range(500):  # the other 499 questions, then the answer to msg
        if await peer.next() == '431["ok"]':
            break
    else:
        pytest.fail("msg was not answered")
    assert watch.received == [(1,)]
    assert sid not in watch.disconnects


async def test_a_timeout_belongs_to_the_emit_it_was_set_for(
    serve: Any, peers: Callable[[str], Any]
) -> None:
    sio = aiosio.Server()
    watch = Watch(sio)
    base = await serve(sio)
    peer = await peers(base)
    socket = watch.sockets[await peer.connect()]
    # as in JavaScript, where socket.timeout(s).emitWithAck(...) applies s to that emit
    first = socket.timeout(0.2).emit_with_ack("q", 1)
    second = socket.timeout(0.2).emit_with_ack("q", 2)
    async with asyncio.timeout(3):  # both time out after 0.2 s; without the fix one never does
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [aiosio.AckTimeout, aiosio.AckTimeout]
    assert socket.pending_acks == 0


def _unhandled(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aiosio.server" and "asked for an acknowledgement" in r.getMessage()
    ]


async def test_an_ack_no_handler_can_answer_is_said_once_per_event(
    serve: Any, peers: Callable[[str], Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A client's emitWithAck of an event nobody handles waits for an answer that cannot come:
    the server says so at WARNING (visible with default logging), once per event name."""
    sio = aiosio.Server()
    Watch(sio, "/chat")
    base = await serve(sio)
    peer = await peers(base)
    await peer.connect("/chat")
    with caplog.at_level(logging.WARNING, logger="aiosio.server"):
        await peer.send(
            '42/chat,1["nobody"]', '42/chat,2["nobody"]', '42/chat,3["none"]', '42/chat,4["msg"]'
        )
        # msg is answered after the three before it were handled
        assert await peer.next() == '43/chat,4["ok"]'
        await peer.send('42/chat,["nobody"]')  # no ack asked: the client waits for nothing
        await peer.send('42/chat,5["msg"]')
        assert await peer.next() == '43/chat,5["ok"]'
    lines = _unhandled(caplog)
    assert len(lines) == 2, lines
    assert "event 'nobody'" in lines[0]
    assert "sio.of('/chat').on('nobody')" in lines[0]
    assert "event 'none'" in lines[1]


async def test_an_ack_taken_by_an_on_any_handler_is_not_reported(
    serve: Any, peers: Callable[[str], Any], caplog: pytest.LogCaptureFixture
) -> None:
    sio = aiosio.Server()
    watch = Watch(sio)
    base = await serve(sio)
    peer = await peers(base)
    socket = watch.sockets[await peer.connect()]
    seen: list[Any] = []
    socket.on_any(lambda *args: seen.append(args))
    with caplog.at_level(logging.WARNING, logger="aiosio.server"):
        await peer.send('421["nobody"]', '422["msg"]')
        assert await peer.next() == '432["ok"]'
    assert seen == [("nobody",), ("msg",)]
    assert _unhandled(caplog) == []


async def test_an_emit_with_ack_goes_out_at_its_call(
    serve: Any, peers: Callable[[str], Any]
) -> None:
    sio = aiosio.Server()
    watch = Watch(sio)
    base = await serve(sio)
    peer = await peers(base)
    socket = watch.sockets[await peer.connect()]
    answer = socket.emit_with_ack("first")  # not awaited yet: sent all the same
    socket.emit("second")
    assert await peer.next() == '420["first"]'
    assert await peer.next() == '42["second"]'
    await peer.send('430["ok"]')
    async with asyncio.timeout(5):
        assert await answer == "ok"


async def test_a_client_timeout_belongs_to_the_emit_it_was_set_for(serve: Any) -> None:
    sio = aiosio.Server()
    # no handler of "q": the server never acknowledges it
    base = await serve(sio)
    client = aiosio.Client(base, reconnection=False)
    try:
        await client.connect()
        first = client.timeout(0.2).emit_with_ack("q", 1)
        second = client.timeout(0.2).emit_with_ack("q", 2)
        async with asyncio.timeout(3):
            outcomes = await asyncio.gather(first, second, return_exceptions=True)
        assert [type(outcome) for outcome in outcomes] == [aiosio.AckTimeout, aiosio.AckTimeout]
    finally:
        await client.disconnect()


# -- HARDENING 18: the client applies its parser limits to what the server sends ------------------


class FakeSocketIO:
    """An ``aiosio.EngineServer`` on /socket.io/ that accepts the CONNECT of "/" and then sends
    the messages the test chooses, as they are: a server that misbehaves."""

    def __init__(self, max_http_buffer_size: int = 1_000_000) -> None:
        self.engine = aiosio.EngineServer(
            path=PATH, max_http_buffer_size=max_http_buffer_size, ping_interval=10
        )
        self.sockets: list[aiosio.EngineSocket] = []
        self.closes: list[str] = []
        self.engine.on("connection", self._connection)

    def _connection(self, socket: aiosio.EngineSocket) -> None:
        def message(data: str | bytes) -> None:
            if data == "0" or (isinstance(data, str) and data.startswith("0{")):
                socket.send('0{"sid":"AAAAAAAAAAAAAAAAAAAA"}')
                self.sockets.append(socket)

        socket.on("message", message)
        socket.on("close", lambda reason, _description: self.closes.append(reason))

    def send(self, data: str) -> None:
        self.sockets[-1].send(data)


class ClientWatch:
    def __init__(self, client: aiosio.Client) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.disconnects: list[str] = []
        client.on("disconnect", lambda reason, *_: self.disconnects.append(reason))
        client.on_any(lambda event, *args: self.events.append((event, args)))


@pytest.mark.parametrize(
    "message",
    [
        '2["connect"]',
        '2["disconnect","io server disconnect"]',
        '2["connect_error",{"message":"x"}]',
        '2["disconnecting"]',
        '2["newListener","x"]',
        '2["error","x"]',
        "2" + json.dumps(["deep", nested(33)]),
        "2[]",
        "7",
    ],
    ids=lambda m: m[:24],
)
@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_client_refuses_what_a_server_may_not_send(
    serve: Any, message: str, transport: str
) -> None:
    server = FakeSocketIO()
    base = await serve(server.engine)
    client = aiosio.Client(base, transports=(transport,), reconnection=False)
    watch = ClientWatch(client)
    try:
        await client.connect()
        server.send('2["before",1]')
        await eventually(lambda: watch.events == [("before", (1,))])
        server.send(message)
        await eventually(lambda: "parse error" in watch.disconnects)
        assert watch.events == [("before", (1,))]
        await eventually(lambda: len(server.closes) == 1)  # the client closed its session too
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_a_bad_packet_from_the_server_is_one_disconnect_with_its_reason(
    serve: Any, transport: str
) -> None:
    server = FakeSocketIO()
    base = await serve(server.engine)
    client = aiosio.Client(base, transports=(transport,), reconnection=False)
    watch = ClientWatch(client)
    try:
        await client.connect()
        server.send('2["connect"]')
        await eventually(lambda: "parse error" in watch.disconnects)
        await asyncio.sleep(0.1)
        assert watch.disconnects == ["parse error"]
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_clients_limits_are_applied_at_their_bound(serve: Any, transport: str) -> None:
    server = FakeSocketIO()
    base = await serve(server.engine)
    limits = aiosio.Limits(max_depth=4, max_ack_id=100)
    client = aiosio.Client(base, transports=(transport,), reconnection=False, limits=limits)
    watch = ClientWatch(client)
    try:
        await client.connect()
        server.send("2" + json.dumps(["deep", nested(4)]))
        await eventually(lambda: len(watch.events) == 1)
        server.send("2100" + json.dumps(["asks", 1]))  # an ack id at max_ack_id
        await eventually(lambda: len(watch.events) == 2)
        server.send("2" + json.dumps(["deep", nested(5)]))
        await eventually(lambda: "parse error" in watch.disconnects)
        assert [event for event, _ in watch.events] == ["deep", "asks"]
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_clients_max_http_buffer_size_is_applied_at_its_bound(
    serve: Any, transport: str
) -> None:
    server = FakeSocketIO()
    base = await serve(server.engine)
    client = aiosio.Client(
        base, transports=(transport,), reconnection=False, max_http_buffer_size=1000
    )
    watch = ClientWatch(client)

    def big(size: int) -> str:
        # the Engine.IO message "4" + '2["big","xx...x"]' is size bytes long
        return '2["big","' + "x" * (size - 12) + '"]'

    try:
        await client.connect()
        server.send(big(1000))
        await eventually(lambda: len(watch.events) == 1)
        assert len(watch.events[0][1][0]) == 988
        # a WebSocket message is bounded exactly; a polling answer as a whole, its body and its
        # head, at max_http_buffer_size plus 64 KiB for the head
        server.send(big(1001 if transport == "websocket" else 1000 + 64 * 1024 + 1))
        await eventually(lambda: len(watch.disconnects) == 1)
        assert len(watch.events) == 1
    finally:
        await client.disconnect()


# -- HARDENING 22: churn leaves sessions, sockets, rooms and tasks flat -------------------------


async def test_churn_leaves_sessions_sockets_rooms_and_tasks_flat(serve: Any) -> None:
    """500 clients come, join a room, send an event with an ack, and go (every third without
    a close frame): afterwards the server holds no session, socket, room or task more than
    before. (Memory given back: tests/io/test_memory.py.)"""
    sio = aiosio.Server()
    sio.on("join", lambda socket, room: socket.join(room) or "joined")
    base = await serve(sio)
    adapter = sio.sockets.adapter

    async def cycle(i: int) -> None:
        peer = await Peer.open(base)
        await peer.connect()
        await peer.send(f'421["join","room{i % 7}"]')
        assert await peer.next() == '431["joined"]'
        if i % 3 == 0:
            peer.ws.transport.abort()  # gone without a close frame
        await peer.close()

    def flat() -> bool:
        return not sio.engine.clients and not sio.sockets.sockets and not adapter.rooms

    for i in range(20):  # warm up: the first connections create what stays (timers, caches)
        await cycle(i)
    await eventually(flat)
    tasks = len(asyncio.all_tasks())
    for i in range(500):
        await cycle(i)
    await eventually(flat)
    assert not adapter.sids
    await eventually(lambda: len(asyncio.all_tasks()) <= tasks)

"""Bad input at the Socket.IO layer (HARDENING.md 1-7, 16, 17, 21), over real sockets.

A raw WebSocket client (``websockets``) speaks Engine.IO/Socket.IO frames by hand: ``0{...}`` is
the Engine.IO handshake, ``40`` connects the main namespace, ``42[...]`` is an event, binary
attachments are binary frames. Each bad frame goes out on one connection while a second,
well-behaved connection keeps exchanging events; afterwards the bad connection is closed, no
handler saw anything reserved, the good connection lost nothing, and a new client still connects.

Every test runs against the native server and uvicorn (the ``serve`` fixture).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import AsyncIterator
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest
from _eio import TIMEOUT
from _eio import eventually
from _eio import ws_connect
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

import aiosio

PATH = "/socket.io/"
RESERVED = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "error",
]
KNOWN_REASONS = {
    "parse error",
    "forced close",
    "forced server close",
    "transport close",
    "transport error",
    "ping timeout",
    "client namespace disconnect",
    "server namespace disconnect",
    "server shutting down",
}


def ph(num: Any) -> str:
    return '{"_placeholder":true,"num":' + json.dumps(num) + "}"


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


# -- a raw client ----------------------------------------------------------------------------------


class RawClient:
    """One Engine.IO session over a WebSocket, frames written and read by hand. Pings (``2``)
    are answered (``3``) and counted, never queued."""

    def __init__(self, ws: ClientConnection, handshake: dict[str, Any], pong: bool) -> None:
        self.ws = ws
        self.handshake = handshake
        self.pong = pong
        self.pings = 0
        self.frames: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base: str, *, pong: bool = True) -> RawClient:
        ws = await ws_connect(base, PATH)
        async with asyncio.timeout(TIMEOUT):
            first = await ws.recv()
        assert isinstance(first, str)
        assert first.startswith("0{"), first
        return cls(ws, json.loads(first[1:]), pong)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame == "2":
                    self.pings += 1
                    if self.pong:
                        await self.ws.send("3")
                    continue
                self.frames.put_nowait(frame)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send(self, *frames: str | bytes) -> None:
        """Send ``frames``; those the server no longer takes (it closed) are dropped."""
        with contextlib.suppress(ConnectionClosed):
            for frame in frames:
                await self.ws.send(frame)

    async def next(self, timeout: float = TIMEOUT) -> str | bytes:
        async with asyncio.timeout(timeout):
            return await self.frames.get()

    async def nothing(self, delay: float = 0.2) -> None:
        """Nothing but pings arrives for ``delay`` seconds."""
        await asyncio.sleep(delay)
        assert self.frames.empty(), self.frames.get_nowait()

    async def connect(self, nsp: str = "/", auth: dict[str, Any] | None = None) -> str:
        """CONNECT ``nsp``; return the socket id from the server's CONNECT."""
        prefix = "40" if nsp == "/" else f"40{nsp},"
        await self.send(prefix + (json.dumps(auth) if auth is not None else ""))
        reply = await self.next()
        assert isinstance(reply, str)
        assert reply.startswith(prefix + "{"), reply
        data = json.loads(reply[len(prefix) :])
        assert list(data) == ["sid"]
        return str(data["sid"])

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            await self.closed.wait()

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Any]]:
    """``await clients(base)`` opens a :class:`RawClient`; all are closed at the end."""
    opened: list[RawClient] = []

    async def open_client(base: str, **options: Any) -> RawClient:
        client = await RawClient.open(base, **options)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


# -- the server side -------------------------------------------------------------------------------


@dataclass
class Watch:
    """Records what the server's handlers see. Anything in ``leaks`` reached a handler that client
    data must never reach."""

    sio: aiosio.Server
    sockets: dict[str, aiosio.Socket] = field(default_factory=dict)
    received: dict[str, list[Any]] = field(default_factory=dict)
    disconnects: dict[str, tuple[str, Any]] = field(default_factory=dict)
    disconnecting: dict[str, str] = field(default_factory=dict)
    leaks: list[tuple[Any, ...]] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        sio = self.sio
        sio.on("connection", self._on_connection)
        sio.on("disconnect", self._on_disconnect)
        sio.on("disconnecting", self._on_disconnecting)
        for name in ("connect_error", "newListener", "removeListener", "error"):
            sio.on(name, self._leak(f"nsp:{name}"))
        sio.on("msg", self._on_msg)

    def _leak(self, where: str) -> Callable[..., None]:
        def handler(*args: Any) -> None:
            self.leaks.append((where, *args))

        return handler

    def _on_connection(self, socket: aiosio.Socket, *extra: Any) -> None:
        if extra or socket.id in self.sockets:
            self.leaks.append(("nsp:connection", socket.id, *extra))
            return
        self.connections += 1
        self.sockets[socket.id] = socket
        self.received[socket.id] = []
        for name in RESERVED:
            if name not in ("disconnect", "disconnecting"):
                socket.on(name, self._leak(f"socket:{name}"))

        def own_disconnect(reason: Any, description: Any = None) -> None:
            if reason not in KNOWN_REASONS:
                self.leaks.append(("socket:disconnect", reason, description))

        socket.on("disconnect", own_disconnect)
        socket.on("disconnecting", own_disconnect)

    def _on_disconnect(self, socket: aiosio.Socket, reason: Any, *rest: Any) -> None:
        if reason not in KNOWN_REASONS or len(rest) != 1 or socket.id in self.disconnects:
            self.leaks.append(("nsp:disconnect", socket.id, reason, *rest))
            return
        self.disconnects[socket.id] = (reason, rest[0])

    def _on_disconnecting(self, socket: aiosio.Socket, reason: Any, *rest: Any) -> None:
        if reason not in KNOWN_REASONS or len(rest) != 1:
            self.leaks.append(("nsp:disconnecting", socket.id, reason, *rest))
            return
        self.disconnecting[socket.id] = reason

    def _on_msg(self, socket: aiosio.Socket, value: Any) -> None:
        self.received[socket.id].append(value)
        socket.emit("echo", value)

    async def disconnected(self, sid: str) -> tuple[str, Any]:
        await eventually(lambda: sid in self.disconnects)
        return self.disconnects[sid]


async def start(serve: Any, **options: Any) -> tuple[aiosio.Server, Watch, str]:
    sio = aiosio.Server(**options)
    watch = Watch(sio)
    base = await serve(sio)
    return sio, watch, base


async def exchange(good: RawClient, values: range) -> None:
    for value in values:
        await good.send(f'42["msg",{value}]')


async def expect_echoes(good: RawClient, values: range) -> None:
    for value in values:
        assert await good.next() == f'42["echo",{value}]'


# -- HARDENING 1-7: one bad connection, one good one ----------------------------------------------

PARSE = "parse error"
STATE = "forced server close"

BAD: dict[str, tuple[list[str | bytes], str]] = {
    # 1. EVENT payload: non-empty array, string or number name, never reserved
    **{f"1-reserved-{name}": ([f'42["{name}",{{"sid":"x"}}]'], PARSE) for name in RESERVED},
    "1-reserved-binary": ([f'451-["disconnect",{ph(0)}]', b"\x00"], PARSE),
    "1-reserved-with-ack": (['427["connect"]'], PARSE),
    "1-empty-array": (["42[]"], PARSE),
    "1-name-null": (['42[null,"x"]'], PARSE),
    "1-name-bool": (["42[true]"], PARSE),
    "1-name-object": (['42[{"a":1}]'], PARSE),
    "1-not-an-array": (["42{}"], PARSE),
    # 2. CONNECT payload an object; DISCONNECT none; ACK an array; no client CONNECT_ERROR
    "2-connect-array": (["40/other,[]"], PARSE),
    "2-connect-string": (['40/other,"x"'], PARSE),
    "2-disconnect-payload": (["41{}"], PARSE),
    "2-ack-object": (["431{}"], PARSE),
    "2-ack-no-payload": (["431"], PARSE),
    "2-connect-error": (['44{"message":"x"}'], STATE),
    "2-connect-error-other-nsp": (['44/other,{"message":"x"}'], STATE),
    "2-connect-again": (["40"], STATE),
    "2-event-not-connected-nsp": (['42/other,["x"]'], STATE),
    "2-ack-not-connected-nsp": (["43/other,1[]"], STATE),
    "2-binary-event-not-connected-nsp": ([f'451-/other,["x",{ph(0)}]', b"\x01"], STATE),
    # 3. attachment count 1..10
    "3-zero-attachments": (['450-["x"]'], PARSE),
    "3-eleven-attachments": (['4511-["x"]', *[b"a"] * 11], PARSE),
    "3-non-numeric": (['45a-["x"]'], PARSE),
    "3-no-dash": (['451["x"]'], PARSE),
    # 4. placeholder num: an int in range
    **{
        f"4-num-{label}": ([f'451-["x",{ph(num)}]', b"\x01"], PARSE)
        for label, num in [("true", True), ("str", "0"), ("float", 0.5), ("neg", -1), ("range", 1)]
    },
    # 5. text while waiting, unannounced attachment, failed reconstruction
    "5-text-while-waiting": ([f'452-["x",{ph(0)},{ph(1)}]', b"a", '42["msg",99]'], PARSE),
    "5-unannounced-attachment": ([b"\x01\x02"], PARSE),
    "5-failed-reconstruction": ([f'452-["x",{ph(7)}]', b"a", b"b"], PARSE),
    # 7. bounds and unknown types
    "7-too-deep": (['42["x",' + "[" * 40 + "]" * 40 + "]"], PARSE),
    "7-very-deep": (['42["x",' + "[" * 20_000 + "]" * 20_000 + "]"], PARSE),
    "7-ack-id-17-digits": (['4212345678901234567["x"]'], PARSE),
    "7-ack-id-over-2**53": (['429007199254740992["x"]'], PARSE),
    "7-namespace-too-long": (["40/" + "n" * 300 + ","], PARSE),
    "7-unknown-type-7": (['47["x"]'], PARSE),
    "7-unknown-type-letter": (["4abc"], PARSE),
    "7-empty-message": (["4"], PARSE),
    "7-invalid-json": (['42["x"'], PARSE),
    "7-nan": (['42["x",NaN]'], PARSE),
    "7-infinity": (['42["x",-Infinity]'], PARSE),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_frames_close_only_their_connection(
    serve: Any, clients: Callable[..., Any], case: str
) -> None:
    frames, expected = BAD[case]
    _sio, watch, base = await start(serve)
    good = await clients(base)
    good_sid = await good.connect()
    await exchange(good, range(5))
    await expect_echoes(good, range(3))

    bad = await clients(base)
    bad_sid = await bad.connect()
    # the bad frames go out while the good client keeps talking
    await asyncio.gather(bad.send(*frames), exchange(good, range(5, 10)))
    await bad.wait_closed()
    reason, _ = await watch.disconnected(bad_sid)
    assert reason == expected
    await exchange(good, range(10, 15))
    await expect_echoes(good, range(3, 15))
    assert watch.received[good_sid] == list(range(15))
    assert watch.received[bad_sid] == []
    assert good_sid not in watch.disconnects
    assert watch.leaks == []
    # pending binary state is dropped with the connection
    assert not watch.sockets[bad_sid].client.decoder.pending
    # the server still accepts clients, and the good one still talks
    fresh = await clients(base)
    fresh_sid = await fresh.connect()
    await fresh.send('42["msg","fresh"]')
    assert await fresh.next() == '42["echo","fresh"]'
    assert fresh_sid not in watch.disconnects
    assert watch.leaks == []


@pytest.mark.parametrize(
    "case", ["1-reserved-connect", "5-text-while-waiting", "7-too-deep", "2-connect-error"]
)
async def test_disconnect_reason_is_parse_error_or_forced_server_close(
    serve: Any, clients: Callable[..., Any], case: str
) -> None:
    frames, expected = BAD[case]
    _sio, watch, base = await start(serve)
    bad = await clients(base)
    bad_sid = await bad.connect()
    await bad.send(*frames)
    await bad.wait_closed()
    reason, _ = await watch.disconnected(bad_sid)
    assert reason == expected


async def test_bad_frames_before_any_namespace(serve: Any, clients: Callable[..., Any]) -> None:
    _sio, watch, base = await start(serve)
    for frames in (['42["connect"]'], ["4abc"], ['42["x"]'], [b"\x00"], ["41"], ["43[]"]):
        bad = await clients(base)
        await bad.send(*frames)
        await bad.wait_closed()
    fresh = await clients(base)
    await fresh.connect()
    assert watch.connections == 1
    assert watch.leaks == []


async def test_attachment_over_the_message_limit(serve: Any, clients: Callable[..., Any]) -> None:
    # HARDENING 6: attachment bytes are bounded per message (max_http_buffer_size), so per packet
    # by max_attachments times that; the partial packet goes with the connection.
    _sio, watch, base = await start(serve, max_http_buffer_size=1000)
    good = await clients(base)
    good_sid = await good.connect()
    bad = await clients(base)
    bad_sid = await bad.connect()
    await bad.send(f'451-["msg",{ph(0)}]')
    await eventually(lambda: watch.sockets[bad_sid].client.decoder.pending)
    await asyncio.gather(bad.send(b"\x00" * 1001), exchange(good, range(3)))
    await bad.wait_closed()
    await watch.disconnected(bad_sid)
    assert not watch.sockets[bad_sid].client.decoder.pending
    await expect_echoes(good, range(3))
    assert watch.received == {good_sid: [0, 1, 2], bad_sid: []}
    # exactly at the limit is fine
    await good.send(f'451-["msg",{ph(0)}]', b"\x07" * 1000)
    assert await good.next() == f'451-["echo",{ph(0)}]'
    assert await good.next() == b"\x07" * 1000
    assert watch.leaks == []


async def test_binary_events_still_work_between_bad_ones(
    serve: Any, clients: Callable[..., Any]
) -> None:
    _sio, watch, base = await start(serve)
    good = await clients(base)
    good_sid = await good.connect()
    await good.send(f'452-["msg",[{ph(1)},{{"a":{ph(0)}}}]]', b"\x01", b"\x02")
    assert await good.next() == f'452-["echo",[{ph(0)},{{"a":{ph(1)}}}]]'
    assert [await good.next(), await good.next()] == [b"\x02", b"\x01"]
    assert watch.received[good_sid] == [[b"\x02", {"a": b"\x01"}]]


# -- client events that name lifecycle handlers ---------------------------------------------------


async def test_client_event_named_connection_does_not_rerun_the_connection_handler(
    serve: Any, clients: Callable[..., Any]
) -> None:
    sio = aiosio.Server()
    calls: list[tuple[Any, ...]] = []
    sio.on("connection", lambda *args: calls.append(args))
    base = await serve(sio)
    client = await clients(base)
    await client.connect()
    await eventually(lambda: len(calls) == 1)
    await client.send('42["connection"]', '42["connection",{"admin":true}]')
    await asyncio.sleep(0.2)
    assert len(calls) == 1, calls


# -- HARDENING 16: middlewares and the connect timeout ---------------------------------------------


async def test_pending_socket_gets_no_broadcast_and_is_in_no_room(
    serve: Any, clients: Callable[..., Any]
) -> None:
    sio, watch, base = await start(serve)
    gate = asyncio.Event()
    pending: list[aiosio.Socket] = []

    @sio.use
    async def slow(socket: aiosio.Socket) -> None:
        if socket.handshake.auth.get("wait"):
            pending.append(socket)
            await gate.wait()

    good = await clients(base)
    await good.connect()
    waiting = await clients(base)
    await waiting.send('40{"wait":true}')
    await eventually(lambda: bool(pending))
    socket = pending[0]
    adapter = sio.sockets.adapter
    assert socket.id not in sio.sockets.sockets
    assert socket.rooms == set()
    assert socket.id not in adapter.sids
    assert all(socket.id not in members for members in adapter.rooms.values())
    assert not socket.connected
    sio.emit("bcast", 1)
    sio.to(socket.id).emit("direct", 1)
    sio.sockets.except_("nobody").emit("bcast", 2)
    assert await good.next() == '42["bcast",1]'
    assert await good.next() == '42["bcast",2]'
    await waiting.nothing(0.2)
    gate.set()
    assert await waiting.next() == '40{"sid":"' + socket.id + '"}'
    sio.emit("bcast", 3)
    assert await waiting.next() == '42["bcast",3]'
    assert socket.id in sio.sockets.sockets
    assert socket.rooms == {socket.id}
    await waiting.nothing(0.1)
    assert watch.leaks == []


async def test_refused_socket_never_appears(serve: Any, clients: Callable[..., Any]) -> None:
    sio, watch, base = await start(serve)
    gate = asyncio.Event()
    refused: list[aiosio.Socket] = []
    seen_during: list[bool] = []

    @sio.use
    async def gatekeeper(socket: aiosio.Socket) -> None:
        if socket.handshake.auth.get("token") != "ok":
            socket.join("lobby")
            refused.append(socket)
            await gate.wait()
            seen_during.append(socket.id in sio.sockets.sockets)
            raise aiosio.ConnectionRefused("not authorized", {"code": 401})

    good = await clients(base)
    good_sid = await good.connect(auth={"token": "ok"})
    bad = await clients(base)
    await bad.send('40{"token":"nope"}')
    await eventually(lambda: bool(refused))
    socket = refused[0]
    sio.to("lobby").emit("lobby", 1)
    sio.emit("all", 1)
    assert await good.next() == '42["all",1]'
    gate.set()
    assert await bad.next() == '44{"message":"not authorized","data":{"code":401}}'
    assert seen_during == [False]
    assert socket.id not in sio.sockets.sockets
    assert socket.id not in sio.sockets.adapter.sids
    assert "lobby" not in sio.sockets.adapter.rooms
    assert all(socket.id not in members for members in sio.sockets.adapter.rooms.values())
    assert socket.rooms == set()
    assert not socket.connected
    assert socket.id not in watch.sockets
    # joining after the refusal does nothing
    socket.join("late")
    assert "late" not in sio.sockets.adapter.rooms
    sio.emit("all", 2)
    assert await good.next() == '42["all",2]'
    await bad.nothing(0.1)
    assert list(watch.sockets) == [good_sid]
    assert watch.leaks == []


async def test_connect_timeout(
    serve: Any, clients: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiosio.server")
    assert aiosio.Server().connect_timeout == 45.0  # the reference's default
    sio, watch, base = await start(serve, connect_timeout=0.3)

    @sio.use
    def refuse(socket: aiosio.Socket) -> None:
        if socket.handshake.auth.get("refuse"):
            raise aiosio.ConnectionRefused("no")

    silent = await clients(base)
    refused = await clients(base)
    await refused.send('40{"refuse":true}')
    assert await refused.next() == '44{"message":"no"}'
    prompt = await clients(base)
    sid = await prompt.connect()
    await silent.wait_closed()
    # a refused CONNECT does not stop the timer (as the reference)
    await refused.wait_closed()
    timed_out = [
        client.handshake["sid"]
        for client in (silent, refused, prompt)
        if any(
            f"(session {client.handshake['sid']}): no namespace connected within "
            "connect_timeout=0.3s" in message
            for message in caplog.messages
        )
    ]
    assert timed_out == [silent.handshake["sid"], refused.handshake["sid"]]
    await asyncio.sleep(0.4)
    assert not prompt.closed.is_set()
    await prompt.send('42["msg","still"]')
    assert await prompt.next() == '42["echo","still"]'
    assert sid not in watch.disconnects
    assert watch.leaks == []


# -- HARDENING 17: socket ids ----------------------------------------------------------------------


async def test_socket_ids(serve: Any, clients: Callable[..., Any]) -> None:
    sio, watch, base = await start(serve)
    sids = []
    engine_sids = []
    for _ in range(6):
        client = await clients(base)
        engine_sids.append(client.handshake["sid"])
        sids.append(await client.connect())
    assert len(set(sids)) == len(sids)
    assert not set(sids) & set(engine_sids)
    for sid in sids:
        assert len(sid) >= 20
        assert re.fullmatch(r"[A-Za-z0-9_-]+", sid), sid
    assert list(watch.sockets) == sids
    assert list(sio.sockets.sockets) == sids


async def test_no_joining_another_sockets_room(serve: Any, clients: Callable[..., Any]) -> None:
    sio, watch, base = await start(serve)
    a, b = await clients(base), await clients(base)
    a_sid, b_sid = await a.connect(), await b.connect()
    sock_a, sock_b = watch.sockets[a_sid], watch.sockets[b_sid]
    with pytest.raises(ValueError, match="another socket"):
        sock_a.join(b_sid)
    with pytest.raises(ValueError, match="another socket"):
        sock_a.join("fine", b_sid)
    assert sio.sockets.adapter.rooms[b_sid] == {b_sid: None}
    sock_a.join(a_sid, "fine")
    assert sock_a.rooms == {a_sid, "fine"}
    sock_a.leave(a_sid)
    assert a_sid in sock_a.rooms
    sock_b.leave(a_sid)  # not a member: nothing happens
    assert sio.sockets.adapter.rooms[a_sid] == {a_sid: None}
    sio.to(a_sid).emit("private", 1)
    assert await a.next() == '42["private",1]'
    await b.nothing(0.1)
    sock_a.leave("fine")
    assert sock_a.rooms == {a_sid}


async def test_no_joining_the_room_of_a_recoverable_socket(
    serve: Any, clients: Callable[..., Any]
) -> None:
    sio, watch, base = await start(serve, connection_state_recovery=aiosio.Recovery())
    victim = await clients(base)
    await victim.send("40")
    reply = await victim.next()
    assert isinstance(reply, str)
    first = json.loads(reply[2:])
    victim_sid, pid = first["sid"], first["pid"]
    intruder = await clients(base)
    await intruder.send("40")
    intruder_sid = json.loads(str(await intruder.next())[2:])["sid"]
    sio.emit("tick", 1)
    tick = json.loads(str(await victim.next())[2:])
    offset = tick[-1]
    assert await intruder.next()
    await victim.close()
    await watch.disconnected(victim_sid)
    with contextlib.suppress(ValueError):
        watch.sockets[intruder_sid].join(victim_sid)
    back = await clients(base)
    await back.send("40" + json.dumps({"pid": pid, "offset": offset}))
    assert json.loads(str(await back.next())[2:])["sid"] == victim_sid
    sio.to(victim_sid).emit("private", "secret")
    assert str(await back.next()).startswith('42["private","secret",')  # then the offset
    await intruder.nothing(0.2)


async def recovering_behind_a_gate(
    serve: Any, clients: Callable[..., Any], auth: dict[str, Any] | None = None, **options: Any
) -> tuple[aiosio.Server, RawClient, aiosio.Socket, asyncio.Event, list[str]]:
    """A client recovers its session (id, room ``room1``, the event ``missed`` it missed) on a
    server whose async middleware holds recovered sockets until the returned gate opens, then
    refuses it if ``auth`` (added to the recovering CONNECT's) has ``refuse``. Returns the new
    connection, the waiting socket, the gate and the rooms the middleware saw it in."""
    recovery = aiosio.Recovery(skip_middlewares=False)
    sio = aiosio.Server(connection_state_recovery=recovery, **options)
    gate = asyncio.Event()
    waiting: list[aiosio.Socket] = []
    seen: list[str] = []

    @sio.use
    async def slow(socket: aiosio.Socket) -> None:
        if not socket.recovered:
            return
        seen.extend(sorted(socket.rooms))
        waiting.append(socket)
        await gate.wait()
        if socket.handshake.auth.get("refuse"):
            raise aiosio.ConnectionRefused("not now")

    sio.on("join", lambda socket, room: socket.join(room))
    base = await serve(sio)
    first = await clients(base)
    await first.send("40")
    connected = json.loads(str(await first.next())[2:])
    sid, pid = connected["sid"], connected["pid"]
    await first.send('421["join","room1"]')
    assert await first.next() == "431[]"
    sio.to("room1").emit("tick")  # the client's offset
    offset = json.loads(str(await first.next())[2:])[-1]
    await first.close()
    await eventually(lambda: sid not in sio.sockets.sockets)
    sio.to("room1").emit("missed", 0)
    back = await clients(base)
    await back.send("40" + json.dumps({"pid": pid, "offset": offset, **(auth or {})}))
    await eventually(lambda: bool(waiting))
    assert waiting[0].id == sid
    return sio, back, waiting[0], gate, seen


def event_of(frame: str | bytes) -> list[Any]:
    """``[event, *args]`` of an EVENT frame, the recovery offset left out."""
    assert isinstance(frame, str)
    assert frame.startswith("42["), frame
    data = json.loads(frame[2:])
    assert isinstance(data[-1], str)  # the offset
    return list(data[:-1])


def broadcast_while_waiting(sio: aiosio.Server, sid: str) -> None:
    sio.to("room1").emit("during", 1)
    sio.emit("during", 2)
    sio.to(sid).emit("during", 3)
    sio.to("room1").except_("other").emit("during", 4)
    sio.except_("room1").emit("not-for-it")
    sio.to("other").emit("for-nobody")
    sio.to("room1").emit_with_ack("with-ack").close()  # with acks: the connected only


async def test_a_recovered_socket_gets_what_is_broadcast_while_its_middlewares_run(
    serve: Any, clients: Callable[..., Any]
) -> None:
    """As the reference, a recovered socket is in its rooms before its middlewares run (they see
    them); a broadcast to its rooms meanwhile is not lost: it follows the missed packets,
    before the CONNECT packet. Nothing reaches the client before the middlewares accepted it."""
    sio, back, socket, gate, seen = await recovering_behind_a_gate(serve, clients)
    sid = socket.id
    assert seen == sorted([sid, "room1"])
    assert not socket.connected
    assert sid not in sio.sockets.sockets
    broadcast_while_waiting(sio, sid)
    await back.nothing(0.2)
    gate.set()
    frames = [await back.next() for _ in range(6)]
    assert [event_of(frame) for frame in frames[:5]] == [
        ["missed", 0],
        ["during", 1],
        ["during", 2],
        ["during", 3],
        ["during", 4],
    ]
    assert json.loads(str(frames[5])[2:]) == {"sid": sid, "pid": socket.pid}
    assert str(frames[5]).startswith("40{")
    sio.to("room1").emit("after", 5)
    assert event_of(await back.next()) == ["after", 5]
    await back.nothing(0.1)
    assert socket.connected
    assert socket.rooms == {sid, "room1"}
    assert sio.sockets.pending == {}


async def test_a_recovered_socket_refused_by_a_middleware_gets_nothing_and_is_in_no_room(
    serve: Any, clients: Callable[..., Any]
) -> None:
    sio, back, socket, gate, _ = await recovering_behind_a_gate(
        serve, clients, auth={"refuse": True}
    )
    sid = socket.id
    broadcast_while_waiting(sio, sid)
    gate.set()
    assert await back.next() == '44{"message":"not now"}'
    sio.to("room1").emit("after", 5)
    await back.nothing(0.2)
    assert not socket.connected
    assert socket.rooms == set()
    adapter = sio.sockets.adapter
    assert sid not in adapter.sids
    assert "room1" not in adapter.rooms
    assert sio.sockets.pending == {}
    assert sid not in sio.sockets.sockets


async def test_what_a_recovered_socket_holds_is_bounded_by_max_outbound_buffer(
    serve: Any, clients: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Broadcasts held for a recovered socket whose middleware takes its time are bounded as
    what waits for a client that does not read: past max_outbound_buffer its connection is
    closed, said at WARNING, and the socket leaves its rooms when the middleware ends."""
    sio, back, socket, gate, _ = await recovering_behind_a_gate(
        serve, clients, max_outbound_buffer=10_000
    )
    caplog.set_level(logging.WARNING, "aiosio.server")
    for _ in range(5):
        sio.to("room1").emit("during", "x" * 1000)
    await back.nothing(0.1)
    sio.to("room1").emit("during", "x" * 6000)  # past 10,000 bytes held
    await back.wait_closed()
    assert any(
        "bytes of broadcasts wait for socket " + socket.id in record.getMessage()
        and "(max_outbound_buffer=10000)" in record.getMessage()
        for record in caplog.records
    )
    assert back.frames.empty()
    gate.set()
    await eventually(lambda: not socket.rooms)
    assert not socket.connected
    assert "room1" not in sio.sockets.adapter.rooms
    assert sio.sockets.pending == {}


# -- namespaces, acks, handlers ------------------------------------------------------------------


async def test_last_namespace_left_keeps_the_session(
    serve: Any, clients: Callable[..., Any]
) -> None:
    sio, watch, base = await start(serve, ping_interval=0.1, ping_timeout=1, connect_timeout=0.2)
    client = await clients(base)
    first = await client.connect()
    await client.send("41")
    assert await watch.disconnected(first) == ("client namespace disconnect", None)
    pings = client.pings
    await eventually(lambda: client.pings >= pings + 3)  # connect_timeout is not re-armed
    assert not client.closed.is_set()
    second = await client.connect()
    assert second != first
    await client.send('42["msg",1]')
    assert await client.next() == '42["echo",1]'
    # the server side disconnecting the namespace does the same
    watch.sockets[second].disconnect()
    assert await client.next() == "41"
    assert await watch.disconnected(second) == ("server namespace disconnect", None)
    pings = client.pings
    await eventually(lambda: client.pings >= pings + 2)
    third = await client.connect()
    await client.send('42["msg",2]')
    assert await client.next() == '42["echo",2]'
    assert third not in watch.disconnects
    assert sio.sockets.sockets.keys() == {third}
    assert watch.leaks == []


async def test_events_before_the_namespace_accepted_are_not_dispatched(
    serve: Any, clients: Callable[..., Any]
) -> None:
    sio, watch, base = await start(serve)
    gate = asyncio.Event()
    entered: list[aiosio.Socket] = []

    @sio.use
    async def slow(socket: aiosio.Socket) -> None:
        entered.append(socket)
        await gate.wait()

    early = await clients(base)
    await early.send("40", '42["msg","early"]', '421["msg","early-ack"]')
    await eventually(lambda: bool(entered))
    # the reference closes the connection: an event for a namespace not (yet) connected
    await early.wait_closed()
    gate.set()
    await asyncio.sleep(0.1)
    assert watch.received == {}
    assert watch.connections == 0
    assert entered[0].id not in sio.sockets.sockets
    assert not entered[0].connected
    assert entered[0].rooms == set()
    # a client that waits for CONNECT is fine
    polite = await clients(base)
    sid = await polite.connect()
    await polite.send('42["msg","polite"]')
    assert await polite.next() == '42["echo","polite"]'
    assert watch.received == {sid: ["polite"]}
    assert watch.leaks == []


async def test_pending_acks_fail_when_the_client_goes(
    serve: Any, clients: Callable[..., Any]
) -> None:
    _sio, watch, base = await start(serve)
    client = await clients(base)
    sid = await client.connect()
    socket = watch.sockets[sid]
    # an answered ack first
    answered = asyncio.ensure_future(socket.emit_with_ack("q", 1))
    frame = str(await client.next())
    match = re.fullmatch(r'42(\d+)\["q",1\]', frame)
    assert match, frame
    await client.send(f'43{match[1]}["yes",2]')
    assert await answered == "yes"
    # then two that never are
    first = asyncio.ensure_future(socket.emit_with_ack("q", 2))
    second = asyncio.ensure_future(socket.timeout(30).emit_with_ack_all("q", 3))
    assert re.fullmatch(r'42\d+\["q",2\]', str(await client.next()))
    assert re.fullmatch(r'42\d+\["q",3\]', str(await client.next()))
    await client.close()
    with pytest.raises(aiosio.Disconnected):
        await asyncio.wait_for(first, TIMEOUT)
    with pytest.raises(aiosio.Disconnected):
        await asyncio.wait_for(second, TIMEOUT)
    assert (await watch.disconnected(sid))[0] == "transport close"


async def test_a_client_cannot_answer_another_sockets_ack(
    serve: Any, clients: Callable[..., Any]
) -> None:
    _sio, watch, base = await start(serve)
    a, b = await clients(base), await clients(base)
    a_sid, b_sid = await a.connect(), await b.connect()
    to_a = asyncio.ensure_future(watch.sockets[a_sid].emit_with_ack("q"))
    to_b = asyncio.ensure_future(watch.sockets[b_sid].emit_with_ack("q"))
    a_id = re.fullmatch(r'42(\d+)\["q"\]', str(await a.next()))
    b_id = re.fullmatch(r'42(\d+)\["q"\]', str(await b.next()))
    assert a_id
    assert b_id
    assert a_id[1] != b_id[1]  # ack ids come from one counter per namespace
    await a.send(f'43{b_id[1]}["forged"]')
    await a.send('42["msg",1]')
    assert await a.next() == '42["echo",1]'
    assert not to_b.done()
    await b.send(f'43{b_id[1]}["real"]')
    assert await to_b == "real"
    await a.send(f'43{a_id[1]}["mine"]')
    assert await to_a == "mine"
    assert watch.disconnects == {}


async def test_ack_timeout_with_a_silent_client(serve: Any, clients: Callable[..., Any]) -> None:
    _sio, watch, base = await start(serve)
    client = await clients(base)
    sid = await client.connect()
    socket = watch.sockets[sid]
    expected = f"socket {sid} did not acknowledge 'q' within 0.2s"
    with pytest.raises(aiosio.AckTimeout, match=f"^{re.escape(expected)}$"):
        async with asyncio.timeout(TIMEOUT):  # the ack's own timeout fires long before
            await socket.timeout(0.2).emit_with_ack("q")
    frame = str(await client.next())
    match = re.fullmatch(r'42(\d+)\["q"\]', frame)
    assert match, frame
    # a late ack is ignored; the connection carries on
    await client.send(f"43{match[1]}[1]", "43999[]", '42["msg",1]')
    assert await client.next() == '42["echo",1]'
    # the flag was one-shot: the next ack waits for the client
    pending = asyncio.ensure_future(socket.emit_with_ack("r"))
    match = re.fullmatch(r'42(\d+)\["r"\]', str(await client.next()))
    assert match
    await asyncio.sleep(0.3)
    assert not pending.done()
    await client.send(f"43{match[1]}[]")
    assert await pending is None
    assert sid not in watch.disconnects


async def test_raising_handlers_are_logged_and_keep_the_client(
    serve: Any, clients: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    sio, watch, base = await start(serve)

    @sio.on("boom")
    def boom(socket: aiosio.Socket, *args: Any) -> None:
        raise RuntimeError("sync kaboom")

    @sio.on("aboom")
    async def aboom(socket: aiosio.Socket, *args: Any) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async kaboom")

    caplog.set_level(logging.ERROR, logger="aiosio.server")
    client = await clients(base)
    sid = await client.connect()
    watch.sockets[sid].on("own", lambda *a: 1 / 0)
    await client.send('42["boom"]', '421["boom",1]', '42["aboom"]', '422["aboom"]', '42["own"]')
    await client.send('42["msg","after"]')
    assert await client.next() == '42["echo","after"]'
    await eventually(lambda: len(caplog.records) >= 5)
    messages = [r.getMessage() for r in caplog.records if r.name == "aiosio.server"]
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert sum(str(e) == "sync kaboom" for e in errors) == 2, messages
    assert sum(str(e) == "async kaboom" for e in errors) == 2, messages
    assert any(isinstance(e, ZeroDivisionError) for e in errors), messages
    await client.nothing(0.1)  # no ack for a handler that raised
    assert sid not in watch.disconnects
    assert not client.closed.is_set()
    assert watch.leaks == []


# -- a client that stops reading (HARDENING: slow clients) ---------------------------------------


async def _stalled_client(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client connected to "/" that then reads nothing: a small receive buffer, so
    that what the server sends waits in the server."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {PATH}?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(TIMEOUT):
        received = await reader.readuntil(b"\r\n\r\n")
        assert received.startswith(b"HTTP/1.1 101"), received
        writer.write(b"\x81\x82\x00\x00\x00\x0040")  # "40", masked with a zero key
        while b"40{" not in received:
            received += await reader.read(4096)
    return reader, writer


@pytest.mark.parametrize("path", ["broadcast", "emit"])
async def test_a_client_that_stops_reading_is_closed_past_the_outbound_limit(
    serve: Any, clients: Callable[..., Any], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """The server holds at most ``max_outbound_buffer`` bytes for a client that reads nothing,
    then closes its session with the cause in the log, while a client that reads gets every
    message. Both ways of sending: a broadcast (one frame built for every recipient, the native
    server's fast path) and an emit to each socket."""
    sio = aiosio.Server(max_outbound_buffer=256 * 1024)
    watch = Watch(sio)
    base = await serve(sio)
    good = await clients(base)
    good_sid = await good.connect()
    _, writer = await _stalled_client(base)
    await eventually(lambda: len(watch.sockets) == 2)
    payload = "x" * 16 * 1024
    sent = 0
    with caplog.at_level(logging.WARNING, logger="aiosio"):
        # At most 2000 messages of 16 KiB (32 MB): far past the socket buffers and the limit.
        while sent < 2000 and not watch.disconnects:
            if path == "broadcast":
                sio.emit("big", sent, payload)
            else:
                for socket_ in list(watch.sockets.values()):
                    socket_.emit("big", sent, payload)
            sent += 1
            await asyncio.sleep(0)  # a turn of the loop: the frames are written
        await eventually(lambda: len(watch.disconnects) == 1)
    ((gone, (reason, _)),) = watch.disconnects.items()
    assert gone != good_sid
    assert reason == "transport error"
    assert any("does not read" in r.getMessage() for r in caplog.records), caplog.text
    for seq in range(sent):
        frame = await good.next()
        assert frame == f'42["big",{seq},"{payload}"]', str(frame)[:40]
    writer.close()

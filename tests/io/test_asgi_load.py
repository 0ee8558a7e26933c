"""Many WebSocket sessions on the ASGI app under uvicorn, held through heartbeat cycles: every
session survives, an idle connection costs one task (the one uvicorn runs the app in), and what
the sessions held is freed when they close, by reference counting."""

from __future__ import annotations

import asyncio
import base64
import functools
import gc
import os
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from _eio import eventually

import aiosio
from aiosio.engine.server import EngineSocket
from aiosio.server.socket import Socket
from aiosio.transports import asgi
from conftest import _Uvicorn

COUNT = 500


class _RawClient(asyncio.Protocol):
    """A WebSocket client of Engine.IO 4 with no task of its own: it joins "/", answers every
    ping and counts them (so that the test counts heartbeat cycles, not seconds)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.joined = False
        self.closed = False
        self.pings = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def send(self, text: str) -> None:
        assert self.transport is not None
        data = text.encode()
        # masked with a zero key: the payload is unchanged (RFC 6455 5.3)
        self.transport.write(bytes([0x81, 0x80 | len(data)]) + b"\0\0\0\0" + data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            assert head.startswith(b"HTTP/1.1 101"), head
            self.upgraded, self.buffer = True, rest
        while len(self.buffer) >= 2:
            opcode, size = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            start = 2
            if size == 126:
                size, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif size == 127:
                size, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < start + size:
                return
            payload, self.buffer = self.buffer[start : start + size], self.buffer[start + size :]
            if opcode == 0x8:
                self.closed = True
            elif payload.startswith(b"0{"):
                self.send("40")
            elif payload.startswith(b"40{"):
                self.joined = True
            elif payload == b"2":
                self.pings += 1
                self.send("3")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


class _Tracked:
    """Weak references to every instance of the classes created per connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refs: list[weakref.ref[Any]] = []
        for cls in (EngineSocket, Socket):
            original = cls.__init__

            def init(self_: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
                __original(self_, *args, **kwargs)
                self.refs.append(weakref.ref(self_))

            monkeypatch.setattr(cls, "__init__", init)

    def alive(self) -> list[str]:
        return [type(obj).__name__ for ref in self.refs if (obj := ref()) is not None]


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _joined(clients: list[_RawClient]) -> bool:
    return all(c.joined for c in clients)


def _channels() -> int:
    return sum(type(o) is asgi.AsgiWebSocket for o in gc.get_objects())


@pytest.mark.usefixtures("no_gc")
async def test_sessions_held_through_heartbeats_cost_one_task_each_and_are_freed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracked = _Tracked(monkeypatch)
    # A short interval for many heartbeat cycles; a long timeout: the machine may be busy, and
    # what is counted here is tasks and objects, not how fast the pongs come back.
    sio = aiosio.Server(ping_interval=0.3, ping_timeout=60)
    app = sio.asgi()
    runner = _Uvicorn(app, ws_ping_interval=None)
    await runner.start()
    loop = asyncio.get_running_loop()
    clients: list[_RawClient] = []
    try:
        before = len(asyncio.all_tasks())
        async with asyncio.timeout(120):
            for _ in range(0, COUNT, 50):
                batch = [
                    (await loop.create_connection(_RawClient, "127.0.0.1", runner.port))[1]
                    for _ in range(50)
                ]
                clients += batch
                await eventually(functools.partial(_joined, batch), timeout=60)
            # Two heartbeat cycles for every client, after all of them joined.
            first = {id(c): c.pings for c in clients}
            await eventually(lambda: all(c.pings >= first[id(c)] + 2 for c in clients), 60)
        assert not any(c.closed for c in clients)
        assert len(sio.engine.clients) == COUNT
        # One task per idle connection: uvicorn's, which runs the app (the app's own writer
        # task is started only while something is queued from outside the receive loop: a
        # heartbeat in flight has one for a moment, so the count is taken between them).
        await eventually(lambda: len(asyncio.all_tasks()) - before <= COUNT + 5, 30)
        for client in clients:
            assert client.transport is not None
            client.transport.close()
        async with asyncio.timeout(60):
            await eventually(lambda: not sio.engine.clients and not app.open_websockets, 60)
            await eventually(lambda: len(asyncio.all_tasks()) <= before, 60)
        # Freed by reference counting (the collector is off): no session, socket or channel
        # waits for a full collection.
        assert tracked.alive() == [], f"still alive without gc: {len(tracked.alive())}"
        assert _channels() == 0
    finally:
        for client in clients:
            if client.transport is not None:
                client.transport.abort()
        await runner.close()

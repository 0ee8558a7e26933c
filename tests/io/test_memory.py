"""A closed connection is freed at once by reference counting: no object of a session is left
in a reference cycle for the garbage collector's next full pass. A server with many short
sessions would otherwise hold thousands of dead sessions between passes (the churn benchmark
showed 30 objects per connection waiting for it)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import aiosio
from aiosio.engine.server import EngineSocket
from aiosio.server.socket import Socket
from aiosio.transports.native import HttpConnection


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Tracked:
    """Weak references to every instance of the classes the server creates per connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refs: list[weakref.ref[Any]] = []
        for cls in (EngineSocket, Socket, HttpConnection):
            original = cls.__init__

            def init(self_: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
                __original(self_, *args, **kwargs)
                self.refs.append(weakref.ref(self_))

            monkeypatch.setattr(cls, "__init__", init)

    def alive(self) -> list[str]:
        return [type(obj).__name__ for ref in self.refs if (obj := ref()) is not None]


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
@pytest.mark.usefixtures("no_gc")
async def test_closed_sessions_are_freed_without_the_garbage_collector(
    monkeypatch: pytest.MonkeyPatch, transports: list[str]
) -> None:
    tracked = _Tracked(monkeypatch)
    sio = aiosio.Server()

    @sio.on("echo")
    def echo(socket: aiosio.Socket, data: object) -> object:
        return data

    server = await aiosio.serve(sio, "127.0.0.1", 0)
    try:
        for _ in range(3):
            client = aiosio.Client(
                f"http://127.0.0.1:{server.port}", transports=transports, reconnection=False
            )
            await client.connect()
            assert await client.emit_with_ack("echo", "x") == "x"
            await client.disconnect()
        assert tracked.refs
        for _ in range(100):  # the server sees the closes a moment later
            if not tracked.alive():
                break
            await asyncio.sleep(0.02)
        assert tracked.alive() == [], f"still alive without gc: {tracked.alive()}"
    finally:
        await server.close()

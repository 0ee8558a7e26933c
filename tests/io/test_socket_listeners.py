"""A server socket's own listeners as an application uses them, against the aiosio client on a
real server: ``socket.on``/``off`` (one handler or all), ``on_any``/``off_any``,
``on_any_outgoing``/``off_any_outgoing`` (emits and broadcasts), per-packet middleware
(sync and async, refusing a packet to the socket's ``error`` handlers), several handlers
answering one acknowledgement; and the client's ``off``, ``on_any`` and ``on_any_outgoing``.

Packets of one connection are handled in order: an acknowledged ``sync`` event sent after
others returns once the server handled them, so no test waits for time to pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest

import aiosio
from conftest import ServeFn

TIMEOUT = 10.0


@dataclass
class Connected:
    client: aiosio.Client
    socket: aiosio.Socket
    received: asyncio.Queue[tuple[Any, ...]] = field(default_factory=asyncio.Queue)

    async def sync(self) -> None:
        """Returns once the server handled everything the client sent before."""
        assert await self.client.emit_with_ack("sync", timeout=TIMEOUT) == "synced"

    async def next(self) -> tuple[Any, ...]:
        return await asyncio.wait_for(self.received.get(), TIMEOUT)


@pytest.fixture
async def connected(serve: ServeFn) -> AsyncIterator[Connected]:
    sio = aiosio.Server()
    sockets: asyncio.Queue[aiosio.Socket] = asyncio.Queue()
    sio.on("connection", sockets.put_nowait)
    sio.on("sync", lambda _socket: "synced")
    client = aiosio.Client(await serve(sio), reconnection=False)
    await client.connect()
    try:
        socket = await asyncio.wait_for(sockets.get(), TIMEOUT)
        peer = Connected(client, socket)
        client.on_any(lambda event, *args: peer.received.put_nowait((event, *args)))
        yield peer
    finally:
        await client.disconnect()


async def test_own_handlers_are_added_and_removed_one_or_all(connected: Connected) -> None:
    socket, client = connected.socket, connected.client
    calls: list[tuple[str, Any]] = []

    def first(value: Any) -> None:
        calls.append(("first", value))

    def second(value: Any) -> None:
        calls.append(("second", value))

    socket.on("x", first)
    socket.on("x")(second)  # as a decorator
    client.emit("x", 1)
    await connected.sync()
    socket.off("x", first)
    client.emit("x", 2)
    await connected.sync()
    socket.off("x", first)  # no longer there: nothing happens
    socket.off("x")  # every handler of x
    client.emit("x", 3)
    await connected.sync()
    assert calls == [("first", 1), ("second", 1), ("second", 2)]
    socket.on("y", first)
    socket.off("y", first)  # the last one: y has no handler left
    client.emit("y", 4)
    await connected.sync()
    assert calls == [("first", 1), ("second", 1), ("second", 2)]


async def test_on_any_sees_every_event_until_removed(connected: Connected) -> None:
    socket, client = connected.socket, connected.client
    seen: list[tuple[Any, ...]] = []
    everything: list[str] = []

    def note(event: str, *args: Any) -> None:
        seen.append((event, *args))

    socket.on_any(note)
    socket.on_any(lambda event, *_args: everything.append(event))
    client.emit("a", 1, "two")
    await connected.sync()
    socket.off_any(note)
    client.emit("b")
    await connected.sync()
    assert seen == [("a", 1, "two"), ("sync",)]
    assert everything == ["a", "sync", "b", "sync"]
    socket.off_any()  # all of them
    client.emit("c")
    await connected.sync()
    assert everything == ["a", "sync", "b", "sync"]


async def test_on_any_outgoing_sees_emits_and_broadcasts_until_removed(
    connected: Connected,
) -> None:
    socket = connected.socket
    sent: list[tuple[Any, ...]] = []

    def note(event: str, *args: Any) -> None:
        sent.append((event, *args))

    socket.on_any_outgoing(note)
    socket.emit("news", 1)
    socket.nsp.emit("everyone", 2)
    assert await connected.next() == ("news", 1)
    assert await connected.next() == ("everyone", 2)
    assert sent == [("news", 1), ("everyone", 2)]
    socket.off_any_outgoing(note)
    socket.on_any_outgoing(note)
    socket.off_any_outgoing()  # all of them
    socket.emit("news", 3)
    assert await connected.next() == ("news", 3)
    assert sent == [("news", 1), ("everyone", 2)]


async def test_middleware_refuses_a_packet_to_the_error_handlers(connected: Connected) -> None:
    socket, client = connected.socket, connected.client
    handled: list[Any] = []
    errors: list[BaseException] = []
    socket.on("x", handled.append)
    socket.on("error", errors.append)

    def only_small(event: str, args: list[Any]) -> None:
        if event == "x" and args[0] > 10:
            raise ValueError(f"{args[0]} is too big")

    async def not_thirteen(event: str, args: list[Any]) -> None:
        await asyncio.sleep(0)  # an async middleware: the next one runs when it ends
        if args and args[0] == 3:
            raise PermissionError("3 is refused")

    socket.use(only_small)
    socket.use(not_thirteen)
    for value in (1, 11, 3, 2):
        client.emit("x", value)
    await connected.sync()
    assert handled == [1, 2]
    assert [str(error) for error in errors] == ["11 is too big", "3 is refused"]
    assert [type(error) for error in errors] == [ValueError, PermissionError]


async def test_middleware_refusal_without_error_handler_is_logged(
    connected: Connected, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(event: str, _args: list[Any]) -> None:
        if event == "x":
            raise ValueError("not now")

    connected.socket.use(refuse)
    with caplog.at_level("INFO", logger="aiosio.server"):
        connected.client.emit("x")
        await connected.sync()
    assert f"socket {connected.socket.id}: packet refused by middleware: not now" in caplog.text


async def test_the_first_handler_that_returns_answers_the_ack_once(
    connected: Connected,
) -> None:
    socket, client = connected.socket, connected.client
    calls: list[str] = []

    def first(value: int) -> int:
        calls.append("first")
        return value + 1

    def second(value: int) -> int:
        calls.append("second")
        return value + 2

    socket.on("q", first)
    socket.on("q", second)
    assert await client.emit_with_ack("q", 1, timeout=TIMEOUT) == 2
    assert calls == ["first", "second"]


async def test_client_off_and_outgoing_listeners(connected: Connected) -> None:
    socket, client = connected.socket, connected.client
    got: list[Any] = []
    outgoing: list[tuple[Any, ...]] = []

    def note(value: Any) -> None:
        got.append(value)

    client.on("news", note)
    client.on_any_outgoing(lambda event, *args: outgoing.append((event, *args)))
    socket.emit("news", 1)
    assert await connected.next() == ("news", 1)
    client.off("news", note)
    socket.emit("news", 2)
    assert await connected.next() == ("news", 2)
    client.on("news", note)
    client.off("news")  # all of them
    socket.emit("news", 3)
    assert await connected.next() == ("news", 3)
    assert got == [1]
    client.emit("out", "a")
    await connected.sync()
    assert outgoing == [("out", "a"), ("sync",)]

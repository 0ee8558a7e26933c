"""``sio.emit``, ``sio.to(...)`` and the other broadcast shortcuts of the Server act on its main
namespace (as ``io.emit`` does in the reference), and ``sio.of(name)`` offers the same on its
own: checked with two aiosio clients on a real server, the events they receive and the order
they receive them in."""

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
class Peer:
    client: aiosio.Client
    received: asyncio.Queue[tuple[Any, ...]] = field(default_factory=asyncio.Queue)
    disconnects: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    async def next(self) -> tuple[Any, ...]:
        return await asyncio.wait_for(self.received.get(), TIMEOUT)


@dataclass
class Pair:
    sio: aiosio.Server
    a: Peer
    b: Peer


@pytest.fixture(params=["/", "/chat"])
async def pair(serve: ServeFn, request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """Two clients of one namespace: the main one, or /chat (reached through ``sio.of``)."""
    sio = aiosio.Server()
    namespace = str(request.param)
    nsp = sio.of(namespace)

    @nsp.event
    def question(_socket: aiosio.Socket, value: int) -> int:  # registered by its name
        return value * 2

    base = await serve(sio)
    peers = []
    for _ in range(2):
        # on WebSocket only: a volatile packet is dropped while a polling transport has no GET
        # waiting, as in the reference
        url = base + ("" if namespace == "/" else namespace)
        client = aiosio.Client(url, reconnection=False, transports=["websocket"])
        peer = Peer(client)
        client.on_any(lambda event, *args, peer=peer: peer.received.put_nowait((event, *args)))
        client.on("disconnect", lambda reason, *_, peer=peer: peer.disconnects.put_nowait(reason))
        client.on("answer", lambda value, peer=peer: value + 1)
        await client.connect()
        peers.append(peer)
    try:
        yield Pair(sio, *peers)
    finally:
        for peer in peers:
            await peer.client.disconnect()


def target(pair: Pair) -> Any:
    """The Server itself for the main namespace (its shortcuts), else the Namespace."""
    namespace = pair.a.client.namespace
    return pair.sio if namespace == "/" else pair.sio.of(namespace)


async def test_broadcasts_with_their_flags_reach_everyone(pair: Pair) -> None:
    io = target(pair)
    # First: a volatile packet goes only to a transport with nothing queued (as the reference's
    # WebSocket, not writable until its last send completed).
    io.volatile.emit("v", 1)
    io.emit("e", 2)
    io.send("text")
    io.local.emit("l", 4)
    io.compress(False).emit("c", 5)
    for peer in (pair.a, pair.b):
        assert [await peer.next() for _ in range(5)] == [
            ("v", 1),
            ("e", 2),
            ("message", "text"),
            ("l", 4),
            ("c", 5),
        ]


async def test_rooms_joined_and_left_by_the_server(pair: Pair) -> None:
    io = target(pair)
    a_id = pair.a.client.id
    assert a_id is not None
    io.in_(a_id).sockets_join("room")  # only a
    io.to("room").emit("to-room", 1)
    io.except_("room").emit("not-room", 2)
    assert await pair.a.next() == ("to-room", 1)
    assert await pair.b.next() == ("not-room", 2)
    sockets = await io.fetch_sockets()
    assert sorted(s.id for s in sockets) == sorted([a_id, pair.b.client.id])
    assert {s.id: "room" in s.rooms for s in sockets}[a_id]
    io.sockets_join("everyone")
    io.sockets_leave("room")
    io.to("room").emit("to-room", 3)  # nobody left in it
    io.to("everyone").emit("to-everyone", 4)
    assert await pair.a.next() == ("to-everyone", 4)
    assert await pair.b.next() == ("to-everyone", 4)


async def test_acks_from_every_client_and_an_event_handler_by_name(pair: Pair) -> None:
    io = target(pair)
    assert sorted(await io.timeout(TIMEOUT).emit_with_ack("answer", 1)) == [2, 2]
    assert await pair.a.client.emit_with_ack("question", 21, timeout=TIMEOUT) == 42


async def test_disconnect_sockets_tells_every_client(pair: Pair) -> None:
    target(pair).disconnect_sockets()
    for peer in (pair.a, pair.b):
        reason = await asyncio.wait_for(peer.disconnects.get(), TIMEOUT)
        assert reason == "io server disconnect"
        assert not peer.client.connected

"""The Engine.IO events on ``client.io.engine`` (Node: ``socket.io.engine.on(...)``), as the
reference's debugging advice uses them, against the official socket.io 4.8 server
(tests/js/engine_server.mjs): ``packet``, ``packetCreate``, ``upgrade`` with the new transport,
``upgradeError`` (behind a relay that refuses WebSocket, tests/interop/_wire.py), ``drain`` and
``close`` with its reason and description."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from collections.abc import Callable
from typing import Any

import pytest
from _wire import node_engine_server
from _wire import relay
from _wire import websockets_closed

import aiosio
from aiosio.client.engine import EngineClient
from aiosio.client.errors import UpgradeError
from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
async def _client_websockets_closed() -> AsyncIterator[None]:
    yield
    await websockets_closed()


TIMEOUT = 10.0


async def until(predicate: Callable[[], Any], what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            await asyncio.sleep(0.01)
    assert predicate(), what


class Recorder:
    """The engine's events, in order, as ``(event, args)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.engine: EngineClient | None = None

    def attach(self, client: aiosio.Client) -> None:
        """On the Manager's ``open`` (the engine exists, its upgrade has not started)."""

        def opened() -> None:
            engine = client.io.engine
            assert engine is not None
            self.engine = engine
            for name in ("packet", "packetCreate", "upgrade", "upgradeError", "drain", "close"):
                engine.on(name, self._record(name))

        client.io.on("open", opened)

    def _record(self, name: str) -> Callable[..., None]:
        return lambda *args: self.events.append((name, args))

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for event, args in self.events if event == name]

    def packets(self, name: str) -> list[Packet]:
        return [args[0] for args in self.of(name)]


async def test_packets_upgrade_drain_and_close_against_node() -> None:
    async with node_engine_server({"pingInterval": 300, "pingTimeout": 5000}) as server:
        client = aiosio.Client(server.url, reconnection=False)
        recorder = Recorder()
        recorder.attach(client)
        await client.connect()
        try:
            engine = recorder.engine
            assert engine is not None
            await until(lambda: recorder.of("upgrade"), "the upgrade")
            (transport,) = recorder.of("upgrade")[0]
            assert transport.name == "websocket"
            assert engine.transport.name == "websocket"
            assert engine.transport == "websocket"

            assert await client.emit_with_ack("echo", "hi", timeout=TIMEOUT) == "hi"
            client.compress(False).emit("echo", "plain")
            await until(lambda: len(recorder.of("drain")) >= 2, "drain after the emits")
            await until(
                lambda: any(p.type is PacketType.PING for p in recorder.packets("packet")),
                "a ping from the server",
            )
            client.emit("close")  # the server closes the Engine.IO session
            await until(lambda: recorder.of("close"), "the close")
        finally:
            await client.disconnect()

    received = recorder.packets("packet")
    assert received[0].type is PacketType.MESSAGE  # the answer to the CONNECT (after "open")
    assert str(received[0].data).startswith('0{"sid":')
    assert Packet(PacketType.MESSAGE, '30["hi"]') in received
    assert Packet(PacketType.PING) in received

    created = recorder.packets("packetCreate")
    assert created[0] == Packet(PacketType.MESSAGE, "0")  # the namespace's CONNECT
    hi = created[created.index(Packet(PacketType.MESSAGE, '20["echo","hi"]'))]
    assert hi.compress is True
    plain = created[created.index(Packet(PacketType.MESSAGE, '2["echo","plain"]'))]
    assert plain.compress is False  # the emit's compress flag, as packet.options.compress
    assert Packet(PacketType.PONG) in created  # the answer to each ping

    [(reason, description)] = recorder.of("close")
    assert reason == "transport close"
    assert description["description"] == "websocket connection closed"
    # After "upgrade", every packet went on the new transport; no upgradeError.
    assert recorder.of("upgradeError") == []


async def test_upgrade_error_when_a_proxy_refuses_websocket() -> None:
    async with node_engine_server({}) as server, relay(server.port, refuse_websocket=True) as wire:
        client = aiosio.Client(wire.url, reconnection=False)
        recorder = Recorder()
        recorder.attach(client)
        await client.connect()
        try:
            await until(lambda: recorder.of("upgradeError"), "the upgradeError")
            (error,) = recorder.of("upgradeError")[0]
            assert isinstance(error, UpgradeError)
            assert error.transport == "websocket"
            assert error.message.startswith("probe error: ")
            assert "closed the connection during the WebSocket handshake" in error.message
            engine = recorder.engine
            assert engine is not None
            assert engine.transport.name == "polling"  # still on polling, still working
            assert await client.emit_with_ack("echo", "still", timeout=TIMEOUT) == "still"
            await until(lambda: recorder.of("drain"), "drain after the POST")
        finally:
            await client.disconnect()
    assert wire.requests  # the probe went to the relay, which closed it
    assert len(recorder.of("upgradeError")) == 1  # one probe, one report
    assert recorder.of("upgrade") == []
    [(reason, _)] = recorder.of("close")
    assert reason == "forced close"  # disconnect()


async def test_without_listeners_the_engine_registers_nothing() -> None:
    """The events are opt-in: a client that registers none leaves the engine's registry empty
    (the test each event costs then), and a whole exchange works as before."""
    async with node_engine_server({}) as server:
        client = aiosio.Client(server.url, reconnection=False)
        await client.connect()
        try:
            engine = client.io.engine
            assert engine is not None
            assert not engine.has_listeners("packet")
            assert await client.emit_with_ack("echo", 1, timeout=TIMEOUT) == 1
        finally:
            await client.disconnect()

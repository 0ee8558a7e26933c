"""The client's permessage-deflate and its per-emit compress flag (Node:
``socket.compress(false).emit(...)``, ``perMessageDeflate: {threshold: 1024}``), seen on the
wire by a relay that reads the frames (tests/interop/_wire.py): against the official socket.io
4.8 server with ``perMessageDeflate`` on, frames with RSV1 in both directions when compressing,
and none for ``compress(False)``; against our own server the same from the client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _wire import CLIENT_TO_SERVER
from _wire import SERVER_TO_CLIENT
from _wire import FrameRelay
from _wire import node_engine_server
from _wire import relay
from _wire import websockets_closed

import aiosio
from conftest import ServeFn

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
async def _client_websockets_closed() -> AsyncIterator[None]:
    yield
    await websockets_closed()


TIMEOUT = 10.0
BIG = "compress me " * 200  # 2400 characters: over the 1024 bytes threshold, compressible


def event_text(event: str, *args: Any) -> str:
    """An EVENT packet to "/" as its Engine.IO message: what a frame carries."""
    return "42" + json.dumps([event, *args], separators=(",", ":"))


@pytest.fixture
async def node() -> AsyncIterator[FrameRelay]:
    async with (
        node_engine_server({"perMessageDeflate": True}) as server,
        relay(server.port) as wire,
    ):
        yield wire


async def test_compressed_both_ways_and_not_with_compress_false_against_node(
    node: FrameRelay,
) -> None:
    wire = node
    client = aiosio.Client(wire.url, transports=["websocket"], reconnection=False)
    await client.connect()
    try:
        assert await client.emit_with_ack("echo", "<one>" + BIG, timeout=TIMEOUT) == "<one>" + BIG
        plain = await client.compress(False).emit_with_ack("echo", "<two>" + BIG, timeout=TIMEOUT)
        assert plain == "<two>" + BIG
        # The flag is the next emit's only: the one after is compressed again.
        await client.emit_with_ack("echo", "<three>" + BIG, timeout=TIMEOUT)

        pushed: list[str] = []
        client.on("pushed", pushed.append)
        await client.emit_with_ack("push", True, "<four>" + BIG, timeout=TIMEOUT)
        await client.emit_with_ack("push", False, "<five>" + BIG, timeout=TIMEOUT)
        assert pushed == ["<four>" + BIG, "<five>" + BIG]
    finally:
        await client.disconnect()

    (offer,) = wire.requests
    assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" in offer
    assert compressed(wire, CLIENT_TO_SERVER, "<one>")  # the client compressed it
    assert compressed(wire, SERVER_TO_CLIENT, "<one>")  # and Node its acknowledgement
    assert not compressed(wire, CLIENT_TO_SERVER, "<two>")  # compress(False): sent as it is
    assert compressed(wire, SERVER_TO_CLIENT, "<two>")  # the server's answer is its own choice
    assert compressed(wire, CLIENT_TO_SERVER, "<three>")
    # Node's socket.compress(flag).emit: RSV1 as the flag says, read by our client either way.
    assert compressed(wire, SERVER_TO_CLIENT, "<four>")
    # The reference server's own compress(false) does not reach its WebSocket: engine.io 6.6's
    # transport sends without the packet's options (transports/websocket.ts, _doSend), so `ws`
    # compresses it anyway. What the flag governs, as in Node's client, is the client's side.
    assert compressed(wire, SERVER_TO_CLIENT, "<five>")


def compressed(wire: FrameRelay, direction: str, marker: str) -> bool:
    """Whether the one message of ``direction`` that contains ``marker`` had RSV1 set."""
    (frame,) = wire.sent(direction, marker)
    return frame.rsv1


async def test_small_messages_stay_uncompressed_and_the_threshold_is_an_option(
    node: FrameRelay,
) -> None:
    wire = node
    threshold = 100
    client = aiosio.Client(
        wire.url, transports=["websocket"], reconnection=False, per_message_deflate=threshold
    )
    await client.connect()
    try:
        # The Engine.IO message is '42N["echo","' + text + '"]' with N the ack id (0, 1, 2).
        for text in ("a" * (threshold - 15), "b" * (threshold - 14), "small"):
            await client.emit_with_ack("echo", text, timeout=TIMEOUT)
    finally:
        await client.disconnect()
    sent = [f for f in wire.frames if f.direction == CLIENT_TO_SERVER and '"echo"' in f.text]
    assert [(len(f.data), f.rsv1) for f in sent] == [
        (threshold - 1, False),
        (threshold, True),  # at the threshold: compressed (Node's client: `len < threshold`)
        (len('422["echo","small"]'), False),
    ]


async def test_per_message_deflate_false_offers_nothing(node: FrameRelay) -> None:
    wire = node
    client = aiosio.Client(
        wire.url, transports=["websocket"], reconnection=False, per_message_deflate=False
    )
    await client.connect()
    try:
        assert await client.emit_with_ack("echo", BIG, timeout=TIMEOUT) == BIG
    finally:
        await client.disconnect()
    (request,) = wire.requests
    assert b"sec-websocket-extensions" not in request.lower()
    assert wire.frames
    assert not any(frame.rsv1 for frame in wire.frames)


async def test_the_flag_after_an_upgrade_and_for_buffered_emits(node: FrameRelay) -> None:
    """The default transports: the emits made before the connection wait with their flag, and
    once upgraded to WebSocket the flag applies there (polling has no per-message
    compression)."""
    wire = node
    client = aiosio.Client(wire.url, reconnection=False)
    upgraded: list[str] = []

    def opened() -> None:  # the Manager's "open": the engine exists, its upgrade not started
        engine = client.io.engine
        assert engine is not None
        engine.on("upgrade", lambda transport: upgraded.append(transport.name))

    client.io.on("open", opened)
    client.compress(False).emit("echo", "buffered plain " + BIG)
    client.emit("echo", "buffered deflated " + BIG)
    await client.connect()
    try:
        async with asyncio.timeout(TIMEOUT):
            while not upgraded:
                await asyncio.sleep(0.01)
        await client.compress(False).emit_with_ack("echo", "ws plain " + BIG, timeout=TIMEOUT)
        await client.emit_with_ack("echo", "ws deflated " + BIG, timeout=TIMEOUT)
    finally:
        await client.disconnect()
    assert upgraded == ["websocket"]
    # The buffered emits go on polling or, when the upgrade is pausing polling as the
    # connection opens, on the WebSocket; wherever a message went as a frame, its flag held.
    sent = {
        f.text.split('","')[1].split(" compress")[0]: f.rsv1
        for f in wire.frames
        if f.direction == CLIENT_TO_SERVER and '"echo"' in f.text
    }
    assert sent.pop("ws plain") is False
    assert sent.pop("ws deflated") is True
    assert sent.get("buffered plain", False) is False
    assert sent.get("buffered deflated", True) is True


async def test_against_our_server(serve_native: ServeFn) -> None:
    sio = aiosio.Server(per_message_deflate=True)
    received: list[str] = []

    @sio.on("echo")
    def echo(_socket: aiosio.Socket, text: str) -> str:
        received.append(text)
        return text

    url = await serve_native(sio)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    async with relay(port) as wire:
        client = aiosio.Client(wire.url, transports=["websocket"], reconnection=False)
        await client.connect()
        try:
            assert await client.emit_with_ack("echo", "one " + BIG, timeout=TIMEOUT) == "one " + BIG
            await client.compress(False).emit_with_ack("echo", "two " + BIG, timeout=TIMEOUT)
            await client.emit_with_ack("echo", "three " + BIG, timeout=TIMEOUT)
        finally:
            await client.disconnect()
    assert received == ["one " + BIG, "two " + BIG, "three " + BIG]
    sent = [(f.text[:16], f.rsv1) for f in wire.frames if f.direction == CLIENT_TO_SERVER]
    assert [s for s in sent if '"echo"' in s[0]] == [
        ('420["echo","one ', True),
        ('421["echo","two ', False),
        ('422["echo","thre', True),
    ]
    answers = [
        f.rsv1 for f in wire.frames if f.direction == SERVER_TO_CLIENT and "compress" in f.text
    ]
    assert answers == [True, True, True]  # the server compresses its large answers


@pytest.mark.parametrize("value", [-1, 1.5, "yes", None])
def test_invalid_per_message_deflate(value: Any) -> None:
    with pytest.raises(
        ValueError, match=r"per_message_deflate must be True \(from 1024 bytes on\)"
    ):
        aiosio.Client("http://127.0.0.1:9", per_message_deflate=value)

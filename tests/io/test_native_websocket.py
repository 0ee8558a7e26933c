"""The native server's WebSocket channel: what the engine sends to one socket and what it
broadcasts arrive in the order sent, on a plain WebSocket (the broadcast frame built once for all
recipients) and on one with permessage-deflate (each frame through that connection's codec)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect

import aiosio

TIMEOUT = 5.0


async def _join(base: str, compression: str | None) -> ClientConnection:
    url = base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = await connect(url, compression=compression)
    assert str(await ws.recv()).startswith("0{")  # the Engine.IO handshake
    await ws.send("40")
    assert str(await ws.recv()).startswith("40{")  # connected to the main namespace
    return ws


async def _events(ws: ClientConnection, count: int) -> list[Any]:
    events = []
    async with asyncio.timeout(TIMEOUT):
        while len(events) < count:
            message = str(await ws.recv())
            if message == "2":  # a ping: the heartbeat is not what this test reads
                await ws.send("3")
                continue
            assert message.startswith("42"), message
            events.append(json.loads(message[2:]))
    return events


async def test_direct_and_broadcast_messages_arrive_in_order_with_and_without_deflate(
    serve_native: Any,
) -> None:
    sio = aiosio.Server(per_message_deflate=True)

    @sio.on("go")
    def go(socket: aiosio.Socket) -> None:
        # In one turn of the loop: messages to this socket alone and broadcasts to all, each
        # queued on its channel and written at the end of the turn.
        for n in range(3):
            socket.emit("direct", n)
            sio.emit("all", {"n": n, "text": "é" * 200})

    base = await serve_native(sio)
    plain = await _join(base, None)
    deflated = await _join(base, "deflate")
    try:
        assert plain.response is not None
        assert deflated.response is not None
        assert plain.response.headers.get("Sec-WebSocket-Extensions") is None
        assert "permessage-deflate" in deflated.response.headers["Sec-WebSocket-Extensions"]
        expected_all = [["all", {"n": n, "text": "é" * 200}] for n in range(3)]
        await plain.send('42["go"]')
        direct = [e for n in range(3) for e in (["direct", n], expected_all[n])]
        assert await _events(plain, 6) == direct
        assert await _events(deflated, 3) == expected_all
        await deflated.send('42["go"]')
        assert await _events(deflated, 6) == direct
        assert await _events(plain, 3) == expected_all
    finally:
        await plain.close()
        await deflated.close()

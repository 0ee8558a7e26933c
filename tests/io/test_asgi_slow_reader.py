"""A client that stops reading, under uvicorn: once the engine gives up on it, the ASGI app drops
what it queued for it and the connection is ended, as the native server does, instead of being
held with its buffered data until the peer goes."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import os
import socket

import pytest
from _eio import eventually
from test_asgi_load import _RawClient

import aiosio
from aiosio.transports import asgi
from conftest import _Uvicorn


async def _stalled_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Join "/" over a raw WebSocket, then read nothing more (a small receive buffer, so that
    what the server sends piles up on its side)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(20):
        received = await reader.readuntil(b"\r\n\r\n")
        assert received.startswith(b"HTTP/1.1 101"), received
        writer.write(b"\x81\x82\x00\x00\x00\x0040")  # "40", masked with a zero key
        while b"40{" not in received:
            received += await reader.read(4096)
    return reader, writer


def _channels() -> int:
    return sum(type(o) is asgi.AsgiWebSocket for o in gc.get_objects())


async def test_a_client_that_stops_reading_is_ended_and_its_queue_freed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sio = aiosio.Server(max_outbound_buffer=256 * 1024, ping_timeout=60)
    app = asgi.AsgiApp(sio, websocket_close_timeout=0.5)
    runner = _Uvicorn(app, ws_ping_interval=None)
    await runner.start()
    loop = asyncio.get_running_loop()
    _, good = await loop.create_connection(_RawClient, "127.0.0.1", runner.port)
    writer = None
    try:
        await eventually(lambda: good.joined)
        reader, writer = await _stalled_client(runner.port)
        await eventually(lambda: len(sio.engine.clients) == 2)
        connections = runner.server.server_state.connections
        assert len(connections) == 2
        payload = "x" * 16 * 1024
        with caplog.at_level(logging.INFO, logger="aiosio"):
            # At most 2000 messages of 16 KiB (32 MB): far past the socket buffers and the
            # limit; the engine gives the stalled client up (logged, session closed).
            for _ in range(2000):
                if len(sio.engine.clients) < 2:
                    break
                sio.emit("big", payload)
                await asyncio.sleep(0)  # a turn of the loop: the frames are written
            await eventually(lambda: len(sio.engine.clients) == 1)
            # The connection goes too, with what was queued for it: the engine's close could
            # not be sent (uvicorn's send waits for a drain that does not come), so after
            # websocket_close_timeout the app dropped the queue and ended the connection.
            await eventually(lambda: len(connections) == 1, timeout=20)
        assert any("does not read" in r.getMessage() for r in caplog.records), caplog.text
        given_up = [r.getMessage() for r in caplog.records if "has not taken its close" in r.msg]
        assert len(given_up) == 1, caplog.text
        assert "dropped the" in given_up[0]
        # uvicorn forgets the connection when it is aborted; the ASGI call returns just after.
        await eventually(lambda: app.open_websockets == 1)
        gc.collect()
        assert _channels() == 1  # the good client's only
        # The stalled client sees its connection end once it reads again (reset or EOF).
        async with asyncio.timeout(20):
            try:
                while await reader.read(1 << 20):
                    pass
            except ConnectionResetError:
                pass
        assert not good.closed
        assert len(sio.engine.clients) == 1
    finally:
        if writer is not None:
            writer.close()
        assert good.transport is not None
        good.transport.close()
        await runner.close()


async def test_a_close_the_client_takes_in_time_is_not_given_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The boundary: a client that reads gets what was queued, then the close, and no
    give-up is logged."""
    sio = aiosio.Server(ping_timeout=60)

    @sio.on("bye")
    def bye(socket: aiosio.Socket) -> None:
        socket.emit("last", "x" * 100_000)
        socket.disconnect(close=True)

    app = asgi.AsgiApp(sio, websocket_close_timeout=0.5)
    runner = _Uvicorn(app, ws_ping_interval=None)
    await runner.start()
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(_RawClient, "127.0.0.1", runner.port)
    try:
        with caplog.at_level(logging.INFO, logger="aiosio"):
            await eventually(lambda: client.joined)
            client.send('42["bye"]')
            await eventually(lambda: client.closed)
            await eventually(lambda: not app.open_websockets and not sio.engine.clients)
            await asyncio.sleep(1.0)  # past websocket_close_timeout: nothing more happens
        assert not [r for r in caplog.records if "has not taken its close" in r.msg]
    finally:
        assert client.transport is not None
        client.transport.close()
        await runner.close()

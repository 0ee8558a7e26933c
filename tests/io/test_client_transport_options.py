"""The client's try_all_transports and remember_upgrade (issue 17 item 8, as socket.io-client's
tryAllTransports and rememberUpgrade): against a WebSocket-only server the default client fails
with "Transport unknown"; with try_all_transports it connects over WebSocket. With
remember_upgrade, a reconnection after a WebSocket worked starts with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aiosio
from aiosio.client.errors import Stage


@contextlib.asynccontextmanager
async def serving(sio: aiosio.Server) -> AsyncIterator[str]:
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def echo_server(**options: Any) -> aiosio.Server:
    sio = aiosio.Server(**options)

    @sio.on("echo")
    def echo(_socket: Any, value: Any) -> Any:
        return value

    return sio


async def test_a_websocket_only_server_needs_try_all_transports() -> None:
    async with serving(echo_server(transports=["websocket"])) as url:
        plain = aiosio.Client(url, reconnection=False)
        with pytest.raises(aiosio.ConnectError) as refused:
            await plain.connect()
        await plain.disconnect()
        assert refused.value.stage is Stage.HTTP
        assert "Transport unknown" in refused.value.message

        client = aiosio.Client(url, reconnection=False, try_all_transports=True)
        await client.connect()
        try:
            assert client.io.engine is not None
            assert client.io.engine.transport == "websocket"
            assert await client.emit_with_ack("echo", "hi", timeout=5) == "hi"
        finally:
            await client.disconnect()


async def test_try_all_transports_gives_the_last_error_when_none_works() -> None:
    async with serving(echo_server(transports=["websocket"])) as url:
        client = aiosio.Client(
            url, reconnection=False, try_all_transports=True, transports=["polling"]
        )
        with pytest.raises(aiosio.ConnectError, match="Transport unknown"):
            await client.connect()
        await client.disconnect()


async def test_remember_upgrade_starts_the_next_connection_on_websocket() -> None:
    sio = echo_server()
    first_transports: list[str] = []

    def on_connection(conn: Any) -> None:
        first_transports.append(str(conn.transport))

    sio.engine.on("connection", on_connection)
    async with serving(sio) as url:
        client = aiosio.Client(url, remember_upgrade=True, reconnection_delay=0.05)
        await client.connect()
        try:
            async with asyncio.timeout(10):
                while client.io.engine is None or client.io.engine.transport != "websocket":
                    await asyncio.sleep(0.02)
            for conn in list(sio.engine.clients.values()):
                conn.close()  # the connection drops (transport close): the client reconnects
            async with asyncio.timeout(10):
                while len(first_transports) < 2 or not client.connected:
                    await asyncio.sleep(0.02)
            assert await client.emit_with_ack("echo", 1, timeout=5) == 1
        finally:
            await client.disconnect()
    assert first_transports[:2] == ["polling", "websocket"]


async def test_auto_connect() -> None:
    async with serving(echo_server()) as url:
        client = aiosio.Client(url, auto_connect=True, reconnection=False)
        try:
            async with asyncio.timeout(10):
                while not client.connected:
                    await asyncio.sleep(0.02)
            assert await client.emit_with_ack("echo", "auto", timeout=5) == "auto"
        finally:
            await client.disconnect()


def test_auto_connect_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="needs a running event loop"):
        aiosio.Client("http://127.0.0.1:9", auto_connect=True)

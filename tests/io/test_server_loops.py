"""A Server (and an EngineServer) used in one event loop after another, as a module-level app
is in tests that each get their own loop (pytest-asyncio's default): with no session left, it
takes the running loop for its clock and timers (before: the second loop's first session
failed, its timers scheduled on the first, closed, loop)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiosio
from aiosio.testing import connect


def make() -> aiosio.Server:
    sio = aiosio.Server(ping_interval=0.2, ping_timeout=0.2)

    @sio.on("echo")
    def echo(_socket: Any, value: Any) -> Any:
        return value

    return sio


async def over_tcp(sio: aiosio.Server) -> Any:
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    try:
        client = aiosio.Client(f"http://127.0.0.1:{server.port}", reconnection=False)
        await client.connect()
        try:
            await asyncio.sleep(0.5)  # heartbeats on this loop's timers
            return await client.emit_with_ack("echo", "tcp", timeout=5)
        finally:
            await client.disconnect()
    finally:
        await server.close()


async def in_memory(sio: aiosio.Server) -> Any:
    async with connect(sio) as client:
        await asyncio.sleep(0.5)
        return await client.emit_with_ack("echo", "memory", timeout=5)


def test_one_loop_after_another_over_tcp() -> None:
    sio = make()
    assert asyncio.run(over_tcp(sio)) == "tcp"
    assert asyncio.run(over_tcp(sio)) == "tcp"


def test_one_loop_after_another_in_memory() -> None:
    sio = make()
    for _ in range(3):
        assert asyncio.run(in_memory(sio)) == "memory"

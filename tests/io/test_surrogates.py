"""A lone surrogate sent by the application reaches the client as U+FFFD, as from a Node
server, over polling and WebSocket, on the native server and under uvicorn; the connection stays
open and the next message arrives (before: UnicodeEncodeError in the middle of the write)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

import aiosio


def engine() -> aiosio.EngineServer:
    server = aiosio.EngineServer()

    def on_connection(conn: Any) -> None:
        conn.on("message", lambda data: (conn.send("a\ud800b"), conn.send("next")))

    server.on("connection", on_connection)
    return server


async def test_over_polling(serve: Any) -> None:
    url = await serve(engine())
    async with httpx.AsyncClient(base_url=url) as http:
        opened = await http.get("/engine.io/", params={"EIO": "4", "transport": "polling"})
        sid = opened.text.split('"sid":"')[1].split('"')[0]
        query = {"EIO": "4", "transport": "polling", "sid": sid}
        assert (await http.post("/engine.io/", params=query, content=b"4hello")).text == "ok"
        answer = await http.get("/engine.io/", params=query)
    assert answer.content == "4a\ufffdb\x1e4next".encode()


async def test_over_websocket(serve: Any) -> None:
    url = await serve(engine())
    ws_url = url.replace("http", "ws") + "/engine.io/?EIO=4&transport=websocket"
    async with connect(ws_url) as ws:
        await ws.recv()  # the open packet
        await ws.send("4hello")
        async with asyncio.timeout(10):
            first = await ws.recv()
            second = await ws.recv()
    assert (first, second) == ("4a\ufffdb", "4next")


@pytest.mark.parametrize("server_kind", ["native"], indirect=True)
async def test_a_broadcast_over_socketio(serve: Any) -> None:
    sio = aiosio.Server()

    @sio.on("go")
    def go(_socket: Any) -> None:
        sio.emit("text", "a\ud800b")  # JSON-escaped by the encoder: arrives as the escape

    url = await serve(sio)
    client = aiosio.Client(url, transports=["websocket"], reconnection=False)
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    client.on("text", got.set_result)
    await client.connect()
    client.emit("go")
    async with asyncio.timeout(10):
        assert await got == "a\ud800b"
    await client.disconnect()

"""A server with ``parser="msgpack"`` on real sockets: bad msgpack packets (wrong types, deep
nesting, huge maps) close that one connection with a stated reason while the server serves the
others; a JSON client is told of the mismatch; broadcasts are encoded in msgpack; polling
carries the binary packets as base64."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from _eio import TIMEOUT
from _eio import recv
from _eio import ws_connect
from websockets.exceptions import ConnectionClosed

import aiosio
from conftest import ServeFn

PATH = "/socket.io/"


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def echo_server() -> aiosio.Server:
    sio = aiosio.Server(parser="msgpack")

    @sio.on("echo")
    async def echo(socket: aiosio.Socket, *args: Any) -> Any:
        return tuple(args)

    @sio.on("shout")
    async def shout(socket: aiosio.Socket, text: str) -> None:
        sio.emit("news", text, b"\x00\x01")

    return sio


async def open_socket(base: str) -> Any:
    """A raw WebSocket that opened the Engine.IO session and connected to "/" in msgpack."""
    ws = await ws_connect(base, PATH)
    handshake = await recv(ws)
    assert isinstance(handshake, str)
    assert handshake.startswith("0")
    await ws.send(pack({"type": 0, "nsp": "/"}))
    connected = msgpack.unpackb(await recv(ws))
    assert connected["type"] == 0
    assert set(connected["data"]) == {"sid"}
    return ws


async def closed(ws: Any) -> None:
    """The server closes the WebSocket (after at most a close packet)."""
    async with asyncio.timeout(TIMEOUT):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return


BAD = [
    (pack({"type": "2", "nsp": "/", "data": ["echo"]}), "unknown packet type '2'"),
    (pack({"type": 2, "nsp": ["/"], "data": ["echo"]}), "namespace must be a string, got list"),
    (pack({"type": 2, "nsp": "/", "data": {"a": 1}}), "EVENT payload must be a non-empty array"),
    (pack({"type": 2, "nsp": "/", "data": ["echo"], "id": 0.5}), "ack id must be a non-negative"),
    (
        b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x92\xa4echo" + b"\x91" * 40 + b"\x90",
        "payload nested deeper than max_depth=32",
    ),
    (b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data" + b"\x91" * 200_000 + b"\x90", "max_depth=32"),
    (b"\xdf\xff\xff\xff\xff" + b"\x00" * 64, "invalid msgpack packet"),
    (b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\xdd\x7f\xff\xff\xff", "invalid msgpack packet"),
]


@pytest.mark.parametrize(("message", "reason"), BAD)
async def test_bad_packets_close_one_connection_with_a_reason(
    serve_native: ServeFn,
    clients: Callable[..., aiosio.Client],
    caplog: pytest.LogCaptureFixture,
    message: bytes,
    reason: str,
) -> None:
    sio = echo_server()
    disconnects: list[tuple[str, Any]] = []

    @sio.on("disconnect")
    async def gone(socket: aiosio.Socket, why: str, description: Any = None) -> None:
        disconnects.append((why, description))

    base = await serve_native(sio)
    other = clients(base, parser="msgpack", transports=("websocket",))
    await other.connect()
    ws = await open_socket(base)
    await ws.send(message)
    await closed(ws)
    assert any(
        "invalid Socket.IO packet" in r.getMessage() and reason in r.getMessage()
        for r in caplog.records
    )
    async with asyncio.timeout(TIMEOUT):
        while not disconnects:
            await asyncio.sleep(0.01)
    assert disconnects[0][0] == "parse error"
    assert reason in str(disconnects[0][1])
    # The server serves the others: an ack round trip with binary in it.
    assert await other.emit_with_ack("echo", b"\x01", timeout=TIMEOUT) == b"\x01"


async def test_json_client_gets_the_reason_in_json(serve_native: ServeFn) -> None:
    base = await serve_native(echo_server())
    async with ws_connect(base, PATH) as ws:
        await recv(ws)  # the Engine.IO handshake
        await ws.send("40")  # a JSON CONNECT (Engine.IO message "4", Socket.IO CONNECT "0")
        reply = await recv(ws)
        assert isinstance(reply, str)
        assert reply.startswith("44")  # message, CONNECT_ERROR
        assert json.loads(reply[2:])["message"].startswith(
            "parser mismatch: the server uses the msgpack parser and the client likely the json"
        )
        await closed(ws)


async def test_broadcast_and_polling_in_msgpack(
    serve_native: ServeFn, clients: Callable[..., aiosio.Client]
) -> None:
    """A broadcast is encoded once in msgpack for every transport: a WebSocket client and a
    polling one (base64 in the payload) both get it."""
    base = await serve_native(echo_server())
    got: list[tuple[str, list[Any]]] = []
    made = []
    for transports in (("websocket",), ("polling",)):
        client = clients(base, parser="msgpack", transports=transports, upgrade=False)

        @client.on("news")
        async def news(*args: Any, name: str = transports[0]) -> None:
            got.append((name, list(args)))

        await client.connect()
        made.append(client)
    assert await made[1].emit_with_ack("echo", {"n": [1, 2.5]}, timeout=TIMEOUT) == {"n": [1, 2.5]}
    made[0].emit("shout", "hi")
    async with asyncio.timeout(TIMEOUT):
        while len(got) < 2:
            await asyncio.sleep(0.01)
    assert sorted(got) == [("polling", ["hi", b"\x00\x01"]), ("websocket", ["hi", b"\x00\x01"])]

"""The msgpack parser against the reference: socket.io-client 4.8 with socket.io-msgpack-parser
3.0 against an aiosio server with ``parser="msgpack"`` (``tests/js/msgpack_client.mjs``), and
aiosio's client with ``parser="msgpack"`` against socket.io 4.8 with that parser
(``tests/js/msgpack_server.mjs``): events, acks both ways, binary both ways, broadcast, on both
transports; and a client with the other parser told so on each side."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
from collections.abc import AsyncIterator
from collections.abc import Callable
from typing import Any

import pytest

import aiosio
from conftest import JS_DIR
from conftest import ServeFn
from conftest import _node
from conftest import free_port
from conftest import run_node

pytestmark = pytest.mark.interop

UTC = datetime.UTC
DATE = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)  # 1700000000123 ms


def py(value: Any) -> Any:
    """A value printed by the scripts ({"$bin": base64}, {"$date": ms}) back to Python."""
    if isinstance(value, list):
        return [py(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        if set(value) == {"$date"}:
            return datetime.datetime.fromtimestamp(value["$date"] / 1000, UTC)
        return {k: py(v) for k, v in value.items()}
    return value


def msgpack_server() -> tuple[aiosio.Server, list[Any]]:
    sio = aiosio.Server(parser="msgpack")
    seen: list[Any] = []

    @sio.on("connection")
    async def connected(socket: aiosio.Socket) -> None:
        answer = await socket.timeout(5).emit_with_ack("question", 21)
        seen.append(("answer", answer))

    @sio.on("echo")
    async def echo(socket: aiosio.Socket, *args: Any) -> Any:
        seen.append(("echo", list(args)))
        return tuple(args)

    @sio.on("shout")
    async def shout(socket: aiosio.Socket, data: bytes) -> str:
        sio.emit("news", data, "from aiosio")
        return "ok"

    return sio, seen


ECHOED = [
    "text",
    42,
    1.5,
    None,
    b"\x01\x02\x03",
    b"\x04\x05",
    {"nested": {"list": [1, "two", b"\xff"]}},
    DATE,
]


@pytest.mark.parametrize("transports", ["polling,websocket", "websocket", "polling"])
async def test_reference_client_against_aiosio(serve_native: ServeFn, transports: str) -> None:
    sio, seen = msgpack_server()
    url = await serve_native(sio)
    lines = await run_node(
        "msgpack_client.mjs", "--url", url, "--transports", transports, "--clients", "3"
    )
    echoed = [line for line in lines if line["type"] == "echoed"]
    assert len(echoed) == 3
    for line in echoed:
        assert py(line["args"]) == ECHOED  # every type back as the client sent it
    assert ("echo", ECHOED) in seen  # and as Python values on the server
    asked = [line for line in lines if line["type"] == "asked"]
    assert [py(line["args"]) for line in asked] == [[21]] * 3
    answer = {"doubled": 42, "bin": b"\x09\x08\x07"}
    assert seen.count(("answer", answer)) == 3  # the clients' acks, binary in them
    news = [line for line in lines if line["type"] == "news"]
    assert sorted(line["client"] for line in news) == [0, 1, 2]  # the broadcast reached everyone
    assert all(py(line["args"]) == [b"\x06\x06", "from aiosio"] for line in news)
    assert [py(line["args"]) for line in lines if line["type"] == "shouted"] == [["ok"]]


async def test_reference_json_client_told_of_the_mismatch(
    serve_native: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    """socket.io-client with the default parser against a msgpack server: its connect_error says
    why (a CONNECT_ERROR in its own format), and the server logs the cause and the fix."""
    sio, _ = msgpack_server()
    url = await serve_native(sio)
    lines = await run_node("msgpack_client.mjs", "--url", url, "--json")
    [line] = [line for line in lines if line["type"] == "connect_error"]
    assert line["message"].startswith("parser mismatch: the server uses the msgpack parser")
    assert "the same parser" in line["message"]
    assert any(
        "parser mismatch: the server uses the msgpack parser and the client likely the json"
        in r.getMessage()
        for r in caplog.records
    )


# -- aiosio's client against the reference server ------------------------------------------------


class NodeMsgpackServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            _node(),
            str(JS_DIR / "msgpack_server.mjs"),
            "--port",
            str(self.port),
            stdout=asyncio.subprocess.PIPE,
            cwd=str(JS_DIR),
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait(lambda: self.of("ready"), "ready")

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                self.lines.append(json.loads(raw))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["type"] == kind]

    async def wait(self, predicate: Callable[[], Any], what: str) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                if self.proc is not None and self.proc.returncode is not None:
                    pytest.fail(f"msgpack_server.mjs exited waiting for {what}: {self.lines}")
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


@pytest.fixture
async def node_msgpack() -> AsyncIterator[NodeMsgpackServer]:
    server = NodeMsgpackServer()
    await server.start()
    yield server
    await server.close()


@pytest.mark.parametrize("transports", [("polling", "websocket"), ("websocket",), ("polling",)])
async def test_aiosio_client_against_reference_server(
    node_msgpack: NodeMsgpackServer,
    clients: Callable[..., aiosio.Client],
    transports: tuple[str, ...],
) -> None:
    received: list[Any] = []
    a = clients(node_msgpack.url, parser="msgpack", transports=transports)
    b = clients(node_msgpack.url, parser="msgpack", transports=transports)
    for client in (a, b):

        @client.on("question")
        async def question(x: int) -> tuple[int, bytes]:
            return x * 2, b"\x09\x08\x07"

        @client.on("news")
        async def news(*args: Any, client: aiosio.Client = client) -> None:
            received.append((client, list(args)))

    await a.connect()
    await b.connect()
    reply = await a.emit_with_ack("echo", *ECHOED, timeout=5)
    assert reply == ECHOED[0]  # emit_with_ack resolves to the first argument
    echoed = py(node_msgpack.of("event")[0]["args"])
    assert echoed == ECHOED  # the reference decoded every type as JavaScript values
    await node_msgpack.wait(lambda: len(node_msgpack.of("answer")) == 2, "both answers")
    for line in node_msgpack.of("answer"):
        assert line["error"] is None
        assert py(line["args"]) == [42, b"\x09\x08\x07"]
    assert await b.emit_with_ack("shout", b"\x06\x06", timeout=5) == "ok"
    await node_msgpack.wait(lambda: len(received) == 2, "the broadcast")
    assert {id(c) for c, _ in received} == {id(a), id(b)}
    assert all(args == [b"\x06\x06"] for _, args in received)


async def test_aiosio_clients_with_another_parser_are_told(
    serve_native: ServeFn, clients: Callable[..., aiosio.Client]
) -> None:
    """aiosio's client with the JSON parser against a msgpack server, and with the msgpack parser
    against a JSON server: connect_error says the parsers differ, with the fix as its hint."""
    msgpack_sio, _ = msgpack_server()
    json_sio = aiosio.Server()
    for sio, ours, theirs in ((msgpack_sio, "json", "msgpack"), (json_sio, "msgpack", "json")):
        url = await serve_native(sio)
        client = clients(url, parser=ours)
        with pytest.raises(aiosio.ConnectError) as caught:
            await client.connect()
        error = caught.value
        assert error.message.startswith(
            f"parser mismatch: the server uses the {theirs} parser and the client likely the "
            f"{ours} one"
        )
        assert error.hint is not None
        assert "parser=" in error.hint


async def test_aiosio_json_client_against_reference_msgpack_server(
    node_msgpack: NodeMsgpackServer, clients: Callable[..., aiosio.Client]
) -> None:
    """The reference server closes the connection without a word on a packet its parser cannot
    read: aiosio's client does not wait forever, its connect_error names the likely cause."""
    client = clients(node_msgpack.url)
    with pytest.raises(aiosio.ConnectError) as caught:
        await client.connect()
    error = caught.value
    assert error.message == (
        "the server closed the connection before answering the namespace's CONNECT"
    )
    assert error.hint is not None
    assert "parser='msgpack'" in error.hint

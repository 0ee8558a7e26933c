"""The client's ``ConnectError`` for peers that are not (quite) a Socket.IO server: each answer
named with its stage, its message and its hint. The peer is a small TCP server on 127.0.0.1
that answers every request with the bytes a case gives (a socket.io 2.x handshake, a proxy that
drops the upgrade headers, a WebSocket that closes at once, bytes that are not HTTP...).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import pytest

import aiosio
from aiosio import ConnectError
from aiosio import Stage

TIMEOUT = 15.0
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3

Answer = Callable[[bytes], bytes]


def http(status: str, body: bytes, content_type: str = "text/plain; charset=UTF-8") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def switching(head: bytes, accept: str | None = None) -> bytes:
    """A 101 answer to the WebSocket handshake ``head``, with the right accept key unless
    ``accept`` is given."""
    if accept is None:
        match = re.search(rb"Sec-WebSocket-Key: ([^\r]+)", head)
        assert match is not None
        accept = base64.b64encode(hashlib.sha1(match.group(1) + WEBSOCKET_GUID).digest()).decode()
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Answer], Awaitable[str]]]:
    """Start a TCP server answering each request head with ``answer(head)``, then closing."""
    servers: list[asyncio.Server] = []
    writers: set[asyncio.StreamWriter] = set()

    async def start(answer: Answer) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.add(writer)
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(answer(head))
                await writer.drain()
            writer.close()
            writers.discard(writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for writer in list(writers):
        writer.transport.abort()
    for server in servers:
        server.close()
        await server.wait_closed()


async def failure(url: str, **options: Any) -> ConnectError:
    client = aiosio.Client(url, reconnection=False, **options)
    try:
        with pytest.raises(ConnectError) as caught:
            await asyncio.wait_for(client.connect(), TIMEOUT)
    finally:
        await client.disconnect()
    return caught.value


async def test_no_usable_transport_is_named() -> None:
    error = await failure("http://127.0.0.1:9", transports=["carrier-pigeon"])
    assert error.stage is Stage.PROTOCOL
    assert error.message == "no usable transport in ['carrier-pigeon']"
    assert error.hint is not None
    assert "'polling', 'websocket' or 'webtransport'" in error.hint


async def test_a_socketio_2_server_is_named(peer: Any) -> None:
    eio3 = b'96:0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}'
    error = await failure(await peer(lambda _head: http("200 OK", eio3)), transports=["polling"])
    assert error.stage is Stage.PROTOCOL
    assert error.message == "the server answered with an Engine.IO 3 handshake (socket.io 2.x)"
    assert error.hint is not None
    assert "2.x client" in error.hint
    assert error.status == 200
    assert error.body == eio3


async def test_a_200_that_is_no_handshake(peer: Any) -> None:
    error = await failure(
        await peer(lambda _head: http("200 OK", b"<html>hello</html>", "text/html")),
        transports=["polling"],
    )
    assert error.stage is Stage.PROTOCOL
    assert error.status == 200
    assert error.body == b"<html>hello</html>"


@pytest.mark.parametrize(
    ("answer", "stage", "words"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", Stage.PROTOCOL, "not valid HTTP"),
        (b"", Stage.HTTP, "closed before an HTTP answer"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
            Stage.PROTOCOL,
            "switched protocols (status 101)",
        ),
    ],
    ids=["not-http", "closed", "switching-protocols"],
)
async def test_a_polling_answer_that_is_not_http(
    peer: Any, answer: bytes, stage: Stage, words: str
) -> None:
    error = await failure(await peer(lambda _head: answer), transports=["polling"])
    assert error.stage is stage
    assert words in error.message


async def test_a_polling_answer_past_the_limit(peer: Any) -> None:
    body = b"0" * 200_000
    error = await failure(
        await peer(lambda _head: http("200 OK", body)),
        transports=["polling"],
        max_http_buffer_size=1000,
    )
    assert error.stage is Stage.PROTOCOL
    assert error.message == "the HTTP answer is larger than 1000 bytes"


async def test_a_proxy_that_drops_the_upgrade_headers(peer: Any) -> None:
    handshake = b'0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
    error = await failure(
        await peer(lambda _head: http("200 OK", handshake)), transports=["websocket"]
    )
    assert error.stage is Stage.WEBSOCKET
    assert error.hint is not None
    assert "drops the Upgrade and Connection headers" in error.hint


async def test_an_upgrade_refused_in_plain_text(peer: Any) -> None:
    error = await failure(
        await peer(lambda _head: http("400 Bad Request", b"no websockets here")),
        transports=["websocket"],
    )
    assert error.stage is Stage.WEBSOCKET
    assert error.message == (
        "the WebSocket handshake was answered with HTTP 400 no websockets here"
    )
    assert error.status == 400


@pytest.mark.parametrize(
    ("answer", "stage", "words"),
    [
        (lambda _head: b"", Stage.WEBSOCKET, "closed the connection during the WebSocket"),
        (lambda _head: b"SSH-2.0-OpenSSH_9.6\r\n\r\n", Stage.PROTOCOL, "is not HTTP"),
        (
            lambda _head: b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Filler: a\r\n" * 10_000,
            Stage.WEBSOCKET,
            "handshake answer too large",
        ),
        (
            lambda head: switching(head, accept="d3Jvbmc="),
            Stage.WEBSOCKET,
            "invalid WebSocket handshake answer",
        ),
        (
            lambda head: switching(head) + b"\x88\x02\x03\xe8",  # a close frame, code 1000
            Stage.PROTOCOL,
            "the WebSocket closed before the Engine.IO handshake (code 1000)",
        ),
    ],
    ids=["closed", "not-http", "head-too-large", "wrong-accept-key", "closed-at-once"],
)
async def test_a_websocket_handshake_gone_wrong(
    peer: Any, answer: Answer, stage: Stage, words: str
) -> None:
    error = await failure(await peer(answer), transports=["websocket"])
    assert error.stage is stage, repr(error)
    assert words in error.message


@pytest.mark.parametrize(
    ("answer", "message", "hint_words"),
    [
        (
            b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\nContent-Length: 0\r\n\r\n",
            "HTTP 301 redirect",
            "connect to the final URL directly",
        ),
        (http("503 Service Unavailable", b"down"), "HTTP 503 from a proxy", "is down"),
        (
            http("200 OK", b"<!DOCTYPE html><p>app</p>", "text/html"),
            "an HTML page answered the handshake",
            "SPA fallback",
        ),
        (
            http("200 OK", b"hello", "text/plain"),
            "the answer is not an Engine.IO handshake",
            "not a Socket.IO server",
        ),
        (
            http("400 Bad Request", b'{"code":3,"message":"Bad request"}', "application/json"),
            "code 3 Bad request",
            "its log says why",
        ),
        (
            http("403 Forbidden", b'{"code":9,"message":"Other"}', "application/json"),
            "code 9 Other",
            "see the server's log",
        ),
    ],
    ids=["redirect", "proxy-503", "html-page", "not-a-handshake", "code-3", "unknown-code"],
)
async def test_a_handshake_answer_is_explained(
    peer: Any, answer: bytes, message: str, hint_words: str
) -> None:
    error = await failure(await peer(lambda _head: answer), transports=["polling"])
    assert error.stage in (Stage.HTTP, Stage.PROTOCOL)
    assert error.message == message
    assert error.hint is not None
    assert hint_words in error.hint

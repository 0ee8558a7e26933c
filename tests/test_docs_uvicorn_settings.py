"""The uvicorn settings of docs/deployment.md ("Under uvicorn") bound what the page says they bound.

Under an ASGI server some limits are that server's to apply, and the page gives the settings for
them. Here uvicorn runs with the ``uvicorn.Config`` of the page's example, taken from the page
itself (only the host, the port and the application are this test's), and is attacked the way
issue 12 found it open:

- a WebSocket message fragmented past ``max_http_buffer_size`` is closed with 1009 by uvicorn
  (``ws_max_size``): the app never sees an incomplete message;
- a request head of which over 16 KiB has arrived incomplete is refused
  (``h11_max_incomplete_event_size``);
- a flood of empty continuation frames, which never grows a message, is ended by Engine.IO's
  heartbeat: the client cannot answer a ping in the middle of a message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import aiosio

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0  # every wait is bounded by it
LIMIT = 1_000_000  # the page's max_http_buffer_size and ws_max_size


def documented_config() -> uvicorn.Config:
    """The ``config`` the page's "Under uvicorn" example builds."""
    page = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = page.split("## Under uvicorn", 1)[1]
    block = re.search(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block, "docs/deployment.md: no python example under 'Under uvicorn'"
    names: dict[str, Any] = {}
    exec(block.group(1), names)  # our own documentation, run as a reader would
    config = names["config"]
    assert isinstance(config, uvicorn.Config)
    assert config.ws_max_size == LIMIT
    return config


@pytest.fixture
async def port() -> AsyncIterator[int]:
    # the page's uvicorn settings; a fast heartbeat so that the flood's end comes soon
    config = documented_config()
    sio = aiosio.Server(max_http_buffer_size=LIMIT, ping_interval=0.3, ping_timeout=0.3)
    config.app = sio.asgi()
    config.host = "127.0.0.1"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        config.port = probe.getsockname()[1]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(TIMEOUT):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    yield config.port
    server.should_exit = True
    async with asyncio.timeout(TIMEOUT):
        await task


def client_frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """A masked WebSocket frame, as a client sends it (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", opcode | (fin << 7), 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", opcode | (fin << 7), 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", opcode | (fin << 7), 0x80 | 127, length)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return header + mask + masked


@contextlib.asynccontextmanager
async def websocket(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def close_code(reader: asyncio.StreamReader) -> int:
    """The code of the server's close frame, skipping the frames before it."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await reader.readexactly(8))
            payload = await reader.readexactly(length)
            if first & 0x0F == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])


async def test_a_message_fragmented_past_the_limit_is_closed_with_1009(port: int) -> None:
    async with websocket(port) as (reader, writer):
        piece = LIMIT // 2 + 1
        writer.write(client_frame(0x1, b"4" + b"x" * piece, fin=False))
        writer.write(client_frame(0x0, b"y" * piece, fin=False))  # past the limit, unfinished
        assert await close_code(reader) == 1009


async def test_empty_continuation_frames_are_ended_by_the_heartbeat(port: int) -> None:
    async with websocket(port) as (reader, writer):
        writer.write(client_frame(0x1, b"4", fin=False))

        async def flood() -> None:
            while True:
                writer.write(client_frame(0x0, b"", fin=False) * 100)
                await writer.drain()
                await asyncio.sleep(0.01)

        flooding = asyncio.create_task(flood())
        try:
            assert await close_code(reader) == 1000  # the session's close after "ping timeout"
        finally:
            flooding.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await flooding


@pytest.mark.parametrize(
    "headers",
    [
        "X-Big: " + "a" * 100_000 + "\r\n",
        "".join(f"X-Header-{i}: v\r\n" for i in range(3000)),
    ],
    ids=["a 100 KB header", "3000 headers"],
)
async def test_a_head_over_the_documented_size_is_refused(port: int, headers: str) -> None:
    head = (
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # Its first 20 KB, the rest still to come: h11 bounds the head it holds incomplete. (A
        # whole head that arrives in one read, up to asyncio's 256 KiB, is parsed at once.)
        writer.write(head[:20_000])
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            answer = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]

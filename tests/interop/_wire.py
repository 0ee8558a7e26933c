"""What the client's tests see on the wire: a TCP relay between a client and a server that reads
the WebSocket frames going through, both ways, and the official Node server of
``tests/js/engine_server.mjs``.

The relay is no fake of either side: both ends speak to each other through it byte for byte. It
reads each WebSocket connection's frames (RFC 6455 section 5.2): the RSV1 bit, which marks a
message compressed with permessage-deflate (RFC 7692 section 6), and the message itself,
unmasked and inflated, so that a test names the message whose frame it checks. Polling requests
go through untouched. With ``refuse_websocket`` it closes every WebSocket request unanswered, as
a proxy that blocks WebSocket does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from aiosio.client.http import WebSocketConnection
from conftest import JS_DIR
from conftest import _node
from conftest import free_port

CLIENT_TO_SERVER = ">"
SERVER_TO_CLIENT = "<"


@dataclass(frozen=True)
class Frame:
    """One WebSocket data message that went through: its direction, whether it was compressed
    (RSV1), its opcode and its payload as the application sent it."""

    direction: str
    rsv1: bool
    opcode: int
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class FrameRelay:
    """Listens on a port of its own and relays every connection to ``target`` (a port on
    127.0.0.1), recording the WebSocket requests' heads and the data frames."""

    target: int
    refuse_websocket: bool = False
    requests: list[bytes] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sent(self, direction: str, contains: str) -> list[Frame]:
        """The data frames of ``direction`` whose message contains ``contains``."""
        return [f for f in self.frames if f.direction == direction and contains in f.text]

    async def start(self) -> FrameRelay:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_writer: asyncio.StreamWriter | None = None
        try:
            head = await client_reader.readuntil(b"\r\n\r\n")
            websocket = b"upgrade: websocket" in head.lower()
            if websocket:
                self.requests.append(head)
                if self.refuse_websocket:
                    return
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target)
            server_writer.write(head)
            pumps = [
                self._pump(client_reader, server_writer, CLIENT_TO_SERVER, websocket, False),
                self._pump(server_reader, client_writer, SERVER_TO_CLIENT, websocket, True),
            ]
            await asyncio.gather(*pumps)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await writer.wait_closed()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        websocket: bool,
        head_first: bool,
    ) -> None:
        """Copy ``reader`` to ``writer``; on a WebSocket, read the frames as they pass (after
        the server's 101 head, for the server's side)."""
        buffer = b""
        in_head = head_first
        inflater = zlib.decompressobj(wbits=-15)
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                if not websocket:
                    continue
                buffer += chunk
                if in_head:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    buffer, in_head = buffer[end + 4 :], False
                buffer = self._frames(buffer, direction, inflater)
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.write_eof()

    def _frames(self, buffer: bytes, direction: str, inflater: Any) -> bytes:
        """Record the whole frames at the start of ``buffer``; return what is left."""
        while len(buffer) >= 2:
            b0, b1 = buffer[0], buffer[1]
            length, offset = b1 & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            key = b""
            if b1 & 0x80:
                key, offset = buffer[offset : offset + 4], offset + 4
            if len(buffer) < offset + length:
                break
            payload = buffer[offset : offset + length]
            buffer = buffer[offset + length :]
            if key:
                mask = (key * (length // 4 + 1))[:length]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(
                    length, "big"
                )
            opcode, rsv1 = b0 & 0x0F, bool(b0 & 0x40)
            if opcode not in (1, 2):
                continue  # control frames (the messages here are one frame each)
            if rsv1:
                payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
            self.frames.append(Frame(direction, rsv1, opcode, payload))
        return buffer


@contextlib.asynccontextmanager
async def relay(target: int, *, refuse_websocket: bool = False) -> AsyncIterator[FrameRelay]:
    proxy = await FrameRelay(target, refuse_websocket).start()
    try:
        yield proxy
    finally:
        await proxy.close()


@dataclass
class NodeEngineServer:
    """``tests/js/engine_server.mjs``, the official socket.io 4.8 server, and the lines it
    printed."""

    port: int
    proc: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["type"] == kind]

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                self.lines.append(json.loads(raw))

    async def wait(self, kind: str, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """The ``count``-th line of ``kind``, once printed."""
        async with asyncio.timeout(timeout):
            while len(self.of(kind)) < count:
                if self.proc.returncode is not None:
                    raise AssertionError(f"engine_server.mjs exited {self.proc.returncode}")
                await asyncio.sleep(0.01)
        return self.of(kind)[count - 1]


@contextlib.asynccontextmanager
async def node_engine_server(options: dict[str, Any]) -> AsyncIterator[NodeEngineServer]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(JS_DIR / "engine_server.mjs"),
        "--port",
        str(port),
        "--options",
        json.dumps(options),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=str(JS_DIR),
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    server = NodeEngineServer(port, proc)
    reading = asyncio.create_task(server.read())
    try:
        await server.wait("ready")
        yield server
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reading, 5)


async def websockets_closed() -> None:
    """Wait for the client WebSockets of this loop still closing (as test_client.py's autouse
    fixture does): WebSocketConnection.close() ends by a 1 s timer that disconnect() does not
    wait for, and a loop closed before it fires leaks the socket into a later test."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        closing = [
            o
            for o in gc.get_objects()
            if type(o) is WebSocketConnection and not o.closed and o.loop is loop
        ]
        if not closing:
            return
        await asyncio.sleep(0.05)

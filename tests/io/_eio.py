"""Helpers shared by the Engine.IO transport tests: URLs, handshakes, raw HTTP over asyncio.

Everything here talks to a real server on 127.0.0.1; nothing replaces our code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect

import aiosio

EIO_PATH = "/engine.io/"
TIMEOUT = 5.0  # seconds; every wait in these tests is bounded by it or by less


def url(base: str, path: str = EIO_PATH, **params: str) -> str:
    """``base`` + ``path`` + the query ``params`` (in the order given)."""
    query = urlencode(params)
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def ws_url(base: str, path: str = EIO_PATH, **params: str) -> str:
    return url(base.replace("http", "ws", 1), path, **params)


def host_port(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def decode_payload(body: str) -> list[str]:
    """A v4 polling payload: packets separated by the record separator."""
    return body.split("\x1e")


async def handshake(
    client: httpx.AsyncClient, base: str, path: str = EIO_PATH, **params: str
) -> tuple[str, dict[str, Any], httpx.Response]:
    """Open a polling session; return its sid, the OPEN packet's data and the response."""
    response = await client.get(url(base, path, EIO="4", transport="polling", **params))
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.text.startswith("0{"), response.text
    data = json.loads(response.text[1:])
    return data["sid"], data, response


async def poll(
    client: httpx.AsyncClient, base: str, sid: str, path: str = EIO_PATH, **kwargs: Any
) -> httpx.Response:
    return await client.get(url(base, path, EIO="4", transport="polling", sid=sid), **kwargs)


async def post(
    client: httpx.AsyncClient,
    base: str,
    sid: str,
    body: str | bytes,
    path: str = EIO_PATH,
    **kwargs: Any,
) -> httpx.Response:
    return await client.post(
        url(base, path, EIO="4", transport="polling", sid=sid),
        content=body.encode() if isinstance(body, str) else body,
        **kwargs,
    )


async def assert_serving(base: str, path: str = EIO_PATH) -> None:
    """A fresh client, on a fresh connection, can still open a session."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        sid, data, _ = await handshake(client, base, path)
    assert sid
    assert data["sid"] == sid


async def eventually(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until ``predicate()`` is true (polling every 10 ms), or fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def ws_connect(base: str, path: str = EIO_PATH, **params: str) -> Any:
    """``async with ws_connect(base, sid=...) as ws``: a WebSocket on the engine path (EIO=4)."""
    extra = {k: v for k, v in params.items() if k.startswith("_")}
    query = {"EIO": "4", "transport": "websocket"}
    query.update((k, v) for k, v in params.items() if not k.startswith("_"))
    return connect(
        ws_url(base, path, **query),
        open_timeout=TIMEOUT,
        close_timeout=1,
        compression=None,
        **{k[1:]: v for k, v in extra.items()},
    )


async def recv(ws: ClientConnection, timeout: float = TIMEOUT) -> str | bytes:
    async with asyncio.timeout(timeout):
        return await ws.recv()


# -- the engine side ------------------------------------------------------------------------------


@dataclass
class Recorder:
    """Records what an EngineServer reports: sessions, messages, closes, rejections."""

    engine: aiosio.EngineServer
    sockets: dict[str, aiosio.EngineSocket] = field(default_factory=dict)
    messages: list[tuple[str, str | bytes]] = field(default_factory=list)
    closes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    errors: list[aiosio.ConnectionRejected] = field(default_factory=list)
    upgrades: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine.on("connection", self._on_connection)
        self.engine.on("connection_error", self.errors.append)

    def _on_connection(self, socket: aiosio.EngineSocket) -> None:
        sid = socket.id
        self.sockets[sid] = socket
        socket.on("message", lambda data: self.messages.append((sid, data)))
        socket.on("close", lambda reason, desc: self.closes.__setitem__(sid, (reason, desc)))
        socket.on("upgrade", lambda: self.upgrades.append(sid))

    async def closed(self, sid: str, timeout: float = TIMEOUT) -> tuple[str, str | None]:
        await eventually(lambda: sid in self.closes, timeout)
        return self.closes[sid]

    async def message(self, sid: str, data: str | bytes, timeout: float = TIMEOUT) -> None:
        await eventually(lambda: (sid, data) in self.messages, timeout)


def recorder(**options: Any) -> Recorder:
    return Recorder(aiosio.EngineServer(**options))


# -- raw HTTP ------------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def lower_headers(self) -> Mapping[str, str]:
        return {k.lower(): v for k, v in self.headers}


class RawConnection:
    """One TCP connection with byte-exact control of what is written."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base: str) -> RawConnection:
        host, port = host_port(base)
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = TIMEOUT) -> RawResponse:
        """Read one response (Content-Length framed, as both servers answer)."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _, status, *reason = lines[0].split(" ", 2)
            headers = []
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers.append((name.strip(), value.strip()))
            length = 0
            for name, value in headers:
                if name.lower() == "content-length":
                    length = int(value)
            body = await self.reader.readexactly(length) if length else b""
        return RawResponse(int(status), reason[0] if reason else "", headers, body)

    async def at_eof(self, timeout: float = TIMEOUT) -> bool:
        """True once the server closed the connection (what it still sends is discarded)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    async def __aenter__(self) -> RawConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def request_bytes(
    method: str, target: str, base: str, headers: list[tuple[str, str]] | None = None
) -> bytes:
    host, port = host_port(base)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}

"""WebTransport in a real browser: the official socket.io-client 4.8.1 in Debian's chromium,
headless, against the aiosio server offering WebTransport over HTTP/3 with a self-signed
certificate pinned by hash (``serverCertificateHashes``), as ``tests/js/webtransport_browser.mjs``
drives it: a direct WebTransport session, the upgrade from polling that the default transports
with ``tryAllTransports`` perform (the client favours WebTransport over WebSocket), and the
fallback to WebSocket when WebTransport fails. Each runs the tour: connect, echo with ack (text,
binary, 100 kB), a room, a broadcast, and the reconnection after the server drops the session.

No Node server is compared here: Node's WebTransport package (@fails-components/webtransport)
cannot be built on this machine (its native part downloads from github.com).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import aiosio
from conftest import JS_DIR
from conftest import chromium
from conftest import run_node

pytestmark = pytest.mark.interop

CLIENT_DIST = JS_DIR / "node_modules" / "socket.io-client" / "dist"
PAGE = b'<!doctype html><meta charset="utf-8"><script src="/socket.io/socket.io.js"></script>'


def tour_server(
    transports: tuple[str, ...] = ("polling", "websocket", "webtransport"),
) -> aiosio.Server:
    sio = aiosio.Server(transports=transports)
    sio.serve_client(directory=CLIENT_DIST)

    async def page(request: aiosio.HttpRequest) -> aiosio.HttpResponse:
        return aiosio.HttpResponse(200, [("Content-Type", "text/html")], PAGE)

    # The page comes from the server itself: Chromium refuses a WebTransport session to
    # 127.0.0.1 from a page it cannot place in the local address space.
    sio.mount("/index.html", page)

    @sio.on("echo")
    async def echo(socket: aiosio.Socket, *args: Any) -> list[Any]:
        return list(args)

    @sio.on("join")
    async def join(socket: aiosio.Socket, room: str) -> str:
        socket.join(room)
        return socket.conn.transport

    @sio.on("to_room")
    async def to_room(socket: aiosio.Socket, room: str, text: str) -> bool:
        sio.to(room).emit("room", text)
        return True

    @sio.on("broadcast")
    async def broadcast(socket: aiosio.Socket, text: str) -> bool:
        sio.emit("news", text)
        return True

    @sio.on("drop_me")
    async def drop_me(socket: aiosio.Socket) -> None:
        socket.conn.close()  # the Engine.IO session ends: the client reconnects by itself

    return sio


async def tour(
    certificate: tuple[Path, Path, str],
    mode: str,
    hash_: str | None = None,
    transports: tuple[str, ...] = ("polling", "websocket", "webtransport"),
    **options: Any,
) -> Any:
    cert, key, digest = certificate
    sio = tour_server(transports)
    config = aiosio.WebTransport(certfile=cert, keyfile=key, **options)
    server = await aiosio.serve(sio, "127.0.0.1", 0, webtransport=config)
    try:
        url = f"http://127.0.0.1:{server.port}"
        args = ["--url", url, "--hash", hash_ or digest, "--mode", mode, "--chromium", chromium()]
        (result,) = await run_node("webtransport_browser.mjs", *args, timeout=90)
        return result
    finally:
        await server.close()


def assert_tour(result: dict[str, Any], transport: str) -> None:
    assert result["transports"] == [transport, transport]
    assert result["echo"] == ["héllo", {"n": 1}]
    assert result["binary"] == [0, 1, 2, 255]
    assert result["large"] == 100_000
    assert result["joined"] == transport  # the server sees the same transport
    assert result["room"] == [["a", "for the room"]]
    assert result["news"] == [["a", "for all"], ["b", "for all"]]
    assert result["dropReason"] == "transport close"
    assert result["reconnected"] is True
    assert result["afterReconnect"] == transport
    assert result["echoAfter"] == ["again"]


async def test_browser_over_webtransport_only(
    webtransport_certificate: tuple[Path, Path, str],
) -> None:
    result = await tour(webtransport_certificate, "webtransport")
    assert result["first"] == "webtransport"
    assert_tour(result, "webtransport")


async def test_browser_upgrades_from_polling_to_webtransport(
    webtransport_certificate: tuple[Path, Path, str],
) -> None:
    # The server offers WebTransport alone as the upgrade: offered WebSocket too, the client
    # probes both at once (engine.io-client's onOpen) and the first answer wins, which is
    # WebSocket now and then (as with a Node server); this test is about the WebTransport one.
    result = await tour(webtransport_certificate, "default", transports=("polling", "webtransport"))
    assert result["first"] == "polling"
    assert_tour(result, "webtransport")


async def test_browser_falls_back_to_websocket_when_webtransport_fails(
    webtransport_certificate: tuple[Path, Path, str],
) -> None:
    wrong = "A" * 43 + "="  # a SHA-256 that no certificate has
    result = await tour(webtransport_certificate, "fallback", wrong)
    assert result["first"] == "websocket"
    assert_tour(result, "websocket")


async def test_browser_with_retry_and_a_small_receive_window(
    webtransport_certificate: tuple[Path, Path, str],
) -> None:
    """Chromium proves its address with the QUIC Retry (retry=True), and its 100 KB message
    crosses a 16 KiB receive window (the window moves as the server reads)."""
    result = await tour(
        webtransport_certificate, "webtransport", retry=True, receive_window=16 * 1024
    )
    assert result["first"] == "webtransport"
    assert_tour(result, "webtransport")

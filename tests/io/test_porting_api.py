"""The reference API a user porting code reaches for (issue 17 item 8), under its Python names:
``io.on("new_namespace")``, ``socket.request``, ``socket.conn.transport.name``,
``prepend_any``/``prepend_any_outgoing``/``listeners_any`` on both sides, the client's
``off_any``/``off_any_outgoing`` and ``disconnected`` (docs/porting.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

import aiosio
from aiosio.testing import connect
from conftest import JS_DIR


async def test_new_namespace_event() -> None:
    sio = aiosio.Server()
    created: list[str] = []

    @sio.on("new_namespace")
    def on_new(namespace: aiosio.Namespace) -> None:
        created.append(namespace.name)

    sio.of("/chat")
    sio.on("new_namespace", lambda namespace: created.append("again " + namespace.name))
    sio.of("/news")
    assert created == ["/chat", "/news", "again /news"]
    assert "new_namespace" not in sio.sockets.handlers.events  # not a client event


async def test_the_request_and_the_transport_name() -> None:
    sio = aiosio.Server()
    seen: dict[str, Any] = {}

    @sio.on("connection")
    def on_connection(socket: aiosio.Socket) -> None:
        seen["query"] = socket.request.query.get("room")
        seen["path"] = socket.request.path
        seen["transport"] = socket.conn.transport.name
        seen["equal"] = socket.conn.transport == "websocket"

    async with connect(sio, query={"room": "r1"}):
        pass
    assert seen == {"query": "r1", "path": "/socket.io/", "transport": "websocket", "equal": True}


async def test_catch_all_listeners_in_order_on_both_sides() -> None:
    sio = aiosio.Server()
    order: list[str] = []
    got = asyncio.Event()

    @sio.on("connection")
    def on_connection(socket: aiosio.Socket) -> None:
        def first(*_: Any) -> None:
            order.append("server first")

        def second(*_: Any) -> None:
            order.append("server second")

        socket.on_any(second)
        socket.prepend_any(first)
        socket.prepend_any_outgoing(lambda *_: order.append("server out"))
        assert socket.listeners_any() == [first, second]
        assert len(socket.listeners_any_outgoing()) == 1

    @sio.on("ping")
    def ping(socket: aiosio.Socket) -> None:
        socket.emit("pong")

    async with connect(sio) as client:
        client.on("pong", lambda: got.set())

        def late(*_: Any) -> None:
            order.append("client late")

        def early(*_: Any) -> None:
            order.append("client early")

        client.on_any(late)
        client.prepend_any(early)
        outgoing = client.prepend_any_outgoing(lambda *_: order.append("client out"))
        # (TestClient records what it receives with a catch-all listener of its own.)
        assert client.listeners_any()[0] == early
        assert client.listeners_any()[-1] == late
        assert client.listeners_any_outgoing() == [outgoing]
        client.emit("ping")
        async with asyncio.timeout(5):
            await got.wait()
        assert not client.disconnected
        client.off_any(late)
        client.off_any_outgoing()
        assert late not in client.listeners_any()
        assert early in client.listeners_any()
        assert client.listeners_any_outgoing() == []
    assert client.disconnected
    assert order == [
        "client out",
        "server first",
        "server second",
        "server out",
        "client early",
        "client late",
    ]


async def test_add_trailing_slash_false_serves_the_path_as_given(serve: Any) -> None:
    handshake = {"EIO": "4", "transport": "polling"}
    strict = await serve(aiosio.Server())
    loose_server = aiosio.Server(path="/socket.io", add_trailing_slash=False)
    loose_server.serve_client(directory=JS_DIR / "node_modules" / "socket.io-client" / "dist")
    loose = await serve(loose_server)
    async with httpx.AsyncClient() as http:
        # socket.io-client with addTrailingSlash: false asks /socket.io?EIO=4...
        assert (await http.get(f"{strict}/socket.io", params=handshake)).status_code == 404
        answer = await http.get(f"{loose}/socket.io", params=handshake)
        assert answer.status_code == 200
        assert answer.text.startswith('0{"sid":')
        with_slash = await http.get(f"{loose}/socket.io/", params=handshake)
        assert with_slash.text.startswith('0{"sid":')
        assert (await http.get(f"{loose}/socket.io/socket.io.js")).status_code == 200
    client = aiosio.Client(loose, reconnection=False)  # the aiosio client adds the slash
    await client.connect()
    assert client.connected
    await client.disconnect()


async def test_compress_flag_and_engine_events_in_memory() -> None:
    """``client.compress(False)`` and ``client.io.engine.on(...)`` work on aiosio.testing's
    in-memory WebSocket too (its carrier has no compression: the flag is carried and ignored)."""
    sio = aiosio.Server()
    sio.on("echo", lambda _socket, value: value)
    async with connect(sio) as client:
        engine = client.io.engine
        assert engine is not None
        assert engine.transport.name == "websocket"
        created: list[Any] = []
        received: list[Any] = []
        engine.on("packetCreate", created.append)
        engine.on("packet", received.append)
        assert await client.compress(False).emit_with_ack("echo", "a", timeout=5) == "a"
        assert await client.emit_with_ack("echo", "b", timeout=5) == "b"
    assert [(p.data, p.compress) for p in created[:2]] == [
        ('20["echo","a"]', False),
        ('21["echo","b"]', True),
    ]
    assert [p.data for p in received[:2]] == ['30["a"]', '31["b"]']

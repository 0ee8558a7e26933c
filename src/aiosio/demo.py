"""The embedded default apps of ``aiosio serve``.

``aiosio.demo:sio`` (the default): a Socket.IO server at ``/socket.io/`` with a few handlers to
try a client against: ``echo`` answers its acknowledgement with the arguments it got, ``chat``
sends the message to every other client, ``join`` puts the socket in a room; each client gets a
``welcome`` event with its id when it connects.

``aiosio.demo:app``: the same demo as an ASGI application (``uvicorn aiosio.demo:app``, with the
``asgi`` extra).

``aiosio.demo:echo``: a raw Engine.IO echo server at ``/engine.io/``, what the official Engine.IO
protocol test suites expect.

``AIOSIO_DEMO_FAST_HEARTBEAT=1`` sets ``ping_interval=0.3, ping_timeout=0.2`` (and a 1 s connect
timeout), the values the official test suites use; ``AIOSIO_DEMO_EIO3=1`` accepts socket.io 2.x
clients.
"""

from __future__ import annotations

import os
from typing import Any

from aiosio.engine.server import EngineServer
from aiosio.engine.server import EngineSocket
from aiosio.protocol.cors import Cors
from aiosio.server.server import Server
from aiosio.server.socket import Socket

__all__ = ["app", "create_demo_server", "create_echo_server", "echo", "sio"]


def _options() -> dict[str, Any]:
    options: dict[str, Any] = {}
    if os.environ.get("AIOSIO_DEMO_FAST_HEARTBEAT"):
        options.update(ping_interval=0.3, ping_timeout=0.2)
    if os.environ.get("AIOSIO_DEMO_EIO3"):
        options.update(allow_eio3=True)
    return options


def create_echo_server(**options: Any) -> EngineServer:
    server = EngineServer(**{"path": "/engine.io/", **options})

    @server.on("connection")
    def on_connection(socket: EngineSocket) -> None:
        socket.on("message", socket.send)

    return server


def create_demo_server(**options: Any) -> Server:
    if os.environ.get("AIOSIO_DEMO_FAST_HEARTBEAT"):
        options.setdefault("connect_timeout", 1.0)
    server = Server(cors=Cors(origins=True), **options)

    @server.on("connection")
    def on_connection(socket: Socket) -> None:
        socket.emit("welcome", {"id": socket.id, "transport": socket.conn.transport})

    @server.on("echo")
    def on_echo(socket: Socket, *args: Any) -> tuple[Any, ...]:
        return args

    @server.on("chat")
    def on_chat(socket: Socket, message: Any) -> None:
        socket.broadcast.emit("chat", {"from": socket.id, "message": message})

    @server.on("join")
    def on_join(socket: Socket, room: str) -> list[str]:
        socket.join(room)
        return sorted(socket.rooms)

    return server


echo = create_echo_server(**_options())
sio = create_demo_server(**_options())
app = sio.asgi()

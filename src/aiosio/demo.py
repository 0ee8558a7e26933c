"""The embedded default app of ``aiosio serve``: an Engine.IO echo server at ``/engine.io/``.

Every message a client sends comes back to it unchanged, text or binary. The official Engine.IO
protocol test suites run against it (``ping_interval=0.3, ping_timeout=0.2`` with
``AIOSIO_DEMO_FAST_HEARTBEAT=1``).
"""

from __future__ import annotations

import os

from aiosio.engine.server import EngineServer, EngineSocket

__all__ = ["create_echo_server", "echo"]


def create_echo_server(**options: object) -> EngineServer:
    server = EngineServer(**options)  # type: ignore[arg-type]

    @server.on("connection")
    def on_connection(socket: EngineSocket) -> None:
        socket.on("message", socket.send)

    return server


def _default_options() -> dict[str, object]:
    options: dict[str, object] = {"path": "/engine.io/"}
    if os.environ.get("AIOSIO_DEMO_FAST_HEARTBEAT"):
        options.update(ping_interval=0.3, ping_timeout=0.2)
    if os.environ.get("AIOSIO_DEMO_EIO3"):
        options.update(allow_eio3=True)
    return options


echo = create_echo_server(**_default_options())

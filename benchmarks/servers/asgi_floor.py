"""The ASGI floor: uvicorn with no Socket.IO layer, what an ASGI app's echo costs anyway there.

A bare ASGI app under uvicorn with aiosio_asgi.py's settings (uvloop, httptools, ws="auto":
websockets-sansio; one process, no access log) that speaks just enough Engine.IO 4 / Socket.IO 5
for loadgen.mjs's text echo scenarios: the open packet and ``40{"sid":...}`` as canned strings,
``42<id>["echo",<args>]`` answered ``43<id>[<args>]`` with one ``websocket.send``. No pings (the
windows are shorter than the ping interval), no JSON, no sessions. Under the echo tables run.py
splits aiosio-asgi's and python-socketio's CPU per ack into this floor (uvicorn's per-message
path: websockets' parser, the receive queue, one ``transport.write`` per ``websocket.send``) and
their own part: the ratio between the two under uvicorn cannot exceed python-socketio's figure
over this one.

Prints ``READY <pid> <port>`` once listening. Run with the project's .venv (uvicorn, uvloop)."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import MutableMapping
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]
OPEN = '0{"sid":"floor","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
JOINED = '40{"sid":"floor"}'


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "websocket":
        return  # polling and plain HTTP: not served (uvicorn answers 500)
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": OPEN})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text == "40":
            await send({"type": "websocket.send", "text": JOINED})
        elif text is not None and text.startswith("42"):  # 42<id>["echo",<args>] -> 43<id>[<args>]
            i = text.index("[")
            await send({"type": "websocket.send", "text": "43" + text[2:i] + "[" + text[i + 8 :]})


class Ready(uvicorn.Server):
    async def startup(self, sockets: object = None) -> None:
        await super().startup(sockets)  # type: ignore[arg-type]
        print(f"READY {os.getpid()} {self.config.port}", flush=True)


if __name__ == "__main__":
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        ws="auto",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    Ready(config).run()

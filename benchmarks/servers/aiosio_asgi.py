"""aiosio's ASGI app under uvicorn (uvloop, httptools, uvicorn's default WebSocket implementation:
websockets-sansio; one process, no access log).

Prints ``READY <pid> <port>`` once listening. Run with the project's .venv."""

from __future__ import annotations

import os
import sys

import uvicorn

import aiosio

sio = aiosio.Server()


@sio.on("echo")
def echo(socket: aiosio.Socket, data: object) -> object:
    return data


@sio.on("bcast")
def bcast(socket: aiosio.Socket, data: object) -> None:
    sio.emit("bcast", data)


class Ready(uvicorn.Server):
    async def startup(self, sockets: object = None) -> None:
        await super().startup(sockets)  # type: ignore[arg-type]
        print(f"READY {os.getpid()} {self.config.port}", flush=True)


if __name__ == "__main__":
    config = uvicorn.Config(
        sio.asgi(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        ws="auto",  # uvicorn 0.54: websockets-sansio (the legacy "websockets" is deprecated)
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    Ready(config).run()

"""python-socketio (AsyncServer, ASGI) under uvicorn (uvloop, httptools, websockets-sansio; one
process, no access log), the same settings as aiosio_asgi.py. Prints ``READY <pid> <port>`` once
listening. Run with benchmarks/.venv-peers."""

from __future__ import annotations

import os
import sys

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi")


@sio.on("echo")
async def echo(sid: str, data: object) -> object:
    return data


@sio.on("bcast")
async def bcast(sid: str, data: object) -> None:
    await sio.emit("bcast", data)


class Ready(uvicorn.Server):
    async def startup(self, sockets: object = None) -> None:
        await super().startup(sockets)  # type: ignore[arg-type]
        print(f"READY {os.getpid()} {self.config.port}", flush=True)


if __name__ == "__main__":
    config = uvicorn.Config(
        socketio.ASGIApp(sio),
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

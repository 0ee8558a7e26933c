"""python-socketio (AsyncServer) on aiohttp, on uvloop like the others, no access log.

Prints ``READY <pid> <port>`` once listening. Run with benchmarks/.venv-peers."""

from __future__ import annotations

import asyncio
import os
import sys

import socketio
import uvloop
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp")


@sio.on("echo")
async def echo(sid: str, data: object) -> object:
    return data


@sio.on("bcast")
async def bcast(sid: str, data: object) -> None:
    await sio.emit("bcast", data)


async def main(port: int) -> None:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print(f"READY {os.getpid()} {port}", flush=True)
    await asyncio.Event().wait()  # until SIGTERM


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))

"""aiosio's native server (uvloop when installed): the benchmark handlers on 127.0.0.1:PORT.

The parser is ``$BENCH_PARSER`` (``json``, the default, or ``msgpack``): an environment variable
rather than an argument, so that the workers of ``aiosio serve servers.aiosio_native:sio
--workers N`` (aiosio_workers.py), which load this module again, use it too.

Prints ``READY <pid> <port>`` once listening. Run with the project's .venv."""

from __future__ import annotations

import os
import sys

import aiosio

sio = aiosio.Server(parser=os.environ.get("BENCH_PARSER", "json"))


@sio.on("echo")
def echo(socket: aiosio.Socket, data: object) -> object:
    return data  # answers the acknowledgement


@sio.on("bcast")
def bcast(socket: aiosio.Socket, data: object) -> None:
    sio.emit("bcast", data)  # to every connected client, the sender included


def ready(server: aiosio.NativeServer) -> None:
    print(f"READY {os.getpid()} {server.port}", flush=True)


if __name__ == "__main__":
    aiosio.run(sio, "127.0.0.1", int(sys.argv[1]), on_started=ready)

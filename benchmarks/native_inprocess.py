"""The native server's whole Python path, in process: bytes in, bytes out, no socket.

    .venv/bin/python benchmarks/native_inprocess.py echo --per-read 1
    .venv/bin/python benchmarks/native_inprocess.py broadcast --clients 100

``echo``: one connection of ``aiosio.run``'s server (``HttpConnection`` on a transport that
only counts its writes) takes masked ``421["echo", <64 B>]`` frames, ``--per-read`` of them per
``data_received`` (1: how socket.io-client's writes usually arrive one by one; 10: a burst), and
its acks are written at the end of the loop's turn, as over TCP: the WebSocket codec, the
engine, the Socket.IO layer, the handler, the ack's encoding and framing, the write batcher.
``broadcast``: ``--clients`` connections, one of which emits ``bcast`` one at a time; the
server's handler sends it to all (``sio.emit``): per delivery, the adapter, the engine socket,
the channel's queue and its write.

Prints the best of 7 rounds, in nanoseconds per acknowledged event or per delivery. Like
echo_inprocess.py it says nothing about throughput and measures no I/O (uvloop's and the
kernel's part is the floor's, see run.py); unlike it, it includes the WebSocket layer.

On a machine shared with other work, timings move by 2x from one minute to the next; counted
instructions do not. ``--count N`` runs N operations once and prints nothing: under valgrind,
the difference between two counts is the instructions per operation, startup excluded:

    for n in 1000 6000; do valgrind --tool=cachegrind --cache-sim=no \\
      --cachegrind-out-file=/dev/null .venv/bin/python benchmarks/native_inprocess.py echo \\
      --count $n 2>&1 | grep "I *refs"; done   # (second - first) / 5000 = per ack
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time
from typing import Any

import uvloop

import aiosio
from aiosio.transports.native.http import HttpConnection
from aiosio.transports.native.limits import ServerLimits
from aiosio.transports.native.server import NativeServer

ROUNDS = 7
UPGRADE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
PAYLOAD = "0123456789" * 6 + "0123"


class CountingTransport:
    """The asyncio transport of one connection: takes every write at once and counts them."""

    def __init__(self) -> None:
        self.writes = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def masked(text: str) -> bytes:
    """A client's text frame (RFC 6455 section 5.2), masked as clients must."""
    payload = text.encode()
    key = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def server() -> aiosio.Server:
    sio = aiosio.Server()

    @sio.on("echo")
    def echo(_socket: Any, data: Any) -> Any:
        return data

    @sio.on("bcast")
    def bcast(_socket: Any, data: Any) -> None:
        sio.emit("bcast", data)

    return sio


async def connections(count: int) -> list[tuple[HttpConnection, CountingTransport]]:
    """``count`` connections upgraded to WebSocket and joined to "/"."""
    loop = asyncio.get_running_loop()
    native = NativeServer(server(), loop, ServerLimits())
    made = []
    for _ in range(count):
        connection, transport = HttpConnection(native), CountingTransport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.data_received(UPGRADE)
        made.append((connection, transport))
    for _ in range(20):  # the upgrades are answered by a task each
        await asyncio.sleep(0)
    for connection, _transport in made:
        connection.data_received(masked("40"))
    for _ in range(5):
        await asyncio.sleep(0)
    return made


async def run(mode: str, per_read: int, clients: int, count: int | None) -> None:
    if mode == "echo":
        (connection, transport), *_ = await connections(1)
        chunk = masked(f'421["echo","{PAYLOAD}"]') * per_read
        ops, reads = 20_000, 20_000 // per_read
    else:
        made = await connections(clients)
        connection, transport = made[0]
        chunk = masked(f'42["bcast","{PAYLOAD}"]')
        reads = max(1, 20_000 // clients)
        ops = reads * clients
    rounds = ROUNDS
    if count is not None:
        reads = count // per_read if mode == "echo" else count
        rounds = 1
    receive = connection.data_received
    best = float("inf")
    for _ in range(rounds):
        before = transport.writes
        start = time.perf_counter()
        for _ in range(reads):
            receive(chunk)
            await asyncio.sleep(0)  # the end of the loop's turn: the batcher writes
        best = min(best, (time.perf_counter() - start) / ops)
        assert transport.writes - before == reads, "every read was answered in one write"
    if count is None:
        what = "acknowledged event" if mode == "echo" else "delivery"
        shape = f"{per_read} frame(s) per read" if mode == "echo" else f"{clients} clients"
        print(f"{best * 1e9:.0f} ns per {what} (best of {ROUNDS} rounds, {shape})")


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    arguments.add_argument("mode", choices=("echo", "broadcast"))
    arguments.add_argument("--per-read", type=int, default=1, help="echo: frames per read")
    arguments.add_argument("--clients", type=int, default=100, help="broadcast: recipients")
    arguments.add_argument("--count", type=int, help="run this many operations once, silently")
    options = arguments.parse_args()
    uvloop.run(run(options.mode, options.per_read, options.clients, options.count))


if __name__ == "__main__":
    main()

"""The server's own share of one acknowledged event, in process: no socket, no load generator.

    .venv/bin/python benchmarks/echo_inprocess.py
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python benchmarks/echo_inprocess.py
    .venv/bin/python benchmarks/echo_inprocess.py --parser msgpack

A WebSocket session of ``aiosio.Server`` is bound to a channel that only counts what it is
given, and ``421["echo", <64 B>]`` is handed to the session's handler as the transport would:
decoding, dispatch, the handler, the ACK's encoding and the engine's send, nothing else. The
best of seven rounds of 20,000 is printed in nanoseconds per event. Far less noisy than the
socket benchmarks (run.py), so it can compare two checkouts' hot paths (the second command) where
a difference of a few percent hides in the full benchmark's noise; it measures no I/O and says
nothing about throughput. ``--parser msgpack``: the same event in socket.io-msgpack-parser's
format, one binary message, with ``Server(parser="msgpack")``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiosio
from aiosio.engine.http import HttpRequest

try:  # the msgpack parser's message, when this checkout has it
    import msgpack
except ImportError:  # pragma: no cover - msgpack is a core dependency
    msgpack = None

ROUNDS = 7
EVENTS = 20_000
MESSAGE = '421["echo","' + "0123456789" * 6 + '0123"]'


class CountingChannel:
    """A WebSocket channel that takes every message at once and counts them."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, data: str | bytes) -> None:
        self.sent += 1

    def close(self, code: int = 1000, reason: str = "") -> None:
        pass

    @property
    def buffered_amount(self) -> int:
        return 0

    @property
    def writable(self) -> bool:
        return True

    def frame_writer(self) -> None:
        return None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def main(parser: str) -> None:
    sio = aiosio.Server() if parser == "json" else aiosio.Server(parser=parser)
    message: str | bytes = MESSAGE
    connect: str | bytes = "40"
    if parser == "msgpack":
        payload = {"type": 2, "nsp": "/", "data": ["echo", MESSAGE[12:-2]], "id": 1}
        message = msgpack.packb(payload)
        connect = msgpack.packb({"type": 0, "nsp": "/"})

    @sio.on("echo")
    def echo(_socket: Any, data: Any) -> Any:
        return data

    headers = {
        "host": "127.0.0.1",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
    }
    request = HttpRequest(
        "GET", "/socket.io/", "EIO=4&transport=websocket", headers, client=("127.0.0.1", 1)
    )
    accepted: Any = await sio.handle_websocket(request)
    channel = CountingChannel()
    handler = accepted.bind(channel)
    handler.on_message(connect)
    await asyncio.sleep(0)
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(EVENTS):
            handler.on_message(message)
        best = min(best, (time.perf_counter() - start) / EVENTS)
        await asyncio.sleep(0)
    expected = 2 + ROUNDS * EVENTS  # the open packet and the CONNECT's answer, then the acks
    assert channel.sent == expected, f"{channel.sent} messages sent, expected {expected}"
    print(
        f"{best * 1e9:.0f} ns per acknowledged event (best of {ROUNDS} rounds of {EVENTS}, "
        f"{parser} parser)"
    )


if __name__ == "__main__":
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--parser", choices=("json", "msgpack"), default="json")
    asyncio.run(main(options.parse_args().parser))

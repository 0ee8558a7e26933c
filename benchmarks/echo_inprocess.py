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

    .venv/bin/python benchmarks/echo_inprocess.py --typed

measures a validated event (``aiosio.typed``, the ``typed`` extra): ``421["echo",{"text": <64 B>}]``
handled by ``echo(socket, data: Message) -> Message`` (a pydantic model: the argument validated,
the return value dumped), beside the same payload handled by an unannotated handler (their rounds
alternate); the difference is the cost of validation per event.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import msgpack

import aiosio
from aiosio.engine.http import HttpRequest

ROUNDS = 7
EVENTS = 20_000
MESSAGE = '421["echo","' + "0123456789" * 6 + '0123"]'
OBJECT_MESSAGE = '421["echo",{"text":"' + "0123456789" * 6 + '0123"}]'


class CountingChannel:
    """A WebSocket channel that takes every message at once and counts them."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, data: str | bytes) -> int:
        self.sent += 1
        return 0

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


def plain_server(parser: str = "json") -> aiosio.Server:
    sio = aiosio.Server() if parser == "json" else aiosio.Server(parser=parser)

    @sio.on("echo")
    def echo(_socket: Any, data: Any) -> Any:
        return data

    return sio


def typed_server() -> aiosio.Server:
    from pydantic import BaseModel

    class Message(BaseModel):
        text: str

    sio = aiosio.Server()

    def echo(_socket: Any, data: Message) -> Message:
        return data

    # Annotations read at registration: the model is a local class, so give them as objects.
    echo.__annotations__ = {"_socket": Any, "data": Message, "return": Message}
    sio.on("echo", echo)
    return sio


async def session(sio: aiosio.Server, connect: str | bytes) -> tuple[Any, CountingChannel]:
    """A connected WebSocket session of ``sio``: its message handler and its channel."""
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
    return handler, channel


async def measure(*runs: tuple[aiosio.Server, str | bytes, str | bytes]) -> list[float]:
    """The best time per acknowledged event of each (server, CONNECT, event message), in
    seconds; their rounds alternate, so that a machine busy for a while slows each alike."""
    sessions = [(await session(sio, connect), message) for sio, connect, message in runs]
    best = [float("inf")] * len(runs)
    for _ in range(ROUNDS):
        for i, ((handler, _channel), message) in enumerate(sessions):
            start = time.perf_counter()
            for _ in range(EVENTS):
                handler.on_message(message)
            best[i] = min(best[i], (time.perf_counter() - start) / EVENTS)
            await asyncio.sleep(0)
    expected = 2 + ROUNDS * EVENTS  # the open packet and the CONNECT's answer, then the acks
    for (_handler, channel), _message in sessions:
        assert channel.sent == expected, f"{channel.sent} messages sent, expected {expected}"
    return best


async def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    arguments.add_argument("--parser", choices=("json", "msgpack"), default="json")
    arguments.add_argument("--typed", action="store_true", help="measure a validated event too")
    options = arguments.parse_args()
    rounds = f"best of {ROUNDS} rounds of {EVENTS}"
    if options.typed and options.parser != "json":
        arguments.error("--typed measures the JSON parser's event")
    if not options.typed:
        connect: str | bytes = "40"
        message: str | bytes = MESSAGE
        if options.parser == "msgpack":
            payload = {"type": 2, "nsp": "/", "data": ["echo", MESSAGE[12:-2]], "id": 1}
            message = msgpack.packb(payload)
            connect = msgpack.packb({"type": 0, "nsp": "/"})
        (best,) = await measure((plain_server(options.parser), connect, message))
        print(f"{best * 1e9:.0f} ns per acknowledged event ({rounds}, {options.parser} parser)")
        return
    plain, typed = await measure(
        (plain_server(), "40", OBJECT_MESSAGE), (typed_server(), "40", OBJECT_MESSAGE)
    )
    print(f"{plain * 1e9:.0f} ns per acknowledged event, unannotated handler ({rounds})")
    print(f"{typed * 1e9:.0f} ns per acknowledged event, validated through a pydantic model")
    print(f"{(typed - plain) * 1e9:.0f} ns per event for validation and the dump")


if __name__ == "__main__":
    asyncio.run(main())

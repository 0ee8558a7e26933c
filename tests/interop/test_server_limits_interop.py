"""The bound on handlers running per connection, with the official ``socket.io-client`` (4.8, and
2.x over Engine.IO 3) from npm, on both servers: a client that emits faster than its handlers end
is slowed down (the server stops reading from it), and gets every acknowledgement, in order.

``tests/js/sio_client.mjs`` drives the client: the server sends it ``cmd`` with the emits to
make, the client prints one line per acknowledgement it receives.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aiosio
from conftest import ServeFn
from conftest import run_node

pytestmark = pytest.mark.interop

COUNT = 60
LIMIT = 4


@pytest.mark.parametrize("client", ["v4", "v2"])
@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_a_client_emitting_faster_than_its_handlers_end_is_slowed_not_dropped(
    serve: ServeFn, client: str, transport: str
) -> None:
    sio = aiosio.Server(max_handlers_per_connection=LIMIT, allow_eio3=client == "v2")
    running = 0
    peak = 0
    finished: list[int] = []
    paused: list[bool] = []

    @sio.on("ready")
    def ready(socket: aiosio.Socket, _info: Any) -> None:
        emits = [{"do": "emit", "event": "slow", "args": [i], "ack": True} for i in range(COUNT)]
        socket.emit("cmd", emits)

    @sio.on("slow")
    async def slow(socket: aiosio.Socket, i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        paused.append(socket.conn.reading_paused)
        try:
            await asyncio.sleep(0.01)
        finally:
            running -= 1
        finished.append(i)
        if len(finished) == COUNT:
            # After this handler's acknowledgement has gone: the client then leaves.
            asyncio.get_running_loop().call_later(0.05, socket.emit, "cmd", {"do": "disconnect"})
        return i

    base = await serve(sio)
    lines = await run_node(
        "sio_client.mjs",
        "--url",
        base,
        "--transports",
        transport,
        "--client",
        client,
        "--timeout",
        "20000",
    )
    acks = [line for line in lines if line["type"] == "ack"]
    assert [line["args"] for line in acks] == [[i] for i in range(COUNT)]
    assert sorted(finished) == list(range(COUNT))
    assert peak <= LIMIT
    assert any(paused), "the bound was never reached: the test proves nothing"
    disconnects = [line["reason"] for line in lines if line["type"] == "disconnect"]
    assert disconnects == ["io client disconnect"]

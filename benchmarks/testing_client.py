"""What aiosio.testing costs a test suite: the time of a connect, an acknowledged emit and a
disconnect through the in-memory client, in process.

    .venv/bin/python benchmarks/testing_client.py

Three figures, each the best of five rounds, in microseconds:

- a whole test's share: ``async with aiosio.testing.connect(sio)``, one ``emit_with_ack``, the
  disconnect (the closing handshake done, the server's disconnect handlers run);
- a connect and a disconnect alone;
- one ``emit_with_ack`` round trip on a connected client (client encode, server decode,
  dispatch, handler, ack encode, client decode), the ``connect`` excluded.

Each is printed as wall time and as this process's CPU time: on a machine shared with other
work the wall time is the CPU time stretched by the wait for a core. The numbers in
docs/testing.md come from this script; they measure the library's code, no I/O.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiosio
import aiosio.testing

ROUNDS = 5
CYCLES = 500
ACKS = 5_000


def server() -> aiosio.Server:
    sio = aiosio.Server()

    @sio.on("echo")
    def echo(_socket: Any, data: Any) -> Any:
        return data

    return sio


async def cycle(sio: aiosio.Server, ack: bool) -> None:
    async with aiosio.testing.connect(sio) as client:
        if ack:
            assert await client.emit_with_ack("echo", 1) == 1


async def best(run: Any, count: int) -> tuple[float, float]:
    """The best wall time and the best CPU time (of this process) per operation."""
    wall = cpu = float("inf")
    for _ in range(ROUNDS):
        start, start_cpu = time.perf_counter(), time.process_time()
        await run()
        wall = min(wall, (time.perf_counter() - start) / count)
        cpu = min(cpu, (time.process_time() - start_cpu) / count)
    return wall, cpu


async def main() -> None:
    sio = server()

    async def tests() -> None:
        for _ in range(CYCLES):
            await cycle(sio, True)

    async def connects() -> None:
        for _ in range(CYCLES):
            await cycle(sio, False)

    async with aiosio.testing.connect(sio) as client:

        async def acks() -> None:
            for _ in range(ACKS):
                await client.emit_with_ack("echo", 1)

        ack = await best(acks, ACKS)
    whole = await best(tests, CYCLES)
    connect = await best(connects, CYCLES)
    assert not sio.engine.clients, "every session closed"
    for name, (wall, cpu) in (
        ("connect + emit_with_ack + disconnect", whole),
        ("connect + disconnect", connect),
        ("emit_with_ack round trip", ack),
    ):
        print(f"{name:<37} {wall * 1e6:7.1f} us wall {cpu * 1e6:7.1f} us CPU")
    print(f"(best of {ROUNDS} rounds; {CYCLES} cycles, {ACKS} acks per round)")


if __name__ == "__main__":
    asyncio.run(main())

"""One aiosio server of a 2-server PostgresAdapter cluster, for benchmarks/cluster_postgres.py.

    python pg_cluster_aiosio.py PORT PREFIX DSN

A client's ``burst(n, interval)`` makes this server broadcast ``tick(i, time.time())`` n times,
``interval`` seconds apart; prints "listening" once the adapter listens.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiosio
from aiosio.adapters.postgres import PostgresAdapter

port, prefix, dsn = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sio = aiosio.Server(adapter=PostgresAdapter(dsn, channel_prefix=prefix))


@sio.on("burst")
async def burst(_socket: aiosio.Socket, n: int, interval: float) -> int:
    for i in range(n):
        sio.emit("tick", i, time.time())
        await asyncio.sleep(interval)
    return n


@sio.on("count")
async def count(_socket: aiosio.Socket) -> int:
    return int(await sio.sockets.adapter.server_count())  # type: ignore[misc]


async def main() -> None:
    server = await aiosio.serve(sio, "127.0.0.1", port)
    print("listening", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


asyncio.run(main())

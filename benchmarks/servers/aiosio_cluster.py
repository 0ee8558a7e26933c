"""One aiosio native server of a 2-server cluster on a cluster adapter, with the benchmark
handlers, on 127.0.0.1:PORT (run.py's cluster scenarios start two, A and B).

    python aiosio_cluster.py PORT ADAPTER URL KEY

ADAPTER: ``redis`` (``RedisAdapter``, classic pub/sub), ``redis-sharded`` (``RedisAdapter(
sharded=True)``, SPUBLISH), ``redis-streams`` (``RedisStreamsAdapter``) or ``postgres``
(``PostgresAdapter``), each with its defaults but the names: KEY is the Redis key, the stream's
name and channel prefix, or the Postgres channel prefix (one per run, so that nothing else on
the broker is heard). Prints ``READY <pid> <port>`` once listening and once the adapter's
subscriptions are active. Run with the project's .venv."""

from __future__ import annotations

import os
import sys
from typing import Any

import aiosio


def make_adapter(kind: str, url: str, key: str) -> Any:
    if kind in ("redis", "redis-sharded"):
        from aiosio.adapters.redis import RedisAdapter

        return RedisAdapter(url, key=key, sharded=kind == "redis-sharded")
    if kind == "redis-streams":
        from aiosio.adapters.redis_streams import RedisStreamsAdapter

        return RedisStreamsAdapter(url, stream_name=key, channel_prefix=key)
    if kind == "postgres":
        from aiosio.adapters.postgres import PostgresAdapter

        return PostgresAdapter(url, channel_prefix=key)
    raise SystemExit(f"unknown adapter {kind!r}: redis, redis-sharded, redis-streams or postgres")


port, kind, url, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
adapter = make_adapter(kind, url, key)
sio = aiosio.Server(adapter=adapter)


@sio.on("bcast")
def bcast(socket: aiosio.Socket, data: object) -> None:
    sio.emit("bcast", data)  # to every client of every server, the sender included


async def ready(server: aiosio.NativeServer) -> None:
    if not await adapter.ready(10.0):
        raise SystemExit(f"the {kind} adapter did not get ready in 10 s on {url}")
    print(f"READY {os.getpid()} {server.port}", flush=True)


if __name__ == "__main__":
    aiosio.run(sio, "127.0.0.1", port, on_started=ready)

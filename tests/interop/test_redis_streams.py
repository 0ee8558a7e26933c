"""aiosio's ``RedisStreamsAdapter`` in one cluster with the official socket.io 4.8 server on
``@socket.io/redis-streams-adapter`` 0.3.1, on a real Redis 7.

* The mixed cluster (``cluster_harness.py``): two aiosio servers (``A`` native, ``B`` under
  uvicorn) and one Node server (``N``, ``tests/js/cluster_node.mjs --adapter redis --streams``)
  with official ``socket.io-client`` sockets on each (``tests/js/redis_clients.mjs``):
  broadcasts, rooms, ``fetch_sockets``, ``server_side_emit`` with acks, broadcasts with acks,
  join requests, from both sides.
* The outage: Redis (the test's own ``redis-server``, with its append-only file) killed with
  SIGKILL in the middle of a stream of numbered broadcasts and started again 3 s later: every
  client, on every server, gets every number exactly once and in order.
* Recovery across servers: a client behind a proxy (the load balancer) on server X loses its
  connection and comes back through the proxy on server Y: ``recovered`` is true and it gets
  every broadcast it missed (a volatile one too, as Node replays it), for X, Y in aiosio and
  Node both ways.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from cluster_harness import CLIENTS as ALL_CLIENTS
from cluster_harness import REDIS_URL
from cluster_harness import Balancer
from cluster_harness import RedisCluster
from cluster_harness import RedisServer
from cluster_harness import Spawn
from cluster_harness import Spec
from cluster_harness import as_member
from cluster_harness import b_under_uvicorn  # noqa: F401 (the fixture server_kind)
from cluster_harness import client_args
from cluster_harness import connect_clients
from cluster_harness import next_message
from cluster_harness import node_scripts  # noqa: F401 (the fixture spawn)
from cluster_harness import redis_server
from cluster_harness import serve_members
from cluster_harness import server_count_is
from cluster_harness import skip_unless_redis
from cluster_harness import start_node
from node_procs import py
from node_procs import until

import aiosio
from aiosio import Server
from aiosio.adapters.redis_streams import RedisStreamsAdapter
from aiosio.adapters.redis_streams import StreamsHealth
from conftest import ServeFn
from conftest import free_port

pytestmark = pytest.mark.interop

STREAMS_LOGGER = "aiosio.adapter.redis_streams"

skip_unless_redis()


def make_server(
    name: str,
    key: str,
    server_side: list[tuple[str, list[Any]]],
    *,
    url: str = REDIS_URL,
    recovery: aiosio.Recovery | None = None,
    read_count: int = 100,
) -> Server:
    """An aiosio server of the cluster: the same behaviour as cluster_node.mjs."""
    factory = RedisStreamsAdapter(
        url, stream_name=key, channel_prefix=key, block_time=1.0, read_count=read_count
    )
    sio = Server(
        adapter=factory, ping_interval=10, ping_timeout=5, connection_state_recovery=recovery
    )
    return as_member(sio, name, server_side)


def factory_of(sio: Server) -> RedisStreamsAdapter:
    factory = sio.adapter_factory
    assert isinstance(factory, RedisStreamsAdapter)
    return factory


# The harness's clients but the silent one.
CLIENTS: dict[str, Spec] = {name: spec for name, spec in ALL_CLIENTS.items() if not spec[3]}


async def start_cluster(
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    *,
    url: str = REDIS_URL,
    specs: dict[str, Spec] = CLIENTS,
) -> RedisCluster:
    key = f"t{uuid.uuid4().hex[:12]}"
    cluster = RedisCluster(key=key, raw=redis_asyncio.Redis.from_url(url), specs=specs)
    for name in ("A", "B"):
        cluster.server_side[name] = []
        cluster.sios[name] = make_server(name, key, cluster.server_side[name], url=url)
    await serve_members(cluster, serve, serve_native)
    await start_node(
        cluster, spawn, "--adapter", "redis", "--streams", "--key", key, "--redis", url
    )
    await connect_clients(cluster, spawn)
    await warm_up(cluster)
    return cluster


async def warm_up(cluster: RedisCluster) -> None:
    """Node's readers start at ``$`` once their connection is up, which it does not tell: A
    broadcasts until every client has one (after that, nothing A appends is missed)."""
    deadline = time.monotonic() + 10
    while cluster.got("warm") != set(cluster.ids):
        assert time.monotonic() < deadline, f"warm-up reached only {cluster.got('warm')}"
        cluster.a.emit("warm")
        await asyncio.sleep(0.1)


@pytest.fixture
async def cluster(
    serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> AsyncIterator[RedisCluster]:
    c = await start_cluster(serve, serve_native, spawn)
    yield c
    await c.raw.delete(c.key)
    await c.close()


async def test_broadcasts_both_ways(cluster: RedisCluster) -> None:
    c = cluster
    c.a.emit("from-a", 1, {"x": [1, 2]})
    c.b.to("r1").emit("from-b", "r1 only")
    await c.n.call("emit", event="from-n", args=["everyone"])
    await c.n.call("emit", to="r2", event="from-n-r2", args=[2])
    c.a.except_("r1").emit("not-r1")
    c.a.emit("bin", b"\x00\x01\xff")  # binary: base64 msgpack in the stream
    for origin in ("A", "B", "N"):
        await c.flush(origin)
    every = set(c.ids)
    assert c.got("from-a") == every
    assert c.events("n1", "from-a") == [[1, {"x": [1, 2]}]]
    assert c.got("from-b") == {"a1", "b1", "n1"}
    assert c.got("from-n") == every
    assert c.got("from-n-r2") == {"a2", "b2", "n2"}
    assert c.got("not-r1") == {"a2", "b2", "n2"}
    assert c.got("bin") == every
    assert c.events("n2", "bin") == [[b"\x00\x01\xff"]]
    assert all(c.count(name, "from-a") == 1 for name in every)


async def test_fetch_sockets_and_server_count(cluster: RedisCluster) -> None:
    c = cluster
    assert await c.a.sockets.adapter.server_count() == 3  # type: ignore[misc]
    assert (await c.n.call("serverCount"))["count"] == 3
    sockets = await c.a.fetch_sockets()
    assert {s.id for s in sockets} == set(c.ids.values())
    remote = {s.id: s for s in sockets}[c.ids["n1"]]
    assert remote.data == {"name": "n1", "server": "N"}
    assert "r1" in remote.rooms
    in_r2 = await c.a.in_("r2").fetch_sockets()
    assert {s.id for s in in_r2} == {c.ids[n] for n in ("a2", "b2", "n2")}
    from_node = await c.n.call("fetchSockets")
    described = {s["id"]: s for s in from_node["sockets"]}
    assert set(described) == set(c.ids.values())
    assert described[c.ids["b1"]]["data"] == {"name": "b1", "server": "B"}
    assert not described[c.ids["a1"]]["local"]


async def test_server_side_emit_with_acks_both_ways(cluster: RedisCluster) -> None:
    c = cluster
    replies = await c.a.server_side_emit_with_ack("sse", 1, "two", timeout=3)
    assert sorted(r["server"] for r in replies) == ["B", "N"]
    assert all(r["args"] == [1, "two"] for r in replies)
    result = await c.n.call("serverSideEmit", event="sse", args=[3], ack=True)
    assert result["err"] is None
    assert sorted(r["server"] for r in result["responses"]) == ["A", "B"]
    assert c.server_side["A"][-1] == ("sse", [3])
    c.b.server_side_emit("sse", "no ack")
    await until(lambda: ("sse", ["no ack"]) in c.server_side["A"], 5, "sse without ack at A")
    node_saw = await c.n.wait(
        lambda line: line.get("type") == "serverSide" and line.get("args") == ["no ack"]
    )
    assert node_saw["acked"] is False


async def test_broadcast_with_acks_both_ways(cluster: RedisCluster) -> None:
    c = cluster
    replies = await c.a.timeout(3).emit_with_ack("question", 1)
    assert sorted(replies) == sorted(c.ids)
    result = await c.n.call("emitWithAck", timeout=3000, event="question", args=[2])
    assert result["err"] is None
    assert sorted(result["responses"]) == sorted(c.ids)
    to_r1 = await c.b.to("r1").timeout(3).emit_with_ack("question", 3)
    assert sorted(to_r1) == ["a1", "b1", "n1"]


async def test_joins_and_disconnects_across_servers(cluster: RedisCluster) -> None:
    c = cluster
    c.a.in_("r1").sockets_join("joined")
    await c.settle({n: {"joined"} for n in ("a1", "b1", "n1")})
    await c.n.call("emit", to="joined", event="to-joined")
    await c.flush("N")
    assert c.got("to-joined") == {"a1", "b1", "n1"}
    await c.n.call("socketsLeave", **{"in": "joined"}, rooms=["joined"])
    await c.settle({}, {n: {"joined"} for n in ("a1", "b1", "n1")})
    await c.n.call("disconnectSockets", **{"in": "r2"})
    await until(
        lambda: set(c.disconnected()) == {"a2", "b2", "n2"}, 5, f"disconnected {c.disconnected()}"
    )


# -- Redis killed in the middle of a stream of broadcasts ------------------------------------------


@pytest.fixture
async def durable_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test on a free port, with an append-only file written before each
    reply (what it acknowledged survives a SIGKILL), to kill and start again."""
    async with redis_server(tmp_path, required=True) as server:
        yield server


async def test_redis_killed_mid_stream_loses_nothing(
    durable_redis: RedisServer,
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
) -> None:
    c = await start_cluster(serve, serve_native, spawn, url=durable_redis.url)
    try:
        total, killed_at, interval = 300, 60, 0.02
        fb = factory_of(c.b)
        restarted: asyncio.Task[None] | None = None

        async def restart_later() -> None:
            await asyncio.sleep(3.0)
            await durable_redis.start()

        for number in range(1, total + 1):
            c.a.emit("n", number)
            if number == killed_at:
                await durable_redis.kill()
                restarted = asyncio.create_task(restart_later())
            await asyncio.sleep(interval)
        assert restarted is not None
        await restarted
        await until(
            lambda: (
                all(c.count(name, "n") >= total for name in c.ids)
                or any(c.count(name, "n") > total for name in c.ids)
            ),
            40,
            f"every number at every client: {[(n, c.count(n, 'n')) for n in c.ids]}",
        )
        await c.flush("A")  # anything duplicated would have arrived by now
        for name in c.ids:
            numbers = [args[0] for args in c.events(name, "n")]
            assert numbers == list(range(1, total + 1)), (name, numbers)
        health: StreamsHealth = fb.health
        assert health.reconnects >= 1
        assert health.trimmed_unread == 0
        assert factory_of(c.a).health.dropped_publishes == 0
        assert factory_of(c.a).health.retried_publishes >= 1
    finally:
        await c.raw.aclose()


# -- a member that never answers ------------------------------------------------------------------


async def test_a_member_that_never_answers_ends_fetch_sockets_at_its_timeout(
    serve: ServeFn, serve_native: ServeFn
) -> None:
    """A subscriber of the common channel that never answers (PUBSUB NUMSUB counts it, as the
    reference counts servers): ``fetch_sockets`` raises ``FetchSocketsTimeout`` after the
    call's timeout, as the sharded and classic Redis adapters do, unless the caller asks for
    the partial list; the request carries the call's timeout in its flags, as the reference's
    does."""
    key = f"t{uuid.uuid4().hex[:12]}"
    a = make_server("A", key, [])
    b = make_server("B", key, [])
    await serve_native(a)
    url_b = await serve(b)
    assert await factory_of(a).ready()
    assert await factory_of(b).ready()
    client = aiosio.Client(url_b, reconnection=False, transports=["websocket"])
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    mute = raw.pubsub()
    try:
        await client.connect()
        await mute.subscribe(f"{key}#/#")
        await until(lambda: server_count_is(a, 3), 5, "3 members")
        with pytest.raises(aiosio.FetchSocketsTimeout) as refused:
            await a.timeout(1).fetch_sockets()
        assert str(refused.value) == (
            "fetch_sockets on namespace /: 1 of 2 other server(s) did not answer within 1s "
            "(Redis counts the servers, it cannot name them); wait longer with "
            "sio.timeout(seconds).fetch_sockets() (default 5s), or take what arrived with "
            "fetch_sockets(partial=True)"
        )
        assert (refused.value.answered, refused.value.expected) == (1, 2)
        assert refused.value.timeout == 1
        assert [s.id for s in refused.value.sockets] == [client.id]  # what B answered
        request = await next_message(mute, type_key="type", types={7})
        assert request["data"]["opts"]["flags"] == {"timeout": 1000}
        sockets = await a.timeout(1).fetch_sockets(partial=True)
        assert [s.id for s in sockets] == [client.id]
    finally:
        await client.disconnect()
        await mute.aclose()
        await raw.delete(key)
        await raw.aclose()


# -- recovery across servers behind a load balancer ------------------------------------------------


async def _grew(raw: redis_asyncio.Redis, key: str, length: int) -> bool:
    return int(await raw.xlen(key)) > length


@pytest.mark.parametrize(("first", "then"), [("A", "N"), ("N", "A"), ("A", "B")])
async def test_recovery_across_servers(
    first: str,
    then: str,
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
) -> None:
    key = f"t{uuid.uuid4().hex[:12]}"
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    recovery = aiosio.Recovery(max_disconnection_duration=30.0)
    sios = {name: make_server(name, key, [], recovery=recovery) for name in ("A", "B")}
    ports = {
        "A": int((await serve_native(sios["A"])).rsplit(":", 1)[1]),
        "B": int((await serve(sios["B"])).rsplit(":", 1)[1]),
    }
    for sio in sios.values():
        assert await factory_of(sio).ready()
    node = await spawn(
        "cluster_node.mjs", "--adapter", "redis", "--streams", "--key", key, "--recovery", "30000"
    )
    ports["N"] = (await node.wait(lambda line: line.get("type") == "ready", 10))["port"]
    balancer = Balancer()
    await balancer.start()
    balancer.target = ports[first]

    async def emit(origin: str, number: int, *, volatile: bool = False) -> None:
        if origin == "N":
            await node.call("emit", to="r1", volatile=volatile, event="n", args=[number])
        elif volatile:
            sios[origin].to("r1").volatile.emit("n", number)
        else:
            sios[origin].to("r1").emit("n", number)

    try:
        url = f"http://127.0.0.1:{balancer.port}"
        spec = {"c": (first, ["r1"], ["websocket"], False)}
        clients = await spawn(
            "redis_clients.mjs", *client_args(spec, {first: url}, reconnection=True)
        )
        connect = await clients.wait(lambda line: line.get("type") == "connect", 10)
        assert connect["recovered"] is False

        def numbers() -> list[int]:
            return [
                py(line["args"])[0]
                for line in clients.lines
                if line["type"] == "event" and line["event"] == "n"
            ]

        # Node's readers start at "$" when their connection is up, which they do not tell.
        deadline = time.monotonic() + 10
        while not numbers():
            assert time.monotonic() < deadline, "the client got nothing"
            await emit(first, 0)
            await asyncio.sleep(0.1)
        for number in (1, 2, 3):
            await emit(first, number)
        await until(lambda: numbers()[-3:] == [1, 2, 3], 5, f"1, 2, 3 before: {numbers()}")
        balancer.refusing = True
        balancer.cut()
        await clients.wait(lambda line: line.get("type") == "disconnect", 5)
        await asyncio.sleep(0.3)  # the server that had the client keeps its session
        # From both servers, one after the other in the stream; 5 is volatile: it is in the
        # stream too, and Node's restoreSession replays it (it reads no flag), so aiosio does.
        for number in (4, 5, 6):
            length = await raw.xlen(key)
            await emit(first if number % 2 else then, number, volatile=number == 5)
            await until(lambda length=length: _grew(raw, key, length), 5, f"{number} appended")
        balancer.target = ports[then]
        balancer.refusing = False
        again = await clients.wait(
            lambda line: line.get("type") == "connect" and line is not connect, 10
        )
        assert again["recovered"] is True, again
        assert again["id"] == connect["id"]
        await emit(then, 7)
        await until(lambda: numbers()[-1:] == [7], 5, f"7 after the recovery: {numbers()}")
        got = numbers()
        assert got[got.index(1) :] == [1, 2, 3, 4, 5, 6, 7], got
    finally:
        await balancer.close()
        for sio in sios.values():
            await sio.close()
        await raw.delete(key)
        await raw.aclose()


async def test_recovery_while_broadcasts_flow_gives_each_once_in_order(
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
) -> None:
    """A broadcasts bursts of numbers all along, while its client loses its connection and
    recovers on B, then on A, then on B. B reads one entry at a time (read_count=1), so its
    reader is behind after each burst: the entries it has not delivered yet when a session is
    restored are in the restored packets and must not come again; and the entries a server
    delivers while it reads the stream for a restore must not be missing from them. The
    client gets every number once, in order."""
    key = f"t{uuid.uuid4().hex[:12]}"
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    recovery = aiosio.Recovery(max_disconnection_duration=30.0)
    sios = {
        "A": make_server("A", key, [], recovery=recovery),
        "B": make_server("B", key, [], recovery=recovery, read_count=1),
    }
    ports = {
        "A": int((await serve_native(sios["A"])).rsplit(":", 1)[1]),
        "B": int((await serve(sios["B"])).rsplit(":", 1)[1]),
    }
    for sio in sios.values():
        assert await factory_of(sio).ready()
    balancer = Balancer()
    await balancer.start()
    balancer.target = ports["A"]
    sent = 0
    flowing = True

    async def flow() -> None:
        nonlocal sent
        while flowing:
            for _ in range(20):
                sent += 1
                sios["A"].to("r1").emit("n", sent)
            await asyncio.sleep(0.05)

    try:
        url = f"http://127.0.0.1:{balancer.port}"
        spec = {"c": ("A", ["r1"], ["websocket"], False)}
        clients = await spawn(
            "redis_clients.mjs", *client_args(spec, {"A": url}, reconnection=True)
        )
        await clients.wait(lambda line: line.get("type") == "connect", 10)

        def numbers() -> list[int]:
            return [
                py(line["args"])[0]
                for line in clients.lines
                if line["type"] == "event" and line["event"] == "n"
            ]

        flowing_task = asyncio.create_task(flow())
        await until(lambda: len(numbers()) >= 50, 10, "the flow reaches the client")
        for _ in range(3):  # three recoveries: A -> B -> A -> B
            balancer.target = ports["B" if balancer.target == ports["A"] else "A"]
            connects = sum(1 for line in clients.lines if line["type"] == "connect")
            balancer.cut()
            await until(
                lambda connects=connects: (
                    sum(1 for line in clients.lines if line["type"] == "connect") > connects
                ),
                10,
                "the client back",
            )
            again = [line for line in clients.lines if line["type"] == "connect"][-1]
            assert again["recovered"] is True, again
            got = len(numbers())
            await until(lambda got=got: len(numbers()) >= got + 50, 10, "the flow goes on")
        flowing = False
        await flowing_task
        await until(lambda: numbers()[-1:] == [sent], 30, f"{sent} at the client")
        got = numbers()
        assert got == list(range(got[0], sent + 1)), [
            (i, n) for i, n in enumerate(got) if i and n != got[i - 1] + 1
        ]
    finally:
        flowing = False
        await balancer.close()
        for sio in sios.values():
            await sio.close()
        await raw.delete(key)
        await raw.aclose()


async def test_with_recovery_local_clients_get_broadcasts_in_the_order_sent(
    serve_native: ServeFn, clients: Callable[..., aiosio.Client]
) -> None:
    """With recovery, a kept broadcast reaches this server's clients once it is in the stream;
    a volatile one sent right after it waits its turn (the reference awaits every XADD), so
    the clients get them in the order they were sent."""
    key = f"t{uuid.uuid4().hex[:12]}"
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    sio = make_server("A", key, [], recovery=aiosio.Recovery(max_disconnection_duration=30.0))
    try:
        url = await serve_native(sio)
        assert await factory_of(sio).ready()
        client = clients(url, transports=("websocket",))
        got: list[list[Any]] = []
        client.on("n", lambda n: got.append([n]))
        await client.connect()
        for group in range(10):  # kept, kept, volatile in one go, then a pause
            sio.emit("n", 3 * group)
            sio.emit("n", 3 * group + 1)
            sio.volatile.emit("n", 3 * group + 2)
            await asyncio.sleep(0.05)
        await until(lambda: len(got) >= 30, 5, f"30 broadcasts: {got}")
        assert got == [[n] for n in range(30)]  # the offsets are the client's, not the handler's
        assert await raw.xlen(key) == 30  # the volatile ones are in the stream too
    finally:
        await sio.close()
        await raw.delete(key)
        await raw.aclose()


# -- a network cut between one server and Redis; entries trimmed before a server read them --------


async def cut_cluster(
    redis_url: str, serve: ServeFn, serve_native: ServeFn, spawn: Any, *, max_len: int
) -> tuple[RedisCluster, Balancer, Server]:
    """A (native) on Redis directly, B (uvicorn) on Redis through a proxy that the test cuts,
    one client on each."""
    port = int(redis_url.rsplit(":", 1)[1])
    proxy = Balancer()
    await proxy.start()
    proxy.target = port
    key = f"t{uuid.uuid4().hex[:12]}"
    c = RedisCluster(key=key, raw=redis_asyncio.Redis.from_url(redis_url))
    c.specs = {"a1": ("A", [], ["websocket"], False), "b1": ("B", [], ["websocket"], False)}
    for name, url in (("A", redis_url), ("B", f"redis://127.0.0.1:{proxy.port}")):
        c.server_side[name] = []
        factory = RedisStreamsAdapter(
            url, stream_name=key, channel_prefix=key, block_time=0.5, max_len=max_len
        )
        c.sios[name] = Server(adapter=factory)
    await serve_members(c, serve, serve_native)
    await connect_clients(c, spawn)
    return c, proxy, c.b


async def test_network_cut_loses_nothing(
    serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> None:
    c, proxy, b = await cut_cluster(REDIS_URL, serve, serve_native, spawn, max_len=10_000)
    try:
        for number in range(1, 21):
            c.a.emit("n", number)
        await until(lambda: c.count("b1", "n") == 20, 5, "20 numbers at b1")
        proxy.refusing = True
        proxy.cut()
        await until(lambda: not factory_of(b).health.connected, 5, "B sees the cut")
        for number in range(21, 121):
            c.a.emit("n", number)
        await asyncio.sleep(1.0)
        proxy.refusing = False
        await until(lambda: c.count("b1", "n") >= 120, 20, f"120 at b1: {c.count('b1', 'n')}")
        await c.flush("A")
        for name in c.ids:
            assert [args[0] for args in c.events(name, "n")] == list(range(1, 121)), name
        health = factory_of(b).health
        assert health.reconnects >= 1
        assert health.trimmed_unread == 0
        assert (
            health.as_dict()["offsets"][c.key]
            == (await c.raw.xrevrange(c.key, count=1))[0][0].decode()
        )
    finally:
        await proxy.close()
        await c.raw.delete(c.key)
        await c.raw.aclose()


async def test_network_stall_loses_nothing_and_shows_in_health(
    serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> None:
    """B's link to Redis stalls (nothing forwarded either way, nothing closed) while A and B
    broadcast numbered messages: for 3 s, then it resumes; then for 3 s again, and then it is
    cut. B's reads and appends wait on the stalled connections (the stall shows in B's
    health while it lasts and after), and what was held at the cut is read and appended again
    on new connections: each client gets each number once, in order."""
    c, proxy, b = await cut_cluster(REDIS_URL, serve, serve_native, spawn, max_len=10_000)
    fb = factory_of(b)
    sent = 0

    async def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            sent += 1
            c.a.emit("n", sent)
            c.b.emit("m", sent)
            await asyncio.sleep(0.05)

    def all_arrived() -> bool:
        return all(c.count(name, event) >= sent for name in c.ids for event in ("n", "m"))

    try:
        await send(20)
        await until(all_arrived, 5, "20 numbers of A and B at a1 and b1")
        assert fb.health.stalled_reads == 0

        proxy.stall()
        await send(60)  # 3 s
        during = fb.health.as_dict()
        assert during["read_overdue_seconds"] >= 1.5, during
        assert during["queued_publishes"] >= 1, during
        proxy.resume()
        await until(all_arrived, 10, "what was sent during the stall")
        assert fb.health.stalled_reads >= 1
        assert fb.health.stalled_seconds >= 1.5
        assert fb.health.as_dict()["read_overdue_seconds"] < 1.0

        proxy.stall()
        await send(60)
        proxy.cut()
        proxy.resume()
        await until(all_arrived, 20, f"{sent} at every client after the cut")
        await c.flush("A")
        await c.flush("B")
        for name in c.ids:
            for event in ("n", "m"):
                got = [args[0] for args in c.events(name, event)]
                assert got == list(range(1, sent + 1)), (name, event, got)
        health = fb.health
        assert health.reconnects >= 1
        assert health.retried_publishes >= 1  # the XADD held at the cut went through later
        assert health.dropped_publishes == factory_of(c.a).health.dropped_publishes == 0
        assert health.trimmed_unread == 0
        assert health.readers_connected == 1
    finally:
        await proxy.close()
        await c.raw.delete(c.key)
        await c.raw.aclose()


async def test_an_append_redis_never_answered_is_uncertain_and_found_later(
    serve_native: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    """B's link to Redis stalls (a proxy forwards nothing, closes nothing) while B broadcasts:
    its XADD is sent and never answered within publish_retry_timeout (1 s), so B gives it up;
    but Redis may yet apply it, so it is counted in uncertain_publishes, not as dropped. The
    stall ends, the held XADD reaches Redis, A's client gets the broadcast (counting it as
    dropped was wrong), and B's reader finds the entry in the stream: uncertain_found."""
    caplog.set_level(logging.INFO, logger=STREAMS_LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    proxy = Balancer()
    await proxy.start()
    proxy.target = int(REDIS_URL.rsplit(":", 1)[1])
    options: dict[str, Any] = {"stream_name": key, "channel_prefix": key, "block_time": 0.5}
    a = Server(adapter=RedisStreamsAdapter(REDIS_URL, **options))
    fb = RedisStreamsAdapter(
        f"redis://127.0.0.1:{proxy.port}", publish_retry_timeout=1.0, **options
    )
    b = Server(adapter=fb)
    url_a = await serve_native(a)
    await serve_native(b)
    received: list[int] = []
    client = aiosio.Client(url_a, reconnection=False, transports=["websocket"])
    client.on("m", received.append)
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        assert await factory_of(a).ready()
        assert await fb.ready()
        await client.connect()
        b.emit("m", 0)
        await until(lambda: received == [0], 5, "B's broadcast at A's client")

        proxy.stall()
        b.emit("m", 1)
        await until(lambda: fb.health.uncertain_publishes == 1, 10, "B gives the append up")
        assert fb.health.dropped_publishes == 0
        assert fb.health.uncertain_found == 0
        logged = [r.getMessage() for r in caplog.records if "gave up appending" in r.getMessage()]
        assert len(logged) == 1
        assert logged[0].startswith(f"gave up appending to redis stream {key} (TimeoutError")
        assert (
            "Redis never answered an XADD that was sent, so the message may be in the stream "
            "(the other servers then deliver it late) or lost; 1 such messages so far "
            "(health.uncertain_publishes, not in dropped_publishes" in logged[0]
        )

        proxy.resume()
        await until(lambda: received == [0, 1], 10, "the held XADD applied, delivered by A")
        await until(lambda: fb.health.uncertain_found == 1, 15, "B's reader finds the entry")
        assert len(await raw.xrange(key)) == 2  # once: nothing appended it again
        health = fb.health.as_dict()
        assert (health["uncertain_publishes"], health["uncertain_found"]) == (1, 1)
        assert health["dropped_publishes"] == 0
        assert any("Redis applied it after all" in r.getMessage() for r in caplog.records)
    finally:
        await client.disconnect()
        await proxy.close()
        await raw.delete(key)
        await raw.aclose()


async def test_an_append_that_could_not_be_sent_is_dropped_not_uncertain() -> None:
    """No connection to Redis could be had: the XADD never left, so the message given up is a
    drop (dropped_publishes), not one of unknown fate."""
    factory = RedisStreamsAdapter(f"redis://127.0.0.1:{free_port()}", publish_retry_timeout=0.3)
    sio = Server(adapter=factory)
    try:
        sio.emit("n", 1)
        await until(lambda: factory.health.dropped_publishes == 1, 10, "the append given up")
        assert factory.health.uncertain_publishes == 0
    finally:
        await factory.close()


async def test_entries_trimmed_before_they_were_read_are_counted_and_logged(
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # MAXLEN ~ trims whole nodes of the stream (100 entries by default): 1000 entries added
    # while B is cut off leave far fewer than 1000 in a stream of max_len=10.
    c, proxy, b = await cut_cluster(REDIS_URL, serve, serve_native, spawn, max_len=10)
    try:
        c.a.emit("n", 0)
        await until(lambda: c.count("b1", "n") == 1, 5, "0 at b1")
        proxy.refusing = True
        proxy.cut()
        await until(lambda: not factory_of(b).health.connected, 5, "B sees the cut")
        for number in range(1, 1001):
            c.a.emit("n", number)
        await until(lambda: factory_of(c.a).health.appended >= 1001, 10, "A appended")
        proxy.refusing = False
        await until(lambda: c.count("b1", "n") > 1 and c.events("b1", "n")[-1] == [1000], 20)
        got = [args[0] for args in c.events("b1", "n")]
        # What was trimmed is lost, and counted exactly: 0, then the numbers left in the stream.
        assert got == [0, *range(1001 - len(got) + 1, 1001)]
        assert factory_of(b).health.trimmed_unread == 1001 - len(got)
        logged = [r.getMessage() for r in caplog.records if "were trimmed" in r.getMessage()]
        assert logged
        assert "raise RedisStreamsAdapter(max_len=...) (now 10)" in logged[0]
    finally:
        await proxy.close()
        await c.raw.delete(c.key)
        await c.raw.aclose()


# -- options and the wire -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("max_len", 0, "max_len must be an integer of at least 1, got 0"),
        ("stream_count", 0, "stream_count must be an integer of at least 1, got 0"),
        ("read_count", 0, "read_count must be an integer of at least 1, got 0"),
        ("block_time", 0, "block_time must be more than 0 and at most 3600 seconds, got 0"),
        ("block_time", 3601, "block_time must be more than 0 and at most 3600 seconds, got 3601"),
        ("max_publish_queue", 0, "max_publish_queue must be at least 1 message, got 0"),
        ("publish_retry_timeout", -1, "publish_retry_timeout must be 0 or more seconds"),
    ],
)
def test_options_are_checked(option: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        RedisStreamsAdapter(**{option: value})


def test_a_redis_cluster_client_is_refused_with_the_reason() -> None:
    cluster_client = redis_asyncio.RedisCluster(host="127.0.0.1", port=free_port())
    with pytest.raises(TypeError, match="Redis Cluster is not supported yet"):
        RedisStreamsAdapter(cluster_client)


def test_options_at_their_bounds_are_accepted() -> None:
    for options in (
        {"max_len": 1, "stream_count": 1, "read_count": 1},
        {"block_time": 0.001},
        {"block_time": 3600},
    ):
        assert RedisStreamsAdapter(**options).streams == ["socket.io"]
    assert RedisStreamsAdapter(stream_count=3).streams == [
        "socket.io-0",
        "socket.io-1",
        "socket.io-2",
    ]


async def test_node_entries_decode_and_encode_to_the_same_fields(cluster: RedisCluster) -> None:
    """What the Node adapter appends, decoded and written again by aiosio, is the same fields,
    character for character (JSON and base64 msgpack data)."""
    from aiosio.adapters.redis_streams.messages import decode_entry
    from aiosio.adapters.redis_streams.messages import entry_fields

    c = cluster
    await c.n.call("emit", to="r1", event="plain", args=[1, {"k": "é"}])
    await c.n.call("emit", event="bin", args=[{"$bin": "AAH/"}, 2])
    await c.n.call("socketsJoin", **{"in": "r1"}, rooms=["x"])
    await c.flush("N")
    entries = await c.raw.xrange(c.key, "-", "+")
    node_uid = (await c.n.wait(lambda line: line.get("type") == "ready"))["uid"]
    from_node = [fields for _id, fields in entries if fields[b"uid"] == node_uid.encode()]
    assert len(from_node) >= 4
    for fields in from_node:
        message = decode_entry(fields, max_size=10_000_000, limits=aiosio.Limits())
        again = {k.encode(): v.encode() for k, v in entry_fields(message).items()}
        assert again == fields
        assert list(again) == list(fields)  # the reference's order: uid, nsp, type, data
    assert any(not fields[b"data"].startswith(b"{") for fields in from_node)  # base64 msgpack


async def test_namespaces_spread_over_streams_including_a_negative_hash(
    serve: ServeFn,
    serve_native: ServeFn,
    clients: Callable[..., aiosio.Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With ``stream_count``, each namespace goes to its stream; one whose hash is negative
    (``/notifications``: the reference writes ``<name>--3``, which its readers never read) still
    reaches the other aiosio servers, and the mixed-cluster pitfall is logged."""
    key = f"t{uuid.uuid4().hex[:12]}"
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    sios = [
        Server(adapter=RedisStreamsAdapter(stream_name=key, channel_prefix=key, stream_count=4))
        for _ in range(2)
    ]
    try:
        for sio in sios:
            sio.of("/notifications")
        a_url, b_url = await serve_native(sios[0]), await serve(sios[1])
        for sio in sios:
            assert await factory_of(sio).ready()
        client = clients(f"{b_url}/notifications", transports=("websocket",))
        got: list[Any] = []
        client.on("note", got.append)
        await client.connect()
        deadline = time.monotonic() + 5
        while not got:
            assert time.monotonic() < deadline, "nothing reached the client on B"
            sios[0].of("/notifications").emit("note", 1)
            await asyncio.sleep(0.1)
        assert await raw.exists(f"{key}--3") == 1
        assert a_url
        assert any("never do" in r.getMessage() for r in caplog.records)
    finally:
        for sio in sios:
            await sio.close()
        await raw.delete(*[f"{key}-{i}" for i in range(-3, 4)])
        await raw.aclose()

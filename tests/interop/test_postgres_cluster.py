"""aiosio's ``PostgresAdapter`` in one cluster with the official socket.io 4.8 server on
``@socket.io/postgres-adapter`` 0.5, and reached by ``@socket.io/postgres-emitter`` 0.1.1, on a
real PostgreSQL (127.0.0.1:5432, user postgres, database ``test``).

A cluster (``cluster_harness.py``) is two aiosio servers (``A`` on the native server, ``B`` under
uvicorn) and one Node server (``N``, ``tests/js/cluster_node.mjs --adapter postgres``), on a
channel prefix unique to the test, with official ``socket.io-client`` sockets connected to each
(``tests/js/redis_clients.mjs``, which only needs URLs). Each client sends ``auth = {name,
rooms}``: every server joins the socket to ``rooms`` and sets ``socket.data = {name, server}``.
Clients answer every acknowledgement request with their name (except the silent one, ``q``).

Delivery checks are exact: after the broadcasts under test, the same origin broadcasts a marker to
everyone; PostgreSQL delivers one connection's notifications in order, and each server sends on
one connection (the Node server's pool has one connection besides its listener), so once every
client has the marker, whatever the broadcast under test was going to deliver has arrived.

The outage tests put a TCP proxy of the test's own between server A and PostgreSQL and cut it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from cluster_harness import ALL
from cluster_harness import ANSWERING
from cluster_harness import CLIENTS
from cluster_harness import PostgresCluster
from cluster_harness import Spawn
from cluster_harness import Spec
from cluster_harness import as_member
from cluster_harness import b_under_uvicorn  # noqa: F401 (the fixture server_kind)
from cluster_harness import connect_clients
from cluster_harness import members
from cluster_harness import node_scripts  # noqa: F401 (the fixture spawn)
from cluster_harness import serve_members
from cluster_harness import server_count
from cluster_harness import server_count_is
from cluster_harness import start_node
from node_procs import js
from node_procs import until

from aiosio import AckTimeout
from aiosio import FetchSocketsTimeout
from aiosio import Server
from aiosio.adapters.postgres import PostgresAdapter
from conftest import ServeFn
from conftest import free_port
from conftest import run_node

pytestmark = pytest.mark.interop

DSN = "postgresql://postgres@127.0.0.1:5432/test"
LOGGER = "aiosio.adapter.postgres"


@pytest.fixture(scope="module", autouse=True)
def attachments_table() -> None:
    """PostgreSQL must be up (the test fails, never skips, when it is not) with the attachments
    table of the reference's README."""

    async def create() -> None:
        try:
            conn = await asyncpg.connect(DSN, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(
                f"PostgreSQL is not reachable at {DSN} ({type(exc).__name__}: {exc}): these tests "
                "need a PostgreSQL 15 on 127.0.0.1:5432 with trust authentication for user "
                "postgres and a database named test"
            )
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS socket_io_attachments (id bigserial UNIQUE, "
                "created_at timestamptz DEFAULT NOW(), payload bytea)"
            )
        finally:
            await conn.close()

    asyncio.run(create())


def make_server(
    name: str, prefix: str, server_side: list[tuple[str, list[Any]]], dsn: str = DSN, **options: Any
) -> Server:
    """An aiosio server of the cluster: the same behaviour as cluster_node.mjs."""
    factory = PostgresAdapter(
        dsn,
        channel_prefix=prefix,
        connect_options={"server_settings": {"application_name": f"{prefix}-{name}"}},
        **options,
    )
    return as_member(Server(adapter=factory, ping_interval=10, ping_timeout=5), name, server_side)


def factory_of(sio: Server) -> PostgresAdapter:
    factory = sio.adapter_factory
    assert isinstance(factory, PostgresAdapter)
    return factory


async def formed(cluster: PostgresCluster, count: int = 3) -> None:
    """Wait until every server counts ``count`` servers. The Node one is asked to say hello
    (``adapter.init()``, as the reference's own tests do): socket.io 4.8.1 never calls it, so an
    idle Node server sends no heartbeat until it publishes a request or answers an aiosio
    server's INITIAL_HEARTBEAT."""

    async def check() -> bool:
        counts = [await server_count(sio) for sio in cluster.sios.values()]
        if cluster.node is not None:
            counts.append((await cluster.n.call("serverCount"))["count"])
            if any(c < count for c in counts):
                await cluster.n.call("init")
        return all(c == count for c in counts)

    await until(check, 12, f"{count} servers in the cluster")


async def start_cluster(
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    *,
    clients: dict[str, Spec] = CLIENTS,
    a_dsn: str = DSN,
    options: dict[str, Any] | None = None,
    node_args: tuple[str, ...] = (),
) -> PostgresCluster:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    cluster = PostgresCluster(prefix=prefix, specs=clients)
    for name in ("A", "B"):
        cluster.server_side[name] = []
        dsn = a_dsn if name == "A" else DSN
        cluster.sios[name] = make_server(
            name, prefix, cluster.server_side[name], dsn, **(options or {})
        )
    await serve_members(cluster, serve, serve_native)
    await start_node(cluster, spawn, "--adapter", "postgres", "--prefix", prefix, *node_args)
    await formed(cluster)
    await connect_clients(cluster, spawn)
    await cluster.settle_clients()
    return cluster


@pytest.fixture
async def cluster(
    serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> AsyncIterator[PostgresCluster]:
    c = await start_cluster(serve, serve_native, spawn)
    yield c
    await c.close()


# -- broadcasts -----------------------------------------------------------------------------------


async def test_broadcasts_rooms_and_except_reach_every_server_in_both_directions(
    cluster: PostgresCluster,
) -> None:
    for origin in ("A", "B", "N"):
        event = f"all-{origin}"
        if origin == "N":
            await cluster.n.call("emit", event=event, args=[origin, {"n": 1}])
            await cluster.n.call("emit", to=["r1"], event=f"r1-{origin}", args=[1])
            await cluster.n.call("emit", to=["r1", "r2"], event=f"r12-{origin}", args=[2])
            await cluster.n.call("emit", **{"except": ["r2"]}, event=f"not-r2-{origin}", args=[3])
        else:
            sio = cluster.sios[origin]
            sio.emit(event, origin, {"n": 1})
            sio.to("r1").emit(f"r1-{origin}", 1)
            sio.to("r1").to("r2").emit(f"r12-{origin}", 2)
            sio.except_("r2").emit(f"not-r2-{origin}", 3)
        await cluster.flush(origin)
        for name in ALL:
            assert cluster.events(name, event) == [[origin, {"n": 1}]], (name, event)
            assert cluster.count(name, f"r1-{origin}") == (name in members("r1")), name
            assert cluster.count(name, f"r12-{origin}") == (
                name in members("r1") | members("r2")
            ), name
            assert cluster.count(name, f"not-r2-{origin}") == (name not in members("r2")), name


async def test_binary_and_large_payloads_travel_through_the_attachments_table(
    cluster: PostgresCluster,
) -> None:
    """Binary values (JSON has no bytes) and messages whose JSON is 8000 bytes or more go
    through the attachments table, both ways; exactly one copy arrives."""
    blob = bytes(range(256)) * 4
    large = "é" * 5000  # 10,000 bytes of UTF-8: past the threshold in bytes, not in characters
    a_health = factory_of(cluster.a).health
    b_health = factory_of(cluster.b).health
    before = (a_health.attachments_published, b_health.attachments_received)
    cluster.a.emit("bin-A", blob, {"nested": [blob]})
    cluster.a.to("r1").emit("large-A", large)
    await cluster.n.call("emit", event="bin-N", args=js([blob]))
    await cluster.n.call("emit", to=["r2"], event="large-N", args=[large])
    await cluster.wait_event(ALL, "bin-A")
    await cluster.wait_event(members("r1"), "large-A")
    await cluster.wait_event(ALL, "bin-N")
    await cluster.wait_event(members("r2"), "large-N")
    await cluster.flush("A")
    await cluster.flush("N")
    for name in ALL:
        assert cluster.events(name, "bin-A") == [[blob, {"nested": [blob]}]], name
        assert cluster.events(name, "bin-N") == [[blob]], name
        assert cluster.events(name, "large-A") == ([[large]] if name in members("r1") else [])
        assert cluster.events(name, "large-N") == ([[large]] if name in members("r2") else [])
    assert a_health.attachments_published - before[0] == 2
    # B read A's two and N's two; A never reads its own back.
    assert b_health.attachments_received - before[1] == 4
    assert a_health.dropped_messages == b_health.dropped_messages == 0


async def test_a_message_just_under_the_threshold_is_a_notify_and_one_at_it_an_attachment(
    cluster: PostgresCluster,
) -> None:
    """The JSON of a broadcast is 7999 bytes: NOTIFY; 8000 bytes: the attachments table (a NOTIFY
    payload of 8000 bytes is refused by PostgreSQL)."""
    health = factory_of(cluster.a).health
    envelope = len(
        json.dumps(
            {
                "type": 3,
                "data": {
                    "packet": {"type": 2, "data": ["edge", ""]},
                    "opts": {"rooms": [], "except": [], "flags": {}},
                },
                "uid": cluster.a.sockets.adapter.uid,  # type: ignore[attr-defined]
                "nsp": "/",
            },
            separators=(",", ":"),
        )
    )
    before = health.attachments_published
    cluster.a.emit("edge", "x" * (7999 - envelope))
    await cluster.flush("A")
    assert health.attachments_published == before
    cluster.a.emit("edge", "x" * (8000 - envelope))
    await cluster.flush("A")
    assert health.attachments_published == before + 1
    for name in ALL:
        assert [len(args[0]) for args in cluster.events(name, "edge")] == [
            7999 - envelope,
            8000 - envelope,
        ]


# -- requests -----------------------------------------------------------------------------------


async def test_fetch_sockets_sees_every_server_s_sockets_with_their_data(
    cluster: PostgresCluster,
) -> None:
    sockets = await cluster.a.fetch_sockets()
    by_id = {s.id: s for s in sockets}
    assert set(by_id) == set(cluster.ids.values())
    for name, sid in cluster.ids.items():
        server, rooms, _, _ = CLIENTS[name]
        assert by_id[sid].data == {"name": name, "server": server}
        assert set(by_id[sid].rooms) == {sid, *rooms}
    in_r2 = await cluster.a.in_("r2").fetch_sockets()
    assert {s.id for s in in_r2} == {cluster.ids[n] for n in members("r2")}
    node = await cluster.n.call("fetchSockets")
    seen = {s["id"]: s for s in node["sockets"]}
    assert set(seen) == set(cluster.ids.values())
    for name, sid in cluster.ids.items():
        assert seen[sid]["data"] == {"name": name, "server": CLIENTS[name][0]}
        assert seen[sid]["local"] == (CLIENTS[name][0] == "N")


async def test_remote_sockets_can_be_emitted_to_joined_and_disconnected(
    cluster: PostgresCluster,
) -> None:
    sockets = {s.id: s for s in await cluster.a.fetch_sockets()}
    n1 = sockets[cluster.ids["n1"]]
    # Its acknowledgement comes back through the cluster (a broadcast with acks to one socket).
    assert await n1.timeout(5).emit_with_ack("question", 1) == "n1"
    assert await sockets[cluster.ids["b2"]].timeout(5).emit_with_ack("question", 2) == "b2"
    n1.emit("direct", "to-n1")
    n1.join("vip")
    await cluster.flush("A")
    assert cluster.events("n1", "direct") == [["to-n1"]]
    assert cluster.got("direct") == {"n1"}
    await cluster.settle({"n1": {"vip"}})
    result = await cluster.n.call("remote", target=cluster.ids["b1"], action="join", rooms=["vip"])
    assert result["found"]
    await cluster.settle({"b1": {"vip"}})
    cluster.a.to("vip").emit("vip-news", 1)
    await cluster.flush("A")
    assert cluster.got("vip-news") == {"n1", "b1"}
    sockets[cluster.ids["n2"]].disconnect()
    await until(lambda: "n2" in cluster.disconnected(), 8, "n2 disconnected")
    assert cluster.disconnected()["n2"] == "io server disconnect"


async def test_sockets_join_leave_and_disconnect_across_the_cluster(
    cluster: PostgresCluster,
) -> None:
    cluster.a.in_("r1").sockets_join("joined")
    await cluster.settle({n: {"joined"} for n in members("r1")})
    await cluster.n.call("socketsLeave", **{"in": ["r1"]}, rooms=["joined"])
    await cluster.settle({}, {n: {"joined"} for n in members("r1")})
    await cluster.n.call("socketsJoin", **{"in": ["r2"]}, rooms=["from-node"])
    await cluster.settle({n: {"from-node"} for n in members("r2")})
    cluster.b.in_("r2").disconnect_sockets()
    await until(
        lambda: set(cluster.disconnected()) == members("r2"), 8, "the r2 members disconnected"
    )
    assert set(cluster.disconnected().values()) == {"io server disconnect"}


async def test_server_side_emit_with_acks_in_both_directions(cluster: PostgresCluster) -> None:
    replies = await cluster.a.server_side_emit_with_ack("sse", "from-A", 1, timeout=5)
    assert sorted(r["server"] for r in replies) == ["B", "N"]
    assert all(r["args"] == ["from-A", 1] for r in replies)
    result = await cluster.n.call("serverSideEmit", event="sse", args=["from-N"], ack=True)
    assert result["err"] is None
    assert sorted(r["server"] for r in result["responses"]) == ["A", "B"]
    cluster.b.server_side_emit("sse", "no-ack")
    await until(
        lambda: ("sse", ["no-ack"]) in cluster.server_side["A"], 8, "A got B's server-side emit"
    )
    await cluster.n.wait(
        lambda line: line.get("type") == "serverSide" and line["args"] == ["no-ack"], 8
    )
    assert ("sse", ["from-N"]) in cluster.server_side["A"]


async def test_broadcast_with_acks_gathers_every_client_s_reply_in_both_directions(
    cluster: PostgresCluster,
) -> None:
    replies = await cluster.a.except_("quiet").timeout(5).emit_with_ack("ask", 1)
    assert sorted(replies) == sorted(ANSWERING)
    result = await cluster.n.call("emitWithAck", **{"except": ["quiet"]}, timeout=5000,
                                  event="ask-n", args=[2])  # fmt: skip
    assert result["err"] is None
    assert sorted(result["responses"]) == sorted(ANSWERING)
    # The silent client never answers: the broadcast times out with what arrived.
    with pytest.raises(AckTimeout) as raised:
        await cluster.a.timeout(1).emit_with_ack("ask-all", 3)
    assert sorted(raised.value.replies) == sorted(ANSWERING)
    assert raised.value.missing == ["<1 socket(s) on other servers>"]


# -- the emitter ----------------------------------------------------------------------------------


async def test_the_npm_postgres_emitter_reaches_aiosio_clients(cluster: PostgresCluster) -> None:
    """``@socket.io/postgres-emitter`` writes no ``nsp`` (the channel names it) and ``uid``
    "emitter": aiosio delivers its broadcasts, binary and large ones (through the attachments
    table) included, and applies its room changes and server-side emits. (The Node adapter 0.5.0
    drops them all, as the last assertion shows.)"""
    blob = b"\x00\x01emitter"
    actions = [
        {"do": "emit", "event": "em-all", "args": ["hello", {"k": 1}]},
        {"do": "emit", "to": ["r1"], "event": "em-r1", "args": [1]},
        {"do": "emit", "except": ["r1"], "event": "em-not-r1", "args": [2]},
        {"do": "emit", "event": "em-bin", "args": js([blob])},
        {"do": "emit", "to": ["r2"], "event": "em-large", "args": ["y" * 9000]},
        {"do": "socketsJoin", "in": ["r2"], "rooms": ["em-room"]},
        {"do": "serverSideEmit", "args": ["sse", "from-emitter"]},
    ]
    done = await run_node(
        "cluster_emitter.mjs",
        *("--adapter", "postgres", "--prefix", cluster.prefix, "--actions", json.dumps(actions)),
    )
    assert done[-1] == {"type": "done", "actions": len(actions)}
    aiosio_clients = {n for n, spec in CLIENTS.items() if spec[0] in ("A", "B")}
    await cluster.wait_event(aiosio_clients, "em-all")
    await cluster.wait_event(aiosio_clients & members("r2"), "em-large")
    await cluster.wait_event(aiosio_clients, "em-bin")
    await cluster.flush("A")
    for name in aiosio_clients:
        assert cluster.events(name, "em-all") == [["hello", {"k": 1}]]
        assert cluster.count(name, "em-r1") == (name in members("r1"))
        assert cluster.count(name, "em-not-r1") == (name not in members("r1"))
        assert cluster.events(name, "em-bin") == [[blob]]
        assert cluster.count(name, "em-large") == (name in members("r2"))
    await cluster.settle({n: {"em-room"} for n in aiosio_clients & members("r2")})
    await until(
        lambda: ("sse", ["from-emitter"]) in cluster.server_side["B"], 8, "B got the emitter's"
    )
    # The Node server on @socket.io/postgres-adapter 0.5.0 drops them: it finds the namespace of
    # a message by its nsp, which the emitter does not write. aiosio reads it from the channel.
    assert cluster.got("em-all") == aiosio_clients
    # The emitter is not a server: it is never counted.
    assert await server_count(cluster.a) == 3


# -- heartbeats ---------------------------------------------------------------------------------


async def test_a_closed_server_leaves_the_cluster_at_once_and_a_silent_one_after_the_timeout(
    serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> None:
    options = {"heartbeat_interval": 1.0, "heartbeat_timeout": 4.0}
    cluster = await start_cluster(
        serve, serve_native, spawn, clients={}, options=options, node_args=("--heartbeat", "1000")
    )
    try:
        # Heartbeats keep the cluster together past heartbeat_timeout.
        await asyncio.sleep(5.0)
        assert await server_count(cluster.a) == 3
        # ADAPTER_CLOSE: forgotten at once (well before N's heartbeat_timeout would).
        await cluster.n.call("close")
        await until(
            lambda: server_count_is(cluster.a, 2), 3.0, "A forgot N after its ADAPTER_CLOSE"
        )
        # B is killed without a word (its link closed under it): A forgets it after the timeout.
        await factory_of(cluster.b).link.close()
        started = time.monotonic()
        await until(lambda: server_count_is(cluster.a, 1), 10.0, "A forgot the silent B")
        assert time.monotonic() - started >= 2.5
        # Alone, fetch_sockets and server_side_emit with acks do not wait.
        assert await cluster.a.server_side_emit_with_ack("sse", timeout=5) == []
    finally:
        await cluster.n.close()


async def test_fetch_sockets_fails_as_the_reference_when_a_known_server_does_not_answer(
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that stops answering but is not forgotten yet (its last heartbeat is recent):
    ``fetch_sockets`` raises with the count missing, as the reference rejects, unless asked for
    what arrived; ``server_side_emit_with_ack`` raises with the replies that did arrive. Each
    short request is logged, as with the Redis adapters."""
    caplog.set_level(logging.WARNING, LOGGER)
    cluster = await start_cluster(
        serve, serve_native, spawn, clients={}, options={"heartbeat_timeout": 30.0}
    )
    try:
        await cluster.n.kill()
        uid_n = next(line for line in cluster.n.lines if line.get("type") == "ready")["uid"]
        with pytest.raises(FetchSocketsTimeout) as fetch:
            await cluster.a.timeout(0.5).fetch_sockets()
        assert str(fetch.value) == (
            f"fetch_sockets on namespace /: 1 of 2 other server(s) did not answer within 0.5s "
            f"(servers {uid_n}; a stopped server is no longer waited for after "
            "heartbeat_timeout=30s); wait longer with sio.timeout(seconds).fetch_sockets(), or "
            "take what arrived with fetch_sockets(partial=True)"
        )
        assert (fetch.value.answered, fetch.value.expected) == (1, 2)
        partial = await cluster.a.timeout(0.5).fetch_sockets(partial=True)
        assert partial == []  # no client in this cluster; B answered, N did not
        with pytest.raises(AckTimeout, match=r"timeout reached: missing 1 responses") as raised:
            await cluster.a.server_side_emit_with_ack("sse", "x", timeout=0.5)
        assert [r["server"] for r in raised.value.replies] == ["B"]
        messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert messages.count("only 1 of 2 servers answered within 0.5s") == 3, messages
    finally:
        await cluster.n.close()


# -- outages ------------------------------------------------------------------------------------


class Proxy:
    """A TCP proxy of the test's own in front of PostgreSQL: ``cut()`` closes every connection
    through it and refuses new ones until ``restore()``; ``stall()`` makes the open ones a black
    hole."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.open = True
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()
        self.frozen: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    if dst in self.frozen:
                        continue  # a black hole: the connection looks open, nothing passes
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.pipes -= {writer, up_writer}

    def cut(self) -> None:
        self.open = False
        for pipe in list(self.pipes):
            pipe.transport.abort()

    def stall(self) -> None:
        """Every connection open now stops passing bytes, without closing (a half-open link);
        new connections work."""
        self.frozen |= self.pipes

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy()
    await p.start()
    yield p
    await p.close()


async def test_a_network_cut_is_counted_reported_and_recovered_never_silent(
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    proxy: Proxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Server A reaches PostgreSQL through a proxy that is cut for 2 s in the middle of two
    streams of numbered broadcasts, one from A and one from B.

    - A's stream: every number reaches B's client or is counted in A's ``dropped_publishes``
      (none both: at most once), and the drops are logged.
    - B's stream: what A's clients missed falls inside A's reported outage (``reconnects``,
      ``outage_seconds``, the warning that says messages were not received); the rest arrives
      in order, once.
    """
    caplog.set_level(logging.WARNING, LOGGER)
    clients = {
        "a1": ("A", [], ["websocket"], False),
        "b1": ("B", [], ["websocket"], False),
    }
    cluster = await start_cluster(
        serve,
        serve_native,
        spawn,
        clients=clients,
        a_dsn=f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
        options={"publish_retry_timeout": 0.5, "command_timeout": 2.0},
    )
    try:
        a_health = factory_of(cluster.a).health
        total = 60
        for i in range(total):
            cluster.a.emit("from-a", i)
            cluster.b.emit("from-b", i)
            if i == 20:
                proxy.cut()
                cut_at = time.monotonic()
            if i == 40:
                await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - cut_at)))
                proxy.restore()
                await factory_of(cluster.a).ready(10)
            await asyncio.sleep(0.05)
        await until(lambda: a_health.connected and a_health.reconnects == 1, 10, "A reconnected")
        await until(lambda: a_health.queued_publishes == 0, 10, "A's queue drained")
        await cluster.flush("A")
        await cluster.flush("B")
        got_b = [args[0] for args in cluster.events("b1", "from-a")]
        got_a = [args[0] for args in cluster.events("a1", "from-b")]
        # Nothing twice, nothing out of order.
        assert got_b == sorted(set(got_b))
        assert got_a == sorted(set(got_a))
        # A's own stream: each number arrived or was counted as dropped.
        assert len(got_b) + a_health.dropped_publishes == total, (got_b, a_health)
        assert a_health.dropped_publishes > 0
        # B's stream: A missed numbers only while its listener was down, and said so.
        missed = sorted(set(range(total)) - set(got_a))
        assert missed, "the cut should have cost A some of B's broadcasts"
        assert set(missed) <= set(range(20, 41)), missed
        assert a_health.reconnects == 1
        assert a_health.outage_seconds > 0
        messages = [r.getMessage() for r in caplog.records]
        assert any("postgres LISTEN connection lost" in m for m in messages), messages
        assert any(
            "messages published by other servers during the outage were not received" in m
            for m in messages
        ), messages
        assert any("could not send to postgres channel" in m for m in messages), messages
        # The cluster is whole again.
        await formed(cluster)
    finally:
        await cluster.n.close()
        await cluster.c.close()


async def test_a_stalled_listener_is_found_by_its_health_check_and_replaced(
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    proxy: Proxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The link to PostgreSQL stops passing bytes but stays open (no FIN, no RST): after
    ``health_check_interval`` without a notification the listener is asked ``SELECT 1``, no
    answer comes within ``command_timeout``, and it is replaced."""
    caplog.set_level(logging.WARNING, LOGGER)
    cluster = await start_cluster(
        serve,
        serve_native,
        spawn,
        clients={"b1": ("B", [], ["websocket"], False)},
        a_dsn=f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
        options={"health_check_interval": 0.5, "command_timeout": 0.5},
    )
    try:
        health = factory_of(cluster.a).health
        proxy.stall()
        await until(lambda: health.reconnects == 1 and health.connected, 10, "A listens again")
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            "no answer to SELECT 1 on the listener connection within 0.5s" in m
            and "health_check_interval" in m
            for m in messages
        ), messages
        await formed(cluster)
        cluster.a.emit("after", 1)
        await cluster.flush("A")
        assert cluster.events("b1", "after") == [[1]]
    finally:
        await cluster.n.close()
        await cluster.c.close()


async def test_pg_terminate_backend_on_the_listener_is_a_reconnection_in_the_log(
    cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A's listener connection is terminated by PostgreSQL: A says so, listens again, says
    hello again (the cluster stays whole) and receives what is sent after."""
    caplog.set_level(logging.WARNING, LOGGER)
    health = factory_of(cluster.a).health
    conn = await asyncpg.connect(DSN)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            f"{cluster.prefix}-A listener",
        )
    finally:
        await conn.close()
    assert killed == 1
    await until(lambda: health.reconnects == 1 and health.connected, 10, "A listens again")
    messages = [r.getMessage() for r in caplog.records]
    assert any("postgres LISTEN connection lost" in m for m in messages), messages
    assert any("postgres LISTEN restored after" in m for m in messages), messages
    await formed(cluster)
    cluster.b.emit("after", 1)
    await cluster.n.call("emit", event="after-n", args=[2])
    await cluster.flush("B")
    await cluster.flush("N")
    for name in ALL:
        assert cluster.events(name, "after") == [[1]], name
        assert cluster.events(name, "after-n") == [[2]], name


# -- the wire -------------------------------------------------------------------------------------


async def test_aiosio_writes_the_same_notify_payloads_as_the_node_adapter(
    cluster: PostgresCluster,
) -> None:
    """The same operations on A and on N: the NOTIFY payloads each sends are the same text, once
    the sender's uid and the request ids are set aside (key order, flags, options)."""
    uid_a = cluster.a.sockets.adapter.uid  # type: ignore[attr-defined]
    ready = next(line for line in cluster.n.lines if line.get("type") == "ready")
    uid_n = ready["uid"]
    seen: list[tuple[str, str]] = []

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        sender = json.loads(payload).get("uid")
        if sender in (uid_a, uid_n) and json.loads(payload).get("type") != 2:
            seen.append((sender, payload))

    listener = await asyncpg.connect(DSN)
    await listener.add_listener(f"{cluster.prefix}#/", on_notify)
    try:
        for origin in ("A", "N"):
            if origin == "A":
                cluster.a.to("r1").except_("r2").emit("w", 1, {"a": "b"})
                cluster.a.volatile.emit("v", "x")
                cluster.a.in_("r1").sockets_join("x")
                cluster.a.in_("x").sockets_leave("x")
                await cluster.a.in_("r2").fetch_sockets()
                await cluster.a.server_side_emit_with_ack("sse", "s", timeout=5)
            else:
                await cluster.n.call("emit", to=["r1"], **{"except": ["r2"]}, event="w",
                                     args=[1, {"a": "b"}])  # fmt: skip
                await cluster.n.call("emit", volatile=True, event="v", args=["x"])
                await cluster.n.call("socketsJoin", **{"in": ["r1"]}, rooms=["x"])
                await cluster.n.call("socketsLeave", **{"in": ["x"]}, rooms=["x"])
                await cluster.n.call("fetchSockets", **{"in": ["r2"]})
                await cluster.n.call("serverSideEmit", event="sse", args=["s"], ack=True)
            await cluster.flush(origin)
    finally:
        await listener.close()

    def normal(payload: str) -> str:
        text = payload.replace(uid_a, "UID").replace(uid_n, "UID")
        return re.sub(r'"requestId":"[0-9a-f]{16}"', '"requestId":"RID"', text)

    requests = {3, 4, 5, 6, 7, 9}  # the answers to the other's requests differ

    def sent(uid: str) -> list[str]:
        return [
            normal(p)
            for sender, p in seen
            if sender == uid and '"marker"' not in p and json.loads(p)["type"] in requests
        ]

    from_a, from_n = sent(uid_a), sent(uid_n)
    assert from_a == from_n
    assert [json.loads(p)["type"] for p in from_a] == [3, 3, 4, 5, 7, 9]


async def test_memory_stays_bounded_while_postgres_is_away(
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    proxy: Proxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While A cannot reach PostgreSQL, at most ``max_publish_queue`` messages wait (one more is
    being tried); the rest are dropped at once, counted and logged with the option; what waited
    is sent, in order, once the link is back within ``publish_retry_timeout``."""
    caplog.set_level(logging.WARNING, LOGGER)
    cluster = await start_cluster(
        serve,
        serve_native,
        spawn,
        clients={"b1": ("B", [], ["websocket"], False)},
        a_dsn=f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
        # No heartbeat while the link is cut: dropped, it would count with the ten (the
        # assertion below is about them alone).
        options={
            "max_publish_queue": 3,
            "publish_retry_timeout": 8.0,
            "heartbeat_interval": 60.0,
            "heartbeat_timeout": 120.0,
        },
    )
    try:
        health = factory_of(cluster.a).health
        proxy.cut()
        await until(lambda: not health.connected, 5, "A sees the cut")
        for i in range(10):
            cluster.a.emit("queued", i)
        assert health.queued_publishes <= 3
        assert health.dropped_publishes >= 6
        proxy.restore()
        await until(lambda: health.connected and health.queued_publishes == 0, 10, "A is back")
        await cluster.flush("A")
        got = [args[0] for args in cluster.events("b1", "queued")]
        assert got == sorted(got)
        assert len(got) + health.dropped_publishes == 10, (got, health)
        assert any("max_publish_queue=3 messages wait already" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
    finally:
        await cluster.n.close()
        await cluster.c.close()


async def test_prometheus_reads_the_postgres_adapter_s_health(cluster: PostgresCluster) -> None:
    """``aiosio.metrics`` exports the link's health under ``aiosio_postgres_*``."""
    from prometheus_client import CollectorRegistry
    from prometheus_client import generate_latest

    from aiosio.metrics import instrument

    registry = CollectorRegistry()
    instrument(cluster.a, registry)
    cluster.a.emit("counted", 1)
    await cluster.flush("A")
    text = generate_latest(registry).decode()
    health = factory_of(cluster.a).health
    assert "aiosio_postgres_connected 1.0" in text
    assert f"aiosio_postgres_published_total {float(health.published)}" in text
    assert "aiosio_redis_" not in text  # NOTIFY says nothing of missed deliveries: none here

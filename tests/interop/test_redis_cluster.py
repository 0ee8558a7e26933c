"""aiosio's ``RedisAdapter`` in one cluster with the official socket.io 4.8 server on
``@socket.io/redis-adapter`` 8.3, in its classic and sharded modes, and with both emitters
(``@socket.io/redis-emitter`` and ``aiosio.Emitter``), on a real Redis 7.

A cluster (``cluster_harness.py``) is two aiosio servers (``A`` on the native server, ``B`` under
uvicorn) and one Node server (``N``, ``tests/js/cluster_node.mjs --adapter redis``), all on one
Redis key unique to the test, with official ``socket.io-client`` sockets connected to each
(``tests/js/redis_clients.mjs``). Each client sends ``auth = {name, rooms}``: every server joins
the socket to ``rooms`` and sets ``socket.data = {name, server}``. Clients answer every
acknowledgement request with their name (except the silent one, ``q``).

Delivery checks are exact: after the broadcasts under test, the same origin broadcasts a marker to
everyone; Redis delivers one publisher's messages in order to each subscriber, so once every
client has the marker, whatever the broadcast under test was going to deliver has arrived.

The tests that kill Redis run their own ``redis-server`` on a free port.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis.asyncio as redis_asyncio
from cluster_harness import ALL
from cluster_harness import ANSWERING
from cluster_harness import CLIENTS
from cluster_harness import REDIS_URL
from cluster_harness import WEBSOCKET
from cluster_harness import RedisCluster
from cluster_harness import RedisServer
from cluster_harness import Spawn
from cluster_harness import Spec
from cluster_harness import as_member
from cluster_harness import b_under_uvicorn  # noqa: F401 (the fixture server_kind)
from cluster_harness import connect_clients
from cluster_harness import members
from cluster_harness import next_message
from cluster_harness import node_scripts  # noqa: F401 (the fixture spawn)
from cluster_harness import redis_server
from cluster_harness import serve_members
from cluster_harness import server_count
from cluster_harness import server_count_is
from cluster_harness import skip_unless_redis
from cluster_harness import start_node
from node_procs import js
from node_procs import py
from node_procs import until

import aiosio
from aiosio import AckTimeout
from aiosio import Server
from aiosio.adapters.redis import RedisAdapter
from aiosio.adapters.redis import RemoteSocket
from conftest import ROOT
from conftest import ServeFn
from conftest import run_node

pytestmark = pytest.mark.interop

LOGGER = "aiosio.adapter.redis"

skip_unless_redis()


# -- the cluster ----------------------------------------------------------------------------------


def make_server(
    name: str,
    key: str,
    sharded: bool,
    server_side: list[tuple[str, list[Any]]],
    *,
    url: str = REDIS_URL,
    **adapter_options: Any,
) -> Server:
    """An aiosio server of the cluster: the same behaviour as cluster_node.mjs; B also answers
    the server-side event ``sse-b``."""
    factory = RedisAdapter(url, key=key, sharded=sharded, requests_timeout=1.5, **adapter_options)
    sio = as_member(Server(adapter=factory, ping_interval=10, ping_timeout=5), name, server_side)

    if name == "B":

        @sio.on_server_side("sse-b")
        def sse_b(*args: Any) -> dict[str, Any]:
            server_side.append(("sse-b", list(args)))
            return {"server": name, "args": list(args)}

    return sio


def factory_of(sio: Server) -> RedisAdapter:
    factory = getattr(sio.sockets.adapter, "factory", None)
    assert isinstance(factory, RedisAdapter)
    return factory


async def start_cluster(
    sharded: bool,
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    *,
    clients: dict[str, Spec] = CLIENTS,
    mode: str = "dynamic",
    node_flags: tuple[str, ...] = (),
    adapter_options: dict[str, Any] | None = None,
) -> RedisCluster:
    key = f"t{uuid.uuid4().hex[:12]}"
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    cluster = RedisCluster(key=key, sharded=sharded, raw=raw, specs=clients, mode=mode)
    options = dict(adapter_options or {})
    if sharded:
        options["subscription_mode"] = mode
    for name in ("A", "B"):
        cluster.server_side[name] = []
        cluster.sios[name] = make_server(name, key, sharded, cluster.server_side[name], **options)
    await serve_members(cluster, serve, serve_native)
    node_args = ["--adapter", "redis", "--key", key, "--requests-timeout", "1500", *node_flags]
    if sharded:
        node_args += ["--sharded", "--mode", mode]
    await start_node(cluster, spawn, *node_args)

    async def formed() -> bool:
        return all([await server_count(sio) == 3 for sio in cluster.sios.values()])

    await until(formed, 5, "3 servers in the cluster")
    await connect_clients(cluster, spawn)
    await cluster.settle_clients()
    return cluster


@pytest.fixture(params=["classic", "sharded"])
async def cluster(
    request: pytest.FixtureRequest, serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> AsyncIterator[RedisCluster]:
    c = await start_cluster(request.param == "sharded", serve, serve_native, spawn)
    yield c
    await c.close()


@pytest.fixture
async def classic_cluster(
    serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> AsyncIterator[RedisCluster]:
    c = await start_cluster(False, serve, serve_native, spawn)
    yield c
    await c.close()


@pytest.fixture
async def sharded_cluster(
    serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> AsyncIterator[RedisCluster]:
    c = await start_cluster(True, serve, serve_native, spawn)
    yield c
    await c.close()


# -- broadcasts -----------------------------------------------------------------------------------


async def test_broadcasts_reach_every_server(cluster: RedisCluster) -> None:
    c, a, b = cluster, cluster.a, cluster.b
    ids = c.ids

    # From Python (A native, B ASGI).
    a.emit("p-all", 1, {"x": [1, 2]}, "é")
    b.to("r1").emit("p-r1", "room")
    a.except_("r1").emit("p-except")
    a.to("r1", "r2").except_(ids["n1"], "quiet").emit("p-multi")
    b.to(ids["n2"]).emit("p-sid-node")  # a socket id room, on another server
    a.to(ids["b1"]).emit("p-sid-python")
    a.emit("p-bin", b"\x00\x01\xff", {"nested": [b"\x02"]})
    await c.flush("A")
    await c.flush("B")
    assert c.got("p-all") == ALL
    assert c.events("n1", "p-all") == [[1, {"x": [1, 2]}, "é"]]
    assert c.events("b1", "p-all") == [[1, {"x": [1, 2]}, "é"]]
    assert c.got("p-r1") == members("r1")
    assert c.got("p-except") == ALL - members("r1")
    assert c.got("p-multi") == (members("r1") | members("r2")) - {"n1"}
    assert c.got("p-sid-node") == {"n2"}
    assert c.got("p-sid-python") == {"b1"}
    assert c.got("p-bin") == ALL
    for name in ALL:
        assert c.events(name, "p-bin") == [[b"\x00\x01\xff", {"nested": [b"\x02"]}]], name

    # From Node.
    await c.n.call("emit", event="n-all", args=[2, js(b"\x03\x04")])
    await c.n.call("emit", to=["r2"], event="n-r2")
    await c.n.call("emit", **{"except": ["r1", "quiet"]}, event="n-except")
    await c.n.call("emit", to=[ids["a1"]], event="n-sid")
    await c.n.call("emit", to=["r1", "quiet"], **{"except": [ids["b1"]]}, event="n-multi")
    await c.flush("N")
    assert c.got("n-all") == ALL
    assert c.events("a2", "n-all") == [[2, b"\x03\x04"]]
    assert c.events("b2", "n-all") == [[2, b"\x03\x04"]]
    assert c.got("n-r2") == members("r2")
    assert c.got("n-except") == members("r2")
    assert c.got("n-sid") == {"a1"}
    assert c.got("n-multi") == members("r1") - {"b1"} | {"q"}

    # A client event makes its server broadcast (Node and Python).
    c.c.send(
        {"do": "emit", "client": "n2", "event": "relay", "args": [{"to": "r1", "event": "rel-n"}]}
    )
    c.c.send(
        {
            "do": "emit",
            "client": "a2",
            "event": "relay",
            "args": [{"except": "r2", "event": "rel-a", "args": [5]}],
        }
    )
    await c.wait_event(members("r1"), "rel-n")
    await c.wait_event(ALL - members("r2"), "rel-a")
    await c.flush("N")
    await c.flush("A")
    assert c.got("rel-n") == members("r1")
    assert c.got("rel-a") == ALL - members("r2")
    assert c.events("n1", "rel-a") == [[5]]

    # volatile, sent while every transport is idle: WebSocket clients get it; a polling client
    # may miss it (no GET pending at that moment), as with Node. (Two volatile broadcasts in a
    # row may lose the second one on a WebSocket whose previous send is not finished, in Node
    # as in aiosio.)
    a.volatile.emit("p-volatile")
    await c.flush("A")
    await c.n.call("emit", volatile=True, event="n-volatile")
    await c.flush("N")
    assert WEBSOCKET <= c.got("p-volatile") <= ALL
    assert WEBSOCKET <= c.got("n-volatile") <= ALL

    # Each event arrived once.
    for event in ("p-all", "p-r1", "n-all", "n-r2", "rel-n"):
        for name in c.got(event):
            assert c.count(name, event) == 1, (name, event)


async def test_broadcast_with_acks(cluster: RedisCluster) -> None:
    c, a, b = cluster, cluster.a, cluster.b

    replies = await a.timeout(3).except_("quiet").emit_with_ack("ask", 1)
    assert sorted(replies) == sorted(ANSWERING)
    replies = await b.to("r1").timeout(3).emit_with_ack("ask-r1")
    assert sorted(replies) == sorted(members("r1"))
    replies = await a.to("r2").timeout(3).emit_with_ack("ask-bin", b"\x01")
    assert sorted(replies) == sorted(members("r2"))
    assert c.events("n2", "ask-bin") == [[b"\x01"]]

    result = await c.n.call("emitWithAck", **{"except": ["quiet"]}, timeout=3000, event="n-ask")
    assert result["err"] is None
    assert sorted(result["responses"]) == sorted(ANSWERING)
    result = await c.n.call("emitWithAck", to=["r2"], timeout=3000, event="n-ask-r2", args=[7])
    assert result["err"] is None
    assert sorted(result["responses"]) == sorted(members("r2"))
    assert c.events("a2", "n-ask-r2") == [[7]]

    # A silent client (q, on the Node server): the replies that came, and what is missing.
    started = time.monotonic()
    with pytest.raises(AckTimeout) as info:
        await a.timeout(1).emit_with_ack("ask-all")
    assert time.monotonic() - started > 0.9  # the 1 s given (timers are never early)
    assert sorted(info.value.replies) == sorted(ANSWERING)
    assert info.value.missing == ["<1 socket(s) on other servers>"]
    result = await c.n.call("emitWithAck", timeout=1000, event="n-ask-all")
    assert result["err"] == "operation has timed out"
    assert sorted(result["responses"]) == sorted(ANSWERING)
    assert c.got("ask-all") == ALL
    assert c.got("n-ask-all") == ALL

    # A Node RemoteSocket (with expectSingleResponse) acknowledged by a client of aiosio.
    result = await c.n.call(
        "remote", target=c.ids["b2"], action="emitWithAck", event="n-one", timeout=2000
    )
    assert result == {**result, "found": True, "err": None, "response": "b2"}


# -- fetch_sockets and remote sockets -------------------------------------------------------------


async def test_fetch_sockets_and_remote_sockets(cluster: RedisCluster) -> None:
    c, a = cluster, cluster.a
    ids = c.ids

    # aiosio socket ids are 20 characters, as Node's (the sharded adapter relies on it).
    assert all(len(sid) == 20 for sid in ids.values())
    sockets = await a.fetch_sockets()
    by_id = {s.id: s for s in sockets}
    assert len(sockets) == len(CLIENTS)
    assert set(by_id) == set(ids.values())
    for name, (server, rooms, _transports, _silent) in CLIENTS.items():
        s = by_id[ids[name]]
        assert set(s.rooms) == {ids[name], *rooms}, name
        assert s.data == {"name": name, "server": server}, name
        if server == "A":
            assert isinstance(s, aiosio.Socket)
            assert s.handshake.auth == {"rooms": rooms, "name": name}
        else:
            assert isinstance(s, RemoteSocket)
            assert s.handshake["auth"] == {"rooms": rooms, "name": name}
            assert {"headers", "time", "address", "issued", "url", "query", "auth"} <= set(
                s.handshake
            )
            assert s.handshake["query"]["EIO"] == "4"
            assert isinstance(s.handshake["issued"], int)
    in_r1 = await a.in_("r1").fetch_sockets()
    assert {s.id for s in in_r1} == {ids[n] for n in members("r1")}
    not_r1 = await cluster.b.except_("r1").fetch_sockets()
    assert {s.id for s in not_r1} == {ids[n] for n in ALL - members("r1")}

    # Node's view of the aiosio sockets.
    result = await c.n.call("fetchSockets")
    seen = {s["id"]: s for s in result["sockets"]}
    assert set(seen) == set(ids.values())
    for name, (server, rooms, _transports, _silent) in CLIENTS.items():
        s = seen[ids[name]]
        assert set(s["rooms"]) == {ids[name], *rooms}, name
        assert s["data"] == {"name": name, "server": server}, name
        assert s["auth"] == {"rooms": rooms, "name": name}, name
        assert s["local"] == (server == "N"), name
    result = await c.n.call("fetchSockets", **{"in": ["r2"]})
    assert {s["id"] for s in result["sockets"]} == {ids[n] for n in members("r2")}

    # aiosio's RemoteSocket acts on a client of the Node server and of the other aiosio server.
    rn1, rb1 = by_id[ids["n1"]], by_id[ids["b1"]]
    assert isinstance(rn1, RemoteSocket)
    assert isinstance(rb1, RemoteSocket)
    rn1.emit("direct", "to-n1", b"\x09")
    rb1.emit("direct", "to-b1")
    await c.flush("A")
    assert c.got("direct") == {"n1", "b1"}
    assert c.events("n1", "direct") == [["to-n1", b"\x09"]]
    rn1.join("vip")
    rb1.join("vip", "vip2")
    await c.settle({"n1": {"vip"}, "b1": {"vip", "vip2"}})
    await c.n.call("emit", to=["vip"], event="to-vip")
    await c.flush("N")
    assert c.got("to-vip") == {"n1", "b1"}
    rn1.leave("vip")
    await c.settle({"b1": {"vip"}}, absent={"n1": {"vip"}})
    a.to("vip").emit("to-vip-2")
    await c.flush("A")
    assert c.got("to-vip-2") == {"b1"}
    rn1.disconnect()
    rb1.disconnect()
    await until(lambda: {"n1", "b1"} <= set(c.disconnected()), 5, "n1 and b1 disconnected")
    assert c.disconnected() == {"n1": "io server disconnect", "b1": "io server disconnect"}
    await c.n.wait(lambda line: line["type"] == "disconnect" and line["id"] == ids["n1"])

    # Node's RemoteSocket acts on clients of aiosio.
    result = await c.n.call("remote", target=ids["a2"], action="emit", event="from-n", args=[1])
    assert result["found"]
    await c.n.call("remote", target=ids["b2"], action="join", rooms=["nvip"])
    await c.n.call("remote", target=ids["a2"], action="join", rooms=["nvip"])
    await c.settle({"a2": {"nvip"}, "b2": {"nvip"}})
    a.to("nvip").emit("to-nvip")
    await c.flush("A")
    assert c.got("from-n") == {"a2"}
    assert c.got("to-nvip") == {"a2", "b2"}
    await c.n.call("remote", target=ids["b2"], action="leave", rooms=["nvip"])
    await c.settle({"a2": {"nvip"}}, absent={"b2": {"nvip"}})
    await c.n.call("remote", target=ids["b2"], action="disconnect")
    await until(lambda: "b2" in c.disconnected(), 5, "b2 disconnected")
    assert c.disconnected()["b2"] == "io server disconnect"
    remaining = await a.fetch_sockets()
    assert {s.id for s in remaining} == {ids[n] for n in ALL - {"n1", "b1", "b2"}}


async def test_remote_socket_acknowledgements(cluster: RedisCluster) -> None:
    """``remote.timeout(s).emit_with_ack(...)`` (Node's ``remoteSocket.timeout(ms)
    .emitWithAck(...)``): a broadcast with acks to that one socket, answered with its reply,
    whether the socket is on the Node server or on the other aiosio server."""
    c, a = cluster, cluster.a
    ids = c.ids
    by_id = {s.id: s for s in await a.fetch_sockets()}
    rn1, rb1, rq = by_id[ids["n1"]], by_id[ids["b1"]], by_id[ids["q"]]
    assert isinstance(rn1, aiosio.RemoteSocket)
    assert await rn1.timeout(3).emit_with_ack("one", 1) == "n1"
    assert await rb1.timeout(3).emit_with_ack("one", b"\x01", {"k": [2]}) == "b1"
    await c.flush("A")
    assert c.events("n1", "one") == [[1]]
    assert c.events("b1", "one") == [[b"\x01", {"k": [2]}]]
    assert c.got("one") == {"n1", "b1"}  # to that socket only

    # timeout() is a copy: the remote socket itself has none, and a wait needs one
    with pytest.raises(TypeError, match=r"emit_with_ack needs a timeout.*remote\.timeout\(5\)"):
        await rn1.emit_with_ack("one")

    # A silent client: the wait ends at the timeout and says who did not answer.
    with pytest.raises(AckTimeout) as info:
        await rq.timeout(1).emit_with_ack("one")
    assert str(info.value) == (
        f"remote socket {ids['q']} did not acknowledge 'one' within 1s "
        "(<1 socket(s) on other servers> did not answer)"
    )
    assert info.value.missing == ["<1 socket(s) on other servers>"]
    assert info.value.replies == []

    # A socket gone from the cluster: no server has it, nobody can answer.
    rb1.disconnect()
    await until(lambda: "b1" in c.disconnected(), 5, "b1 disconnected")
    with pytest.raises(aiosio.Disconnected) as gone:
        await rb1.timeout(2).emit_with_ack("one")
    assert str(gone.value) == (
        f"remote socket {ids['b1']} is no longer connected to any server of the cluster: "
        "'one' reached nobody"
    )


# -- server-side events ---------------------------------------------------------------------------


async def test_server_side_emit(cluster: RedisCluster) -> None:
    c, a = cluster, cluster.a

    def node_got(args: list[Any]) -> bool:
        return any(line["type"] == "serverSide" and line["args"] == args for line in c.n.lines)

    a.server_side_emit("sse", 1, "x")
    await until(lambda: ("sse", [1, "x"]) in c.server_side["B"], 5, "B got sse")
    await c.n.wait(lambda line: line["type"] == "serverSide" and line["args"] == [1, "x"])

    replies = await a.server_side_emit_with_ack("sse", 2, {"k": "v"}, timeout=3)
    assert sorted(replies, key=lambda r: r["server"]) == [
        {"server": "B", "args": [2, {"k": "v"}]},
        {"server": "N", "args": [2, {"k": "v"}]},
    ]

    result = await c.n.call("serverSideEmit", event="sse", args=[3], ack=True)
    assert result["err"] is None
    assert sorted(result["responses"], key=lambda r: r["server"]) == [
        {"server": "A", "args": [3]},
        {"server": "B", "args": [3]},
    ]
    await c.n.call("serverSideEmit", event="sse", args=[4])
    await until(
        lambda: ("sse", [4]) in c.server_side["A"] and ("sse", [4]) in c.server_side["B"],
        5,
        "A and B got sse 4",
    )

    # Only B answers "sse-b": the replies that came.
    with pytest.raises(AckTimeout) as info:
        await a.server_side_emit_with_ack("sse-b", 5, timeout=1)
    assert info.value.replies == [{"server": "B", "args": [5]}]
    if not c.sharded:  # (the sharded Node adapter waits a fixed 5 s)
        result = await c.n.call("serverSideEmit", event="sse-b", args=[6], ack=True)
        assert result["err"] == "timeout reached: only 1 responses received out of 2"
        assert result["responses"] == [{"server": "B", "args": [6]}]

    # No server hears its own server-side events.
    assert [e for e in c.server_side["A"] if e[1] in ([1, "x"], [2, {"k": "v"}])] == []
    assert not node_got([3])
    assert not node_got([4])
    assert [e for e in c.server_side["A"] if e == ("sse", [3])] == [("sse", [3])]
    assert [e for e in c.server_side["B"] if e[0] == "sse"] == [
        ("sse", [1, "x"]),
        ("sse", [2, {"k": "v"}]),
        ("sse", [3]),
        ("sse", [4]),
    ]


async def test_a_client_event_and_a_server_side_event_of_one_name(cluster: RedisCluster) -> None:
    """One name, two events, as a mixed cluster has them (Node: ``socket.on("sse")`` for what a
    client sends, ``io.on("sse")`` for what another server sends): ``on`` gets the client's,
    called with the socket, ``on_server_side`` the servers', called with the arguments."""
    c, a, b = cluster, cluster.a, cluster.b
    from_clients: list[tuple[str, list[Any]]] = []

    @b.on("sse")
    def client_sse(socket: aiosio.Socket, *args: Any) -> str:
        from_clients.append((socket.data["name"], list(args)))
        return "client event"

    a.server_side_emit("sse", 10)
    await c.n.call("serverSideEmit", event="sse", args=[11])
    replies = await a.server_side_emit_with_ack("sse", 12, timeout=3)
    assert {"server": "B", "args": [12]} in replies
    await until(
        lambda: sorted(e[1][0] for e in c.server_side["B"]) == [10, 11, 12],
        5,
        "B's server-side handler got 10, 11 and 12",
    )
    c.c.send({"do": "emit", "client": "b1", "event": "sse", "args": [13], "ack": True})
    ack = await c.c.wait(
        lambda line: line["type"] == "ack" and line["client"] == "b1" and line["event"] == "sse"
    )
    assert ack["args"] == ["client event"]
    # Neither handler saw the other's events.
    assert from_clients == [("b1", [13])]
    assert sorted(e[1][0] for e in c.server_side["B"] if e[0] == "sse") == [10, 11, 12]


async def test_a_server_side_event_sent_to_an_on_handler_still_runs_with_a_warning(
    classic_cluster: RedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Applications written before ``on_server_side`` keep working: a server-side event with
    no ``on_server_side`` handler runs the ``on`` handler of its name, as before (called with
    the arguments, its value answering the ack), and a deprecation warning says so once."""
    c, a, b = classic_cluster, classic_cluster.a, classic_cluster.b
    caplog.set_level(logging.WARNING, logger="aiosio.server")
    old_style: list[list[Any]] = []

    @b.on("legacy")
    def legacy(*args: Any) -> str:
        old_style.append(list(args))
        return "B"

    with pytest.raises(AckTimeout) as info:  # the Node server has no handler: it does not answer
        await a.server_side_emit_with_ack("legacy", 1, timeout=1)
    assert info.value.replies == ["B"]
    a.server_side_emit("legacy", 2)
    await c.n.call("serverSideEmit", event="legacy", args=[3])
    await until(lambda: len(old_style) == 3, 5, "B's on('legacy') handler ran three times")
    assert sorted(old_style) == [[1], [2], [3]]
    warnings = [
        r
        for r in caplog.records
        if r.name == "aiosio.server" and "deprecated: the server-side event 'legacy'" in r.message
    ]
    assert len(warnings) == 1
    assert "on_server_side('legacy')" in warnings[0].getMessage()


# -- rooms of other servers' sockets, disconnections, server count -------------------------------


async def test_sockets_join_leave_disconnect(cluster: RedisCluster) -> None:
    c, a, b = cluster, cluster.a, cluster.b

    a.in_("r1").sockets_join("r1x")
    await c.settle({n: {"r1x"} for n in members("r1")})
    await c.n.call("emit", to=["r1x"], event="to-r1x")
    await c.flush("N")
    assert c.got("to-r1x") == members("r1")

    await c.n.call("socketsJoin", **{"in": ["r2"]}, rooms=["r2x", "r2y"])
    await c.settle({n: {"r2x", "r2y"} for n in members("r2")})
    b.to("r2y").emit("to-r2y")
    await c.flush("B")
    assert c.got("to-r2y") == members("r2")

    b.in_("r1x").sockets_leave("r1x")
    await c.settle({}, absent={n: {"r1x"} for n in members("r1")})
    await c.n.call("socketsLeave", **{"in": ["r2"]}, rooms=["r2x"])
    await c.settle({n: {"r2y"} for n in members("r2")}, absent={n: {"r2x"} for n in members("r2")})
    a.to("r1x").emit("to-r1x-after")
    await c.n.call("emit", to=["r2x"], event="to-r2x-after")
    await c.flush("A")
    await c.flush("N")
    assert c.got("to-r1x-after") == set()
    assert c.got("to-r2x-after") == set()

    a.in_("r2").disconnect_sockets()
    await until(lambda: members("r2") <= set(c.disconnected()), 5, "r2 disconnected")
    assert c.disconnected() == dict.fromkeys(members("r2"), "io server disconnect")
    await c.flush("B")
    assert {s.id for s in await a.fetch_sockets()} == {c.ids[n] for n in ALL - members("r2")}

    await c.n.call("disconnectSockets", **{"in": ["r1"]}, close=True)
    await until(lambda: members("r1") <= set(c.disconnected()), 5, "r1 disconnected")
    assert {s.id for s in await b.fetch_sockets()} == {c.ids["q"]}
    b.disconnect_sockets()
    await until(lambda: set(c.disconnected()) == ALL, 5, "everyone disconnected")
    assert await a.fetch_sockets() == []
    for sio in (a, b):
        assert await server_count(sio) == 3
    assert (await c.n.call("serverCount"))["count"] == 3


async def test_server_count(cluster: RedisCluster) -> None:
    c, a, b = cluster, cluster.a, cluster.b
    assert await server_count(a) == 3
    assert await server_count(b) == 3
    assert (await c.n.call("serverCount"))["count"] == 3
    if not c.sharded:
        # ALL_ROOMS (request type 1), asked by Node, answered by aiosio.
        rooms = set((await c.n.call("allRooms"))["rooms"])
        assert {"r1", "r2", "quiet", *c.ids.values()} <= rooms

    # The Node server leaves: the cluster has two servers, acks need no timeout to complete.
    await c.n.kill()
    await until(lambda: server_count_is(a, 2), 5, "A counts 2 servers")
    assert await server_count(b) == 2
    await until(lambda: not ({"n1", "n2", "q"} & c.connected()), 5, "Node clients gone")
    # no AckTimeout: no reply is awaited from the server that left
    replies = await a.timeout(3).emit_with_ack("ask")
    assert sorted(replies) == ["a1", "a2", "b1", "b2"]


# -- adapter options -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["static", "dynamic-private"])
async def test_sharded_subscription_modes(
    mode: str,
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
) -> None:
    """Every server of the cluster in the same subscription mode (the default, "dynamic", is
    what the other sharded tests use): single-room broadcasts, to named rooms and to socket ids,
    arrive in every direction."""
    c = await start_cluster(True, serve, serve_native, spawn, mode=mode)
    try:
        ids = c.ids
        r1_channel = await c.shard_subscribers("r1")
        sid_channel = await c.shard_subscribers(ids["a1"])
        if mode == "static":
            assert (r1_channel, sid_channel) == (0, 0)
        else:
            assert (r1_channel, sid_channel) == (3, 1)
        c.a.to("r1").emit("m-r1")
        c.b.to(ids["n1"]).emit("m-sid-n1")
        c.a.to(ids["b2"]).emit("m-sid-b2")
        await c.n.call("emit", to=["r2"], event="m-r2")
        await c.n.call("emit", to=[ids["a1"]], event="m-sid-a1")
        await c.n.call("emit", to=[ids["b1"]], event="m-sid-b1")
        await c.flush("A")
        await c.flush("B")
        await c.flush("N")
        assert c.got("m-r1") == members("r1")
        assert c.got("m-r2") == members("r2")
        assert c.got("m-sid-n1") == {"n1"}
        assert c.got("m-sid-b2") == {"b2"}
        assert c.got("m-sid-a1") == {"a1"}
        assert c.got("m-sid-b1") == {"b1"}
        c.a.in_("r2").sockets_join("joined")
        await c.settle({n: {"joined"} for n in members("r2")})
        await c.n.call("emit", to=["joined"], event="m-joined")
        await c.flush("N")
        assert c.got("m-joined") == members("r2")
        replies = await c.b.timeout(3).except_("quiet").emit_with_ack("ask")
        assert sorted(replies) == sorted(ANSWERING)
    finally:
        await c.close()


async def test_classic_specific_response_channel(
    serve: ServeFn, serve_native: ServeFn, spawn: Spawn
) -> None:
    """``publishOnSpecificResponseChannel`` on every server: responses go to
    ``<key>-response#/#<requester uid>#`` (server-side emit replies stay on the common one)."""
    c = await start_cluster(
        False,
        serve,
        serve_native,
        spawn,
        node_flags=("--specific-response",),
        adapter_options={"publish_on_specific_response_channel": True},
    )
    try:
        sockets = await c.a.fetch_sockets()
        assert {s.id for s in sockets} == set(c.ids.values())
        result = await c.n.call("fetchSockets")
        assert {s["id"] for s in result["sockets"]} == set(c.ids.values())
        rooms = set((await c.n.call("allRooms"))["rooms"])
        assert {"r1", "r2", "quiet"} <= rooms
        replies = await c.b.timeout(3).except_("quiet").emit_with_ack("ask")
        assert sorted(replies) == sorted(ANSWERING)
        result = await c.n.call("emitWithAck", to=["r1"], timeout=3000, event="n-ask")
        assert result["err"] is None
        assert sorted(result["responses"]) == sorted(members("r1"))
        replies = await c.a.server_side_emit_with_ack("sse", 1, timeout=3)
        assert sorted(r["server"] for r in replies) == ["B", "N"]
        result = await c.n.call("serverSideEmit", event="sse", args=[2], ack=True)
        assert result["err"] is None
        assert sorted(r["server"] for r in result["responses"]) == ["A", "B"]
    finally:
        await c.close()


@pytest.mark.parametrize(
    "mode",
    [
        "classic",
        "sharded",
    ],
)
async def test_a_member_that_never_answers(
    mode: str,
    serve: ServeFn,
    serve_native: ServeFn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subscriber that is counted (NUMSUB / SHARDNUMSUB) but never answers: requests end at
    their timeout and say so. ``fetch_sockets`` raises, as Node rejects fetchSockets, unless
    the caller asks for the partial list."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    sharded = mode == "sharded"
    key = f"t{uuid.uuid4().hex[:12]}"
    server_side: dict[str, list[tuple[str, list[Any]]]] = {"A": [], "B": []}
    a = make_server("A", key, sharded, server_side["A"])
    b = make_server("B", key, sharded, server_side["B"])
    await serve_native(a)
    await serve(b)
    assert await factory_of(a).ready()
    assert await factory_of(b).ready()
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    mute = raw.pubsub()
    try:
        if sharded:
            await mute.ssubscribe(f"{key}#/#")
        else:
            await mute.subscribe(f"{key}-request#/#")
        await until(lambda: server_count_is(a, 3), 5, "3 members")
        started = time.monotonic()
        with pytest.raises(aiosio.FetchSocketsTimeout) as refused:
            await a.timeout(1).fetch_sockets()
        # sharded: the call's timeout; classic: requests_timeout (1.5 s), as in Node
        waited = 1 if sharded else 1.5
        assert time.monotonic() - started > waited - 0.1  # timers are never early
        hint = (
            "sio.timeout(seconds).fetch_sockets() (default 5s)"
            if sharded
            else "RedisAdapter(requests_timeout=...) (now 1.5s)"
        )
        assert str(refused.value) == (
            f"fetch_sockets on namespace /: 1 of 2 other server(s) did not answer within "
            f"{waited:g}s (Redis counts the servers, it cannot name them); wait longer with "
            f"{hint}, or take what arrived with fetch_sockets(partial=True)"
        )
        assert (refused.value.answered, refused.value.expected) == (1, 2)
        assert refused.value.timeout == waited
        assert refused.value.sockets == []  # B answered: it has no socket
        # The request as the mute member got it: the sharded one carries the call's flags,
        # its timeout included (ClusterAdapter's encodeOptions); the classic one no flags.
        request = await next_message(mute, type_key="type", types={7} if sharded else {5})
        opts = request["data"]["opts"] if sharded else request["opts"]
        if sharded:
            assert opts["flags"] == {"timeout": 1000}
        else:
            assert "flags" not in opts
        assert records(caplog, r"only 1 of 2 servers answered"), "a short fetch, not logged"
        sockets = await a.timeout(1).fetch_sockets(partial=True)
        assert sockets == []
        with pytest.raises(AckTimeout) as info:
            await a.timeout(1).emit_with_ack("ask")
        assert info.value.missing == ["<1 server(s) that did not answer>"]
        with pytest.raises(AckTimeout) as info:
            await a.server_side_emit_with_ack("sse", 1, timeout=1)
        assert info.value.replies == [{"server": "B", "args": [1]}]
    finally:
        await mute.aclose()
        await raw.aclose()


# -- emitters -------------------------------------------------------------------------------------


@pytest.mark.parametrize("emitter", ["node", "python"])
async def test_emitters_reach_the_mixed_cluster(
    classic_cluster: RedisCluster, emitter: str
) -> None:
    c = classic_cluster
    ids = c.ids
    # One action list, published in order on one connection: a join lands before the room emit.
    actions: list[dict[str, Any]] = [
        {"do": "emit", "event": "em-all", "args": [1, "two", js(b"\x07")]},
        {"do": "emit", "to": ["r1"], "event": "em-r1"},
        {"do": "emit", "except": ["r1"], "event": "em-except"},
        {"do": "emit", "to": ["r2"], "except": [ids["n2"]], "event": "em-r2-but-n2"},
        {"do": "emit", "to": [ids["a1"]], "event": "em-sid"},
        {"do": "socketsJoin", "in": ["r2"], "rooms": ["r2e"]},
        {"do": "emit", "to": ["r2e"], "event": "em-r2e"},
        {"do": "socketsLeave", "in": ["r1"], "rooms": ["r1"]},
        {"do": "emit", "to": ["r1"], "event": "em-r1-after-leave"},
        {"do": "serverSideEmit", "args": ["sse", "from-emitter", 8]},
        {"do": "emit", "event": "marker", "args": ["emitter-1"]},
    ]
    await run_emitter(emitter, c.key, actions)
    await c.wait_marker("emitter-1")
    assert c.got("em-all") == ALL
    for name in ALL:
        assert c.events(name, "em-all") == [[1, "two", b"\x07"]], name
    assert c.got("em-r1") == members("r1")
    assert c.got("em-except") == ALL - members("r1")
    assert c.got("em-r2-but-n2") == members("r2") - {"n2"}
    assert c.got("em-sid") == {"a1"}
    assert c.got("em-r2e") == members("r2")
    assert c.got("em-r1-after-leave") == set()
    # Server-side event from the emitter: every server, Python and Node, hears it.
    await until(
        lambda: (
            ("sse", ["from-emitter", 8]) in c.server_side["A"]
            and ("sse", ["from-emitter", 8]) in c.server_side["B"]
        ),
        5,
        "A and B got the emitter's server-side event",
    )
    await c.n.wait(
        lambda line: line["type"] == "serverSide" and line["args"] == ["from-emitter", 8]
    )

    # volatile, sent while every transport is idle (see test_broadcasts_reach_every_server).
    await run_emitter(
        emitter,
        c.key,
        [
            {"do": "emit", "volatile": True, "event": "em-volatile"},
            {"do": "emit", "event": "marker", "args": ["emitter-v"]},
        ],
    )
    await c.wait_marker("emitter-v")
    assert WEBSOCKET <= c.got("em-volatile") <= ALL

    await run_emitter(
        emitter,
        c.key,
        [
            {"do": "disconnectSockets", "in": ["quiet"]},
            {"do": "disconnectSockets", "in": ["r2e"], "except": [ids["b2"]], "close": True},
            {"do": "emit", "event": "marker", "args": ["emitter-2"]},
        ],
    )
    await until(lambda: set(c.disconnected()) == {"q", "a2", "n2"}, 5, "q, a2 and n2 disconnected")
    assert c.disconnected()["q"] == "io server disconnect"
    await c.wait_marker("emitter-2")
    assert c.connected() == {"a1", "b1", "b2", "n1"}


async def run_emitter(kind: str, key: str, actions: list[dict[str, Any]]) -> None:
    if kind == "node":
        lines = await run_node(
            "cluster_emitter.mjs",
            "--adapter",
            "redis",
            "--key",
            key,
            "--actions",
            json.dumps(actions),
        )
        assert lines == [{"type": "done", "actions": len(actions)}]
        return
    emitter = aiosio.Emitter(REDIS_URL, key=key)
    try:
        for action in actions:
            op = emitter
            rooms = action.get("to") or action.get("in")
            if rooms:
                op = op.to(rooms)
            if action.get("except"):
                op = op.except_(action["except"])
            if action.get("volatile"):
                op = op.volatile
            if action["do"] == "emit":
                await op.emit(action["event"], *py(action.get("args", [])))
            elif action["do"] == "socketsJoin":
                await op.sockets_join(*action["rooms"])
            elif action["do"] == "socketsLeave":
                await op.sockets_leave(*action["rooms"])
            elif action["do"] == "disconnectSockets":
                await op.disconnect_sockets(bool(action.get("close")))
            elif action["do"] == "serverSideEmit":
                await op.server_side_emit(*action["args"])
            else:
                raise AssertionError(action)
    finally:
        await emitter.close()


async def test_python_emitter_sharded_broadcasts(sharded_cluster: RedisCluster) -> None:
    """``aiosio.Emitter(sharded=True)`` broadcasts to a sharded cluster (the Node emitter has no
    sharded mode; Node's sharded adapter accepts these messages)."""
    c = sharded_cluster
    emitter = aiosio.Emitter(REDIS_URL, key=c.key, sharded=True)
    try:
        await emitter.emit("se-all", 1, b"\x05")
        await emitter.to("r1").emit("se-r1")
        await emitter.to("r1", "r2").except_(c.ids["b2"], "r1").emit("se-multi")
        await emitter.to(c.ids["n2"]).emit("se-sid")
        await emitter.emit("marker", "sharded-emitter")
    finally:
        await emitter.close()
    await c.wait_marker("sharded-emitter")
    assert c.got("se-all") == ALL
    assert c.events("n1", "se-all") == [[1, b"\x05"]]
    assert c.got("se-r1") == members("r1")
    assert c.got("se-multi") == members("r2") - {"b2"}
    assert c.got("se-sid") == {"n2"}


async def test_python_emitter_sharded_requests(sharded_cluster: RedisCluster) -> None:
    c = sharded_cluster
    emitter = aiosio.Emitter(REDIS_URL, key=c.key, sharded=True)
    try:
        await emitter.server_side_emit("sse", "sharded-emitter")
        await emitter.in_("r1").sockets_join("se-joined")
        await emitter.in_("quiet").disconnect_sockets()
    finally:
        await emitter.close()
    await asyncio.sleep(1.0)
    assert ("sse", ["sharded-emitter"]) in c.server_side["A"]
    assert "q" in c.disconnected()
    rooms = await c.fetch_rooms()
    assert all("se-joined" in rooms[n] for n in members("r1"))


# -- Redis goes away and comes back ---------------------------------------------------------------


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisServer]:
    """A redis-server of this test on a free port, to kill -9 and start again."""
    async with redis_server() as server:
        yield server


def records(caplog: pytest.LogCaptureFixture, pattern: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and re.search(pattern, r.getMessage())]


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_redis_killed_and_restarted(
    mode: str,
    private_redis: RedisServer,
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    c = RedisCluster(key=key, sharded=sharded, raw=redis_asyncio.Redis.from_url(private_redis.url))
    try:
        c.specs = {
            "a1": ("A", ["r1"], ["websocket"], False),
            "b1": ("B", ["r1"], ["polling"], False),
        }
        for name in ("A", "B"):
            c.server_side[name] = []
            c.sios[name] = make_server(
                name, key, sharded, c.server_side[name], url=private_redis.url
            )
        await serve_members(c, serve, serve_native)
        fa, fb = factory_of(c.a), factory_of(c.b)
        await connect_clients(c, spawn)
        await c.settle({"a1": {"r1"}, "b1": {"r1"}})
        c.a.emit("before")
        await c.flush("A")
        assert c.got("before") == {"a1", "b1"}
        assert fa.health.connected
        assert fa.health.reconnects == 0

        await private_redis.kill()
        await until(
            lambda: not fa.health.connected and not fb.health.connected, 5, "both links down"
        )
        # Publishing while Redis is down: local clients still get it, other servers cannot; the
        # loss is counted and logged, not silent.
        dropped = fa.health.dropped_publishes
        c.a.emit("during", 1)
        c.a.to("r1").emit("during-room", 2)
        await c.wait_event({"a1"}, "during-room")
        await until(lambda: fa.health.dropped_publishes >= dropped + 2, 5, "A's publishes counted")
        assert fa.health.queued_publishes == 0
        assert records(caplog, r"could not publish to redis channel")
        assert records(caplog, r"redis subscription lost")
        assert fa.health.last_error
        # A server without Redis keeps serving its own clients.
        c.b.emit("b-local-during")
        await c.wait_event({"b1"}, "b-local-during")

        await asyncio.sleep(0.5)
        await private_redis.start()
        await until(lambda: fa.health.connected and fb.health.connected, 15, "links back up")
        # Once both really receive again (a probe from each side arrives at the other side).
        for origin, target in (("A", "b1"), ("B", "a1")):
            probes = 0

            async def probe_arrived(origin: str = origin, target: str = target) -> bool:
                nonlocal probes
                if target in c.got(f"probe-{origin}"):
                    return True
                probes += 1
                c.sios[origin].emit(f"probe-{origin}", probes)
                await asyncio.sleep(0.1)
                return False

            await until(probe_arrived, 15, f"a broadcast from {origin} reaches {target}")
        for health in (fa.health, fb.health):
            assert health.connected
            assert health.reconnects >= 1
            assert health.outage_seconds > 0.4
            assert health.last_error
            assert health.disconnected_since is None
        assert records(caplog, r"redis subscription restored after [\d.]+s")

        c.a.emit("after-a", 3)
        c.b.to("r1").emit("after-b-room", 4)
        await c.flush("A")
        await c.flush("B")
        assert c.got("after-a") == {"a1", "b1"}
        assert c.got("after-b-room") == {"a1", "b1"}
        assert c.got("during") == {"a1"}  # missed by B's client: reported above, not replayed
        assert c.got("b-local-during") == {"b1"}
        replies = await c.a.timeout(3).emit_with_ack("ask")
        assert sorted(replies) == ["a1", "b1"]
        assert await server_count(c.a) == 2
        assert c.disconnected() == {}

        # Both servers still accept clients.
        late = await spawn(
            "redis_clients.mjs",
            "--client",
            json.dumps({"name": "late-a", "url": c.urls["A"]}),
            "--client",
            json.dumps({"name": "late-b", "url": c.urls["B"], "transports": ["polling"]}),
        )
        for name in ("late-a", "late-b"):
            line = await late.wait(lambda line, name=name: line.get("client") == name)
            assert line["type"] == "connect", line
        c.b.emit("hello-late")
        await late.wait(
            lambda line: line.get("event") == "hello-late" and line["client"] == "late-a"
        )
        await late.wait(
            lambda line: line.get("event") == "hello-late" and line["client"] == "late-b"
        )
    finally:
        await c.raw.aclose()


async def ping_calls(url: str) -> int:
    client = redis_asyncio.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


async def test_link_pings_only_when_idle(private_redis: RedisServer, serve_native: ServeFn) -> None:
    before = await ping_calls(private_redis.url)
    sio = make_server("A", f"t{uuid.uuid4().hex[:12]}", True, [], url=private_redis.url)
    await serve_native(sio)
    assert await factory_of(sio).ready()
    await asyncio.sleep(0.5)
    # Subscribed a second ago, nothing idle for 30 s: no liveness PING is due.
    assert await ping_calls(private_redis.url) == before


async def test_redis_restart_is_one_outage(
    private_redis: RedisServer, serve_native: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sio = make_server("A", f"t{uuid.uuid4().hex[:12]}", False, [], url=private_redis.url)
    await serve_native(sio)
    factory = factory_of(sio)
    assert await factory.ready()
    await asyncio.sleep(0.3)
    # The pool holds a few connections, as on any server that publishes.
    client = factory.link.client
    await asyncio.gather(*(client.ping() for _ in range(4)))

    await private_redis.kill()
    await until(lambda: not factory.health.connected, 5, "link down")
    await asyncio.sleep(0.3)
    await private_redis.start()
    await until(lambda: factory.health.connected, 10, "link up")
    await asyncio.sleep(1.0)  # what follows the restore
    assert factory.health.connected
    assert len(records(caplog, r"redis subscription lost")) == 1
    assert len(records(caplog, r"redis subscription restored")) == 1
    assert factory.health.reconnects == 1


async def test_room_joined_while_resubscribing(
    private_redis: RedisServer,
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
) -> None:
    key = f"t{uuid.uuid4().hex[:12]}"
    c = RedisCluster(key=key, sharded=True, raw=redis_asyncio.Redis.from_url(private_redis.url))
    try:
        sockets: dict[str, aiosio.Socket] = {}
        for name in ("A", "B"):
            c.server_side[name] = []
            c.sios[name] = make_server(name, key, True, c.server_side[name], url=private_redis.url)
        c.a.on("ready", lambda socket, name: sockets.__setitem__(name, socket))
        await serve_members(c, serve, serve_native)
        fa = factory_of(c.a)
        c.specs = {
            "a1": ("A", [], ["websocket"], False),
            "b1": ("B", ["late"], ["websocket"], False),
        }
        await connect_clients(c, spawn)
        c.c.send({"do": "emit", "client": "a1", "event": "ready", "args": ["a1"]})
        await until(lambda: "a1" in sockets, 5, "a1 ready")

        # A's subscriber reconnects (CLIENT KILL); its SSUBSCRIBE round trip is slow, and a1
        # joins "late" meanwhile.
        gate = asyncio.Event()
        entered = asyncio.Event()
        original = fa.link.client.pubsub

        def slow_pubsub(**kwargs: Any) -> Any:
            pubsub = original(**kwargs)
            ssubscribe = pubsub.ssubscribe

            async def gated(*args: Any, **kw: Any) -> Any:
                entered.set()
                await gate.wait()
                return await ssubscribe(*args, **kw)

            pubsub.ssubscribe = gated
            return pubsub

        fa.link.client.pubsub = slow_pubsub
        await c.raw.client_kill_filter(_type="pubsub")
        await asyncio.wait_for(entered.wait(), 5)
        sockets["a1"].join("late")
        gate.set()
        await until(lambda: fa.health.connected, 5, "A's link up")
        await until(lambda: factory_of(c.b).health.connected, 5, "B's link up")
        await asyncio.sleep(0.3)
        c.b.to("late").emit("to-late")
        await c.flush("B")
        assert c.got("to-late") == {"a1", "b1"}
    finally:
        await c.raw.aclose()


# -- bad input from Redis -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_malformed_messages_are_dropped(
    mode: str,
    serve: ServeFn,
    serve_native: ServeFn,
    spawn: Spawn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sharded = mode == "sharded"
    key = f"t{uuid.uuid4().hex[:12]}"
    c = RedisCluster(key=key, sharded=sharded, raw=redis_asyncio.Redis.from_url(REDIS_URL))
    try:
        limit = 64_000
        for name in ("A", "B"):
            c.server_side[name] = []
            c.sios[name] = make_server(
                name, key, sharded, c.server_side[name], max_message_size=limit
            )
        await serve_members(c, serve, serve_native)
        c.specs = {
            "a1": ("A", ["r1"], ["websocket"], False),
            "b1": ("B", ["r1"], ["websocket"], False),
        }
        await connect_clients(c, spawn)
        await c.settle({"a1": {"r1"}, "b1": {"r1"}})

        adapter_a = c.a.sockets.adapter
        main = f"{key}#/#"
        if sharded:
            channels = [main, f"{main}r1#", f"{main}{adapter_a.uid}#"]  # type: ignore[attr-defined]
        else:
            channels = [
                main,
                f"{main}r1#",
                f"{key}-request#/#",
                f"{key}-response#/#",
                f"{key}-response#/#{adapter_a.uid}#",  # type: ignore[attr-defined]
            ]
        big_args = ["x" * (limit + 10)]
        oversized_json = b'{"type":3,"data":' + b"[" * 40_000 + b"]" * 40_000 + b"}"
        if sharded:
            oversized_valid = json.dumps(
                {
                    "type": 3,
                    "data": {
                        "packet": {"type": 2, "data": ["too-big", *big_args]},
                        "opts": {"rooms": [], "except": [], "flags": {}},
                    },
                    "uid": "intruder",
                    "nsp": "/",
                }
            ).encode()
        else:
            oversized_valid = msgpack.packb(
                [
                    "intruder",
                    {"type": 2, "data": ["too-big", *big_args], "nsp": "/"},
                    {"rooms": [], "except": [], "flags": {}},
                ]
            )
        bad: list[tuple[str, bytes]] = [
            ("garbage", b"\xc1\xff\x00garbage"),
            ("truncated msgpack", msgpack.packb(["x", {"type": 2}, {}])[:-3]),
            ("trailing bytes", msgpack.packb(["x", {"type": 2, "data": ["ev"]}, {}]) + b"\x00"),
            ("invalid utf-8 JSON", b'{"type":\xff}'),
            ("JSON bomb over the limit", oversized_json),
            ("valid but over the limit", oversized_valid),
            ("deeply nested JSON under the limit", b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
        ]
        logged_before = len([r for r in caplog.records if r.name == LOGGER])
        for _label, payload in bad:
            for channel in channels:
                if sharded:
                    await c.raw.spublish(channel, payload)
                else:
                    await c.raw.publish(channel, payload)
        # Wrong shapes, for the message formats of the mode.
        if sharded:
            shapes = [
                {
                    "type": 3,
                    "data": {"packet": {"type": 2, "data": ["shape"]}},
                    "uid": "x",
                    "nsp": "/",
                },
                {
                    "type": 3,
                    "data": {"packet": {"type": 2, "data": ["shape"]}, "opts": 5},
                    "uid": "x",
                    "nsp": "/",
                },
                {
                    "type": 4,
                    "data": {"opts": {"rooms": 5}, "rooms": ["evil"]},
                    "uid": "x",
                    "nsp": "/",
                },
                {"type": 7, "data": {"opts": {}}, "uid": "x", "nsp": "/"},
            ]
            for shape in shapes:
                await c.raw.spublish(main, json.dumps(shape))
        else:
            await c.raw.publish(
                main, msgpack.packb(["x", {"type": 2, "data": ["shape"], "nsp": "/"}, 5])
            )
            for shape in (
                {"uid": "x", "type": 5, "requestId": "r", "opts": "bad"},
                {"uid": "x", "type": 2, "opts": {"rooms": 5}, "rooms": ["evil"]},
                {
                    "uid": "x",
                    "type": 7,
                    "requestId": "r",
                    "packet": {"type": 2, "data": ["ev"]},
                    "opts": 9,
                },
            ):
                await c.raw.publish(f"{key}-request#/#", json.dumps(shape))

        # The servers keep working: later broadcasts arrive, both ways.
        c.a.emit("still-a")
        c.b.to("r1").emit("still-b")
        await c.flush("A")
        await c.flush("B")
        assert c.got("still-a") == {"a1", "b1"}
        assert c.got("still-b") == {"a1", "b1"}
        assert c.got("too-big") == set()
        assert c.got("shape") == set()
        assert c.disconnected() == {}
        rooms = await c.fetch_rooms()
        assert "evil" not in rooms["a1"] | rooms["b1"]
        replies = await c.b.timeout(3).emit_with_ack("ask")
        assert sorted(replies) == ["a1", "b1"]

        # Every one was dropped with a log line.
        logged = [r for r in caplog.records if r.name == LOGGER][logged_before:]
        assert records(caplog, r"exceeds max_message_size=64000")
        assert records(caplog, r"invalid msgpack message")
        invalid = [r for r in logged if r.levelno >= logging.WARNING]
        assert len(invalid) >= len(bad) * len(channels), [r.getMessage()[:120] for r in logged]
    finally:
        await c.raw.aclose()


# Decodable messages of the wrong shape: (mode, label, channel kind, payload, silently dropped).
WRONG_SHAPES: list[tuple[str, str, str, bytes, bool]] = [
    ("classic", "map not array", "main", msgpack.packb({"uid": "x", "type": 2}), True),
    (
        "classic",
        "2 elements",
        "main",
        msgpack.packb(["x", {"type": 2, "data": ["ev"], "nsp": "/"}]),
        True,
    ),
    ("classic", "packet is a string", "main", msgpack.packb(["x", "packet", {}]), True),
    (
        "classic",
        "packet.data is a string",
        "main",
        msgpack.packb(["x", {"type": 2, "data": "ev"}, {}]),
        True,
    ),
    (
        "classic",
        "opts is a number",
        "main",
        msgpack.packb(["x", {"type": 2, "data": ["ev"]}, 5]),
        False,
    ),
    ("classic", "request is a msgpack int", "request", msgpack.packb(7), True),
    (
        "classic",
        "request opts is a string",
        "request",
        b'{"uid":"x","type":5,"requestId":"r","opts":"x"}',
        False,
    ),
    ("classic", "response is a list", "own", msgpack.packb([1, 2]), True),
    ("sharded", "msgpack array", "main", msgpack.packb([{"type": 3}]), True),
    ("sharded", "data is a string", "main", b'{"type":3,"data":"x","uid":"x","nsp":"/"}', True),
    (
        "sharded",
        "packet.data is a string",
        "main",
        b'{"type":3,"data":{"packet":{"type":2,"data":"ev"},"opts":{}},"uid":"x","nsp":"/"}',
        True,
    ),
    (
        "sharded",
        "no opts",
        "main",
        b'{"type":3,"data":{"packet":{"type":2,"data":["ev"]}},"uid":"x","nsp":"/"}',
        False,
    ),
    ("sharded", "msgpack string", "own", msgpack.packb("hello"), True),
]


@pytest.mark.parametrize(
    ("mode", "kind", "payload"),
    [
        pytest.param(
            mode,
            kind,
            payload,
            id=f"{mode}-{label.replace(' ', '-')}",
            marks=[],
        )
        for mode, label, kind, payload, silent in WRONG_SHAPES
    ],
)
async def test_wrong_shape_is_dropped_with_a_log_line(
    mode: str,
    kind: str,
    payload: bytes,
    serve_native: ServeFn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A decodable message of the wrong shape is dropped, and says so in the log: a cluster whose
    members disagree on the format must be diagnosable."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    sio = make_server("A", key, sharded, [])
    await serve_native(sio)
    factory = factory_of(sio)
    assert await factory.ready()
    adapter: Any = sio.sockets.adapter
    channel = {
        "main": f"{key}#/#",
        "request": f"{key}-request#/#",
        "own": f"{key}#/#{adapter.uid}#" if sharded else f"{key}-response#/#{adapter.uid}#",
    }[kind]
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        received = factory.health.messages_received
        if sharded:
            await raw.spublish(channel, payload)
        else:
            await raw.publish(channel, payload)
        await until(lambda: factory.health.messages_received > received, 5, "message handled")
    finally:
        await raw.aclose()
    logged = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert logged, "dropped without a log line"


def test_nothing_is_unpickled() -> None:
    """What comes from Redis is only ever parsed as JSON or msgpack: no module of the Redis
    adapter or the emitter imports a deserializer that runs code, or calls eval/exec."""
    forbidden_modules = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "jsonpickle"}
    package = ROOT / "src" / "aiosio"
    sources = [
        *sorted((package / "adapters").rglob("*.py")),
        package / "emitter.py",
        package / "workers.py",  # its bus speaks the adapter's msgpack
    ]
    assert len(sources) > 5, sources
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & forbidden_modules, f"{path}:{node.lineno} imports {names}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec"), f"{path}:{node.lineno}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("loads", "load") or not (
                    isinstance(node.value, ast.Name) and node.value.id in forbidden_modules
                ), f"{path}:{node.lineno}"
    # msgpack is unpacked without object hooks that could build objects (ext types -> data).
    unpacking = [p for p in sources if "unpackb(" in p.read_text()]
    assert unpacking, "no msgpack decoding found: the test no longer reads the right files"
    for path in unpacking:
        text = path.read_text()
        assert "object_hook" not in text, path
        assert "object_pairs_hook" not in text, path
    codec = (package / "adapters" / "redis" / "codec.py").read_text()
    assert "raw=False, strict_map_key=False, ext_hook=_ext_hook" in codec

"""The Redis adapter against a misbehaving cluster, on the real Redis of 127.0.0.1:6379.

* What another server publishes is checked by the rules a client's packets are decoded with
  before it reaches any socket or handler: a crafted message (published here with redis-py, in
  the adapter's wire format, msgpack and JSON) reaches no client, the log names the reason, and a
  valid broadcast right after it still arrives. The client is the official socket.io-client 4.8
  (``tests/js/sio_client.mjs``), on both servers (native and uvicorn).
* The publisher connection dropped while Redis stays up (``CLIENT KILL``, Redis's idle
  ``timeout``): the publish is retried once the link is back, so a routine reconnection loses
  nothing, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis
import redis.asyncio as redis_asyncio
from cluster_harness import REDIS_URL
from cluster_harness import Balancer
from cluster_harness import RedisServer
from cluster_harness import redis_server
from cluster_harness import skip_unless_redis
from node_procs import until

import aiosio
from aiosio.adapters.redis import RedisAdapter
from conftest import ServeFn
from conftest import run_node

pytestmark = pytest.mark.interop

LOGGER = "aiosio.adapter.redis"

skip_unless_redis()


@pytest.fixture
async def raw() -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def warnings_matching(caplog: pytest.LogCaptureFixture, pattern: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno >= logging.WARNING and re.search(pattern, r.getMessage())
    ]


# -- messages from other servers --------------------------------------------------------------

NO_OPTS = {"rooms": [], "except": [], "flags": {}}
DEEP: Any = "x"
for _ in range(40):
    DEEP = [DEEP]

# (label, packet type, arguments, what the log line says)
CRAFTED: list[tuple[str, int, list[Any], str]] = [
    (
        "disconnect",
        2,
        ["disconnect", "io server disconnect"],
        "event name 'disconnect' is reserved",
    ),
    ("connect", 2, ["connect", {"sid": "x"}], "event name 'connect' is reserved"),
    ("connect_error", 2, ["connect_error", "x"], "event name 'connect_error' is reserved"),
    ("object name", 2, [{"a": 1}, "x"], "event name must be a string or a number"),
    ("null name", 2, [None, "x"], "event name must be a string or a number"),
    ("boolean name", 2, [True, "x"], "event name must be a string or a number"),
    ("list name", 2, [["x"], "x"], "event name must be a string or a number"),
    (
        "forged placeholder",
        2,
        ["ev", {"_placeholder": True, "num": 0}],
        "attachment placeholder object",
    ),
    ("too deep", 2, ["ev", DEEP], "nested deeper than max_depth=32"),
    ("disconnect packet", 1, ["ev"], "packet type 1"),
]
CRAFTED_BINARY: list[tuple[str, int, list[Any], str]] = [
    ("too many attachments", 2, ["ev", *[b"\x00"] * 11], "max_attachments=10"),
    ("bytes as a key", 2, ["ev", {b"k": 1}], "object key of type bytes"),
]


def classic_broadcast(args: list[Any], packet_type: int = 2) -> bytes:
    return msgpack.packb(["intruder", {"type": packet_type, "data": args, "nsp": "/"}, NO_OPTS])


def classic_ack_broadcast(args: list[Any], encoding: str, packet_type: int = 2) -> bytes:
    request = {
        "uid": "intruder",
        "requestId": uuid.uuid4().hex[:6],
        "type": 7,
        "packet": {"type": packet_type, "data": args, "nsp": "/"},
        "opts": {**NO_OPTS, "flags": {"timeout": 1000}},
    }
    return json.dumps(request).encode() if encoding == "json" else msgpack.packb(request)


def sharded_broadcast(
    args: list[Any], encoding: str, packet_type: int = 2, *, ack: bool = False
) -> bytes:
    data: dict[str, Any] = {"packet": {"type": packet_type, "data": args}, "opts": NO_OPTS}
    if ack:
        data["requestId"] = uuid.uuid4().hex
    message = {"type": 3, "data": data, "uid": "intruder", "nsp": "/"}
    return json.dumps(message).encode() if encoding == "json" else msgpack.packb(message)


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_crafted_messages_from_other_servers_reach_no_client(
    mode: str,
    serve: ServeFn,
    raw: redis_asyncio.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    factory = RedisAdapter(REDIS_URL, key=key, sharded=sharded)
    sio = aiosio.Server(adapter=factory)
    connections: list[Any] = []
    server_side: list[list[Any]] = []
    sio.on("connection", lambda *args: connections.append(args))
    sio.on("sse", lambda *args: server_side.append(list(args)))
    main = f"{key}#/#"
    sent: list[str] = []

    async def publish(channel: str, data: bytes) -> None:
        if sharded:
            await raw.spublish(channel, data)
        else:
            await raw.publish(channel, data)

    async def attack() -> None:
        crafted = [(case, ["msgpack", "json"]) for case in CRAFTED]
        crafted += [(case, ["msgpack"]) for case in CRAFTED_BINARY]  # JSON has no bytes
        for (label, packet_type, args, _reason), encodings in crafted:
            for encoding in encodings:
                if sharded:
                    for ack in (False, True):
                        await publish(main, sharded_broadcast(args, encoding, packet_type, ack=ack))
                        sent.append(f"{label}/{encoding}/ack={ack}")
                else:
                    if encoding == "msgpack":
                        await publish(main, classic_broadcast(args, packet_type))
                        sent.append(f"{label}/broadcast")
                    await publish(
                        f"{key}-request#/#", classic_ack_broadcast(args, encoding, packet_type)
                    )
                    sent.append(f"{label}/{encoding}/ack")
        # Server-side events named like the server's own: never run its connection handler.
        for name in ("connection", "connect", "disconnect", "new_namespace"):
            if sharded:
                message = {"type": 9, "data": {"packet": [name, "x"]}, "uid": "e", "nsp": "/"}
                await publish(main, json.dumps(message).encode())
            else:
                request = {"uid": "intruder", "type": 6, "data": [name, "x"]}
                await publish(f"{key}-request#/#", json.dumps(request).encode())
        # Then valid messages from the same publisher, delivered in order after the others.
        valid = [("after", [1, {"k": "v"}]), ("after-bin", [b"\x01\x02"]), ("cmd", [])]
        for event, rest in valid:
            args = [event, *rest] if event != "cmd" else ["cmd", {"do": "disconnect"}]
            if sharded:
                await publish(main, sharded_broadcast(args, "msgpack"))
            else:
                await publish(main, classic_broadcast(args))
        server_side_valid = ["sse", "ok"]
        if sharded:
            message = {"type": 9, "data": {"packet": server_side_valid}, "uid": "e", "nsp": "/"}
            await publish(main, json.dumps(message).encode())
        else:
            request = {"uid": "intruder", "type": 6, "data": server_side_valid}
            await publish(f"{key}-request#/#", json.dumps(request).encode())

    tasks: list[asyncio.Task[None]] = []
    sio.on("ready", lambda *_args: tasks.append(asyncio.ensure_future(attack())))
    url = await serve(sio)
    assert await factory.ready()
    try:
        lines = await run_node(
            "sio_client.mjs", "--url", url, "--reconnection", "false", timeout=30
        )
        for task in tasks:
            await task
        await until(lambda: server_side == [["ok"]], 5, "the valid server-side event")
    finally:
        await factory.close()

    events = [(line["event"], line["args"]) for line in lines if line["type"] == "event"]
    assert events == [
        ("after", [1, {"k": "v"}]),
        ("after-bin", [{"$bin": "AQI="}]),
        ("cmd", [{"do": "disconnect"}]),
    ], lines
    disconnects = [line["reason"] for line in lines if line["type"] == "disconnect"]
    assert disconnects == ["io client disconnect"], lines
    assert len(connections) == 1  # the client's; no server-side "connection" ran
    for _label, _type, _args, reason in CRAFTED + CRAFTED_BINARY:
        assert warnings_matching(caplog, re.escape(reason)), (reason, caplog.text[-3000:])
    for name in ("connection", "connect", "disconnect", "new_namespace"):
        assert warnings_matching(caplog, f"server-side event name '{name}' is reserved"), name
    # One line per message dropped, each naming the cause and who should fix it.
    dropped = warnings_matching(caplog, r"^dropped a (broadcast|server-side emit)")
    assert len(dropped) == len(sent) + 4, (len(dropped), len(sent))
    assert all("fix it there" in line for line in dropped)


# -- the publisher connection dropped while Redis stays up ---------------------------------------


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisServer]:
    """A redis-server of this test on a free port: its settings (``timeout``) and its clients
    are the test's own, whatever else runs on the machine."""
    async with redis_server() as server:
        yield server


async def publisher_blocked(control: redis_asyncio.Redis, name: str) -> bool:
    """Whether the publisher ``name`` waits with a PUBLISH that Redis holds (CLIENT PAUSE)."""
    return any(
        c.get("name") == name and "b" in c["flags"] and c["cmd"] in ("publish", "spublish")
        for c in await control.client_list()
    )


async def publisher_ids(control: redis_asyncio.Redis, name: str) -> list[str]:
    """The ids of the connections named ``name`` that are not subscribed: the publishers."""
    return [
        c["id"]
        for c in await control.client_list()
        if c.get("name") == name and c["sub"] == c["psub"] == c["ssub"] == "0"
    ]


@pytest.mark.parametrize("drop", ["client-kill", "idle-timeout"])
@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_publisher_connection_lost_loses_nothing(
    mode: str,
    drop: str,
    private_redis: RedisServer,
    serve: ServeFn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Server A broadcasts; a client of server B receives. A's publisher connection is closed
    by Redis while Redis stays up: every broadcast after it still reaches B's client, in order.

    ``client-kill``: ``CLIENT KILL ID`` while a publish is on the connection (Redis holds it with
    ``CLIENT PAUSE WRITE``): the command fails with a ``ConnectionError``, the link sends it again
    on a new connection, and the log says so. (A connection killed between two commands is
    reopened by redis-py itself when it takes it from its pool, before the command: nothing
    fails, nothing is retried.) ``idle-timeout``: Redis's idle ``timeout`` closes the publisher;
    the next publish reopens it (redis-py) or is retried (the link), and nothing is lost."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    name = f"pub-{uuid.uuid4().hex[:8]}"
    client_a = redis_asyncio.Redis.from_url(private_redis.url, client_name=name)
    # The retry deadline is the test's own bound on a loaded machine, not what is measured.
    factory_a = RedisAdapter(client_a, key=key, sharded=sharded, publish_retry_timeout=30)
    factory_b = RedisAdapter(private_redis.url, key=key, sharded=sharded)
    server_a = aiosio.Server(adapter=factory_a)
    server_b = aiosio.Server(adapter=factory_b)
    control = redis_asyncio.Redis.from_url(private_redis.url)
    received: list[int] = []
    client = aiosio.Client(await serve(server_b), reconnection=False)
    client.on("n", received.append)
    try:
        assert await factory_a.ready()
        assert await factory_b.ready()
        await client.connect()
        server_a.emit("n", 0)  # the publisher connection opens
        await until(lambda: received == [0], 5, "the first broadcast")
        assert await publisher_ids(control, name)

        first = 1
        if drop == "client-kill":
            await control.client_pause(30_000, all=False)
            try:
                server_a.emit("n", 1)
                await until(
                    lambda: publisher_blocked(control, name), 10, "the publish held by Redis"
                )
                for ident in await publisher_ids(control, name):
                    await control.client_kill_filter(_id=ident)
            finally:
                await control.client_unpause()
            first = 2
        else:
            await control.config_set("timeout", 1)
            # Idle past the timeout: Redis closes the publisher (not the subscriber: Redis
            # exempts subscribed connections).
            deadline = time.monotonic() + 10
            while await publisher_ids(control, name):
                if time.monotonic() > deadline:
                    pytest.fail("Redis did not close the idle publisher connection within 10s")
                await asyncio.sleep(0.1)
            assert not await publisher_ids(control, name)
        lost_before = factory_a.health.dropped_publishes

        for n in range(first, 21):
            server_a.emit("n", n)
        await until(lambda: received[-1:] == [20], 10, "the last broadcast")
        assert received == list(range(21))  # nothing lost, in order
        assert factory_a.health.dropped_publishes == lost_before == 0
        assert not warnings_matching(caplog, "could not publish")
        retried = [
            r.getMessage()
            for r in caplog.records
            if r.name == LOGGER and "publisher connection had been lost" in r.getMessage()
        ]
        assert len(retried) == factory_a.health.retried_publishes
        if drop == "client-kill":
            assert factory_a.health.retried_publishes == 1
            assert "nothing was lost" in retried[0]
    finally:
        await client.disconnect()
        await factory_a.close()
        await factory_b.close()
        await control.aclose()


async def test_publish_bounds_while_redis_is_down(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: what waits for it is bounded by max_publish_queue (beyond it, dropped at
    once) and by publish_retry_timeout (then dropped); each drop is counted and logged with the
    option that bounds it."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    factory = RedisAdapter(
        private_redis.url,
        key=f"t{uuid.uuid4().hex[:12]}",
        publish_retry_timeout=0.5,
        max_publish_queue=2,
    )
    sio = aiosio.Server(adapter=factory)
    try:
        assert await factory.ready()
        await private_redis.kill()
        await until(lambda: not factory.health.connected, 5, "the link down")
        for n in range(5):  # no await between them: two wait in the queue, three do not fit
            sio.emit("n", n)
        assert factory.health.dropped_publishes == 3
        assert warnings_matching(caplog, r"could not publish .*max_publish_queue=2 messages wait")
        await until(lambda: factory.health.dropped_publishes == 5, 10, "the queued two dropped")
        assert factory.health.queued_publishes == 0
        assert factory.health.published == 0
    finally:
        await factory.close()
    # The drops past the deadline are counted; the log line (rate-limited) names both bounds.
    assert warnings_matching(caplog, r"publish_retry_timeout=0.5s and max_publish_queue=2")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"max_publish_queue": 0},
            "max_publish_queue must be at least 1 message, got 0: it bounds the broadcasts "
            "waiting for Redis",
        ),
        (
            {"publish_retry_timeout": -1.0},
            "publish_retry_timeout must be 0 or more seconds, got -1.0: it bounds how long a "
            "broadcast waits for the Redis connection to come back",
        ),
    ],
)
def test_publish_bounds_are_checked(options: dict[str, Any], message: str) -> None:
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    with pytest.raises(ValueError, match=re.escape(message)):
        RedisAdapter(client, **options)


def test_nothing_starts_before_the_event_loop(caplog: pytest.LogCaptureFixture) -> None:
    """HARDENING 20: a server created before a fork (no event loop yet) opens no Redis
    connection and starts nothing; a broadcast then is dropped and logged, not kept for a child
    to send twice; the link starts in the loop that first needs it."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    name = f"prefork-{uuid.uuid4().hex[:8]}"
    factory = RedisAdapter(
        redis_asyncio.Redis.from_url(REDIS_URL, client_name=name), key=f"t{uuid.uuid4().hex[:12]}"
    )
    sio = aiosio.Server(adapter=factory)
    threads = threading.active_count()
    sio.emit("early", 1)
    assert factory.health.dropped_publishes == 1
    assert warnings_matching(caplog, r"could not publish .*no event loop is running")
    control = redis.Redis.from_url(REDIS_URL)
    try:
        assert [c for c in control.client_list() if c.get("name") == name] == []
    finally:
        control.close()
    assert threading.active_count() == threads

    async def in_the_loop() -> None:
        try:
            assert await factory.ready()
            sio.emit("later", 2)
            await until(lambda: factory.health.published == 1, 5, "the publish")
        finally:
            await factory.close()

    asyncio.run(in_the_loop())


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_broadcast_past_the_limits_is_reported_where_it_is_sent(
    mode: str, serve: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    """Eleven binary values (max_attachments=10): the other servers drop the broadcast, and the
    sending server says so once, naming the limit and the fix; 10 go through."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    factory_a = RedisAdapter(REDIS_URL, key=key, sharded=mode == "sharded")
    factory_b = RedisAdapter(REDIS_URL, key=key, sharded=mode == "sharded")
    server_a = aiosio.Server(adapter=factory_a)
    server_b = aiosio.Server(adapter=factory_b)
    received: list[int] = []
    client = aiosio.Client(await serve(server_b), reconnection=False)
    client.on("n", lambda *args: received.append(len(args)))
    try:
        assert await factory_a.ready()
        assert await factory_b.ready()
        await client.connect()
        server_a.emit("n", *[b"\x00"] * 11)
        server_a.emit("n", *[b"\x00"] * 11)
        server_a.emit("n", *[b"\x00"] * 10)
        await until(lambda: received == [10], 5, "the broadcast within the limits")
    finally:
        await client.disconnect()
        await factory_a.close()
        await factory_b.close()
    sent = warnings_matching(caplog, r"^a broadcast on / reaches this server's clients")
    assert len(sent) == 1
    assert "more than max_attachments=10 binary values" in sent[0]
    assert "RedisAdapter(limits=aiosio.Limits(...))" in sent[0]
    assert len(warnings_matching(caplog, r"^dropped a broadcast from server")) == 2


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_emitter_connection_killed_loses_nothing(
    mode: str, private_redis: RedisServer, serve: ServeFn
) -> None:
    """aiosio.Emitter (another process's publisher): its connection killed between two emits,
    the second still reaches the client, with no error at the call."""
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    name = f"emitter-{uuid.uuid4().hex[:8]}"
    emitter = aiosio.Emitter(
        redis_asyncio.Redis.from_url(private_redis.url, client_name=name),
        key=key,
        sharded=sharded,
    )
    factory = RedisAdapter(private_redis.url, key=key, sharded=sharded)
    server = aiosio.Server(adapter=factory)
    control = redis_asyncio.Redis.from_url(private_redis.url)
    received: list[int] = []
    client = aiosio.Client(await serve(server), reconnection=False)
    client.on("n", received.append)
    try:
        assert await factory.ready()
        await client.connect()
        await emitter.emit("n", 1)
        await until(lambda: received == [1], 5, "the first emit")
        ids = await publisher_ids(control, name)
        assert ids
        for ident in ids:
            await control.client_kill_filter(_id=ident)
        await emitter.emit("n", 2)
        await until(lambda: received == [1, 2], 5, "the emit after the kill")
    finally:
        await client.disconnect()
        await emitter.close()
        await factory.close()
        await control.aclose()


# -- a stalled subscriber connection ---------------------------------------------------------------


class StallingProxy:
    """A TCP proxy to Redis whose connections can be stalled: nothing more is forwarded either
    way and nothing is closed (a half-open link, a stuck middlebox). New connections are
    forwarded normally."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.server: asyncio.Server | None = None
        self.stalled: set[int] = set()
        self.count = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.upstream: dict[int, asyncio.StreamWriter] = {}

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def stall(self) -> None:
        self.stalled.update(range(self.count))

    def drop_stalled(self) -> None:
        """Close the stalled connections on Redis's side (what TCP keepalive or the pub/sub
        output buffer limit does to them at last)."""
        for ident in self.stalled:
            self.upstream[ident].close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ident = self.count
        self.count += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, up_writer]
        self.upstream[ident] = up_writer

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if ident in self.stalled:
                        continue  # swallowed: the peer waits forever
                    dst.write(data)
                    await dst.drain()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_stalled_subscriber_is_replaced(
    mode: str,
    private_redis: RedisServer,
    serve: ServeFn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Server B's Redis connections stall (no FIN, no data): after health_check_interval
    without a message its subscriber PINGs, gets no answer, reconnects, and B's client receives
    server A's broadcasts again."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    proxy = StallingProxy(private_redis.port)
    factory_a = RedisAdapter(private_redis.url, key=key, sharded=sharded)
    factory_b = RedisAdapter(
        await proxy.start(), key=key, sharded=sharded, health_check_interval=0.4
    )
    server_a = aiosio.Server(adapter=factory_a)
    server_b = aiosio.Server(adapter=factory_b)
    received: list[str] = []
    client = aiosio.Client(await serve(server_b), reconnection=False)
    client.on("n", received.append)
    try:
        assert await factory_a.ready()
        assert await factory_b.ready()
        await client.connect()
        server_a.emit("n", "before")
        await until(lambda: received == ["before"], 5, "the first broadcast")

        proxy.stall()
        await until(lambda: factory_b.health.reconnects >= 1, 10, "B's subscriber replaced")
        probes = 0

        def arrived() -> bool:
            nonlocal probes
            if "after" in received:
                return True
            probes += 1
            if probes % 10 == 1:
                server_a.emit("n", "after")
            return False

        await until(arrived, 10, "a broadcast after the stall")
        assert factory_b.health.connected
        lost = [
            r.getMessage()
            for r in caplog.records
            if r.name == LOGGER and "redis subscription lost" in r.getMessage()
        ]
        assert lost
        assert "no answer to PING on the subscriber connection within 0.1s" in lost[0]
        assert "health_check_interval" in lost[0]
    finally:
        await client.disconnect()
        await factory_a.close()
        await factory_b.close()
        await proxy.close()


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_a_stalled_subscriber_left_behind_is_closed_and_counts_no_misses(
    mode: str, private_redis: RedisServer, serve: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    """Server B's subscriber connection stalls (no FIN, no data) and B replaces it. Redis
    cannot tell the stalled one is dead: it stayed subscribed, counted by NUMSUB and by what
    PUBLISH answers, so server A took it for a third server; once it died at last (TCP
    keepalive, the pub/sub output buffer limit), each of A's broadcasts counted a missed
    delivery although B's client got it. B now closes its previous subscriber connection
    (CLIENT KILL ID) before it subscribes again: Redis counts two servers, and A counts missing
    exactly what B's client missed (a probe sent while B was resubscribing), nothing more."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    audience = f"{key}#/#" if sharded else f"{key}-request#/#"
    proxy = StallingProxy(private_redis.port)
    factory_a = RedisAdapter(private_redis.url, key=key, sharded=sharded)
    factory_b = RedisAdapter(
        await proxy.start(), key=key, sharded=sharded, health_check_interval=0.4
    )
    server_a = aiosio.Server(adapter=factory_a)
    server_b = aiosio.Server(adapter=factory_b)
    received: list[int] = []
    client = aiosio.Client(await serve(server_b), reconnection=False)
    client.on("n", received.append)
    control = redis_asyncio.Redis.from_url(private_redis.url)

    async def subscribers() -> int:
        if sharded:
            return int((await control.pubsub_shardnumsub(audience))[0][1])
        return int((await control.pubsub_numsub(audience))[0][1])

    try:
        assert await factory_a.ready()
        assert await factory_b.ready()
        await client.connect()
        server_a.emit("n", 0)
        await until(lambda: received == [0], 5, "the first broadcast")  # A counted 2 servers

        proxy.stall()
        await until(lambda: factory_b.health.reconnects >= 1, 10, "B's subscriber replaced")
        probes = 0

        def arrived() -> bool:
            nonlocal probes
            if any(n >= 100 for n in received):
                return True
            if probes % 10 == 0:
                server_a.emit("n", 100 + probes // 10)
            probes += 1
            return False

        await until(arrived, 10, "a broadcast after the stall")
        sent = (probes + 9) // 10
        assert await subscribers() == 2  # A and B: the stalled connection is gone
        assert warnings_matching(caplog, r"closed this server's previous redis subscriber")

        proxy.drop_stalled()
        for n in range(1, 11):
            server_a.emit("n", n)
        await until(lambda: received[-1:] == [10], 5, "the broadcasts after the drop")
        await until(lambda: factory_a.health.queued_publishes == 0, 5, "A's queue drained")
        missed_probes = sent - sum(1 for n in received if n >= 100)
        assert factory_a.health.missed_deliveries == missed_probes
    finally:
        await client.disconnect()
        await factory_a.close()
        await factory_b.close()
        await control.aclose()
        await proxy.close()


def test_health_check_interval_is_checked() -> None:
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    with pytest.raises(ValueError, match=r"^health_check_interval must be more than 0 seconds"):
        RedisAdapter(client, health_check_interval=0)


async def test_close_publishes_what_is_queued(serve: ServeFn) -> None:
    """Broadcasts sent right before the adapter is closed are published first, in order."""
    key = f"t{uuid.uuid4().hex[:12]}"
    factory_a = RedisAdapter(REDIS_URL, key=key)
    factory_b = RedisAdapter(REDIS_URL, key=key)
    server_a = aiosio.Server(adapter=factory_a)
    server_b = aiosio.Server(adapter=factory_b)
    received: list[int] = []
    client = aiosio.Client(await serve(server_b), reconnection=False)
    client.on("n", received.append)
    try:
        assert await factory_a.ready()
        assert await factory_b.ready()
        await client.connect()
        for n in range(50):
            server_a.emit("n", n)
        await factory_a.close()
        assert factory_a.health.dropped_publishes == 0
        await until(lambda: received[-1:] == [49], 5, "the last broadcast")
        assert received == list(range(50))
    finally:
        await client.disconnect()
        await factory_a.close()
        await factory_b.close()


# -- pub/sub losses counted, never silent ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_every_broadcast_lost_in_an_outage_is_counted(
    mode: str,
    private_redis: RedisServer,
    serve: ServeFn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Server A broadcasts numbers 0..N-1 while a client of server B counts them; Redis is
    killed mid-stream and started again. Pub/sub keeps nothing, so B's client misses some; each
    one is a number at A: a publish given up (``dropped_publishes``: Redis away past
    publish_retry_timeout) or a publish that reached fewer servers than are alive
    (``missed_deliveries``: B still resubscribing). Delivered plus counted is every broadcast."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    factory_a = RedisAdapter(private_redis.url, key=key, sharded=sharded, publish_retry_timeout=0.3)
    factory_b = RedisAdapter(private_redis.url, key=key, sharded=sharded)
    server_a = aiosio.Server(adapter=factory_a)
    server_b = aiosio.Server(adapter=factory_b)
    received: list[int] = []
    client = aiosio.Client(await serve(server_b), reconnection=False)
    client.on("n", received.append)
    total = 300
    try:
        assert await factory_a.ready()
        assert await factory_b.ready()
        await client.connect()
        server_a.emit("n", -1)  # both links work: A learns that two servers are alive
        await until(lambda: received == [-1], 5, "the first broadcast")
        received.clear()
        for n in range(total):
            if n == 100:
                await private_redis.kill()
            if n == 200:
                await private_redis.start()
            server_a.emit("n", n)
            await asyncio.sleep(0.01)
        health = factory_a.health
        await until(lambda: health.queued_publishes == 0, 10, "A's queue drained")
        # what reached Redis has reached B's client: a marker after it arrives last
        await until(lambda: factory_b.health.connected, 15, "B back")
        marker = 10_000

        async def marker_arrived() -> bool:
            nonlocal marker
            if received and received[-1] >= 10_000:
                return True
            marker += 1
            server_a.emit("n", marker)
            await asyncio.sleep(0.1)
            return False

        await until(marker_arrived, 15, "a broadcast from A reaches B's client again")
        markers = marker - 10_000
        delivered = [n for n in received if n < 10_000]
        assert delivered == sorted(set(delivered))  # in order, each once
        lost = total - len(delivered)
        assert lost > 0  # the outage cost something: pub/sub keeps nothing
        counted = health.dropped_publishes + health.missed_deliveries
        # the markers B missed while resubscribing are counted too
        missed_markers = markers - sum(1 for n in received if n >= 10_000)
        assert counted == lost + missed_markers, (
            f"{lost} lost, {missed_markers} markers missed; counted {health.dropped_publishes} "
            f"dropped + {health.missed_deliveries} missed deliveries"
        )
        if health.missed_deliveries:
            assert warnings_matching(caplog, r"known to be alive: \d+ server\(s\) missed it")
        assert health.as_dict()["missed_deliveries"] == health.missed_deliveries
    finally:
        await client.disconnect()
        await factory_a.close()
        await factory_b.close()


# -- a stall of the pub/sub link: an outage from the last message heard --------------------------


@pytest.mark.parametrize("mode", ["classic", "sharded"])
async def test_a_stalled_link_is_an_outage_from_the_last_message_heard(
    mode: str,
    private_redis: RedisServer,
    serve: ServeFn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Server B's link to Redis stalls for 3 s (a proxy forwards nothing either way and
    closes nothing), then resumes, while server A broadcasts numbers. B's subscriber hears
    nothing, PINGs after health_check_interval, gets no answer and is replaced (not called
    connected before the link answers again). What Redis sent into the stalled
    connection is lost, and PUBLISH counted it as delivered (A cannot count it), so B's health
    reports the outage from the last message it heard: every number B's client missed was sent
    while B reported an outage, and B's client got the others once, in order."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = f"t{uuid.uuid4().hex[:12]}"
    sharded = mode == "sharded"
    proxy = Balancer()
    await proxy.start()
    proxy.target = private_redis.port
    factory_a = RedisAdapter(private_redis.url, key=key, sharded=sharded)
    factory_b = RedisAdapter(
        f"redis://127.0.0.1:{proxy.port}", key=key, sharded=sharded, health_check_interval=0.4
    )
    server_a = aiosio.Server(adapter=factory_a)
    server_b = aiosio.Server(adapter=factory_b)
    received: list[int] = []
    client = aiosio.Client(await serve(server_b), reconnection=False)
    client.on("n", received.append)
    health = factory_b.health
    outages: list[list[float]] = []  # [start, end] as B's health says, end seen by polling
    sent_at: dict[int, float] = {}

    async def watch() -> None:
        while True:
            if health.disconnected_since is not None:
                if not outages or outages[-1][1] != float("inf"):
                    outages.append([health.disconnected_since, float("inf")])
                outages[-1][0] = health.disconnected_since
            elif outages and outages[-1][1] == float("inf"):
                outages[-1][1] = time.time()
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        assert await factory_a.ready()
        assert await factory_b.ready()
        await client.connect()
        server_a.emit("n", -1)
        await until(lambda: received == [-1], 5, "the first broadcast")
        received.clear()
        for n in range(300):
            if n == 50:
                proxy.stall()
            if n == 200:
                proxy.resume()
                resumed_at = time.time()
            sent_at[n] = time.time()
            server_a.emit("n", n)
            await asyncio.sleep(0.02)
        await until(lambda: health.connected, 15, "B back")
        marker = 10_000

        async def marker_arrived() -> bool:
            nonlocal marker
            if received and received[-1] >= 10_000:
                return True
            marker += 1
            server_a.emit("n", marker)
            await asyncio.sleep(0.1)
            return False

        await until(marker_arrived, 15, "a broadcast from A reaches B's client again")
        delivered = [n for n in received if n < 10_000]
        assert delivered == sorted(set(delivered))  # in order, each once
        lost = sorted(set(range(300)) - set(delivered))
        assert lost  # the stall cost something: pub/sub keeps nothing
        assert health.reconnects >= 1
        assert "no answer to PING" in (health.last_error or "")
        # never called connected while the link was stalled (its new connections unanswered)
        assert all(end >= resumed_at for _start, end in outages), (outages, resumed_at)
        assert not [
            n for n in lost if not any(start <= sent_at[n] <= end for start, end in outages)
        ], (lost, outages)
        assert warnings_matching(caplog, r"not those Redis sent into a stalled connection")
    finally:
        watcher.cancel()
        await client.disconnect()
        await factory_a.close()
        await factory_b.close()
        await proxy.close()

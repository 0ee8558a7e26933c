"""Prometheus metrics (``aiosio.metrics``) with real clients against real servers on 127.0.0.1,
native and ASGI: the endpoint's text parsed with ``prometheus_client``'s own parser, each metric
moving when its event happens, labels bounded, and the Grafana dashboard naming only metrics
that exist."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _eio
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import aiosio
from aiosio.metrics import METRIC_NAMES
from aiosio.metrics import instrument
from aiosio.metrics import metrics_app

TIMEOUT = 10.0
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(base: str, path: str = "/metrics") -> Samples:
    """Every sample of the endpoint, by name and labels (sorted)."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        response = await http.get(base + path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def eventually_scraped(
    base: str, predicate: Callable[[Samples], bool], timeout: float = TIMEOUT
) -> Samples:
    async with asyncio.timeout(timeout):
        while True:
            samples = await scrape(base)
            if predicate(samples):
                return samples
            await asyncio.sleep(0.02)


eventually = functools.partial(_eio.eventually, timeout=TIMEOUT)


def instrumented() -> tuple[aiosio.Server, CollectorRegistry, list[aiosio.Socket]]:
    sio = aiosio.Server()
    registry = CollectorRegistry()
    sockets: list[aiosio.Socket] = []
    sio.on("connection", sockets.append)
    instrument(sio, registry, path="/metrics")
    return sio, registry, sockets


async def test_each_metric_moves_when_its_event_happens(serve: Any, clients: Any) -> None:
    sio, _, sockets = instrumented()

    @sio.on("echo")  # registered after instrument(): timed too
    def echo(_socket: aiosio.Socket, text: str) -> str:
        return text

    @sio.on("boom")
    async def boom(_socket: aiosio.Socket) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    base = await serve(sio)
    before = await scrape(base)
    assert value(before, "aiosio_engine_handshakes_total", transport="polling") == 0
    assert value(before, "aiosio_sockets_connected", namespace="/") == 0

    client = clients(base)
    client.on("question", lambda n: n + 1)
    await client.connect()
    await eventually(lambda: len(sockets) == 1)
    samples = await eventually_scraped(
        base, lambda s: value(s, "aiosio_engine_upgrades_total") == 1
    )
    assert value(samples, "aiosio_engine_handshakes_total", transport="polling") == 1
    assert value(samples, "aiosio_sockets_connected", namespace="/") == 1
    assert value(samples, "aiosio_engine_sessions", transport="websocket") == 1
    assert value(samples, "aiosio_engine_sessions", transport="polling") == 0

    received = value(samples, "aiosio_messages_received_total")
    received_bytes = value(samples, "aiosio_received_bytes_total")
    assert await client.emit_with_ack("echo", "héllo", timeout=TIMEOUT) == "héllo"
    samples = await scrape(base)
    assert value(samples, "aiosio_messages_received_total") == received + 1
    # 42 + ack id + ["echo","héllo"]: the é is two bytes.
    assert value(samples, "aiosio_received_bytes_total") - received_bytes >= len(
        '0["echo","héllo"]'.encode()
    )
    assert value(samples, "aiosio_messages_sent_total") >= 2  # CONNECT, the ack
    assert value(samples, "aiosio_sent_bytes_total") > 0
    timed = {"namespace": "/", "event": "echo"}
    assert value(samples, "aiosio_event_handler_duration_seconds_count", **timed) == 1
    assert value(samples, "aiosio_event_handler_duration_seconds_bucket", le="+Inf", **timed) == 1
    assert value(samples, "aiosio_event_handler_errors_total", **timed) == 0

    client.emit("boom")
    samples = await eventually_scraped(
        base,
        lambda s: value(s, "aiosio_event_handler_errors_total", namespace="/", event="boom") == 1,
    )
    assert (
        value(samples, "aiosio_event_handler_duration_seconds_count", namespace="/", event="boom")
        == 1
    )

    news: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.on("news", news.set_result)
    sio.emit("news", 1)
    await asyncio.wait_for(news, TIMEOUT)
    samples = await scrape(base)
    assert value(samples, "aiosio_broadcasts_total", namespace="/") == 1
    assert value(samples, "aiosio_broadcast_recipients_total", namespace="/") == 1

    assert await sockets[0].timeout(TIMEOUT).emit_with_ack("question", 1) == 2
    samples = await scrape(base)
    assert value(samples, "aiosio_ack_round_trip_seconds_count", namespace="/") == 1
    assert value(samples, "aiosio_ack_round_trip_seconds_sum", namespace="/") > 0

    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        refused = await http.get(f"{base}/socket.io/?EIO=4&transport=polling&sid=nope")
        assert refused.status_code == 400
        refused = await http.get(f"{base}/socket.io/?EIO=4&transport=carrier-pigeon")
        assert refused.status_code == 400
    samples = await scrape(base)
    assert value(samples, "aiosio_engine_refusals_total", code="1", cause="Session ID unknown") == 1
    assert value(samples, "aiosio_engine_refusals_total", code="0", cause="Transport unknown") == 1

    await client.disconnect()
    samples = await eventually_scraped(
        base, lambda s: value(s, "aiosio_sockets_connected", namespace="/") == 0
    )
    await eventually_scraped(
        base, lambda s: value(s, "aiosio_engine_sessions", transport="websocket") == 0
    )


async def test_a_dynamic_namespace_is_one_label_whatever_its_children(
    serve: Any, clients: Any
) -> None:
    sio = aiosio.Server()
    registry = CollectorRegistry()
    instrument(sio, registry, path="/metrics")
    rooms = sio.of(re.compile(r"^/room-\d+$"))  # declared after instrument()

    @rooms.on("hello")
    def hello(_socket: aiosio.Socket) -> str:
        return "hi"

    base = await serve(sio)
    connected = []
    for n in range(50):
        client = clients(f"{base}/room-{n}", transports=("websocket",))
        await client.connect()
        connected.append(client)
    for client in connected[:5]:
        assert await client.emit_with_ack("hello", timeout=TIMEOUT) == "hi"
    samples = await scrape(base)
    assert value(samples, "aiosio_sockets_connected", namespace=r"^/room-\d+$") == 50
    assert (
        value(
            samples,
            "aiosio_event_handler_duration_seconds_count",
            namespace=r"^/room-\d+$",
            event="hello",
        )
        == 5
    )
    namespaces = {
        dict(labels).get("namespace") for (_, labels) in samples if dict(labels).get("namespace")
    }
    assert namespaces == {"/", r"^/room-\d+$"}, namespaces
    assert len(samples) < 200  # no series per child, per socket or per room


async def _stalled_client(base: str) -> asyncio.StreamWriter:
    """A WebSocket client of "/" that then reads nothing, with a small receive buffer: what
    the server sends waits in the server."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(TIMEOUT):
        received = await reader.readuntil(b"\r\n\r\n")
        assert received.startswith(b"HTTP/1.1 101"), received
        writer.write(b"\x81\x82\x00\x00\x00\x0040")  # "40", masked with a zero key
        while b"40{" not in received:
            received += await reader.read(4096)
    return writer


async def test_a_slow_client_closed_is_counted(serve: Any) -> None:
    sio = aiosio.Server(max_outbound_buffer=256 * 1024)
    registry = CollectorRegistry()
    instrument(sio, registry, path="/metrics")
    closed: list[str] = []
    sio.on("connection", lambda s: s.on("disconnect", lambda reason, *_: closed.append(reason)))
    base = await serve(sio)
    writer = await _stalled_client(base)
    await eventually(lambda: len(sio.sockets.sockets) == 1)
    payload = "x" * 16 * 1024
    sent = 0
    while sent < 2000 and not closed:  # at most 32 MB: far past the buffers and the limit
        sio.emit("big", payload)
        sent += 1
        await asyncio.sleep(0)
    await eventually(lambda: bool(closed))
    samples = await scrape(base)
    assert value(samples, "aiosio_engine_slow_clients_closed_total") == 1
    assert value(samples, "aiosio_broadcasts_total", namespace="/") == sent
    writer.close()


async def test_metrics_app_serves_the_registry_to_asgi_routes() -> None:
    sio = aiosio.Server()
    registry = CollectorRegistry()
    instrument(sio, registry)
    transport = httpx.ASGITransport(app=metrics_app(registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"aiosio_sockets_connected", "aiosio_engine_handshakes"} <= names


async def test_the_endpoint_answers_its_path_only(serve: Any) -> None:
    sio, _, _ = instrumented()
    base = await serve(sio)
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        assert (await http.get(f"{base}/metricsx")).status_code == 404
        assert (await http.post(f"{base}/metrics")).status_code == 405


def test_a_server_is_instrumented_once() -> None:
    sio = aiosio.Server()
    instrument(sio, CollectorRegistry())
    with pytest.raises(ValueError, match="already instrumented"):
        instrument(sio, CollectorRegistry())


def test_a_refused_mount_leaves_the_registry_as_it_was() -> None:
    sio = aiosio.Server()
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match=r"overlaps the Socket\.IO path"):
        instrument(sio, registry, path="/socket.io/metrics")
    assert list(registry.collect()) == []
    instrument(sio, registry, path="/metrics")  # the server was left uninstrumented


def test_the_redis_link_is_read_from_the_adapter() -> None:
    from aiosio.adapters.redis import RedisAdapter

    sio = aiosio.Server(adapter=RedisAdapter("redis://127.0.0.1:1/0"))
    registry = CollectorRegistry()
    instrument(sio, registry)
    health = sio.adapter_factory.health  # type: ignore[union-attr]
    health.dropped_publishes = 3  # what the link counts when it gives a message up
    assert registry.get_sample_value("aiosio_redis_connected") == 0
    assert registry.get_sample_value("aiosio_redis_dropped_publishes_total") == 3


def test_metric_names_are_the_registrys() -> None:
    """What the documentation and the dashboard rely on: every name of METRIC_NAMES is
    registered by a server on one adapter or another, with the Prometheus conventions (prefix,
    base units); each adapter's own families only with that adapter."""
    from aiosio.adapters.postgres import PostgresAdapter
    from aiosio.adapters.redis import RedisAdapter
    from aiosio.adapters.redis_streams import RedisStreamsAdapter

    by_adapter = {}
    for name, factory in (
        ("redis", RedisAdapter("redis://127.0.0.1:1/0")),
        ("streams", RedisStreamsAdapter("redis://127.0.0.1:1/0")),
        ("postgres", PostgresAdapter("postgresql://postgres@127.0.0.1:1/postgres")),
    ):
        registry = CollectorRegistry()
        instrument(aiosio.Server(adapter=factory), registry)
        by_adapter[name] = {family.name for family in registry.collect()}
    redis = {name for name in METRIC_NAMES if name.startswith("aiosio_redis_")}
    streams = {name for name in redis if name.startswith("aiosio_redis_streams_")}
    postgres = {name for name in METRIC_NAMES if name.startswith("aiosio_postgres_")}
    assert (len(redis), len(streams), len(postgres)) == (12, 5, 9)
    assert by_adapter["redis"] == set(METRIC_NAMES) - streams - postgres
    assert by_adapter["streams"] == set(METRIC_NAMES) - postgres
    assert by_adapter["postgres"] == set(METRIC_NAMES) - redis
    # the link's families are the same for each broker
    link = {name.removeprefix("aiosio_postgres_") for name in postgres} - {
        "attachments_published",
        "attachments_received",
        "attachments_deleted",
    }
    assert {f"aiosio_redis_{name}" for name in link} <= redis
    for name in METRIC_NAMES:
        assert name.startswith("aiosio_")
        assert not name.endswith("_total")  # the exposition adds it to counters
        assert "milliseconds" not in name
        assert "kilobytes" not in name


def test_the_dashboard_names_only_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 10
    suffixes = ("_total", "_bucket", "_count", "_sum")
    named = set()
    for expr in exprs:
        for name in re.findall(r"\baiosio_[a-z_]+", expr):
            base = name
            for suffix in suffixes:
                base = base.removesuffix(suffix)
            assert base in METRIC_NAMES, f"{name} in {expr!r} is no metric of aiosio.metrics"
            named.add(base)
    missing = set(METRIC_NAMES) - named
    assert not missing, f"the dashboard does not show {sorted(missing)}"


async def test_a_message_dropped_from_redis_is_counted(serve: Any) -> None:
    """Against the Redis server on 127.0.0.1:6379 (the interop tests' own): a message published
    on the server's channel that is not one moves ``aiosio_redis_dropped_messages_total``."""
    import uuid

    import redis.asyncio as redis_asyncio

    from aiosio.adapters.redis import RedisAdapter

    raw = redis_asyncio.Redis.from_url("redis://127.0.0.1:6379")
    try:
        await raw.ping()
    except OSError:
        await raw.aclose()
        pytest.skip("no Redis on 127.0.0.1:6379")
    key = f"metrics{uuid.uuid4().hex[:12]}"
    factory = RedisAdapter("redis://127.0.0.1:6379", key=key)
    sio = aiosio.Server(adapter=factory)
    instrument(sio, CollectorRegistry(), path="/metrics")
    base = await serve(sio)
    try:
        assert await factory.ready()
        samples = await scrape(base)
        assert value(samples, "aiosio_redis_connected") == 1
        assert value(samples, "aiosio_redis_dropped_messages_total") == 0
        await raw.publish(f"{key}#/#", b"\xc1 not msgpack")
        await eventually_scraped(
            base, lambda s: value(s, "aiosio_redis_dropped_messages_total") == 1
        )
    finally:
        await raw.aclose()


def test_a_server_not_instrumented_has_nothing_in_its_paths() -> None:
    """What the hot paths would read is absent until ``instrument``: the handler registered is
    the one called, no packet listener, no broadcast listener, no ack timer."""
    sio = aiosio.Server()

    def chat(_socket: aiosio.Socket) -> None:
        return None

    sio.on("chat", chat)
    handlers = sio.sockets.handlers
    assert handlers.events["chat"].fn is chat
    assert handlers.wrapper is None
    assert handlers.ack_timer is None
    assert sio.sockets.adapter.broadcast_listener is None
    assert sio.packet_listeners == ()
    instrument(sio, CollectorRegistry())
    assert handlers.events["chat"].fn is not chat  # timed from now on
    assert handlers.ack_timer is not None
    assert sio.sockets.adapter.broadcast_listener is not None
    assert len(sio.packet_listeners) == 1


async def test_the_streams_health_is_scraped(serve: Any) -> None:
    """Against the Redis server on 127.0.0.1:6379: a server on ``RedisStreamsAdapter`` shows
    the link's families and its streams' (``aiosio_redis_streams_*``) in a real scrape: no lag
    before it read an entry; its broadcast appended, then read back with its lag; 50 entries
    added at once to a stream bounded to 10 (``MAXLEN 10`` by another client) while its reader
    waits, of which it reads the 10 left: the 40 it never read are the trimmed_unread count,
    exactly."""
    import uuid

    import redis.asyncio as redis_asyncio

    from aiosio.adapters.redis_streams import RedisStreamsAdapter

    key = f"metrics{uuid.uuid4().hex[:12]}"
    factory = RedisStreamsAdapter(
        "redis://127.0.0.1:6379", stream_name=key, channel_prefix=key, read_count=5
    )
    sio = aiosio.Server(adapter=factory)
    instrument(sio, CollectorRegistry(), path="/metrics")
    base = await serve(sio)
    raw = redis_asyncio.Redis.from_url("redis://127.0.0.1:6379")
    lag = ("aiosio_redis_streams_lag_seconds", ())
    try:
        assert await factory.ready(), "no Redis on 127.0.0.1:6379: bash scripts/services.sh"
        samples = await scrape(base)
        assert value(samples, "aiosio_redis_connected") == 1
        assert lag not in samples  # nothing read yet: no lag to tell
        assert value(samples, "aiosio_redis_streams_appended_total") == 0
        assert value(samples, "aiosio_redis_streams_trimmed_unread_total") == 0
        assert value(samples, "aiosio_redis_streams_uncertain_publishes_total") == 0
        assert value(samples, "aiosio_redis_streams_uncertain_found_total") == 0

        sio.emit("news", 1)
        samples = await eventually_scraped(
            base, lambda s: lag in s and value(s, "aiosio_redis_messages_received_total") == 1
        )
        assert value(samples, "aiosio_redis_streams_appended_total") == 1
        assert samples[lag] == factory.health.lag_seconds
        assert samples[lag] >= 0

        async with raw.pipeline(transaction=True) as pipe:  # one MULTI: added and trimmed at once
            for number in range(50):
                pipe.xadd(key, {"n": str(number)}, maxlen=10, approximate=False)
            await pipe.execute()
        samples = await eventually_scraped(
            base, lambda s: value(s, "aiosio_redis_messages_received_total") == 11
        )
        assert value(samples, "aiosio_redis_streams_trimmed_unread_total") == 40
        assert value(samples, "aiosio_redis_streams_appended_total") == 1  # the others' are not

        # what the link counts when it gives an append up undecided, and finds it later
        factory.health.uncertain_publishes, factory.health.uncertain_found = 2, 1
        samples = await scrape(base)
        assert value(samples, "aiosio_redis_streams_uncertain_publishes_total") == 2
        assert value(samples, "aiosio_redis_streams_uncertain_found_total") == 1
    finally:
        await raw.delete(key)
        await raw.aclose()


async def test_the_postgres_health_is_scraped(serve: Any) -> None:
    """Against the PostgreSQL on 127.0.0.1:5432: a server on ``PostgresAdapter`` shows its link
    under ``aiosio_postgres_*`` (and nothing under ``aiosio_redis_*``) in a real scrape: connected
    once listening, what it published (its hello, two broadcasts), a broadcast with binary sent
    through the attachments table (a table of the test's own)."""
    import uuid

    import asyncpg

    from aiosio.adapters.postgres import PostgresAdapter

    dsn = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"metrics{uuid.uuid4().hex[:12]}"
    factory = PostgresAdapter(dsn, channel_prefix=name, table_name=name)
    sio = aiosio.Server(adapter=factory)
    instrument(sio, CollectorRegistry(), path="/metrics")
    base = await serve(sio)
    try:
        await factory.create_table()
        assert await factory.ready(), "no PostgreSQL on 127.0.0.1:5432: bash scripts/services.sh"
        samples = await scrape(base)
        assert value(samples, "aiosio_postgres_connected") == 1
        assert value(samples, "aiosio_postgres_attachments_published_total") == 0
        assert not [key for key in samples if key[0].startswith("aiosio_redis_")]
        published = value(samples, "aiosio_postgres_published_total")
        assert published >= 1  # the hello it said when it started (and heartbeats since)

        sio.emit("news", 1)
        sio.emit("file", b"\x00\x01")  # binary: through the attachments table
        # the row is written, then its NOTIFY sent: both counted once the second is out
        samples = await eventually_scraped(
            base,
            lambda s: (
                value(s, "aiosio_postgres_attachments_published_total") == 1
                and value(s, "aiosio_postgres_published_total") >= published + 2
            ),
        )
        assert value(samples, "aiosio_postgres_dropped_publishes_total") == 0
        assert value(samples, "aiosio_postgres_reconnects_total") == 0
    finally:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f"DROP TABLE IF EXISTS {name}")
        finally:
            await connection.close()

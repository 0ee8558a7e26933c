"""The ``prometheus_client`` collector of an instrumented server: every family is
built when Prometheus scrapes, from the plain counts and from the server's state (sockets per
namespace, sessions per transport, the cluster link's health)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiosio._extras import import_extra
from aiosio.adapters.redis_streams.link import StreamsHealth
from aiosio.metrics.counts import ServerCounts
from aiosio.metrics.labels import namespace_label
from aiosio.server.server import Server

__all__ = ["METRIC_NAMES", "ServerCollector"]

# Every family's name (without the _total/_bucket/... suffixes of its samples): the
# documentation and the dashboard name these, and a test checks both against a scrape.
METRIC_NAMES = (
    "aiosio_sockets_connected",
    "aiosio_engine_sessions",
    "aiosio_engine_handshakes",
    "aiosio_engine_refusals",
    "aiosio_engine_upgrades",
    "aiosio_engine_slow_clients_closed",
    "aiosio_messages_received",
    "aiosio_messages_sent",
    "aiosio_received_bytes",
    "aiosio_sent_bytes",
    "aiosio_broadcasts",
    "aiosio_broadcast_recipients",
    "aiosio_ack_round_trip_seconds",
    "aiosio_event_handler_duration_seconds",
    "aiosio_event_handler_errors",
    "aiosio_redis_connected",
    "aiosio_redis_reconnects",
    "aiosio_redis_published",
    "aiosio_redis_messages_received",
    "aiosio_redis_dropped_publishes",
    "aiosio_redis_dropped_messages",
    "aiosio_redis_missed_deliveries",
    "aiosio_redis_streams_lag_seconds",
    "aiosio_redis_streams_trimmed_unread",
    "aiosio_redis_streams_appended",
)


class ServerCollector:
    """Yields the metric families of one instrumented server (a ``prometheus_client``
    custom collector)."""

    def __init__(self, sio: Server, counts: ServerCounts) -> None:
        self.sio = sio
        self.counts = counts
        self.core = import_extra("prometheus_client.core", extra="metrics", feature="metrics")

    def describe(self) -> list[Any]:
        """What :meth:`collect` yields (the registry checks names against it at register)."""
        return list(self.collect())

    def collect(self) -> Iterator[Any]:
        yield from self._sockets()
        yield from self._engine()
        yield from self._traffic()
        yield from self._namespaces()
        yield from self._redis()
        yield from self._streams()

    def _sockets(self) -> Iterator[Any]:
        core = self.core
        sio = self.sio
        sockets = core.GaugeMetricFamily(
            "aiosio_sockets_connected",
            "Sockets connected, by namespace (children of a dynamic namespace under its pattern)",
            labels=["namespace"],
        )
        by_label: dict[str, int] = {}
        for nsp in list(sio.namespaces.values()):
            label = namespace_label(sio, nsp)
            by_label[label] = by_label.get(label, 0) + len(nsp.sockets)
        for label, count in by_label.items():
            sockets.add_metric([label], count)
        yield sockets
        sessions = core.GaugeMetricFamily(
            "aiosio_engine_sessions",
            "Engine.IO sessions open, by transport",
            labels=["transport"],
        )
        by_transport = {"polling": 0, "websocket": 0}
        for conn in list(sio.engine.clients.values()):
            by_transport[conn.transport] = by_transport.get(conn.transport, 0) + 1
        for transport, count in by_transport.items():
            sessions.add_metric([transport], count)
        yield sessions

    def _engine(self) -> Iterator[Any]:
        core = self.core
        counts = self.counts
        handshakes = core.CounterMetricFamily(
            "aiosio_engine_handshakes",
            "Engine.IO sessions opened, by the transport they opened on",
            labels=["transport"],
        )
        for transport, count in counts.handshakes.items():
            handshakes.add_metric([transport], count)
        yield handshakes
        refusals = core.CounterMetricFamily(
            "aiosio_engine_refusals",
            "Requests refused (connection_error), by Engine.IO error code and cause",
            labels=["code", "cause"],
        )
        for (code, cause), count in counts.refusals.items():
            refusals.add_metric([code, cause], count)
        yield refusals
        yield core.CounterMetricFamily(
            "aiosio_engine_upgrades",
            "Polling sessions upgraded to WebSocket",
            value=counts.upgrades,
        )
        yield core.CounterMetricFamily(
            "aiosio_engine_slow_clients_closed",
            "Sessions closed because their client did not read (max_outbound_buffer)",
            value=counts.slow_clients,
        )

    def _traffic(self) -> Iterator[Any]:
        core = self.core
        traffic = self.counts.traffic
        for name, doc, value in (
            ("aiosio_messages_received", "Engine.IO messages received", traffic.received_count),
            ("aiosio_messages_sent", "Engine.IO messages sent", traffic.sent_count),
            ("aiosio_received_bytes", "Bytes of the messages received", traffic.bytes_received),
            ("aiosio_sent_bytes", "Bytes of the messages sent", traffic.bytes_sent),
        ):
            yield core.CounterMetricFamily(name, doc, value=value)

    def _namespaces(self) -> Iterator[Any]:
        core = self.core
        counts = self.counts
        broadcasts = core.CounterMetricFamily(
            "aiosio_broadcasts", "Broadcasts delivered by this server", labels=["namespace"]
        )
        recipients = core.CounterMetricFamily(
            "aiosio_broadcast_recipients",
            "Sockets of this server that broadcasts were delivered to",
            labels=["namespace"],
        )
        for label, (count, reached) in counts.broadcasts.items():
            broadcasts.add_metric([label], count)
            recipients.add_metric([label], reached)
        yield broadcasts
        yield recipients
        acks = core.HistogramMetricFamily(
            "aiosio_ack_round_trip_seconds",
            "From an emit with acknowledgement to the client's answer",
            labels=["namespace"],
        )
        for label, histogram in counts.acks.items():
            acks.add_metric([label], histogram.cumulative(), histogram.sum)
        yield acks
        durations = core.HistogramMetricFamily(
            "aiosio_event_handler_duration_seconds",
            "Run time of the namespaces' event handlers (an async handler's awaits included)",
            labels=["namespace", "event"],
        )
        errors = core.CounterMetricFamily(
            "aiosio_event_handler_errors",
            "Event handlers that raised",
            labels=["namespace", "event"],
        )
        for (label, event), stats in counts.handlers.items():
            duration = stats.duration
            durations.add_metric([label, event], duration.cumulative(), duration.sum)
            errors.add_metric([label, event], stats.errors)
        yield durations
        yield errors

    def _redis(self) -> Iterator[Any]:
        """The cluster link, when the server's adapter has one (``health``)."""
        health = getattr(self.sio.adapter_factory, "health", None)
        if health is None:
            return
        core = self.core
        yield core.GaugeMetricFamily(
            "aiosio_redis_connected",
            "1 while the Redis link is connected",
            value=1 if health.connected else 0,
        )
        for name, doc, value in (
            ("aiosio_redis_reconnects", "Reconnections of the Redis link", health.reconnects),
            ("aiosio_redis_published", "Messages published to Redis", health.published),
            (
                "aiosio_redis_messages_received",
                "Messages received from Redis",
                health.messages_received,
            ),
            (
                "aiosio_redis_dropped_publishes",
                "Messages not published to Redis (link down past its deadline, queue full)",
                health.dropped_publishes,
            ),
            (
                "aiosio_redis_dropped_messages",
                "Messages received from Redis and dropped (malformed, or not allowed)",
                health.dropped_messages,
            ),
            (
                "aiosio_redis_missed_deliveries",
                "Deliveries to other servers that Redis reported missing (PUBLISH reached fewer "
                "servers than known to be alive)",
                health.missed_deliveries,
            ),
        ):
            yield core.CounterMetricFamily(name, doc, value=value)

    def _streams(self) -> Iterator[Any]:
        """The streams of the Redis Streams adapter (its ``StreamsHealth``), beside the link's
        families above: how far behind the reading is, what it lost to trimming, what this
        server added."""
        health = getattr(self.sio.adapter_factory, "health", None)
        if not isinstance(health, StreamsHealth):
            return
        core = self.core
        lag = core.GaugeMetricFamily(
            "aiosio_redis_streams_lag_seconds",
            "Age of the last stream entry this server read, when it read it (none before the "
            "first): how far behind the other servers' broadcasts it delivers",
        )
        if health.lag_seconds is not None:
            lag.add_metric([], health.lag_seconds)
        yield lag
        yield core.CounterMetricFamily(
            "aiosio_redis_streams_trimmed_unread",
            "Stream entries trimmed (MAXLEN) before this server read them: broadcasts its "
            "clients did not get (raise RedisStreamsAdapter max_len)",
            value=health.trimmed_unread,
        )
        yield core.CounterMetricFamily(
            "aiosio_redis_streams_appended",
            "Entries this server appended to the streams (its broadcasts and cluster messages)",
            value=health.appended,
        )

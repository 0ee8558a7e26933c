"""The ``prometheus_client`` collector of an instrumented server: every family is
built when Prometheus scrapes, from the plain counts and from the server's state (sockets per
namespace, sessions per transport, the cluster link's health)."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import Protocol
from typing import TypeVar

from aiosio._extras import import_extra
from aiosio.adapters.postgres.link import PostgresHealth
from aiosio.adapters.redis.link import RedisHealth
from aiosio.adapters.redis_streams.link import StreamsHealth
from aiosio.metrics.counts import ServerCounts
from aiosio.metrics.labels import namespace_label
from aiosio.server.server import Server

__all__ = ["METRIC_NAMES", "ServerCollector"]

# A sample's label value, or its label values.
Labels = TypeVar("Labels", bound=str | tuple[str, ...])

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
    "aiosio_redis_streams_uncertain_publishes",
    "aiosio_redis_streams_uncertain_found",
    "aiosio_postgres_connected",
    "aiosio_postgres_reconnects",
    "aiosio_postgres_published",
    "aiosio_postgres_messages_received",
    "aiosio_postgres_dropped_publishes",
    "aiosio_postgres_dropped_messages",
    "aiosio_postgres_attachments_published",
    "aiosio_postgres_attachments_received",
    "aiosio_postgres_attachments_deleted",
)


class LinkHealth(Protocol):
    """What the metrics read of any cluster adapter's health (``RedisHealth`` has it)."""

    connected: bool
    reconnects: int
    published: int
    messages_received: int
    dropped_publishes: int
    dropped_messages: int


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
        yield from self._adapter()

    def _sockets(self) -> Iterator[Any]:
        core = self.core
        sio = self.sio
        by_label: dict[str, int] = {}
        for nsp in list(sio.namespaces.values()):
            label = namespace_label(sio, nsp)
            by_label[label] = by_label.get(label, 0) + len(nsp.sockets)
        sockets = core.GaugeMetricFamily(
            "aiosio_sockets_connected",
            "Sockets connected, by namespace (children of a dynamic namespace under its pattern)",
            labels=["namespace"],
        )
        yield _counted(sockets, by_label)
        by_transport = {"polling": 0, "websocket": 0}
        for conn in list(sio.engine.clients.values()):
            by_transport[conn.transport] = by_transport.get(conn.transport, 0) + 1
        sessions = core.GaugeMetricFamily(
            "aiosio_engine_sessions", "Engine.IO sessions open, by transport", labels=["transport"]
        )
        yield _counted(sessions, by_transport)

    def _engine(self) -> Iterator[Any]:
        core = self.core
        counts = self.counts
        handshakes = core.CounterMetricFamily(
            "aiosio_engine_handshakes",
            "Engine.IO sessions opened, by the transport they opened on",
            labels=["transport"],
        )
        yield _counted(handshakes, counts.handshakes)
        refusals = core.CounterMetricFamily(
            "aiosio_engine_refusals",
            "Requests refused (connection_error), by Engine.IO error code and cause",
            labels=["code", "cause"],
        )
        yield _counted(refusals, counts.refusals)
        yield from self._counters(
            ("aiosio_engine_upgrades", "Polling sessions upgraded to WebSocket", counts.upgrades),
            (
                "aiosio_engine_slow_clients_closed",
                "Sessions closed because their client did not read (max_outbound_buffer)",
                counts.slow_clients,
            ),
        )

    def _counters(self, *families: tuple[str, str, int]) -> Iterator[Any]:
        """A counter family without labels per ``(name, help, value)``."""
        for name, doc, value in families:
            yield self.core.CounterMetricFamily(name, doc, value=value)

    def _traffic(self) -> Iterator[Any]:
        traffic = self.counts.traffic
        yield from self._counters(
            ("aiosio_messages_received", "Engine.IO messages received", traffic.received_count),
            ("aiosio_messages_sent", "Engine.IO messages sent", traffic.sent_count),
            ("aiosio_received_bytes", "Bytes of the messages received", traffic.bytes_received),
            ("aiosio_sent_bytes", "Bytes of the messages sent", traffic.bytes_sent),
        )

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

    def _adapter(self) -> Iterator[Any]:
        """The cluster link's health, when the server's adapter has one: the Redis adapters'
        (a ``RedisHealth``; the ``--workers`` bus reports the same), the streams of the Redis
        Streams adapter (a ``StreamsHealth``), the Postgres adapter's (a ``PostgresHealth``:
        the same families under its own name, no missed deliveries since ``NOTIFY`` does not
        say how many listened, and its attachments table)."""
        health = getattr(self.sio.adapter_factory, "health", None)
        if isinstance(health, RedisHealth):
            yield from self._link("aiosio_redis", "Redis", health)
            yield from self._counters(
                (
                    "aiosio_redis_missed_deliveries",
                    "Deliveries to other servers that Redis reported missing (PUBLISH reached "
                    "fewer servers than known to be alive)",
                    health.missed_deliveries,
                )
            )
        if isinstance(health, StreamsHealth):
            yield from self._streams(health)
        if isinstance(health, PostgresHealth):
            yield from self._link("aiosio_postgres", "PostgreSQL", health)
            yield from self._counters(
                (
                    "aiosio_postgres_attachments_published",
                    "Messages sent through the attachments table (binary, or too large for NOTIFY)",
                    health.attachments_published,
                ),
                (
                    "aiosio_postgres_attachments_received",
                    "Messages read from the attachments table",
                    health.attachments_received,
                ),
                (
                    "aiosio_postgres_attachments_deleted",
                    "Rows of the attachments table this server's cleanup deleted",
                    health.attachments_deleted,
                ),
            )

    def _link(self, prefix: str, broker: str, health: LinkHealth) -> Iterator[Any]:
        """The families every adapter's link has, under ``prefix`` (the broker's name)."""
        core = self.core
        yield core.GaugeMetricFamily(
            f"{prefix}_connected",
            f"1 while the {broker} link is connected",
            value=1 if health.connected else 0,
        )
        yield from self._counters(
            (f"{prefix}_reconnects", f"Reconnections of the {broker} link", health.reconnects),
            (f"{prefix}_published", f"Messages published to {broker}", health.published),
            (
                f"{prefix}_messages_received",
                f"Messages received from {broker}",
                health.messages_received,
            ),
            (
                f"{prefix}_dropped_publishes",
                f"Messages not published to {broker} (link down past its deadline, queue full)",
                health.dropped_publishes,
            ),
            (
                f"{prefix}_dropped_messages",
                f"Messages received from {broker} and dropped (malformed, or not allowed)",
                health.dropped_messages,
            ),
        )

    def _streams(self, health: StreamsHealth) -> Iterator[Any]:
        """The streams of the Redis Streams adapter, beside its link's families: how far behind
        the reading is, what it lost to trimming, what this server added, and what it gave up
        not knowing whether Redis applied it."""
        core = self.core
        lag = core.GaugeMetricFamily(
            "aiosio_redis_streams_lag_seconds",
            "Age of the last stream entry this server read, when it read it (none before the "
            "first): how far behind the other servers' broadcasts it delivers",
        )
        if health.lag_seconds is not None:
            lag.add_metric([], health.lag_seconds)
        yield lag
        yield from self._counters(
            (
                "aiosio_redis_streams_trimmed_unread",
                "Stream entries trimmed (MAXLEN) before this server read them: broadcasts its "
                "clients did not get (raise RedisStreamsAdapter max_len)",
                health.trimmed_unread,
            ),
            (
                "aiosio_redis_streams_appended",
                "Entries this server appended to the streams (its broadcasts and cluster messages)",
                health.appended,
            ),
            (
                "aiosio_redis_streams_uncertain_publishes",
                "Messages given up after an XADD that was sent and never answered: in the "
                "stream (delivered late) or lost, not known (not in dropped_publishes)",
                health.uncertain_publishes,
            ),
            (
                "aiosio_redis_streams_uncertain_found",
                "Of those, the ones this server's reader found in the stream later: applied "
                "after all",
                health.uncertain_found,
            ),
        )


def _counted(family: Any, counts: Mapping[Labels, int]) -> Any:
    """``family`` with a sample per entry of ``counts``: its label's value (or its labels'
    values, a tuple) and its count."""
    for labels, count in counts.items():
        family.add_metric([labels] if isinstance(labels, str) else list(labels), count)
    return family

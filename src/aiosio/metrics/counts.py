"""What the metrics count, in plain Python numbers: the hot paths add to an int or a list
slot, and nothing else; prometheus_client reads them only when Prometheus scrapes
(:mod:`aiosio.metrics.collector`). Its own ``Counter`` and ``Histogram`` take a lock on every
change, which a single-threaded event loop does not need."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from collections.abc import Sequence
from time import perf_counter
from typing import Any

from aiosio._eager import Callback

__all__ = [
    "ACK_BUCKETS",
    "HANDLER_BUCKETS",
    "HandlerStats",
    "Histogram",
    "ServerCounts",
    "Traffic",
    "ack_timer",
    "timed_handler",
]

# Seconds. Handlers are usually fast (a dict update) and sometimes slow (a database): from
# 100 microseconds to 10 s. An ack crosses the network twice: from a millisecond up.
HANDLER_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Observations counted per bucket (a value ``v`` goes to the first bound ``>= v``, as
    Prometheus' ``le``), and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as the exposition format has them, ``+Inf`` last."""
        buckets = []
        total = 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            buckets.append((bound, total))
        return buckets


class Traffic:
    """Engine.IO messages in and out and their bytes (a
    :class:`~aiosio.server.interfaces.PacketListener`): text counted in UTF-8 bytes."""

    __slots__ = ("bytes_received", "bytes_sent", "received_count", "sent_count")

    def __init__(self) -> None:
        self.received_count = 0
        self.sent_count = 0
        self.bytes_received = 0
        self.bytes_sent = 0

    def received(self, data: str | bytes) -> None:
        self.received_count += 1
        self.bytes_received += _byte_length(data)

    def sent(self, data: str | bytes) -> None:
        self.sent_count += 1
        self.bytes_sent += _byte_length(data)


def _byte_length(data: str | bytes) -> int:
    if data.__class__ is bytes or data.isascii():
        return len(data)
    return len(data.encode())  # type: ignore[union-attr]


class ServerCounts:
    """Everything counted for one server, by event (the collector reads it at each scrape)."""

    def __init__(self) -> None:
        self.traffic = Traffic()
        self.handshakes: dict[str, int] = {}  # by transport
        self.refusals: dict[tuple[str, str], int] = {}  # by (code, cause)
        self.upgrades = 0
        self.slow_clients = 0
        self.broadcasts: dict[str, list[int]] = {}  # namespace -> [broadcasts, recipients]
        self.acks: dict[str, Histogram] = {}  # by namespace
        self.handlers: dict[tuple[str, str], HandlerStats] = {}  # by (namespace, event)


class HandlerStats:
    """One event handler's durations and errors."""

    __slots__ = ("duration", "errors")

    def __init__(self) -> None:
        self.duration = Histogram(HANDLER_BUCKETS)
        self.errors = 0


class _Timing:
    """One call timed into a :class:`HandlerStats`: its duration, and an error if it raised
    an ``Exception`` (a cancellation is no error)."""

    __slots__ = ("start", "stats")

    def __init__(self, stats: HandlerStats) -> None:
        self.stats = stats
        self.start = perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and issubclass(kind, Exception):
            self.stats.errors += 1
        self.stats.duration.observe(perf_counter() - self.start)


def timed_handler(callback: Callback, stats: HandlerStats) -> Callable[..., Any]:
    """``callback``'s function, timed into ``stats``: from its call to its return (an async
    handler's whole run, its awaits included); what it raises counts as an error and goes on
    to the server, which logs it as before."""
    fn = callback.fn
    if callback.is_async:

        async def timed_async(*args: Any) -> Any:
            with _Timing(stats):
                return await fn(*args)

        return timed_async

    def timed(*args: Any) -> Any:
        with _Timing(stats):
            return fn(*args)

    return timed


def ack_timer(
    histogram: Histogram,
) -> Callable[[Callable[[list[Any]], None]], Callable[[list[Any]], None]]:
    """An :data:`~aiosio.server.handlers.AckTimer`: the time from the ack's request (the
    emit) to the client's answer goes to ``histogram``; an ack never answered counts nothing."""

    def timer(callback: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
        start = perf_counter()

        def answered(args: list[Any]) -> None:
            histogram.observe(perf_counter() - start)
            callback(args)

        return answered

    return timer

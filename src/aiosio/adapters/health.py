"""What every cluster link shares besides its queue (:mod:`~aiosio.adapters.outbox`): the health
an operator reads (:class:`LinkHealth`, the same fields whatever the broker, for the logs, the
metrics and the Admin UI), the outage accounting of the connection that listens, and the
bounded backoff it reconnects with (:class:`Backoff`)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Backoff", "LinkHealth"]


@dataclass(slots=True)
class LinkHealth:
    """What an operator needs to know about a cluster link."""

    connected: bool = False
    reconnects: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    disconnected_since: float | None = None
    outage_seconds: float = 0.0
    messages_received: int = 0
    published: int = 0
    dropped_publishes: int = 0
    dropped_messages: int = 0  # received and refused (malformed, not allowed, attachment lost)
    retried_publishes: int = 0
    # Deliveries to other servers that the broker reported missing: with Redis pub/sub, a
    # broadcast that PUBLISH says reached fewer subscribers than the servers known to be alive
    # (one per server missed); 0 where the broker does not say (PostgreSQL's NOTIFY).
    missed_deliveries: int = 0
    queued_publishes: int = 0
    last_message_at: float | None = None
    subscriptions: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "outage_seconds": round(self.outage_seconds, 3),
            "messages_received": self.messages_received,
            "published": self.published,
            "dropped_publishes": self.dropped_publishes,
            "dropped_messages": self.dropped_messages,
            "retried_publishes": self.retried_publishes,
            "missed_deliveries": self.missed_deliveries,
            "queued_publishes": self.queued_publishes,
            "subscriptions": self.subscriptions,
        }

    def received(self) -> None:
        """A message arrived on the listening connection."""
        self.messages_received += 1
        self.last_message_at = time.time()

    def up(self) -> float | None:
        """The listening connection is up: after an outage, its length in seconds (counted in
        ``reconnects`` and ``outage_seconds``), for the link to log; None on the first
        connection."""
        outage = None
        if self.disconnected_since is not None:
            self.reconnects += 1
            outage = time.time() - self.disconnected_since
            self.outage_seconds += outage
            self.disconnected_since = None
        self.connected = True
        return outage

    def down(self, exc: BaseException, since: float | None = None) -> bool:
        """The listening connection failed with ``exc``: whether an outage starts here (for
        the link to log; not while it is already down). ``since`` (``time.time()``): when it
        was last heard from, where the outage began (now by default)."""
        starts = self.connected or self.disconnected_since is None
        if starts:
            self.disconnected_since = self.disconnected_since or since or time.time()
        self.connected = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_error_at = time.time()
        return starts


class Backoff:
    """The waits between reconnections: from ``low``, doubled up to ``high`` seconds, from
    ``low`` again after a connection that had stayed up for ten times ``high``; ``jitter``
    spreads each wait over half to one and a half of it."""

    def __init__(self, low: float, high: float, *, jitter: bool = False) -> None:
        self.low = low
        self.high = high
        self.jitter = jitter
        self.delay = low

    async def wait(self, started: float) -> None:
        """Wait before the next attempt; the last one started at ``started``
        (``time.monotonic()``)."""
        if time.monotonic() - started > 10 * self.high:
            self.delay = self.low  # it had been up for a while: start over
        delay = self.delay * (0.5 + random.random()) if self.jitter else self.delay  # noqa: S311
        await asyncio.sleep(delay)
        self.delay = min(self.delay * 2, self.high)

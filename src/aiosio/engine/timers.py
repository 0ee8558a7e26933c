"""One shared timer mechanism for every session of a server.

Sessions have deadlines (next ping, heartbeat, upgrade, orderly close). Instead of a sleeping task
or a timer handle per session, deadlines are rounded up to buckets of ``resolution`` seconds, and
the wheel keeps one event-loop timer per non-empty bucket. Ten thousand idle sessions whose pings
fall due within the same 50 ms share one timer.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

__all__ = ["Timed", "TimerWheel"]


class Timed(Protocol):
    """What the wheel schedules: an object that keeps the wheel's bookkeeping for it."""

    timer_bucket: int | None
    """The bucket the item is scheduled in (``None``: not scheduled); only the wheel sets it."""

    def on_timer(self, now: float) -> None:
        """The item's deadline has come (``now``: loop time, not before the deadline)."""


class TimerWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.05) -> None:
        self._loop = loop
        self._resolution = resolution
        self._buckets: dict[int, set[Timed]] = {}
        self._handles: dict[int, asyncio.TimerHandle] = {}

    def schedule(self, item: Timed, deadline: float | None) -> None:
        """(Re)schedule ``item`` for ``deadline`` (loop time); ``None`` unschedules it."""
        old = item.timer_bucket
        new = None if deadline is None else math.ceil(deadline / self._resolution)
        if old == new:
            return
        if old is not None:
            bucket = self._buckets.get(old)
            if bucket is not None:
                bucket.discard(item)
                if not bucket:
                    del self._buckets[old]
                    handle = self._handles.pop(old, None)
                    if handle is not None:
                        handle.cancel()
        item.timer_bucket = new
        if new is None:
            return
        bucket = self._buckets.get(new)
        if bucket is None:
            bucket = self._buckets[new] = set()
            self._handles[new] = self._loop.call_at(new * self._resolution, self._fire, new)
        bucket.add(item)

    def _fire(self, key: int) -> None:
        self._handles.pop(key, None)
        items = self._buckets.pop(key, ())
        # The loop may run a timer a hair early (its clock resolution); the bucket's time is due.
        now = max(self._loop.time(), key * self._resolution)
        for item in items:
            item.timer_bucket = None
            item.on_timer(now)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._buckets.clear()

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

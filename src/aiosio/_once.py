"""Saying a thing once per reason: a warning logged the first time an origin, an event name or a
refusal reason is seen, not at every request that repeats it; or once in a while
(:class:`AtMostEvery`): a loss logged with its running count, not at every message lost.

What a peer chooses (an origin, a reason built from its input) must not grow the record without
bound: past ``limit`` distinct reasons, the new ones are not reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable

__all__ = ["AtMostEvery", "OncePer"]


class OncePer:
    """The reasons already reported, at most ``limit`` of them (``None``: no limit)."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit
        # Created at the first report: most owners (a namespace each) never report anything.
        self._seen: set[Hashable] | None = None

    def first(self, reason: Hashable) -> bool:
        """True the first time ``reason`` is seen, while fewer than ``limit`` were: report it."""
        seen = self._seen
        if seen is None:
            seen = self._seen = set()
        if reason in seen or (self._limit is not None and len(seen) >= self._limit):
            return False
        seen.add(reason)
        return True


class AtMostEvery:
    """A report made at most once every ``interval`` seconds (the count it carries says how
    many happened in between)."""

    __slots__ = ("_last", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -math.inf

    def due(self) -> bool:
        """True when the last report is more than ``interval`` seconds old: report now."""
        now = time.monotonic()
        if now - self._last > self.interval:
            self._last = now
            return True
        return False

    def reported(self) -> None:
        """A report was just made another way: the next one waits ``interval`` seconds."""
        self._last = time.monotonic()

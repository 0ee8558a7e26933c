"""Why the most recent sessions ended, kept without a Python object per session.

A late request for a session that is gone (a poll after a ping timeout, a laptop that slept) is
answered with the reason the session ended and how long ago, instead of a bare "Session ID
unknown". The record is bounded and lives in three flat buffers allocated once. A dict of tuples
would keep a str, a tuple and a float per closed session; those small objects sit among the
sessions' own objects in CPython's memory arenas and keep every arena from being returned to the
operating system after the connections leave (docs/performance.md, "Memory after churn").

A session is recorded by the hash of its id. Another id matching one of the recorded hashes by
chance is about one in 2**52 with the default capacity, and would only change an error message.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable

__all__ = ["EndedSessions"]

_KEY = struct.Struct("=q")
_OTHER = "other"  # the reason recorded once 256 distinct reasons have been seen


class EndedSessions:
    """A ring of the last ``capacity`` ended sessions: id hash, reason, loop time.

    ``key`` turns a session id into the signed 64-bit number recorded for it (``hash`` by
    default); a test passes its own to make two ids meet on the same key bytes.
    """

    __slots__ = (
        "_capacity",
        "_codes",
        "_key",
        "_keys",
        "_names",
        "_next",
        "_reasons",
        "_size",
        "_times",
    )

    def __init__(self, capacity: int, key: Callable[[str], int] = hash) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._key = key
        self._keys = bytearray(_KEY.size * capacity)
        self._times = array("d", bytes(8 * capacity))
        self._reasons = bytearray(capacity)
        self._names = [_OTHER]  # by code
        self._codes = {_OTHER: 0}
        self._next = 0  # the slot the next record goes to (the oldest once the ring is full)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, sid: str, reason: str, at: float) -> None:
        """Record that session ``sid`` ended for ``reason`` at loop time ``at``."""
        slot = self._next
        _KEY.pack_into(self._keys, slot * _KEY.size, self._key(sid))
        self._times[slot] = at
        self._reasons[slot] = self._code(reason)
        self._next = (slot + 1) % self._capacity
        self._size = min(self._size + 1, self._capacity)

    def get(self, sid: str) -> tuple[str, float] | None:
        """``(reason, loop time)`` of the session ``sid`` if it is among the recorded ones."""
        keys = self._keys
        key = _KEY.pack(self._key(sid))
        found = keys.find(key)
        while found >= 0:
            slot, misaligned = divmod(found, _KEY.size)
            if not misaligned and slot < self._size:
                return self._names[self._reasons[slot]], self._times[slot]
            found = keys.find(key, found + 1)
        return None

    def _code(self, reason: str) -> int:
        code = self._codes.get(reason)
        if code is None:
            if len(self._names) == 256:
                return 0
            code = self._codes[reason] = len(self._names)
            self._names.append(reason)
        return code

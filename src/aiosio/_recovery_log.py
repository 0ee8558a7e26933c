"""The ``--workers`` master's store for connection state recovery across its workers.

The master is the one place every worker reaches, so it keeps what a client needs to recover on
any worker: the broadcasts of each namespace in one order (the master's, which every worker
delivers them in) under offsets it assigns, and the sessions of the sockets that lost their
connection. Plain data in, plain data out; time is an argument (``now``). Bounded: a broadcast
is kept for the namespace's ``max_disconnection_duration`` and at most ``max_len`` per namespace
(``aiosio serve --recovery-log-size``); a session for ``max_disconnection_duration``.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from dataclasses import field

__all__ = ["DEFAULT_LOG_SIZE", "RecoveryStore", "Restored"]

DEFAULT_LOG_SIZE = 10_000  # as @socket.io/redis-streams-adapter's maxLen


@dataclass(slots=True)
class _Entry:
    seq: int
    expires: float
    rooms: frozenset[str]
    except_rooms: frozenset[str]
    entry: bytes


@dataclass(slots=True)
class _Session:
    expires: float
    rooms: frozenset[str]
    session: bytes


@dataclass(slots=True)
class _Namespace:
    entries: deque[_Entry] = field(default_factory=deque)
    next_seq: int = 1
    sessions: dict[str, _Session] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Restored:
    """The answer to a restore: the session (as the worker encoded it) and the broadcasts it
    missed as ``(offset, entry)``; or no session and why (``reason``)."""

    session: bytes | None
    missed: list[tuple[str, bytes]]
    reason: str | None = None


class RecoveryStore:
    """Broadcast logs and disconnected sessions, per namespace channel."""

    def __init__(self, max_len: int = DEFAULT_LOG_SIZE) -> None:
        if max_len < 1:
            raise ValueError(
                f"recovery_log_size must be at least 1 broadcast, got {max_len}: it bounds the "
                "broadcasts the master keeps per namespace for clients to recover"
            )
        self.max_len = max_len
        self.epoch = secrets.token_hex(4)  # offsets of another run of the master are unknown
        self._namespaces: dict[str, _Namespace] = {}

    def _of(self, channel: str) -> _Namespace:
        found = self._namespaces.get(channel)
        if found is None:
            found = self._namespaces[channel] = _Namespace()
        return found

    def append(
        self,
        channel: str,
        now: float,
        keep: float,
        rooms: frozenset[str],
        except_rooms: frozenset[str],
        entry: bytes,
    ) -> str:
        """Keep a broadcast; returns its offset."""
        nsp = self._of(channel)
        seq = nsp.next_seq
        nsp.next_seq += 1
        entries = nsp.entries
        entries.append(_Entry(seq, now + keep, rooms, except_rooms, entry))
        while len(entries) > self.max_len or entries[0].expires < now:
            entries.popleft()
        return f"{self.epoch}-{seq}"

    def persist(
        self, channel: str, now: float, keep: float, pid: str, rooms: frozenset[str], session: bytes
    ) -> None:
        """Keep a session. Sessions are in the order they were kept, which is the order they
        expire in (``keep`` is the namespace's ``max_disconnection_duration``): the expired
        ones are taken from the front, never by reading them all (a worker that dies
        disconnects thousands of sockets at once)."""
        sessions = self._of(channel).sessions
        while sessions:
            oldest = next(iter(sessions))
            if sessions[oldest].expires >= now:
                break
            del sessions[oldest]
        sessions.pop(pid, None)  # kept again: it goes to the back
        sessions[pid] = _Session(now + keep, rooms, session)

    def kept_sessions(self, channel: str) -> int:
        """How many sessions of ``channel`` are kept (expired ones go when the next comes)."""
        found = self._namespaces.get(channel)
        return 0 if found is None else len(found.sessions)

    def restore(self, channel: str, now: float, pid: str, offset: str) -> Restored:
        """The session ``pid`` (taken out of the store) and what was broadcast after ``offset``
        to its rooms; or why there is none."""
        nsp = self._of(channel)
        kept = nsp.sessions.pop(pid, None)
        if kept is None or kept.expires < now:
            return Restored(None, [], "no session of that id (never kept, or expired)")
        epoch, _, number = offset.partition("-")
        if epoch != self.epoch or not number.isdigit() or int(number) >= nsp.next_seq:
            return Restored(None, [], f"offset {offset[:40]!r} was not given by this master")
        seq = int(number)
        entries = nsp.entries
        first = entries[0].seq if entries else nsp.next_seq
        if seq < first - 1:  # the broadcast right after the offset is gone
            return Restored(
                None,
                [],
                f"the broadcasts after offset {offset} are no longer kept: the master keeps the "
                f"last {self.max_len} broadcasts of a namespace (aiosio serve "
                "--recovery-log-size), each for max_disconnection_duration",
            )
        rooms = kept.rooms
        missed = [
            (f"{self.epoch}-{e.seq}", e.entry)
            for e in list(entries)[max(seq - first + 1, 0) :]
            if (not e.rooms or not rooms.isdisjoint(e.rooms)) and rooms.isdisjoint(e.except_rooms)
        ]
        return Restored(kept.session, missed)

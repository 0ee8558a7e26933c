"""The Redis connections of a server on Redis Streams: the stream readers and the ordered
``XADD`` queue, beside a :class:`~aiosio.adapters.redis.RedisLink` for what travels on pub/sub.

What must not be lost goes in a stream (``XADD <stream> MAXLEN ~ <max_len> * uid .. nsp ..
type .. data ..``, as ``@socket.io/redis-streams-adapter``): broadcasts without acks and the
join, leave and disconnect requests. What waits for an answer (broadcasts with acks,
``fetch_sockets``, ``server_side_emit``, the answers) goes on pub/sub, through the inner
:class:`~aiosio.adapters.redis.RedisLink`.

* **Reading.** One task per stream reads with ``XREAD BLOCK`` from the id of the last entry it
  read. It starts from the id of the stream's last entry at startup (never ``$`` across a
  reconnection: what was added while the connection was down is read once it is back). After a
  reconnection, and whenever a read returns a full batch, it asks ``XINFO STREAM`` whether
  entries it had not read were trimmed: it knows how many entries the stream had when it
  started (``entries-added``) and how many it read since, and ``entries-added - length`` were
  removed; those past what it read are a loss, counted in
  :attr:`StreamsHealth.trimmed_unread` and logged, never silent.
* **Appending.** One task appends in order. An ``XADD`` that fails because the connection was lost
  is retried until ``retry_timeout`` seconds after it was queued; whether a command that was sent
  just before the connection broke was applied is read back first (the entries after the last id
  this link appended that carry the same fields): one Redis applied is not sent again (one Redis
  holds unapplied past the read-back and applies later is appended twice: docs/redis-streams.md).
  Past the deadline or ``max_queue`` waiting messages, a message is dropped, counted in
  ``dropped_publishes`` and logged; but one whose ``XADD`` was sent and never answered (Redis
  stalled, the connection broke after the command left) and that no read-back found may have been
  applied: it is counted in ``uncertain_publishes`` instead, and logged, and the readers watch for
  it: found in the stream later (applied after all, so the other servers delivered it), it is
  counted in ``uncertain_found``.

Nothing starts before it is first needed inside a running event loop, so a server can be
created before a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from aiosio._once import AtMostEvery
from aiosio.adapters.outbox import Outbox
from aiosio.adapters.outbox import Retries
from aiosio.adapters.outbox import Words
from aiosio.adapters.outbox import attempt_budget
from aiosio.adapters.redis.link import Handler
from aiosio.adapters.redis.link import RedisHealth
from aiosio.adapters.redis.link import RedisLink
from aiosio.adapters.redis.link import connection_lost

__all__ = ["EntryHandler", "StreamsHealth", "StreamsLink"]

logger = logging.getLogger("aiosio.adapter.redis_streams")

# A stream entry: its fields (bytes as Redis returns them) and its id.
EntryHandler = Callable[[dict[bytes, bytes], str], None]
# Called once per appended message, in order: the entry id, or None when it was dropped.
Appended = Callable[[str | None], None]


# A read that comes back this long after its BLOCK time was held up on the way (a stalled link
# or a stuck Redis), not waiting for entries: counted in StreamsHealth.stalled_reads.
STALL_MARGIN = 1.0

# The appends given up undecided that the readers watch for (past it the oldest is no longer
# watched: it stays in uncertain_publishes), and the entries appended while any is watched that
# are told apart from them by id (past it none is watched any more).
MAX_UNDECIDED_WATCHED = 100
MAX_APPENDED_WHILE_WATCHING = 100_000

# How often an undecided append is logged at most (the health counts every one).
UNDECIDED_LOG_INTERVAL = 5.0

_WORDS = Words("Redis", "RedisStreamsAdapter", "message", "redis stream", "append", "appended")


@dataclass(slots=True)
class StreamsHealth(RedisHealth):
    """:class:`~aiosio.adapters.redis.RedisHealth` (the pub/sub side and the totals) and the
    streams: ``offsets`` (the id of the last entry read, per stream), ``lag_seconds`` (how old
    the last entry was when it was read), ``trimmed_unread`` (entries trimmed before this server
    read them: raise ``max_len``), ``appended`` (entries added), ``uncertain_publishes``
    (messages given up after an ``XADD`` that was sent and never answered and that no read-back
    found: each is either in the stream, delivered late by the other servers, or lost; not in
    ``dropped_publishes``), ``uncertain_found`` (of those, the ones this server's reader later
    found in the stream: applied after all), ``readers_connected`` (readers
    whose last read went through), ``stalled_reads`` and ``stalled_seconds`` (reads that came
    back more than a second past their BLOCK time, or never: a stalled link or Redis, and the
    time they were held up), and, in :meth:`as_dict`, ``read_overdue_seconds`` (how far past its
    BLOCK time the most late read in flight is now: non-zero during a stall)."""

    offsets: dict[str, str] = field(default_factory=dict)
    lag_seconds: float | None = None
    trimmed_unread: int = 0
    appended: int = 0
    uncertain_publishes: int = 0
    uncertain_found: int = 0
    readers_connected: int = 0
    stalled_reads: int = 0
    stalled_seconds: float = 0.0
    # Per stream, when its read in flight was sent (time.monotonic()), and its BLOCK time.
    reads_in_flight: dict[str, float] = field(default_factory=dict)
    block_seconds: float = 0.0

    def read_overdue_seconds(self, now: float | None = None) -> float:
        """How far past its BLOCK time the latest read in flight is (0: none is late)."""
        now = time.monotonic() if now is None else now
        oldest = min(self.reads_in_flight.values(), default=now)
        return max(now - oldest - self.block_seconds, 0.0)

    def as_dict(self) -> dict[str, Any]:
        values = RedisHealth.as_dict(self)
        values.update(
            offsets=dict(self.offsets),
            lag_seconds=None if self.lag_seconds is None else round(self.lag_seconds, 3),
            trimmed_unread=self.trimmed_unread,
            appended=self.appended,
            uncertain_publishes=self.uncertain_publishes,
            uncertain_found=self.uncertain_found,
            readers_connected=self.readers_connected,
            stalled_reads=self.stalled_reads,
            stalled_seconds=round(self.stalled_seconds, 3),
            read_overdue_seconds=round(self.read_overdue_seconds(), 3),
        )
        return values


def entry_ms(entry_id: str) -> int:
    """The time part of a stream entry id (``<ms>-<seq>``)."""
    return int(entry_id.partition("-")[0])


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as the order Redis gives them."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _maybe_sent(exc: BaseException) -> bool:
    """Whether a failed attempt may have reached Redis: not when no connection could be had
    (redis-py says ``Error 111 connecting to ...``, ``Timeout connecting to server``); any other
    lost connection or timeout may have come after the command left."""
    return "connecting to" not in str(exc)


class StreamsLink:
    """The Redis connections of one server on Redis Streams, shared by its namespaces.

    ``client`` is a ``redis.asyncio.Redis`` (its pool gives each blocked reader its own
    connection); ``pubsub`` the link that carries what is not in a stream."""

    def __init__(
        self,
        client: Any,
        pubsub: RedisLink,
        *,
        streams: list[str],
        max_len: int,
        read_count: int,
        block_ms: int,
        retries: Retries,
    ) -> None:
        self.client = client
        self.pubsub = pubsub
        self.streams_health = StreamsHealth(block_seconds=block_ms / 1000)
        # One health for both sides (the totals add up), typed as the Link interface says.
        self.health: RedisHealth = self.streams_health
        pubsub.health = self.streams_health
        self.streams = list(streams)
        self.max_len = max_len
        self.read_count = read_count
        self.block_ms = block_ms
        # Queued XADDs: (stream, fields, called with the entry id once it is appended).
        self._outbox: Outbox[tuple[str, dict[str, str], Appended]] = Outbox(
            self, _WORDS, logger, retries
        )
        self._retries = retries
        self._handlers: dict[str, EntryHandler] = {}
        self._readers: list[asyncio.Task[None]] = []
        self._started: dict[str, asyncio.Event] = {}
        self._last_added: dict[str, str] = {}
        # Per stream: how many entries were added up to the last one read (its position).
        self._read: dict[str, int] = {}
        # The streams whose reader's last read went through (StreamsHealth.readers_connected).
        self._reading: set[str] = set()
        # Appends given up undecided, watched for by the readers: (stream, the key of the last
        # entry this link had appended when it was sent, its fields as Redis returns them); and
        # the ids of the entries appended since the first of them (those same fields are not it).
        self._undecided: deque[tuple[str, tuple[int, int], dict[bytes, bytes]]] = deque()
        self._appended_while_watching: set[str] = set()
        self._undecided_log = AtMostEvery(UNDECIDED_LOG_INTERVAL)
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def ensure_started(self) -> bool:
        """Start the tasks if an event loop runs (never before: safe to create before a fork)."""
        if self._outbox.task is not None or self._closed:
            return self._outbox.task is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self.pubsub.ensure_started()
        self._outbox.start(loop, self._send, name="aiosio-redis-streams-writer")
        for stream in self.streams:
            self._start_reader(loop, stream)
        return True

    def watch(self, stream: str) -> None:
        """Read ``stream`` too (a namespace's, outside ``streams``: see
        :func:`~aiosio.adapters.redis_streams.stream_of`)."""
        if stream in self.streams:
            return
        self.streams.append(stream)
        if self._outbox.task is not None:
            self._start_reader(asyncio.get_running_loop(), stream)

    def _start_reader(self, loop: asyncio.AbstractEventLoop, stream: str) -> None:
        self._started[stream] = asyncio.Event()
        self._readers.append(
            loop.create_task(self._read_stream(stream), name=f"aiosio-redis-streams-{stream}")
        )

    async def ready(self, timeout: float = 5.0) -> bool:
        """Wait until the subscriptions are active and every reader knows where it starts;
        False when Redis is not reachable within ``timeout`` seconds."""
        self.ensure_started()
        deadline = time.monotonic() + timeout
        if not await self.pubsub.ready(timeout):
            return False
        for event in self._started.values():
            left = deadline - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(left, 0.0)):
                    await event.wait()
            if not event.is_set():
                return False
        return True

    async def close(self) -> None:
        """Stop. What is queued is appended first, for at most ``retry_timeout`` seconds (one
        at least); what is left then is counted as dropped and logged."""
        self._closed = True
        await self._outbox.close()
        for task in self._readers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pubsub.close()

    # -- the Link interface, for what travels on pub/sub ----------------------------------------

    def subscribe(self, channel: str, handler: Handler) -> None:
        self.pubsub.subscribe(channel, handler)

    def psubscribe(self, pattern: str, handler: Handler) -> None:
        self.pubsub.psubscribe(pattern, handler)

    def ssubscribe(self, channel: str, handler: Handler) -> None:
        self.pubsub.ssubscribe(channel, handler)

    def sunsubscribe(self, channel: str) -> None:
        self.pubsub.sunsubscribe(channel)

    def publish(
        self, channel: str, data: bytes, *, sharded: bool = False, audience: str | None = None
    ) -> None:
        self.pubsub.publish(channel, data, sharded=sharded, audience=audience)

    async def numsub(self, channel: str, *, sharded: bool = False) -> int:
        return await self.pubsub.numsub(channel, sharded=sharded)

    # -- reading --------------------------------------------------------------------------------

    def on_entries(self, nsp: str, handler: EntryHandler) -> None:
        """Call ``handler`` with each entry of namespace ``nsp`` read from the streams."""
        self._handlers[nsp] = handler

    def off_entries(self, nsp: str) -> None:
        self._handlers.pop(nsp, None)

    async def _read_stream(self, stream: str) -> None:
        offset: str | None = None
        delay = self._retries.backoff_min
        lost_at: float | None = None
        while not self._closed:
            try:
                if offset is None:
                    offset = await self._start(stream)
                    self.streams_health.offsets[stream] = offset
                    self._started[stream].set()
                elif lost_at is not None:
                    await self._check_gap(stream, offset)
                if lost_at is not None:
                    self._reader_back(stream, lost_at)
                    lost_at = None
                    delay = self._retries.backoff_min
                offset = await self._read_once(stream, offset)
                self._reading.add(stream)
                self.streams_health.readers_connected = len(self._reading)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: read again later
                self._reading.discard(stream)
                self.streams_health.readers_connected = len(self._reading)
                if lost_at is None:
                    lost_at = time.time()
                    self._reader_lost(stream, exc, offset)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retries.backoff_max)

    async def _info(self, stream: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = await self.client.xinfo_stream(stream)
        except Exception as exc:
            if "no such key" in str(exc).lower():
                return None  # no stream yet (or Redis restarted empty)
            raise
        return info

    async def _start(self, stream: str) -> str:
        """Where reading starts: the last id the stream generated (``0-0`` when there is no
        stream); and how many entries were added up to it."""
        info = await self._info(stream)
        if info is None:
            self._read[stream] = 0
            return "0-0"
        self._read[stream] = int(info.get("entries-added") or 0)
        return _text(info.get("last-generated-id") or "0-0")

    async def _read_once(self, stream: str, offset: str) -> str:
        # A read that does not come back within its BLOCK time and 5 s is a stalled or
        # half-open connection: the timeout drops that connection, and the read starts again.
        health = self.streams_health
        sent = health.reads_in_flight[stream] = time.monotonic()
        try:
            async with asyncio.timeout(self.block_ms / 1000 + 5.0):
                response = await self.client.xread(
                    {stream: offset}, count=self.read_count, block=self.block_ms
                )
        finally:
            del health.reads_in_flight[stream]
            held = time.monotonic() - sent - self.block_ms / 1000
            if held > STALL_MARGIN:
                health.stalled_reads += 1
                health.stalled_seconds += held
        if not response:
            return offset
        entries = response[0][1]
        self._read[stream] = self._read.get(stream, 0) + len(entries)
        last_before = offset
        now_ms = time.time() * 1000
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            offset = entry_id
            self.streams_health.offsets[stream] = entry_id
            self.health.messages_received += 1
            self.health.last_message_at = now_ms / 1000
            self.streams_health.lag_seconds = max(now_ms - entry_ms(entry_id), 0.0) / 1000
            if self._undecided:
                self._found(stream, entry_id, fields)
            nsp = fields.get(b"nsp")
            handler = self._handlers.get(_text(nsp)) if nsp else None
            if handler is None:
                continue
            try:
                handler(fields, entry_id)
            except Exception:
                logger.exception("handling stream entry %s of %s failed", entry_id, stream)
        if len(entries) >= self.read_count:
            await self._check_gap(stream, last_before, [_text(raw_id) for raw_id, _ in entries])
        return offset

    async def _check_gap(self, stream: str, offset: str, batch: list[str] | None = None) -> None:
        """Count and log entries trimmed (``MAXLEN``) before this server read them: those after
        ``offset`` (the last entry read before ``batch``, the ids the last read returned) that
        no read returned. ``XREAD`` returns the first entries after ``offset`` still in the
        stream, so what is missing between ``offset`` and the batch was trimmed unread; the
        batch's own entries are not lost, even those trimmed since they were read (before the
        stream's first entry now)."""
        batch = batch or []
        info = await self._info(stream)
        if info is None:
            return  # no stream (Redis restarted empty): nothing was trimmed
        added = int(info.get("entries-added") or 0)
        removed = added - int(info.get("length") or 0)
        position = self._read.get(stream, 0)
        if added < position:  # a new stream (Redis restarted empty): count from here
            self._read[stream] = removed
            return
        first = info.get("first-entry")
        head = entry_key(_text(first[0])) if first else None
        read_then_trimmed = sum(1 for i in batch if head is None or entry_key(i) < head)
        missed = removed - (position - len(batch)) - read_then_trimmed
        if missed <= 0:
            return
        self._read[stream] = position + missed
        self.streams_health.trimmed_unread += missed
        logger.error(
            "%d entries of redis stream %s after %s were trimmed before this server read them: "
            "the broadcasts among them were not delivered to its clients; raise "
            "RedisStreamsAdapter(max_len=...) (now %d) above what is added while a server is "
            "away or behind",
            missed,
            stream,
            offset,
            self.max_len,
        )

    def _reader_lost(self, stream: str, exc: BaseException, offset: str | None) -> None:
        health = self.health
        health.last_error = f"{type(exc).__name__}: {exc}"
        health.last_error_at = time.time()
        logger.error(
            "reading redis stream %s failed (%s: %s): reading again from %s once Redis answers; "
            "nothing added meanwhile is lost unless the stream is trimmed past it",
            stream,
            type(exc).__name__,
            exc,
            offset or "its last entry",
        )

    def _reader_back(self, stream: str, lost_at: float) -> None:
        logger.warning(
            "reading redis stream %s again after %.1fs, from %s: entries added meanwhile are "
            "delivered now",
            stream,
            time.time() - lost_at,
            self.streams_health.offsets.get(stream),
        )

    # -- appending ------------------------------------------------------------------------------

    def append(self, stream: str, fields: dict[str, str], done: Appended) -> None:
        """Queue an ``XADD``; ``done`` is called in order with the entry id (None: dropped)."""
        self.ensure_started()
        if not self._outbox.put(stream, (stream, fields, done)):
            done(None)

    async def _send(self, message: tuple[str, dict[str, str], Appended], queued_at: float) -> None:
        stream, fields, done = message
        entry_id = await self._append_one(stream, fields, queued_at)
        try:
            done(entry_id)
        except Exception:
            logger.exception("after appending to redis stream %s", stream)

    async def _append_one(
        self, stream: str, fields: dict[str, str], queued_at: float
    ) -> str | None:
        """``XADD`` one entry: retried on a lost connection until ``retry_timeout`` after it
        was queued (the queue waits: order is kept), and not sent again once Redis applied it."""
        uncertain = False  # an attempt may have been applied before its connection broke

        async def attempt(deadline: float) -> str:
            async with asyncio.timeout(attempt_budget(deadline)):
                entry_id = None
                if uncertain:
                    entry_id = await self._appended_already(stream, fields)
                if entry_id is None:
                    raw = await self.client.xadd(
                        stream, fields, maxlen=self.max_len, approximate=True
                    )
                    entry_id = _text(raw)
                return entry_id

        def retry(exc: BaseException) -> bool:
            nonlocal uncertain
            lost = connection_lost(exc) or isinstance(exc, TimeoutError)
            uncertain = uncertain or (lost and _maybe_sent(exc))
            return lost

        after = entry_key(self._last_added.get(stream, "0-0"))

        def undecided(error: str) -> bool:
            if uncertain:
                self._given_up_undecided(stream, after, fields, error)
            return uncertain

        entry_id = await self._outbox.deliver(
            stream, queued_at, attempt, retry, undecided=undecided
        )
        if entry_id is not None:
            self._last_added[stream] = entry_id
            self.streams_health.appended += 1
            if self._undecided:
                self._appended_while_watching.add(entry_id)
                if len(self._appended_while_watching) > MAX_APPENDED_WHILE_WATCHING:
                    self._undecided.clear()  # still counted in uncertain_publishes
                    self._appended_while_watching.clear()
        return entry_id

    def _given_up_undecided(
        self, stream: str, after: tuple[int, int], fields: dict[str, str], error: str
    ) -> None:
        """Count, log and watch for an append given up after an ``XADD`` that may have been
        applied (sent, never answered, not found by a read-back)."""
        health = self.streams_health
        health.uncertain_publishes += 1
        if len(self._undecided) >= MAX_UNDECIDED_WATCHED:
            self._undecided.popleft()
        self._undecided.append((stream, after, {k.encode(): v.encode() for k, v in fields.items()}))
        if self._undecided_log.due():
            logger.error(
                "gave up appending to redis stream %s (%s): Redis never answered an XADD that "
                "was sent, so the message may be in the stream (the other servers then deliver "
                "it late) or lost; %d such messages so far (health.uncertain_publishes, not in "
                "dropped_publishes; those found in the stream later: health.uncertain_found); "
                "check that Redis is reachable (RedisStreamsAdapter's publish_retry_timeout=%ss "
                "bounds how long a message waits for it)",
                stream,
                error,
                health.uncertain_publishes,
                self._outbox.retry_timeout,
            )

    def _found(self, stream: str, entry_id: str, fields: dict[bytes, bytes]) -> None:
        """If entry ``entry_id``, just read, is an append given up undecided, it was applied
        after all: counted in ``uncertain_found`` and logged."""
        if entry_id in self._appended_while_watching:
            return  # appended by this link with an answer: not one given up
        key = entry_key(entry_id)
        for index, (watched, after, wanted) in enumerate(self._undecided):
            if watched == stream and key > after and wanted == fields:
                del self._undecided[index]
                if not self._undecided:
                    self._appended_while_watching.clear()
                self.streams_health.uncertain_found += 1
                logger.warning(
                    "entry %s of redis stream %s is a message this server gave up appending "
                    "(counted in uncertain_publishes): Redis applied it after all, and the other "
                    "servers delivered it, after what was appended meanwhile "
                    "(health.uncertain_found)",
                    entry_id,
                    stream,
                )
                return

    async def _appended_already(self, stream: str, fields: dict[str, str]) -> str | None:
        """The id of the entry an earlier attempt appended, if it was: appends are serial, so
        an entry after the last one this link appended with these exact fields (its sender's
        uid among them) is that attempt's."""
        last = self._last_added.get(stream)
        start = f"({last}" if last is not None else "-"
        wanted = {k.encode(): v.encode() for k, v in fields.items()}
        entries = await self.client.xrange(stream, start, "+", count=10_000)
        for raw_id, entry in entries:
            if entry == wanted:
                return _text(raw_id)
        return None

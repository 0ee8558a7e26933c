"""One Redis connection pair per server: a publisher and a subscriber that does not die quietly.

The subscriber runs in one task that reconnects with bounded, resetting backoff after Redis
restarts, ``CLIENT KILL``, idle timeouts and network stalls, and subscribes again to every channel
and pattern. Publishes go through one ordered, bounded queue drained by one task. A publish that
fails because the connection was lost (``CLIENT KILL``, Redis's idle ``timeout``, a restart) is
retried, in order, until ``retry_timeout`` seconds after it was queued: the client reconnects at
the next command, so a routine reconnection loses nothing. What cannot be published (Redis down
past the deadline, queue full, a command error) is counted and logged, never dropped silently.
The health of both sides is :attr:`RedisLink.health`. Nothing starts before it is first needed
inside a running event loop, so a server can be created before a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Handler", "Link", "RedisHealth", "RedisLink", "connection_lost", "set_within"]

logger = logging.getLogger("aiosio.adapter.redis")

Handler = Callable[[str, bytes], None]


@dataclass(slots=True)
class RedisHealth:
    """What an operator needs to know about the cluster link."""

    connected: bool = False
    reconnects: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    disconnected_since: float | None = None
    outage_seconds: float = 0.0
    messages_received: int = 0
    published: int = 0
    dropped_publishes: int = 0
    dropped_messages: int = 0  # received from Redis and refused (malformed, not allowed)
    retried_publishes: int = 0
    # Deliveries to other servers that Redis reported missing: a broadcast that PUBLISH says
    # reached fewer subscribers than the servers known to be alive (one per server missed).
    missed_deliveries: int = 0
    queued_publishes: int = 0
    last_message_at: float | None = None
    subscriptions: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

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


async def set_within(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` is set within ``timeout`` seconds (a link's ``ready``)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()


class Link(Protocol):
    """What the Redis adapter needs of its transport (Redis, or the --workers bus)."""

    health: RedisHealth

    def ensure_started(self) -> bool: ...
    async def ready(self, timeout: float = 5.0) -> bool: ...
    def subscribe(self, channel: str, handler: Handler) -> None: ...
    def psubscribe(self, pattern: str, handler: Handler) -> None: ...
    def ssubscribe(self, channel: str, handler: Handler) -> None: ...
    def sunsubscribe(self, channel: str) -> None: ...
    def publish(
        self, channel: str, data: bytes, *, sharded: bool = False, audience: str | None = None
    ) -> None: ...
    async def numsub(self, channel: str, *, sharded: bool = False) -> int: ...
    async def close(self) -> None: ...


class RedisLink:
    """The Redis connections of one server, shared by its namespaces."""

    def __init__(
        self,
        client: Any,
        *,
        max_queue: int = 10_000,
        retry_timeout: float = 2.0,
        health_check_interval: float = 30.0,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        if max_queue < 1:
            raise ValueError(
                f"max_publish_queue must be at least 1 message, got {max_queue}: it bounds the "
                "broadcasts waiting for Redis"
            )
        if not retry_timeout >= 0:
            raise ValueError(
                f"publish_retry_timeout must be 0 or more seconds, got {retry_timeout}: it bounds "
                "how long a broadcast waits for the Redis connection to come back"
            )
        if not health_check_interval > 0:
            raise ValueError(
                "health_check_interval must be more than 0 seconds, got "
                f"{health_check_interval}: the subscriber PINGs Redis after this long without a "
                "message"
            )
        self.client = client
        self.health = RedisHealth()
        self._idle = health_check_interval
        # The answer to that PING is awaited this long; the subscriber polls at this pace.
        self._answer = min(5.0, health_check_interval / 4)
        self._channels: dict[str, Handler] = {}
        self._patterns: dict[str, Handler] = {}
        self._shard_channels: dict[str, Handler] = {}
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[tuple[str, bytes, bool, str | None, float]] | None = None
        # audience channel -> (servers known to be alive, when that was last counted)
        self._alive: dict[str, tuple[int, float]] = {}
        self._connected_at = 0.0
        self._missed_logged_at = 0.0
        self._max_queue = max_queue
        self._retry_timeout = retry_timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._ready: asyncio.Event | None = None
        self._closed = False
        self._sync_lock = asyncio.Lock()
        self._active: dict[str, set[str]] = {
            "subscribe": set(),
            "psubscribe": set(),
            "ssubscribe": set(),
        }
        self._dropped_logged_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------------

    def ensure_started(self) -> bool:
        """Start the tasks if an event loop runs (never before: safe to create before a fork)."""
        if self._listener is not None or self._closed:
            return self._listener is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._ready = asyncio.Event()
        self._queue = asyncio.Queue(self._max_queue)
        self._listener = loop.create_task(self._listen(), name="aiosio-redis-listener")
        self._sender = loop.create_task(self._send(), name="aiosio-redis-publisher")
        return True

    async def ready(self, timeout: float = 5.0) -> bool:
        """Wait until the subscriptions are active; False when Redis is not reachable."""
        self.ensure_started()
        assert self._ready is not None
        return await set_within(self._ready, timeout)

    async def close(self) -> None:
        """Stop. What is queued is published first, for at most ``retry_timeout`` seconds (one
        at least); what is left then is counted as dropped and logged."""
        self._closed = True
        queue, sender = self._queue, self._sender
        if queue is not None and sender is not None and not sender.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self._retry_timeout, 1.0)):
                    await queue.join()
            left = queue.qsize()
            if left:
                self.health.dropped_publishes += left
                logger.error(
                    "closing the redis link with %d messages not published within %ss: other "
                    "servers do not see them; check that Redis is reachable",
                    left,
                    max(self._retry_timeout, 1.0),
                )
        for task in (self._listener, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()

    def _is_closed(self) -> bool:
        return self._closed

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._channels[channel] = handler
        self._apply("subscribe", channel)

    def psubscribe(self, pattern: str, handler: Handler) -> None:
        self._patterns[pattern] = handler
        self._apply("psubscribe", pattern)

    def ssubscribe(self, channel: str, handler: Handler) -> None:
        self._shard_channels[channel] = handler
        self._apply("ssubscribe", channel)

    def sunsubscribe(self, channel: str) -> None:
        if self._shard_channels.pop(channel, None) is not None:
            self._apply("sunsubscribe", channel)

    def _apply(self, op: str, name: str) -> None:
        self.health.subscriptions = (
            len(self._channels) + len(self._patterns) + len(self._shard_channels)
        )
        if self._pubsub is None:
            return  # done on (re)connection
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._sync(self._pubsub))

    async def _sync(self, pubsub: Any, *, strict: bool = False) -> None:
        """Make the subscriptions of ``pubsub`` what the registry says (one at a time, so a
        channel added while the link (re)subscribes is not lost). ``strict``: a failure is
        raised (the listener reconnects) rather than logged."""
        async with self._sync_lock:
            if pubsub is not self._pubsub:
                return
            try:
                for kind, wanted in (
                    ("subscribe", set(self._channels)),
                    ("psubscribe", set(self._patterns)),
                    ("ssubscribe", set(self._shard_channels)),
                ):
                    active = self._active[kind]
                    added, removed = wanted - active, active - wanted
                    if added:
                        await getattr(pubsub, kind)(*sorted(added))
                    if removed:
                        await getattr(
                            pubsub, "un" + kind if kind != "ssubscribe" else "sunsubscribe"
                        )(*sorted(removed))
                    self._active[kind] = wanted
            except Exception as exc:
                if strict:
                    raise
                logger.warning("redis subscription update failed: %s", exc)

    async def _listen(self) -> None:
        delay = self._backoff_min
        while not self._closed:
            started = time.monotonic()
            try:
                self._pubsub = pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                self._active = {"subscribe": set(), "psubscribe": set(), "ssubscribe": set()}
                await self._sync(pubsub, strict=True)
                self._on_connected()
                assert self._ready is not None
                self._ready.set()
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: reconnect
                self._on_lost(exc)
            finally:
                pubsub, self._pubsub = self._pubsub, None
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            if self._is_closed():
                return
            if time.monotonic() - started > 10 * self._backoff_max:
                delay = self._backoff_min  # it had been up for a while: start over
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _read(self, pubsub: Any) -> None:
        idle, answer = self._idle, self._answer
        last = heard = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=answer)
            now = time.monotonic()
            if message is not None:
                last, heard, pinged = now, now, False
                self._dispatch(message)
                continue
            if now - last < idle:
                continue  # an ignored subscribe confirmation, or a short quiet spell
            if pinged:
                raise Stalled(
                    f"no answer to PING on the subscriber connection within {answer:g}s after "
                    f"{idle:g}s without a message (health_check_interval): a stalled or "
                    "half-open connection",
                    since=time.time() - (now - heard),
                )
            # Idle for health_check_interval: PING on the subscriber's own connection (detects
            # half-open links and stalls); the pong arrives as a message.
            await pubsub.ping()
            pinged = True
            last = now - idle + answer

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        data = message.get("data")
        channel = message.get("channel")
        if not isinstance(data, bytes) or channel is None:
            return
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        handler: Handler | None
        if kind == "pmessage":
            pattern = message.get("pattern")
            key = pattern.decode() if isinstance(pattern, bytes) else str(pattern)
            handler = self._patterns.get(key)
        elif kind == "smessage":
            handler = self._shard_channels.get(name)
        else:
            handler = self._channels.get(name)
        if handler is None:
            return
        self.health.messages_received += 1
        self.health.last_message_at = time.time()
        try:
            handler(name, data)
        except Exception:
            logger.exception("handling a message on %s failed", name)

    def _on_connected(self) -> None:
        health = self.health
        if health.disconnected_since is not None:
            health.reconnects += 1
            outage = time.time() - health.disconnected_since
            health.outage_seconds += outage
            logger.warning(
                "redis subscription restored after %.1fs (reconnect #%d): messages published by "
                "other servers during the outage were not received (the publishers count in "
                "missed_deliveries those published while this server was resubscribing, not "
                "those Redis sent into a stalled connection: it counted them as delivered)",
                outage,
                health.reconnects,
            )
            health.disconnected_since = None
        health.connected = True
        self._connected_at = time.monotonic()

    def _on_lost(self, exc: BaseException) -> None:
        health = self.health
        if health.connected or health.disconnected_since is None:
            # A stalled link was deaf from the last thing it heard: the outage starts there
            # (what Redis sent it since is lost, and PUBLISH counted it as delivered).
            since = exc.since if isinstance(exc, Stalled) else time.time()
            health.disconnected_since = health.disconnected_since or since
            logger.error(
                "redis subscription lost (%s: %s): reconnecting; broadcasts from other servers "
                "are missed until it is back",
                type(exc).__name__,
                exc,
            )
        health.connected = False
        health.last_error = f"{type(exc).__name__}: {exc}"
        health.last_error_at = time.time()

    # -- publishing -----------------------------------------------------------------------------

    def publish(
        self, channel: str, data: bytes, *, sharded: bool = False, audience: str | None = None
    ) -> None:
        """Queue a message; published in order by one task. ``audience``: a channel every
        server of the namespace subscribes to (this one included) when every one of them
        should receive the message: what ``PUBLISH`` answers is then compared with the servers
        known to be alive, and a shortfall counted in ``health.missed_deliveries`` and logged."""
        if not self.ensure_started():
            self._drop(channel, "no event loop is running")
            return
        assert self._queue is not None
        try:
            self._queue.put_nowait((channel, data, sharded, audience, time.monotonic()))
        except asyncio.QueueFull:
            self._drop(
                channel,
                f"max_publish_queue={self._max_queue} messages wait already for Redis",
            )
            return
        self.health.queued_publishes = self._queue.qsize()

    async def _send(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            channel, data, sharded, audience, queued_at = await queue.get()
            try:
                receivers = await self._publish_one(channel, data, sharded, queued_at)
                if receivers is not None and audience is not None:
                    await self._count_receivers(channel, audience, sharded, receivers)
            finally:
                queue.task_done()
            self.health.queued_publishes = queue.qsize()

    async def _publish_one(
        self, channel: str, data: bytes, sharded: bool, queued_at: float
    ) -> int | None:
        """Publish one message; on a lost connection try again (the client reconnects) until
        ``retry_timeout`` after it was queued. The queue waits meanwhile: order is kept."""
        deadline = queued_at + self._retry_timeout
        attempts = 0
        delay = 0.0
        first_error: str | None = None
        while True:
            attempts += 1
            # No attempt waits forever on a stalled connection; one that times out is not
            # retried (it may have been published: no duplicate).
            budget = max(deadline - time.monotonic(), 1.0)
            try:
                async with asyncio.timeout(budget):
                    if sharded:
                        receivers = await self.client.spublish(channel, data)
                    else:
                        receivers = await self.client.publish(channel, data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried, or counted and reported
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.health.last_error = error
                first_error = first_error or error
                left = deadline - time.monotonic()
                if isinstance(exc, TimeoutError):
                    left = 0.0  # the attempt's own deadline: not retried
                if not connection_lost(exc) or left <= 0:
                    if attempts > 1:
                        error += f" after {attempts} attempts over {self._retry_timeout}s"
                    self._drop(channel, error)
                    return None
                await asyncio.sleep(min(delay, left))
                delay = min(max(delay * 2, self._backoff_min), self._backoff_max)
                continue
            self.health.published += 1
            if attempts > 1:
                self.health.retried_publishes += 1
                logger.info(
                    "published to redis channel %s at attempt %d, %.2fs after it was queued: the "
                    "publisher connection had been lost (%s) and was reopened; nothing was lost",
                    channel,
                    attempts,
                    time.monotonic() - queued_at,
                    first_error,
                )
            return int(receivers) if isinstance(receivers, int) else None

    async def _count_receivers(
        self, channel: str, audience: str, sharded: bool, receivers: int
    ) -> None:
        """Compare what PUBLISH answered with the servers known to be alive; count and log a
        shortfall (pub/sub keeps nothing: a server that is resubscribing after a Redis restart
        or a network cut misses the message for good).

        The servers known to be alive are the most ever seen (through NUMSUB and PUBLISH's
        answers); they are counted again with NUMSUB every ``health_check_interval`` seconds,
        and only once this server's own subscriber has been up that long, so that a server
        still resubscribing is not mistaken for one that left (its reconnection backoff is at
        most 5 s). This server's own subscriber is among them: while it is down, one less
        receiver is expected."""
        now = time.monotonic()
        known = self._alive.get(audience)
        stable = self.health.connected and now - self._connected_at >= self._idle
        if known is None or (stable and now - known[1] >= self._idle):
            counted = await self.numsub(audience, sharded=sharded)
            known = (counted, now)
        alive = max(known[0], receivers)
        self._alive[audience] = (alive, known[1])
        expected = alive if self.health.connected else alive - 1
        missed = expected - receivers
        if missed <= 0:
            return
        self.health.missed_deliveries += missed
        if now - self._missed_logged_at > 5.0:
            self._missed_logged_at = now
            logger.error(
                "a message on redis channel %s reached %d subscriber(s) of the %d server(s) "
                "known to be alive: %d server(s) missed it, probably resubscribing after a "
                "Redis restart or a network cut (redis pub/sub keeps nothing); %d deliveries "
                "missed so far (health.missed_deliveries); a server that left is counted "
                "until the next count, health_check_interval=%ss",
                channel,
                receivers,
                alive,
                missed,
                self.health.missed_deliveries,
                self._idle,
            )

    def _drop(self, channel: str, why: str) -> None:
        self.health.dropped_publishes += 1
        now = time.monotonic()
        if now - self._dropped_logged_at > 5.0:
            self._dropped_logged_at = now
            logger.error(
                "could not publish to redis channel %s (%s): %d messages lost so far; other "
                "servers do not see them; check that Redis is reachable (RedisAdapter's "
                "publish_retry_timeout=%ss and max_publish_queue=%d bound how long and how many "
                "broadcasts wait for it)",
                channel,
                why,
                self.health.dropped_publishes,
                self._retry_timeout,
                self._max_queue,
            )

    async def numsub(self, channel: str, *, sharded: bool = False) -> int:
        """Subscribers of a channel (the server count of a namespace)."""
        try:
            if sharded:
                result = await self.client.pubsub_shardnumsub(channel)
            else:
                result = await self.client.pubsub_numsub(channel)
        except Exception as exc:  # noqa: BLE001 - no cluster view: this server alone
            logger.warning("redis PUBSUB NUMSUB %s failed: %s", channel, exc)
            return 1
        if not result:
            return 0
        return int(result[0][1])


class Stalled(ConnectionError):
    """The subscriber connection stopped answering: ``since`` (``time.time()``) is when it was
    last heard from, where the outage began."""

    def __init__(self, message: str, *, since: float) -> None:
        super().__init__(message)
        self.since = since


def connection_lost(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the connection failed (worth a retry on a new one) rather than the
    command: OS errors, and the redis client's ``ConnectionError`` and ``TimeoutError`` (which
    do not derive from the builtins; matched by name so this module needs no redis import)."""
    if exc is None:
        return False
    if isinstance(exc, OSError):
        return True
    return any(cls.__name__ in ("ConnectionError", "TimeoutError") for cls in type(exc).__mro__)

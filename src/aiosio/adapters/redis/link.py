"""One Redis connection pair per server: a publisher and a subscriber that does not die quietly.

The subscriber runs in one task that reconnects with bounded, resetting backoff after Redis
restarts, ``CLIENT KILL``, idle timeouts and network stalls, and subscribes again to every channel
and pattern; before it does, it closes its previous subscriber connection if Redis still has it
(``CLIENT KILL ID``: a stalled one that Redis cannot tell is dead), so that Redis counts one
subscriber per server. Publishes go through one ordered, bounded queue drained by one task. A
publish that fails because the connection was lost (``CLIENT KILL``, Redis's idle ``timeout``, a
restart) is retried, in order, until ``retry_timeout`` seconds after it was queued: the client
reconnects at the next command, so a routine reconnection loses nothing. What cannot be published
(Redis down past the deadline, queue full, a command error) is counted and logged, never dropped
silently. The health of both sides is :attr:`RedisLink.health`. Nothing starts before it is first
needed inside a running event loop, so a server can be created before a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

from aiosio._once import AtMostEvery
from aiosio.adapters.health import Backoff
from aiosio.adapters.health import LinkHealth
from aiosio.adapters.outbox import Outbox
from aiosio.adapters.outbox import Retries
from aiosio.adapters.outbox import Words
from aiosio.adapters.outbox import attempt_budget

__all__ = ["Handler", "Link", "RedisHealth", "RedisLink", "connection_lost", "set_within"]

logger = logging.getLogger("aiosio.adapter.redis")

Handler = Callable[[str, bytes], None]


@dataclass(slots=True)
class RedisHealth(LinkHealth):
    """What an operator needs to know about the cluster link (``extra``: what another
    transport adds, the --workers bus's)."""

    extra: dict[str, Any] = field(default_factory=dict)


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
        retries: Retries,
        health_check_interval: float = 30.0,
    ) -> None:
        # Published messages: (channel, data, sharded, audience).
        self._outbox: Outbox[tuple[str, bytes, bool, str | None]] = Outbox(
            self, _WORDS, logger, retries
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
        # audience channel -> (servers known to be alive, when that was last counted)
        self._alive: dict[str, tuple[int, float]] = {}
        self._connected_at = 0.0
        self._missed_log = AtMostEvery(5.0)
        # The subscriber connection as Redis knows it: (its run_id, the client id) (None: not
        # known); and whether Redis refused to say or to close one (said once).
        self._subscriber: tuple[str, int] | None = None
        self._take_over_refused = False
        self._retries = retries
        self._ready: asyncio.Event | None = None
        self._closed = False
        self._sync_lock = asyncio.Lock()
        self._active: dict[str, set[str]] = {
            "subscribe": set(),
            "psubscribe": set(),
            "ssubscribe": set(),
        }

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
        self._listener = loop.create_task(self._listen(), name="aiosio-redis-listener")
        self._outbox.start(loop, self._send, name="aiosio-redis-publisher")
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
        await self._outbox.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
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
        backoff = Backoff(self._retries.backoff_min, self._retries.backoff_max)
        while not self._closed:
            started = time.monotonic()
            try:
                self._pubsub = pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                await self._take_over(pubsub)
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
            await backoff.wait(started)

    async def _take_over(self, pubsub: Any) -> None:
        """On the new subscriber connection, before it subscribes: learn its client id, and
        close the previous subscriber connection if Redis still has it.

        A subscriber connection replaced because it stalled (no answer to PING: a middlebox
        that forwards nothing, a half-open link) was closed on this side only: Redis cannot
        tell, keeps it subscribed until TCP keepalive or the pub/sub output buffer limit ends
        it (minutes), and counts it in ``PUBSUB NUMSUB`` and in what ``PUBLISH`` answers. Beside
        the new subscription it was taken for one more server: a message this server missed
        while resubscribing was counted as delivered to it, and once it died, every publish
        counted one missed delivery until the publishers counted the servers again. Closed
        here, this server is counted once, and while it resubscribes, not at all."""
        await pubsub.connect()
        connection = pubsub.connection
        try:
            # Client ids are unique within one run of Redis only: after a restart (another
            # run_id) the old id may be another client's, and the old connection is gone anyway.
            await connection.send_command("INFO", "server")
            run_id = _run_id(await connection.read_response())
            stale = self._subscriber  # kept until Redis answers: a lost connection tries again
            if stale is not None and run_id and stale[0] == run_id:
                await connection.send_command("CLIENT", "KILL", "ID", str(stale[1]))
                if await connection.read_response():
                    logger.warning(
                        "closed this server's previous redis subscriber connection (client id "
                        "%d), which Redis still had: stalled or half-open, it counted as a "
                        "subscriber that receives nothing",
                        stale[1],
                    )
            self._subscriber = None
            await connection.send_command("CLIENT", "ID")
            self._subscriber = (run_id, int(await connection.read_response()))
        except Exception as exc:
            if connection_lost(exc):
                raise
            self._subscriber = None
            if not self._take_over_refused:
                self._take_over_refused = True
                logger.warning(
                    "redis refused INFO, CLIENT ID or CLIENT KILL on the subscriber connection "
                    "(%s): a stalled subscriber connection this server replaces stays "
                    "subscribed until Redis drops it, and the publishers' missed_deliveries may "
                    "be off by it meanwhile (see docs/deployment.md); allow INFO, CLIENT ID and "
                    "CLIENT KILL to the adapter's Redis user to avoid it",
                    exc,
                )

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
        self.health.received()
        try:
            handler(name, data)
        except Exception:
            logger.exception("handling a message on %s failed", name)

    def _on_connected(self) -> None:
        outage = self.health.up()
        if outage is not None:
            logger.warning(
                "redis subscription restored after %.1fs (reconnect #%d): messages published by "
                "other servers during the outage were not received (the publishers count in "
                "missed_deliveries those published while this server was resubscribing, not "
                "those Redis sent into a stalled connection: it counted them as delivered)",
                outage,
                self.health.reconnects,
            )
        self._connected_at = time.monotonic()

    def _on_lost(self, exc: BaseException) -> None:
        # A stalled link was deaf from the last thing it heard: the outage starts there (what
        # Redis sent it since is lost, and PUBLISH counted it as delivered).
        if self.health.down(exc, since=exc.since if isinstance(exc, Stalled) else None):
            logger.error(
                "redis subscription lost (%s: %s): reconnecting; broadcasts from other servers "
                "are missed until it is back",
                type(exc).__name__,
                exc,
            )

    # -- publishing -----------------------------------------------------------------------------

    def publish(
        self, channel: str, data: bytes, *, sharded: bool = False, audience: str | None = None
    ) -> None:
        """Queue a message; published in order by one task. ``audience``: a channel every
        server of the namespace subscribes to (this one included) when every one of them
        should receive the message: what ``PUBLISH`` answers is then compared with the servers
        known to be alive, and a shortfall counted in ``health.missed_deliveries`` and logged."""
        self.ensure_started()
        self._outbox.put(channel, (channel, data, sharded, audience))

    async def _send(self, message: tuple[str, bytes, bool, str | None], queued_at: float) -> None:
        channel, data, sharded, audience = message
        receivers = await self._publish_one(channel, data, sharded, queued_at)
        if receivers is not None and audience is not None:
            await self._count_receivers(channel, audience, sharded, receivers)

    async def _publish_one(
        self, channel: str, data: bytes, sharded: bool, queued_at: float
    ) -> int | None:
        """Publish one message; on a lost connection try again (the client reconnects) until
        ``retry_timeout`` after it was queued. An attempt that times out is not retried (it may
        have been published: no duplicate)."""

        async def attempt(deadline: float) -> Any:
            async with asyncio.timeout(attempt_budget(deadline)):
                if sharded:
                    return await self.client.spublish(channel, data)
                return await self.client.publish(channel, data)

        receivers = await self._outbox.deliver(channel, queued_at, attempt, _worth_a_retry)
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
        if self._missed_log.due():
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


_WORDS = Words("Redis", "RedisAdapter", "broadcast", "redis channel", "publish", "published")


def _worth_a_retry(exc: BaseException) -> bool:
    """A lost connection (the client reconnects at the next command), not a timed-out attempt."""
    return connection_lost(exc) and not isinstance(exc, TimeoutError)


def _run_id(info: Any) -> str:
    """The ``run_id`` in what ``INFO server`` answers (empty when it is not there)."""
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line[len("run_id:") :].strip()
    return ""


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

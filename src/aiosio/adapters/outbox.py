"""What waits for the broker: the ordered, bounded queue every cluster link sends through.

One task sends the queued messages one at a time, in order. A message whose attempt fails in a
way worth a retry (the connection was lost) is tried again, in order, until ``retry_timeout``
seconds after it was queued: a routine reconnection loses nothing. What cannot be sent (the
broker down past that deadline, the queue full, a command error, no event loop) is counted in
the link's health and logged (at most every 5 s), never dropped silently; so is what is still
queued when the link closes. Each link (Redis pub/sub, Redis Streams, PostgreSQL) says how one
attempt is made, which failures are worth a retry, and how its logs name things
(:class:`Words`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic
from typing import Protocol
from typing import TypeVar

from aiosio._once import AtMostEvery

__all__ = ["Outbox", "PublishHealth", "Retries", "Unsent", "Words", "attempt_budget"]

T = TypeVar("T")
R = TypeVar("R")

# What is dropped is logged at most this often (the count in the health says how many).
DROP_LOG_INTERVAL = 5.0


class PublishHealth(Protocol):
    """The counters of a link's health the outbox keeps."""

    published: int
    dropped_publishes: int
    retried_publishes: int
    queued_publishes: int
    last_error: str | None


class HasHealth(Protocol):
    """A link, whose health may be replaced after the outbox is made (the Redis Streams link
    gives its pub/sub link its own)."""

    @property
    def health(self) -> PublishHealth: ...


@dataclass(frozen=True, slots=True)
class Retries:
    """How a link waits for its broker: at most ``max_queue`` messages wait, each for at most
    ``retry_timeout`` seconds (the adapters' ``max_publish_queue`` and
    ``publish_retry_timeout``); reconnections back off from ``backoff_min`` (doubled) to
    ``backoff_max`` seconds."""

    max_queue: int = 10_000
    retry_timeout: float = 2.0
    backoff_min: float = 0.1
    backoff_max: float = 5.0


@dataclass(frozen=True, slots=True)
class Words:
    """How one link's logs and errors name things, in this order: the ``broker``
    (``"Redis"``), the ``factory`` whose options bound the queue (``"RedisAdapter"``), ``what``
    is queued (``"broadcast"``), the ``target`` of a message (``"redis channel"``), the verb of
    sending as ``send`` (``"publish"``) and ``sent`` (``"published"``)."""

    broker: str
    factory: str
    what: str
    target: str
    send: str
    sent: str


class Unsent(Exception):
    """An attempt that failed before its command was sent (no connection could be had): safe to
    retry. Its message is the error, as the logs and the health show it."""


def attempt_budget(deadline: float) -> float:
    """How long one attempt may take: what is left until ``deadline``, one second at least (no
    attempt waits forever on a stalled connection)."""
    return max(deadline - time.monotonic(), 1.0)


def describe(exc: BaseException) -> str:
    if isinstance(exc, Unsent):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Outbox(Generic[T]):
    """The queue of one link, bounded by ``retries`` (:class:`Retries`); a message's retries back
    off from ``first_delay`` (doubled, at least ``backoff_min``) to ``backoff_max``."""

    def __init__(
        self,
        link: HasHealth,
        words: Words,
        logger: logging.Logger,
        retries: Retries,
        first_delay: float = 0.0,
        /,
    ) -> None:
        max_queue, retry_timeout = retries.max_queue, retries.retry_timeout
        if max_queue < 1:
            raise ValueError(
                f"max_publish_queue must be at least 1 message, got {max_queue}: it bounds the "
                f"{words.what}s waiting for {words.broker}"
            )
        if not retry_timeout >= 0:
            raise ValueError(
                f"publish_retry_timeout must be 0 or more seconds, got {retry_timeout}: it bounds "
                f"how long a {words.what} waits for the {words.broker} connection to come back"
            )
        self.link, self.words, self.log = link, words, logger
        self.max_queue, self.retry_timeout = max_queue, retry_timeout
        self.backoff = (first_delay, retries.backoff_min, retries.backoff_max)
        self.queue: asyncio.Queue[tuple[T, float]] | None = None
        self.task: asyncio.Task[None] | None = None
        self._drop_log = AtMostEvery(DROP_LOG_INTERVAL)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[T, float], Awaitable[None]],
        *,
        name: str,
        first: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Send what is queued with ``send(message, queued_at)``, one at a time (after
        ``first``, when given, returns)."""
        self.queue = asyncio.Queue(self.max_queue)
        self.task = loop.create_task(self._drain(self.queue, send, first), name=name)

    async def _drain(
        self,
        queue: asyncio.Queue[tuple[T, float]],
        send: Callable[[T, float], Awaitable[None]],
        first: Callable[[], Awaitable[object]] | None,
    ) -> None:
        if first is not None:
            await first()
        while True:
            message, queued_at = await queue.get()
            try:
                await send(message, queued_at)
            finally:
                queue.task_done()
            self.link.health.queued_publishes = queue.qsize()

    async def close(self) -> None:
        """What is queued is sent first, for at most ``retry_timeout`` seconds (one at least);
        what is left then is counted as dropped and logged. Then the task stops."""
        queue, task = self.queue, self.task
        if queue is None or task is None:
            return
        if not task.done():
            wait = max(self.retry_timeout, 1.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await queue.join()
            left = queue.qsize()
            if left:
                self.link.health.dropped_publishes += left
                words = self.words
                self.log.error(
                    "closing the %s link with %d messages not %s within %ss: other servers do "
                    "not see them; check that %s is reachable",
                    words.broker,
                    left,
                    words.sent,
                    wait,
                    words.broker,
                )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    # -- queueing -------------------------------------------------------------------------------

    def put(self, target: str, message: T) -> bool:
        """Queue ``message`` (for ``target``, as the logs name it); False when it was dropped
        (the queue is full, or not started: no event loop runs)."""
        queue = self.queue
        if queue is None:
            self.drop(target, "no event loop is running")
            return False
        try:
            queue.put_nowait((message, time.monotonic()))
        except asyncio.QueueFull:
            self.drop(
                target,
                f"max_publish_queue={self.max_queue} messages wait already for {self.words.broker}",
            )
            return False
        self.link.health.queued_publishes = queue.qsize()
        return True

    def drop(self, target: str, why: str) -> None:
        """Count a message that is not sent, and say so (at most every 5 s)."""
        health = self.link.health
        health.dropped_publishes += 1
        if self._drop_log.due():
            words = self.words
            self.log.error(
                "could not %s to %s %s (%s): %d messages lost so far; other servers do not see "
                "them; check that %s is reachable (%s's publish_retry_timeout=%ss and "
                "max_publish_queue=%d bound how long and how many %ss wait for it)",
                words.send,
                words.target,
                target,
                why,
                health.dropped_publishes,
                words.broker,
                words.factory,
                self.retry_timeout,
                self.max_queue,
                words.what,
            )

    # -- sending --------------------------------------------------------------------------------

    async def deliver(
        self,
        target: str,
        queued_at: float,
        attempt: Callable[[float], Awaitable[R]],
        retry: Callable[[BaseException], bool],
        hint: Callable[[BaseException], str] | None = None,
        undecided: Callable[[str], bool] | None = None,
    ) -> R | None:
        """Send one message: ``attempt(deadline)`` until it succeeds, while ``retry`` says a
        failure is worth another attempt and ``retry_timeout`` after ``queued_at`` has not
        passed. The queue waits meanwhile: order is kept. None: given up, and dropped (counted
        and logged, with ``hint(exc)`` after the error) unless ``undecided(error)`` says the
        link counted it otherwise (an attempt may have been applied: not a drop)."""
        deadline = queued_at + self.retry_timeout
        health = self.link.health
        attempts = 0
        delay, backoff_min, backoff_max = self.backoff
        first_error: str | None = None
        while True:
            attempts += 1
            try:
                result = await attempt(deadline)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried, or counted and reported
                error = describe(exc)
                health.last_error = error
                first_error = first_error or error
                left = deadline - time.monotonic()
                if not retry(exc) or left <= 0:
                    if attempts > 1:
                        error += f" after {attempts} attempts over {self.retry_timeout}s"
                    if undecided is None or not undecided(error):
                        self.drop(target, error + (hint(exc) if hint is not None else ""))
                    return None
                await asyncio.sleep(min(delay, left))
                delay = min(max(delay * 2, backoff_min), backoff_max)
                continue
            health.published += 1
            if attempts > 1:
                health.retried_publishes += 1
                self.log.info(
                    "%s to %s %s at attempt %d, %.2fs after it was queued: the publisher "
                    "connection had been lost (%s) and was opened again; nothing was lost",
                    self.words.sent,
                    self.words.target,
                    target,
                    attempts,
                    time.monotonic() - queued_at,
                    first_error,
                )
            return result

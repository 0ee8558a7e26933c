"""The PostgreSQL connections of one server: a listener that does not die quietly, and a publisher
that sends in order through a bounded queue.

* The **listener** connection runs ``LISTEN`` on every namespace's channel and hands each
  notification to its namespace in the order PostgreSQL delivers them (a message stored in the
  attachments table is read on the same connection, and the notifications after it wait for it).
  It reconnects with bounded, jittered backoff after a restart, ``pg_terminate_backend``, a
  network cut; a connection without a notification for ``health_check_interval`` is asked
  ``SELECT 1`` and replaced when no answer comes. ``NOTIFY`` keeps nothing for a listener that is
  away: what other servers publish during an outage is lost, and the link says so (log, health).
* The **publisher** connection sends the queued messages one at a time, in order (each ``NOTIFY``
  is its own transaction: PostgreSQL folds identical notifications of one transaction into one).
  A message whose connection was found lost before it was sent is sent again on a new connection
  until ``retry_timeout`` after it was queued; one whose fate is unknown (the connection broke or
  stalled while the command ran) is not sent again, so nothing arrives twice. What cannot be sent
  is counted and logged, never dropped silently. The same connection deletes the attachments
  older than ``cleanup_interval`` every ``cleanup_interval``, as the reference does.

Nothing starts before it is first needed inside a running event loop (a server can be created
before a fork). ``asyncpg`` is imported when the link is made (not with ``aiosio``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiosio._extras import import_extra
from aiosio._options import require_seconds
from aiosio.adapters.health import Backoff
from aiosio.adapters.health import LinkHealth
from aiosio.adapters.outbox import Outbox
from aiosio.adapters.outbox import Retries
from aiosio.adapters.outbox import Unsent
from aiosio.adapters.outbox import Words
from aiosio.adapters.postgres.messages import Outgoing
from aiosio.adapters.postgres.messages import encode_header
from aiosio.adapters.redis.link import set_within

__all__ = ["Notification", "PostgresHealth", "PostgresLink", "check_table_name"]

logger = logging.getLogger("aiosio.adapter.postgres")

# A notification's channel and payload; an attachment's row arrives as bytes.
Notification = Callable[[str, "str | bytes"], None]

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?")


def check_table_name(name: str) -> str:
    """``name`` when it is a plain (optionally schema-qualified) SQL identifier; the reference
    writes it into its queries as given, so anything else is refused here."""
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        raise ValueError(
            f"table_name must be a table name such as 'socket_io_attachments' or "
            f"'myschema.socket_io_attachments' (letters, digits, _ and $, at most 63 "
            f"characters per part), got {name!r}"
        )
    return name


@dataclass(slots=True)
class PostgresHealth(LinkHealth):
    """What an operator needs to know about the cluster link (the same fields as
    :class:`~aiosio.adapters.redis.RedisHealth`, for the logs and the metrics, plus the
    attachments; ``missed_deliveries`` stays 0: NOTIFY does not say how many listeners got a
    message, and a listener's outage is in ``reconnects`` and ``outage_seconds``)."""

    attachments_published: int = 0
    attachments_received: int = 0
    attachments_deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        values = LinkHealth.as_dict(self)
        values.update(
            attachments_published=self.attachments_published,
            attachments_received=self.attachments_received,
            attachments_deleted=self.attachments_deleted,
        )
        return values


class PostgresLink:
    """The PostgreSQL connections of one server, shared by its namespaces."""

    def __init__(
        self,
        dsn: str | None,
        *,
        connect_options: dict[str, Any] | None = None,
        table_name: str = "socket_io_attachments",
        cleanup_interval: float = 30.0,
        retries: Retries,
        health_check_interval: float = 30.0,
        command_timeout: float = 5.0,
    ) -> None:
        self._outbox: Outbox[Outgoing] = Outbox(self, _WORDS, logger, retries, retries.backoff_min)
        require_seconds(
            health_check_interval=health_check_interval,
            cleanup_interval=cleanup_interval,
            command_timeout=command_timeout,
        )
        self.dsn = dsn
        self.connect_options = dict(connect_options or {})
        self.table_name = check_table_name(table_name)
        self.cleanup_interval = cleanup_interval
        self.health = PostgresHealth()
        self._idle = health_check_interval
        self._command_timeout = command_timeout
        self._retries = retries
        self._channels: dict[str, Notification] = {}
        self._listener_conn: Any = None
        self._publisher_conn: Any = None
        self._publisher_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Event | None = None
        self._inbox: deque[tuple[str, str, str | None]] = deque()
        self.own_uids: set[str] = set()  # this server's adapters: their messages are skipped
        self._reader: asyncio.Task[None] | None = None
        self._on_connected_callbacks: list[Callable[[], None]] = []
        self._closed = False
        # Imported here, not with aiosio: a missing extra is an ImportError at construction.
        self._asyncpg: Any = import_extra("asyncpg", extra="postgres", feature="PostgresAdapter")

    # -- lifecycle --------------------------------------------------------------------------------

    def ensure_started(self) -> bool:
        """Start the tasks if an event loop runs (never before: safe to create before a fork)."""
        if self._tasks or self._closed:
            return bool(self._tasks)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._ready = asyncio.Event()
        self._tasks = [
            loop.create_task(self._listen(), name="aiosio-postgres-listener"),
            loop.create_task(self._clean(), name="aiosio-postgres-cleanup"),
        ]
        # The first messages (the adapters' INITIAL_HEARTBEAT) wait for the listener: the
        # answers they ask for must find it listening.
        first = partial(
            set_within, self._ready, self._retries.retry_timeout + self._command_timeout
        )
        self._outbox.start(loop, self._publish_one, name="aiosio-postgres-publisher", first=first)
        return True

    async def ready(self, timeout: float = 5.0) -> bool:
        """Wait until every channel is listened to; False when PostgreSQL is not reachable."""
        self.ensure_started()
        assert self._ready is not None
        return await set_within(self._ready, timeout)

    def on_connected(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the listener (re)connects (the adapters say hello)."""
        self._on_connected_callbacks.append(callback)

    def off_connected(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._on_connected_callbacks.remove(callback)

    @property
    def connected(self) -> bool:
        """Whether the listener is connected and listening now."""
        return self._listener_conn is not None and self.health.connected

    async def close(self) -> None:
        """Stop. What is queued is sent first, for at most ``retry_timeout`` seconds (one at
        least); what is left then is counted as dropped and logged."""
        if self._closed:
            return
        self._closed = True
        await self._outbox.close()
        for task in [*self._tasks, self._reader]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for conn in (self._listener_conn, self._publisher_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
                with contextlib.suppress(Exception):
                    conn.terminate()
        self._listener_conn = self._publisher_conn = None
        self.health.connected = False

    def _is_closed(self) -> bool:
        return self._closed

    async def _connect(self, role: str) -> Any:
        """A new connection; ``application_name`` (``aiosio``, or the one given in
        ``server_settings``) gets the ``role`` appended, for ``pg_stat_activity``."""
        options = {"timeout": self._command_timeout, **self.connect_options}
        settings = dict(options.get("server_settings") or {})
        settings["application_name"] = f"{settings.get('application_name', 'aiosio')} {role}"
        options["server_settings"] = settings
        return await self._asyncpg.connect(self.dsn, **options)

    # -- listening --------------------------------------------------------------------------------

    def listen(self, channel: str, handler: Notification) -> None:
        """Deliver the notifications of ``channel`` to ``handler`` (from now on, and again after
        each reconnection)."""
        self._channels[channel] = handler
        self.health.subscriptions = len(self._channels)
        conn = self._listener_conn
        if conn is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(self._listen_to(conn, channel))

    def unlisten(self, channel: str) -> None:
        """Stop delivering the notifications of ``channel`` (``UNLISTEN`` when connected)."""
        if self._channels.pop(channel, None) is None:
            return
        self.health.subscriptions = len(self._channels)
        conn = self._listener_conn
        if conn is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(self._unlisten_from(conn, channel))

    async def _unlisten_from(self, conn: Any, channel: str) -> None:
        with contextlib.suppress(Exception):
            await conn.remove_listener(channel, self._on_notification)

    async def _listen_to(self, conn: Any, channel: str) -> None:
        try:
            await conn.add_listener(channel, self._on_notification)
        except Exception as exc:  # noqa: BLE001 - the connection is replaced, then it listens
            logger.warning("LISTEN %r failed: %s; listening again on reconnection", channel, exc)
            with contextlib.suppress(Exception):
                conn.terminate()

    async def _listen(self) -> None:
        backoff = Backoff(self._retries.backoff_min, self._retries.backoff_max, jitter=True)
        while not self._closed:
            started = time.monotonic()
            conn = None
            try:
                conn = await self._connect("listener")
                lost = asyncio.Event()
                conn.add_termination_listener(partial(_set_event, lost))
                for channel in list(self._channels):
                    await conn.add_listener(channel, self._on_notification)
                self._listener_conn = conn
                self._on_connected()
                await self._watch(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: reconnect
                self._on_lost(exc)
            finally:
                self._listener_conn = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            if self._is_closed():
                return
            await backoff.wait(started)

    async def _watch(self, conn: Any, lost: asyncio.Event) -> None:
        """Return (raise) when the listener connection is lost, or when it stays silent past
        ``health_check_interval`` and does not answer ``SELECT 1`` in time."""
        while True:
            seen = self.health.messages_received
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._idle):
                    await lost.wait()
            if lost.is_set():
                raise ConnectionError("the listener connection was closed")
            if self.health.messages_received != seen:
                continue
            try:
                await conn.fetchval("SELECT 1", timeout=self._command_timeout)
            except Exception as exc:
                raise ConnectionError(
                    f"no answer to SELECT 1 on the listener connection within "
                    f"{self._command_timeout:g}s after {self._idle:g}s without a notification "
                    f"(health_check_interval): a stalled or half-open connection ({exc})"
                ) from exc

    def _on_notification(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self.health.received()
        attachment = attachment_of(payload)
        if attachment is not None and attachment[1] in self.own_uids:
            return  # this server's own message: not even read from the table
        if self._inbox or attachment is not None:
            # Attachments are read from the table: what follows waits for them (order kept).
            self._inbox.append((channel, payload, attachment and attachment[0]))
            if self._reader is None or self._reader.done():
                self._reader = asyncio.get_running_loop().create_task(self._read_inbox())
            return
        self._deliver(channel, payload)

    def _deliver(self, channel: str, data: str | bytes) -> None:
        handler = self._channels.get(channel)
        if handler is None:
            return
        try:
            handler(channel, data)
        except Exception:
            logger.exception("handling a notification on %s failed", channel)

    async def _read_inbox(self) -> None:
        inbox = self._inbox
        while inbox:
            channel, payload, attachment_id = inbox[0]
            if attachment_id is None:
                self._deliver(channel, payload)
            else:
                row = await self._fetch_attachment(channel, attachment_id)
                if row is not None:
                    self._deliver(channel, row)
            inbox.popleft()

    async def _fetch_attachment(self, channel: str, attachment_id: str) -> bytes | None:
        conn = self._listener_conn
        try:
            if conn is None:
                raise ConnectionError("the listener connection is down")  # noqa: TRY301
            row = await conn.fetchval(
                f"SELECT payload FROM {self.table_name} WHERE id = $1",  # noqa: S608 - checked name
                int(attachment_id),
                timeout=self._command_timeout,
            )
        except Exception as exc:  # noqa: BLE001 - counted and logged
            self.health.dropped_messages += 1
            logger.warning(
                "dropped a message on %s: its attachment %s could not be read from %s (%s: %s)",
                channel,
                attachment_id,
                self.table_name,
                type(exc).__name__,
                exc,
            )
            return None
        if row is None:
            self.health.dropped_messages += 1
            logger.warning(
                "dropped a message on %s: its attachment %s is not in %s (deleted after "
                "cleanup_interval, or written to another table: every server of the cluster "
                "needs the same table_name)",
                channel,
                attachment_id,
                self.table_name,
            )
            return None
        self.health.attachments_received += 1
        return bytes(row)

    def _on_connected(self) -> None:
        outage = self.health.up()
        if outage is not None:
            logger.warning(
                "postgres LISTEN restored after %.1fs (reconnect #%d): messages published by "
                "other servers during the outage were not received (NOTIFY keeps nothing)",
                outage,
                self.health.reconnects,
            )
        assert self._ready is not None
        self._ready.set()
        for callback in self._on_connected_callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a callback on the postgres reconnection failed")

    def _on_lost(self, exc: BaseException) -> None:
        if self.health.down(exc):
            logger.error(
                "postgres LISTEN connection lost (%s: %s): reconnecting; messages from other "
                "servers are missed until it is back",
                type(exc).__name__,
                exc,
            )
        if self._ready is not None:
            self._ready.clear()

    # -- publishing -------------------------------------------------------------------------------

    def publish(self, message: Outgoing) -> None:
        """Queue a message; sent in order by one task."""
        self.ensure_started()
        self._outbox.put(message.channel, message)

    async def _publisher(self) -> Any:
        conn = self._publisher_conn
        if conn is not None and not conn.is_closed():
            return conn
        self._publisher_conn = None
        try:
            conn = await self._connect("publisher")
        except Exception as exc:
            raise Unsent(f"{type(exc).__name__}: {exc}") from exc
        self._publisher_conn = conn
        return conn

    async def _publish_one(self, message: Outgoing, queued_at: float) -> None:
        """Send one message; when the connection cannot be had, try again until
        ``retry_timeout`` after it was queued. The queue waits meanwhile: order is kept. A
        message whose command failed is not sent again (it may have been: at most once)."""

        async def attempt(_deadline: float) -> None:
            async with self._publisher_lock:
                conn = await self._publisher()
                try:
                    await self._notify(conn, message)
                except Exception:
                    self._discard_publisher()
                    raise

        await self._outbox.deliver(
            message.channel,
            queued_at,
            attempt,
            _unsent,
            partial(_hint, table_name=self.table_name),
        )

    async def _notify(self, conn: Any, message: Outgoing) -> None:
        timeout = self._command_timeout
        if message.text is not None:
            await conn.execute("SELECT pg_notify($1, $2)", message.channel, message.text,
                               timeout=timeout)  # fmt: skip
            return
        attachment_id = await conn.fetchval(
            f"INSERT INTO {self.table_name} (payload) VALUES ($1) RETURNING id",  # noqa: S608
            message.attachment,
            timeout=timeout,
        )
        self.health.attachments_published += 1
        header = encode_header(message, str(attachment_id))
        await conn.execute("SELECT pg_notify($1, $2)", message.channel, header, timeout=timeout)

    def _discard_publisher(self) -> None:
        conn, self._publisher_conn = self._publisher_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    # -- the attachments table --------------------------------------------------------------------

    async def _clean(self) -> None:
        """Every ``cleanup_interval``, delete the attachments older than ``cleanup_interval``."""
        interval = self.cleanup_interval
        query = (
            f"DELETE FROM {self.table_name} "  # noqa: S608 - checked name
            f"WHERE created_at < now() - interval '{round(interval * 1000)} milliseconds'"
        )
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._publisher_lock:
                    conn = await self._publisher()
                    status = await conn.execute(query, timeout=self._command_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; tried again next interval
                logger.warning(
                    "deleting the old attachments from %s failed (%s: %s)%s",
                    self.table_name,
                    type(exc).__name__,
                    exc,
                    _hint(exc, self.table_name),
                )
                continue
            with contextlib.suppress(ValueError, IndexError):
                self.health.attachments_deleted += int(str(status).rsplit(" ", 1)[-1])

    async def create_table(self) -> None:
        """``CREATE TABLE IF NOT EXISTS`` the attachments table, as the reference's README."""
        conn = await self._connect("setup")
        try:
            await conn.execute(create_table_sql(self.table_name))
        finally:
            await conn.close()


def create_table_sql(table_name: str) -> str:
    """The attachments table of the reference's README."""
    return (
        f"CREATE TABLE IF NOT EXISTS {check_table_name(table_name)} (\n"
        "    id          bigserial UNIQUE,\n"
        "    created_at  timestamptz DEFAULT NOW(),\n"
        "    payload     bytea\n"
        ")"
    )


_WORDS = Words("PostgreSQL", "PostgresAdapter", "message", "postgres channel", "send", "sent")


def _unsent(exc: BaseException) -> bool:
    """Worth a retry: no connection could be had (a command that failed is not sent again)."""
    return isinstance(exc, Unsent)


def _set_event(event: asyncio.Event, _conn: Any) -> None:
    event.set()


def attachment_of(payload: str) -> tuple[str, str | None] | None:
    """The ``attachmentId`` and ``uid`` of an attachment's header, or None for another message
    (the decoder checks the rest)."""
    if '"attachmentId"' not in payload:
        return None
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    attachment, uid = value.get("attachmentId"), value.get("uid")
    if type(attachment) is int or (isinstance(attachment, str) and attachment.isdigit()):
        return str(attachment), uid if isinstance(uid, str) else None
    return None


def _hint(exc: BaseException, table_name: str) -> str:
    name = type(exc).__name__
    if name == "UndefinedTableError":
        return (
            f"; the attachments table {table_name} does not exist: create it with "
            f"{create_table_sql(table_name)!r} (or await PostgresAdapter.create_table())"
        )
    if name == "InvalidParameterValueError":
        return (
            "; PostgreSQL refused the NOTIFY (payload of 8000 bytes or more, or a channel "
            "name of 64 bytes or more): lower payload_threshold"
        )
    return ""

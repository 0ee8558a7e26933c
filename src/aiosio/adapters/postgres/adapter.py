"""``PostgresAdapter``: scale out over PostgreSQL ``LISTEN``/``NOTIFY``, in one cluster with Node
socket.io servers on ``@socket.io/postgres-adapter`` 0.5 and with ``@socket.io/postgres-emitter``.

The protocol is :mod:`~aiosio.adapters.postgres.messages`' (one channel per namespace, JSON
notifications, msgpack rows of the attachments table for binary and large messages), the
namespace adapter :mod:`~aiosio.adapters.postgres.namespace`'s (a heartbeat between servers), the
connections :mod:`~aiosio.adapters.postgres.link`'s.

The guarantee is at most once, as the reference's: ``NOTIFY`` is not stored for a listener that
is away, so what other servers send while this server's listener is down (a PostgreSQL restart,
a network cut) is lost; the loss is logged and shown in :attr:`PostgresAdapter.health`, never
silent. No message is ever delivered twice. Connection state recovery is not shared across
servers (neither is it in Node).
"""

from __future__ import annotations

from typing import Any

from aiosio._options import require_seconds
from aiosio.adapters.cluster import ClusterAdapterFactory
from aiosio.adapters.outbox import Retries
from aiosio.adapters.postgres.link import PostgresHealth
from aiosio.adapters.postgres.link import PostgresLink
from aiosio.adapters.postgres.namespace import PostgresNamespaceAdapter
from aiosio.adapters.postgres.namespace import channel_of
from aiosio.protocol.socketio import Limits
from aiosio.server.adapter import NamespaceView

__all__ = ["PostgresAdapter"]


class PostgresAdapter(ClusterAdapterFactory[PostgresNamespaceAdapter]):
    """The adapter factory: ``aiosio.Server(adapter=PostgresAdapter("postgresql://..."))``.

    ``dsn`` is what ``asyncpg.connect`` takes (``postgresql://user:password@host:5432/db``);
    ``connect_options`` go to it too (``ssl=``, ``password=``, ``server_settings=``). Two
    connections per server: one listens, one sends.

    The reference's options, with their defaults: ``channel_prefix`` (``"socket.io"``: the channel
    of a namespace is ``<prefix>#<nsp>``), ``table_name`` (``"socket_io_attachments"``, optionally
    schema-qualified; create it with :meth:`create_table` or the reference's SQL),
    ``payload_threshold`` (8000 bytes: a message whose JSON is that long or longer goes through
    the table, since PostgreSQL refuses a ``NOTIFY`` payload of 8000 bytes), ``cleanup_interval``
    (30 s: every server deletes the rows older than that, that often), ``heartbeat_interval``
    (5 s) and ``heartbeat_timeout`` (10 s: a server not heard from for that long is no longer
    counted). Every server of a cluster needs the same prefix and table.

    Bounds of this implementation: ``requests_timeout`` (5 s, the reference's fixed wait of
    ``fetch_sockets`` and ``server_side_emit`` with acks unless the call gives its own);
    ``max_message_size`` (10 MB, a message accepted from another server);
    ``publish_retry_timeout`` (2 s) and ``max_publish_queue`` (10,000) bound how long and how
    many messages wait for PostgreSQL; ``command_timeout`` (5 s) bounds one command;
    ``health_check_interval`` (30 s): a listener without a notification that long is asked
    ``SELECT 1`` and replaced when no answer comes. ``limits`` are the bounds applied to what
    other servers ask this one to deliver, as to what clients send.
    """

    def __init__(
        self,
        dsn: str | None = "postgresql://postgres@127.0.0.1:5432/postgres",
        *,
        channel_prefix: str = "socket.io",
        table_name: str = "socket_io_attachments",
        payload_threshold: int = 8000,
        cleanup_interval: float = 30.0,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 10.0,
        requests_timeout: float = 5.0,
        max_message_size: int = 10_000_000,
        publish_retry_timeout: float = 2.0,
        max_publish_queue: int = 10_000,
        command_timeout: float = 5.0,
        health_check_interval: float = 30.0,
        connect_options: dict[str, Any] | None = None,
        limits: Limits | None = None,
    ) -> None:
        if not 1 <= payload_threshold <= 8000:
            raise ValueError(
                f"payload_threshold must be 1 to 8000 bytes, got {payload_threshold}: PostgreSQL "
                "refuses a NOTIFY payload of 8000 bytes or more; larger messages go through the "
                "attachments table"
            )
        require_seconds(
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            requests_timeout=requests_timeout,
        )
        if heartbeat_timeout <= heartbeat_interval:
            raise ValueError(
                f"heartbeat_timeout ({heartbeat_timeout}s) must be longer than "
                f"heartbeat_interval ({heartbeat_interval}s), or live servers are forgotten "
                "between two heartbeats"
            )
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be at least 1 byte, got {max_message_size}")
        channel_of(channel_prefix, "/")  # a prefix too long for any namespace fails here
        super().__init__(max_message_size=max_message_size, limits=limits)
        self.link: PostgresLink = PostgresLink(
            dsn,
            connect_options=connect_options,
            table_name=table_name,
            cleanup_interval=cleanup_interval,
            retries=Retries(max_publish_queue, publish_retry_timeout),
            health_check_interval=health_check_interval,
            command_timeout=command_timeout,
        )
        self.channel_prefix = channel_prefix
        self.payload_threshold = payload_threshold
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.requests_timeout = requests_timeout

    def _namespace_adapter(self, nsp: NamespaceView) -> PostgresNamespaceAdapter:
        return PostgresNamespaceAdapter(nsp, self)

    @property
    def health(self) -> PostgresHealth:
        """The link's health: ``connected``, ``reconnects``, ``last_error``, ``outage_seconds``,
        ``dropped_publishes``, ``dropped_messages``, the attachments sent, read and deleted."""
        return self.link.health

    async def create_table(self) -> None:
        """Create the attachments table if it does not exist (the reference's schema:
        ``id bigserial UNIQUE, created_at timestamptz DEFAULT NOW(), payload bytea``)."""
        await self.link.create_table()

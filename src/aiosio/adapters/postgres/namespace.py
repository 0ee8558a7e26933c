"""The namespace adapter of ``@socket.io/postgres-adapter``: ``socket.io-adapter``'s
``ClusterAdapterWithHeartbeat`` over PostgreSQL ``LISTEN``/``NOTIFY``.

Each server knows the others by their messages: every message (heartbeats included) marks its
sender alive; a server that said ``ADAPTER_CLOSE``, or was not heard from for
``heartbeat_timeout``, is forgotten. A server sends ``INITIAL_HEARTBEAT`` when its adapter starts
(and here also each time its listener reconnects, so that a server back from an outage learns
the cluster again at once) and the others answer ``HEARTBEAT``; it sends ``HEARTBEAT`` after
``heartbeat_interval`` without a request of its own. The server count is ``1 +`` the servers
known; ``fetch_sockets`` and ``server_side_emit`` with acks wait for an answer from each of them
(a server forgotten meanwhile is no longer waited for) and fail with the number missing
(:class:`~aiosio.FetchSocketsTimeout`, :class:`~aiosio.AckTimeout`), as the reference does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from functools import partial
from typing import Any
from typing import Protocol

from aiosio.adapters.cluster import ClusterMessageAdapter
from aiosio.adapters.cluster import ServerRequest
from aiosio.adapters.postgres.link import PostgresLink
from aiosio.adapters.postgres.messages import EMITTER_UID
from aiosio.adapters.postgres.messages import AdapterClose
from aiosio.adapters.postgres.messages import AttachmentHeader
from aiosio.adapters.postgres.messages import Heartbeat
from aiosio.adapters.postgres.messages import InitialHeartbeat
from aiosio.adapters.postgres.messages import Message
from aiosio.adapters.postgres.messages import decode_attachment
from aiosio.adapters.postgres.messages import decode_notification
from aiosio.adapters.postgres.messages import encode
from aiosio.adapters.redis.sharded_messages import Message as ClusterMessage
from aiosio.protocol.socketio import Limits
from aiosio.server.adapter import NamespaceView

__all__ = ["AdapterSettings", "PostgresNamespaceAdapter", "channel_of"]

# PostgreSQL names (channels included) are at most 63 bytes (NAMEDATALEN - 1).
MAX_CHANNEL_BYTES = 63


class AdapterSettings(Protocol):
    """What a namespace adapter reads of the :class:`~aiosio.adapters.postgres.PostgresAdapter`
    that made it."""

    link: PostgresLink
    channel_prefix: str
    payload_threshold: int
    heartbeat_interval: float
    heartbeat_timeout: float
    requests_timeout: float
    max_message_size: int
    limits: Limits


def channel_of(prefix: str, nsp: str) -> str:
    """The channel of a namespace, ``<prefix>#<nsp>``; raises ValueError past PostgreSQL's
    63 bytes (``pg_notify`` refuses a longer name, ``LISTEN`` cuts it short)."""
    channel = f"{prefix}#{nsp}"
    if len(channel.encode()) > MAX_CHANNEL_BYTES:
        raise ValueError(
            f"the postgres channel of namespace {nsp!r} is {channel!r}, "
            f"{len(channel.encode())} bytes: PostgreSQL channel names are at most "
            f"{MAX_CHANNEL_BYTES} bytes; use a shorter namespace or channel_prefix"
        )
    return channel


class KnownServersRequest(ServerRequest):
    """A request that waits for one answer from each server known when it was sent (the
    reference's ``missingUids``)."""

    def __init__(self, servers: set[str]) -> None:
        super().__init__()
        self.waiting = servers
        self.answered_by: set[str] = set()

    def add(self, uid: str | None, value: Any) -> None:
        if self.done.done():
            return  # every server answered or left: what comes later is not waited for
        self.responses.append(value)
        self._answer(uid)

    def forget(self, uid: str) -> None:
        self._answer(uid, forgotten=True)

    def _answer(self, uid: str | None, *, forgotten: bool = False) -> None:
        if uid is not None and uid in self.waiting:
            self.waiting.discard(uid)
            if not forgotten:
                self.answered_by.add(uid)
        if not self.waiting:
            self._finish()

    @property
    def expected(self) -> int:
        return len(self.waiting) + len(self.answered_by)

    @property
    def answered(self) -> int:
        return len(self.answered_by)

    def shortfall(self) -> str:
        return f"timeout reached: missing {len(self.waiting)} responses"


class PostgresNamespaceAdapter(ClusterMessageAdapter):
    """One namespace of a server on ``@socket.io/postgres-adapter``'s protocol."""

    log = logging.getLogger("aiosio.adapter.postgres")
    factory_name = "PostgresAdapter"

    def __init__(self, nsp: NamespaceView, factory: AdapterSettings) -> None:
        super().__init__(nsp, factory)
        self.factory = factory
        self.link: PostgresLink = factory.link
        self.uid = secrets.token_hex(8)
        self.envelope = {"uid": self.uid, "nsp": nsp.name}
        self.requests_timeout = factory.requests_timeout
        self.channel = channel_of(factory.channel_prefix, nsp.name)
        self.nodes: dict[str, float] = {}  # uid -> loop time of its last message
        self._heartbeat: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self.link.own_uids.add(self.uid)
        self.link.listen(self.channel, self._on_notification)
        self.link.on_connected(self._hello)
        if self.link.connected:
            self._hello()
        else:
            self.link.ensure_started()

    # -- the heartbeat ------------------------------------------------------------------------

    def _hello(self) -> None:
        """The listener is (again) listening: say so, and keep the cluster view fresh."""
        if self._closed:
            return
        self._publish(InitialHeartbeat(**self.envelope))
        if self._sweeper is None:
            self._sweep()

    def _schedule_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.call_later(self.factory.heartbeat_interval, self._beat)

    def _beat(self) -> None:
        self._heartbeat = None
        if not self._closed:
            self._publish(Heartbeat(**self.envelope))

    def _sweep(self) -> None:
        """Every second, forget the servers not heard from for ``heartbeat_timeout``."""
        loop = asyncio.get_running_loop()
        limit = loop.time() - self.factory.heartbeat_timeout
        for uid, seen in list(self.nodes.items()):
            if seen < limit:
                self.log.info(
                    "server %s of namespace %s seems down: nothing from it for %ss "
                    "(heartbeat_timeout)",
                    uid,
                    self.nsp.name,
                    self.factory.heartbeat_timeout,
                )
                self._remove_node(uid)
        self._sweeper = loop.call_later(1.0, self._sweep)

    def _remove_node(self, uid: str) -> None:
        self.nodes.pop(uid, None)
        for request in list(self._requests.values()):
            request.forget(uid)

    # -- sending --------------------------------------------------------------------------------

    def _publish(self, message: Message, *, request: bool = True) -> None:
        """Send ``message``; a request (what the reference sends with ``publish``) puts the next
        heartbeat off by ``heartbeat_interval``."""
        if request:
            with contextlib.suppress(RuntimeError):
                self._schedule_heartbeat()
        outgoing = encode(message, channel=self.channel, threshold=self.factory.payload_threshold)
        self.link.publish(outgoing)

    def _publish_request(self, message: ClusterMessage) -> None:
        self._publish(message)

    def _publish_update(self, message: ClusterMessage) -> None:
        self._publish(message, request=False)

    def _respond(self, to_uid: str, message: ClusterMessage) -> None:
        self._publish(message, request=False)

    # -- receiving ------------------------------------------------------------------------------

    def _ignores(self, message: Any) -> bool:
        return getattr(message, "uid", None) == self.uid

    def _on_notification(self, channel: str, data: str | bytes) -> None:
        if isinstance(data, str):
            decoded = self._receive(
                channel,
                partial(
                    decode_notification,
                    nsp=self.nsp.name,
                    max_size=self.max_size,
                    limits=self.limits,
                    skip_uid=self.uid,
                ),
                data,
            )
        else:
            decoded = self._receive(
                channel,
                partial(
                    decode_attachment, nsp=self.nsp.name, max_size=self.max_size, limits=self.limits
                ),
                data,
            )
        if decoded is None:
            return  # dropped, or this server's own message
        if isinstance(decoded, AttachmentHeader):
            self._dropped()
            self.log.warning(
                "dropped a message on %s: its attachment header names no row (%r)",
                channel,
                decoded.attachment_id,
            )
            return
        self._on_message(decoded)

    def _on_message(self, message: Message) -> None:
        uid = message.uid
        if uid == self.uid:
            return
        if uid and uid != EMITTER_UID:
            self.nodes[uid] = asyncio.get_running_loop().time()
        if isinstance(message, InitialHeartbeat):
            self._publish(Heartbeat(**self.envelope))
        elif isinstance(message, AdapterClose):
            if uid:
                self._remove_node(uid)
        elif not isinstance(message, Heartbeat) and message.nsp == self.nsp.name:
            self._dispatch(message)

    # -- cluster operations ---------------------------------------------------------------------

    async def server_count(self) -> int:
        return 1 + len(self.nodes)

    async def _new_request(self) -> ServerRequest | None:
        """A request waits for every server known (none, and nothing sent, when alone)."""
        return KnownServersRequest(set(self.nodes)) if self.nodes else None

    def _fetch_timeout_hint(self) -> str:
        return "sio.timeout(seconds).fetch_sockets()"

    def _unanswered(self, request: ServerRequest) -> str:
        assert isinstance(request, KnownServersRequest)
        return (
            f"servers {', '.join(sorted(request.waiting))}; a stopped server is no longer "
            f"waited for after heartbeat_timeout={self.factory.heartbeat_timeout:g}s"
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for handle in (self._heartbeat, self._sweeper):
            if handle is not None:
                handle.cancel()
        self._publish(AdapterClose(**self.envelope), request=False)
        self.link.off_connected(self._hello)
        self.link.unlisten(self.channel)
        self.link.own_uids.discard(self.uid)

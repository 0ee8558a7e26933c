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
from collections.abc import Callable, Sequence
from typing import Any, Protocol, assert_never

from aiosio.adapters.postgres.link import PostgresLink
from aiosio.adapters.postgres.messages import (
    EMITTER_UID,
    AdapterClose,
    AttachmentHeader,
    Heartbeat,
    InitialHeartbeat,
    Message,
    decode_attachment,
    decode_notification,
    encode,
)
from aiosio.adapters.redis.messages import (
    DisconnectSockets,
    EventPacket,
    FetchSockets,
    InvalidMessage,
    MessageError,
    NotAnEvent,
    Refused,
    SocketsJoin,
    SocketsLeave,
    UnknownType,
    WireOptions,
    WrongShape,
)
from aiosio.adapters.redis.namespace import AckRequest, socket_details
from aiosio.adapters.redis.sharded_messages import (
    Broadcast,
    BroadcastAck,
    BroadcastClientCount,
    FetchSocketsResponse,
    ServerSideEmit,
    ServerSideEmitResponse,
)
from aiosio.errors import AckTimeout, FetchSocketsTimeout
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.socketio import Limits, Packet, PacketType, check_event
from aiosio.server.adapter import (
    BroadcastOptions,
    InMemoryAdapter,
    NamespaceView,
    Room,
    SocketId,
)
from aiosio.server.remote import RemoteSocket

__all__ = ["AdapterSettings", "PostgresNamespaceAdapter", "channel_of"]

logger = logging.getLogger("aiosio.adapter.postgres")

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


class _Gather:
    """A request that waits for one answer from each server known when it was sent."""

    def __init__(self, missing: set[str], responses: list[Any]) -> None:
        self.missing = missing
        self.answered: set[str] = set()
        self.responses = responses
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def answer(self, uid: str | None, *, forgotten: bool = False) -> None:
        """``uid`` answered (or, ``forgotten``, left the cluster: no longer waited for)."""
        if uid is not None and uid in self.missing:
            self.missing.discard(uid)
            if not forgotten:
                self.answered.add(uid)
        if not self.missing and not self.done.done():
            self.done.set_result(None)


class PostgresNamespaceAdapter(InMemoryAdapter):
    """One namespace of a server on ``@socket.io/postgres-adapter``'s protocol."""

    def __init__(self, nsp: NamespaceView, factory: AdapterSettings) -> None:
        super().__init__(nsp)
        self.factory = factory
        self.link = factory.link
        self.uid = secrets.token_hex(8)
        self.channel = channel_of(factory.channel_prefix, nsp.name)
        self.nodes: dict[str, float] = {}  # uid -> loop time of its last message
        self._gathers: dict[str, _Gather] = {}
        self._acks: dict[str, AckRequest] = {}
        self._heartbeat: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._outgoing_warned: set[str] = set()
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
        self._publish(InitialHeartbeat(uid=self.uid, nsp=self.nsp.name))
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
            self._publish(Heartbeat(uid=self.uid, nsp=self.nsp.name))

    def _sweep(self) -> None:
        """Every second, forget the servers not heard from for ``heartbeat_timeout``."""
        loop = asyncio.get_running_loop()
        limit = loop.time() - self.factory.heartbeat_timeout
        for uid, seen in list(self.nodes.items()):
            if seen < limit:
                logger.info(
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
        for request_id, gather in list(self._gathers.items()):
            if uid in gather.missing:
                gather.answer(uid, forgotten=True)
                if gather.done.done():
                    self._gathers.pop(request_id, None)

    # -- sending --------------------------------------------------------------------------------

    def _publish(self, message: Message, *, request: bool = True) -> None:
        """Send ``message``; a request (what the reference sends with ``publish``) puts the next
        heartbeat off by ``heartbeat_interval``."""
        if request:
            with contextlib.suppress(RuntimeError):
                self._schedule_heartbeat()
        outgoing = encode(message, channel=self.channel, threshold=self.factory.payload_threshold)
        self.link.publish(outgoing)

    @property
    def _envelope(self) -> dict[str, Any]:
        return {"uid": self.uid, "nsp": self.nsp.name}

    def _check_outgoing(self, args: Any) -> None:
        """A broadcast other aiosio servers will refuse still reaches this server's clients: say
        so here, once per reason."""
        try:
            check_event(args, self.factory.limits)
        except RemoteProtocolError as exc:
            reason = str(exc)
            if reason in self._outgoing_warned or len(self._outgoing_warned) >= 16:
                return
            self._outgoing_warned.add(reason)
            logger.warning(
                "a broadcast on %s reaches this server's clients, but the other aiosio servers "
                "of the cluster drop it: %s; keep broadcasts within the limits, or give every "
                "server the same larger PostgresAdapter(limits=aiosio.Limits(...))",
                self.nsp.name,
                reason,
            )

    # -- receiving ------------------------------------------------------------------------------

    def _on_notification(self, channel: str, data: str | bytes) -> None:
        factory = self.factory
        try:
            if isinstance(data, str):
                decoded = decode_notification(
                    data,
                    nsp=self.nsp.name,
                    max_size=factory.max_message_size,
                    limits=factory.limits,
                    skip_uid=self.uid,
                )
            else:
                decoded = decode_attachment(
                    data,
                    nsp=self.nsp.name,
                    max_size=factory.max_message_size,
                    limits=factory.limits,
                )
        except Refused as exc:
            if getattr(exc.message, "uid", None) != self.uid:
                self.link.health.dropped_messages += 1
                _log_refused(channel, exc)
            return
        except UnknownType as exc:
            logger.debug("ignored a message of unknown type %r on %s", exc.kind, channel)
            return
        except (WrongShape, InvalidMessage) as exc:
            self.link.health.dropped_messages += 1
            logger.warning("dropped a malformed message on %s: %s", channel, exc)
            return
        except MessageError as exc:  # pragma: no cover - every decoder error is one of the above
            self.link.health.dropped_messages += 1
            logger.warning("dropped a message on %s: %s", channel, exc)
            return
        if decoded is None:
            return  # this server's own message
        if isinstance(decoded, AttachmentHeader):
            self.link.health.dropped_messages += 1
            logger.warning(
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
        match message:
            case InitialHeartbeat():
                self._publish(Heartbeat(**self._envelope))
                return
            case Heartbeat():
                return
            case AdapterClose():
                if uid:
                    self._remove_node(uid)
                return
            case _:
                pass
        if message.nsp != self.nsp.name:
            return
        match message:
            case Broadcast():
                self._on_broadcast(message)
            case SocketsJoin():
                self.local_add_sockets(message.opts.to_options(), message.rooms)
            case SocketsLeave():
                self.local_del_sockets(message.opts.to_options(), message.rooms)
            case DisconnectSockets():
                self.local_disconnect_sockets(message.opts.to_options(), message.close)
            case FetchSockets():
                sockets = [socket_details(s) for s in self.local_targets(message.opts.to_options())]
                self._publish(
                    FetchSocketsResponse(
                        **self._envelope, request_id=message.request_id, sockets=sockets
                    ),
                    request=False,
                )
            case ServerSideEmit():
                self._on_server_side_emit(message)
            case FetchSocketsResponse():
                self._answered(message.request_id, uid, message.sockets)
            case ServerSideEmitResponse():
                self._answered(message.request_id, uid, [message.packet])
            case BroadcastClientCount():
                ack = self._acks.get(message.request_id)
                if ack is not None:
                    ack.client_count(message.client_count)
            case BroadcastAck():
                ack = self._acks.get(message.request_id)
                if ack is not None:
                    ack.ack(message.packet)
            case _:
                assert_never(message)

    def _answered(self, request_id: str, uid: str | None, values: list[Any]) -> None:
        gather = self._gathers.get(request_id)
        if gather is None:
            return
        gather.responses.extend(values)
        gather.answer(uid)
        if gather.done.done():
            self._gathers.pop(request_id, None)

    def _on_broadcast(self, message: Broadcast) -> None:
        packet = Packet(PacketType.EVENT, self.nsp.name, message.packet.data)
        request_id = message.request_id
        if request_id is None:
            self.local_broadcast(packet, message.opts.to_options())
            return

        def reply(_sid: SocketId, value: Any) -> None:
            ack = BroadcastAck(**self._envelope, request_id=request_id, packet=value)
            self._publish(ack, request=False)

        local = Packet(PacketType.EVENT, self.nsp.name, packet.data, self.nsp.next_ack_id())
        count = len(
            self.local_broadcast_with_ack(local, message.opts.to_options(with_flags=False), reply)
        )
        self._publish(
            BroadcastClientCount(**self._envelope, request_id=request_id, client_count=count),
            request=False,
        )

    def _on_server_side_emit(self, message: ServerSideEmit) -> None:
        request_id = message.request_id
        reply: Callable[[list[Any]], None] | None = None
        if request_id is not None:
            answered = False

            def reply(values: list[Any]) -> None:
                nonlocal answered
                if answered:
                    return
                answered = True
                response = ServerSideEmitResponse(
                    **self._envelope, request_id=request_id, packet=values[0] if values else None
                )
                self._publish(response, request=False)

        self.nsp.receive_server_side_emit(message.packet, reply)

    # -- cluster operations ---------------------------------------------------------------------

    async def server_count(self) -> int:
        return 1 + len(self.nodes)

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        if not opts.flags.local:
            self._check_outgoing(packet.data)
            self._publish(
                Broadcast(
                    **self._envelope,
                    packet=EventPacket(data=packet.data),
                    opts=WireOptions.of(opts),
                ),
                request=False,
            )
        self.local_broadcast(packet, opts)

    async def broadcast_with_ack(
        self, packet: Packet, opts: BroadcastOptions
    ) -> tuple[list[Any], list[str]]:
        if opts.flags.local:
            return await super().broadcast_with_ack(packet, opts)
        expected_servers = await self.server_count()
        self._check_outgoing(packet.data)
        request_id = secrets.token_hex(8)
        request = AckRequest(expected_servers)
        self._acks[request_id] = request
        self._publish(
            Broadcast(
                **self._envelope,
                packet=EventPacket(data=packet.data),
                request_id=request_id,
                opts=WireOptions.of(opts, timeout=True),
            )
        )
        local_pending: set[SocketId] = set()

        def on_local(sid: SocketId, value: Any) -> None:
            if sid in local_pending:
                local_pending.discard(sid)
                request.ack(value)

        targets = self.local_broadcast_with_ack(packet, opts, on_local)
        local_pending.update(targets)
        request.client_count(len(targets))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(request.done), opts.flags.timeout)
        finally:
            self._acks.pop(request_id, None)
        if packet.id is not None and local_pending:
            self.forget_acks(packet.id, local_pending)
        missing: list[str] = list(local_pending)
        remote_missing = request.clients - len(request.replies) - len(local_pending)
        if remote_missing > 0:
            missing.append(f"<{remote_missing} socket(s) on other servers>")
        silent_servers = request.expected_servers - request.servers
        if silent_servers > 0:
            missing.append(f"<{silent_servers} server(s) that did not answer>")
        return request.replies, missing

    async def _gather(self, message: Message, request_id: str, timeout: float) -> _Gather:
        """Publish a request and wait (at most ``timeout``) for every known server's answer."""
        gather = _Gather(set(self.nodes), [])
        self._gathers[request_id] = gather
        self._publish(message)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(gather.done), timeout)
        finally:
            self._gathers.pop(request_id, None)
        return gather

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        local: list[Any] = list(self.local_targets(opts))
        if opts.flags.local or not self.nodes:
            return local
        request_id = secrets.token_hex(8)
        timeout = opts.flags.timeout or self.factory.requests_timeout
        request = FetchSockets(
            **self._envelope, opts=WireOptions.of(opts, timeout=True), request_id=request_id
        )
        gather = await self._gather(request, request_id, timeout)
        sockets = local + self._remote_sockets(gather.responses)
        if gather.missing and not opts.flags.partial:
            expected = len(gather.missing) + len(gather.answered)
            raise FetchSocketsTimeout(
                f"fetch_sockets on namespace {self.nsp.name}: {len(gather.missing)} of "
                f"{expected} other server(s) did not answer within {timeout:g}s (servers "
                f"{', '.join(sorted(gather.missing))}; a stopped server is no longer waited for "
                f"after heartbeat_timeout={self.factory.heartbeat_timeout:g}s); wait longer with "
                "sio.timeout(seconds).fetch_sockets(), or take what arrived with "
                "fetch_sockets(partial=True)",
                sockets=sockets,
                answered=len(gather.answered),
                expected=expected,
                timeout=timeout,
            )
        return sockets

    def _remote_sockets(self, details: list[Any]) -> list[RemoteSocket]:
        return [
            RemoteSocket(self, d)
            for d in details
            if isinstance(d, dict) and d.get("id") is not None
        ]

    def add_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_add_sockets(opts, rooms)
        if not opts.flags.local:
            wire = WireOptions.of(opts)
            self._publish(
                SocketsJoin(**self._envelope, opts=wire, rooms=tuple(rooms)), request=False
            )

    def del_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_del_sockets(opts, rooms)
        if not opts.flags.local:
            wire = WireOptions.of(opts)
            self._publish(
                SocketsLeave(**self._envelope, opts=wire, rooms=tuple(rooms)), request=False
            )

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        self.local_disconnect_sockets(opts, close)
        if not opts.flags.local:
            wire = WireOptions.of(opts)
            self._publish(
                DisconnectSockets(**self._envelope, opts=wire, close=close), request=False
            )

    def server_side_emit(self, args: list[Any]) -> None:
        self._publish(ServerSideEmit(**self._envelope, packet=args))

    async def server_side_emit_with_ack(self, args: list[Any], timeout: float | None) -> list[Any]:
        if not self.nodes:
            return []
        request_id = secrets.token_hex(8)
        limit = timeout if timeout is not None else self.factory.requests_timeout
        message = ServerSideEmit(**self._envelope, request_id=request_id, packet=args)
        gather = await self._gather(message, request_id, limit)
        if gather.missing:
            raise AckTimeout(
                f"timeout reached: missing {len(gather.missing)} responses",
                replies=gather.responses,
            )
        return gather.responses

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for handle in (self._heartbeat, self._sweeper):
            if handle is not None:
                handle.cancel()
        self._publish(AdapterClose(**self._envelope), request=False)
        self.link.off_connected(self._hello)
        self.link.unlisten(self.channel)
        self.link.own_uids.discard(self.uid)


def _log_refused(channel: str, exc: Refused) -> None:
    if isinstance(exc, NotAnEvent):
        logger.warning(
            "dropped a broadcast of packet type %r from another server (expected 2, an EVENT); "
            "nothing was delivered (the server or emitter that published it sends what no "
            "socket.io server may: fix it there)",
            exc.packet_type,
        )
        return
    logger.warning(
        "dropped a %s from server %r on %s: %s; nothing was delivered (the server or emitter "
        "that published it sends what no socket.io server may: fix it there)",
        exc.what,
        str(exc.sender)[:40],
        channel,
        exc,
    )

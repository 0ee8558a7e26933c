"""What the classic and the sharded namespace adapters share: the local part (the in-memory
adapter), requests waiting for other servers, receiving (decode, then drop with one log line what
may not be used); the remote sockets of ``fetch_sockets`` are
:class:`aiosio.server.remote.RemoteSocket`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from abc import abstractmethod
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar, assert_never

from aiosio.adapters.redis.link import Handler, Link
from aiosio.adapters.redis.messages import (
    Change,
    DisconnectSockets,
    Envelope,
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

__all__ = [
    "AckRequest",
    "AdapterSettings",
    "RedisNamespaceAdapter",
    "RemoteSocket",
    "socket_details",
]

logger = logging.getLogger("aiosio.adapter.redis")

M = TypeVar("M")
D = TypeVar("D")


class AdapterSettings(Protocol):
    """What a namespace adapter reads of the :class:`~aiosio.adapters.redis.RedisAdapter` that
    made it (its ``factory``)."""

    link: Link
    key: str
    subscription_mode: str
    requests_timeout: float
    publish_on_specific_response_channel: bool
    max_message_size: int
    limits: Limits


def socket_details(socket: Any) -> dict[str, Any]:
    """A local socket as ``fetchSockets`` describes it to other servers: ``{id, handshake,
    rooms, data}``."""
    h = socket.handshake
    return {
        "id": socket.id,
        "handshake": {
            "headers": h.headers,
            "time": h.time,
            "address": h.address,
            "xdomain": h.xdomain,
            "secure": h.secure,
            "issued": h.issued,
            "url": h.url,
            "query": h.query,
            "auth": h.auth,
        },
        "rooms": sorted(socket.rooms),
        "data": socket.data,
    }


class Pending:
    """A request waiting for ``expected`` responses."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.responses: list[Any] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, value: Any) -> None:
        self.responses.append(value)
        if len(self.responses) >= self.expected and not self.done.done():
            self.done.set_result(None)


class AckRequest:
    """A broadcast with acknowledgements across the cluster."""

    def __init__(self, expected_servers: int) -> None:
        self.expected_servers = expected_servers
        self.servers = 0
        self.clients = 0
        self.replies: list[Any] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def client_count(self, count: int) -> None:
        self.servers += 1
        self.clients += count
        self._check()

    def ack(self, value: Any) -> None:
        self.replies.append(value)
        self._check()

    def _check(self) -> None:
        if (
            self.servers >= self.expected_servers
            and len(self.replies) >= self.clients
            and not self.done.done()
        ):
            self.done.set_result(None)


class RedisNamespaceAdapter(InMemoryAdapter):
    """What both modes share: local parts, pending requests, the link."""

    uid: str
    # How long a request waits for the other servers unless told (Node's requestsTimeout).
    requests_timeout: float
    # This server's uid and the namespace as its messages name them (nsp None where the
    # channel does, in the classic protocol); whether its join, leave, disconnect and fetch
    # requests carry the flags.
    envelope: Envelope
    requests_carry_flags: bool

    def __init__(self, nsp: NamespaceView, factory: AdapterSettings) -> None:
        super().__init__(nsp)
        self.factory = factory
        self.link = factory.link
        self.max_size = factory.max_message_size
        self._pending: dict[str, Pending] = {}
        self._acks: dict[str, AckRequest] = {}
        self._outgoing_warned: set[str] = set()

    # -- receiving --------------------------------------------------------------------------------

    @abstractmethod
    def _ignores(self, message: Any) -> bool:
        """Whether ``message`` is not for this adapter (its own, another namespace's)."""

    def _receive(self, channel: str, decode: Callable[[D], M], data: D) -> M | None:
        """The decoded message, or None when it is dropped (logged, unless it is this
        adapter's own message or another namespace's). ``data``: a message's bytes, or the
        fields of a stream entry."""
        try:
            message = decode(data)
        except Refused as exc:
            if not self._ignores(exc.message):
                self.link.health.dropped_messages += 1
                self._refused(channel, exc)
            return None
        except UnknownType as exc:
            logger.debug("ignored a message of unknown type %r on %s", exc.kind, channel)
            return None
        except WrongShape as exc:
            self.link.health.dropped_messages += 1
            self._invalid(channel, str(exc))
            return None
        except InvalidMessage as exc:
            self.link.health.dropped_messages += 1
            logger.warning("dropped an invalid message from redis: %s", exc)
            return None
        except MessageError as exc:  # pragma: no cover - every decoder error is one of the above
            self.link.health.dropped_messages += 1
            logger.warning("dropped a message on %s: %s", channel, exc)
            return None
        return None if self._ignores(message) else message

    def _subscriber(self, decode: Callable[[bytes], M], handle: Callable[[M], None]) -> Handler:
        """A subscription's handler: the messages :meth:`_receive` keeps go to ``handle``."""

        def on_message(channel: str, data: bytes) -> None:
            message = self._receive(channel, decode, data)
            if message is not None:
                handle(message)

        return on_message

    def _apply(self, change: Change) -> None:
        """Make the change another server asks for to the local sockets its options select."""
        opts = change.opts.to_options()
        match change:
            case SocketsJoin():
                self.local_add_sockets(opts, change.rooms)
            case SocketsLeave():
                self.local_del_sockets(opts, change.rooms)
            case DisconnectSockets():
                self.local_disconnect_sockets(opts, change.close)
            case _:
                assert_never(change)

    def _invalid(self, channel: str, why: str) -> None:
        logger.warning("dropped a message of the wrong shape on %s: %s", channel, why)

    def _refused(self, channel: str, exc: Refused) -> None:
        if isinstance(exc, NotAnEvent):
            logger.warning(
                "dropped a broadcast of packet type %r from another server (expected 2, an "
                "EVENT); nothing was delivered (the server or emitter that published it sends "
                "what no socket.io server may: fix it there)",
                exc.packet_type,
            )
            return
        logger.warning(
            "dropped a %s from server %r on %s: %s; nothing was delivered (the server or "
            "emitter that published it sends what no socket.io server may: fix it there)",
            exc.what,
            str(exc.sender)[:40],
            channel,
            exc,
        )

    # -- sending ----------------------------------------------------------------------------------

    def _check_outgoing(self, args: Any) -> None:
        """A broadcast other aiosio servers will refuse (past the limits they apply to what
        they receive) still reaches this server's clients: say so here, where it is sent, once
        per reason."""
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
                "server the same larger RedisAdapter(limits=aiosio.Limits(...))",
                self.nsp.name,
                reason,
            )

    # -- requests waiting for other servers -------------------------------------------------------

    async def _gather_existing(self, request_id: str, timeout: float) -> list[Any]:
        pending = self._pending[request_id]
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending.done), timeout)
        finally:
            self._pending.pop(request_id, None)
        if len(pending.responses) < pending.expected:
            logger.warning(
                "only %d of %d servers answered within %ss",
                len(pending.responses),
                pending.expected,
                timeout,
            )
        return pending.responses

    def _add_response(self, request_id: str, value: Any) -> None:
        pending = self._pending.get(request_id)
        if pending is not None:
            pending.add(value)

    async def _wait_acks(
        self, request_id: str, request: AckRequest, timeout: float | None
    ) -> AckRequest:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(request.done), timeout)
        finally:
            self._acks.pop(request_id, None)
        return request

    def _client_count(self, request_id: str, count: int) -> None:
        ack = self._acks.get(request_id)
        if ack is not None:
            ack.client_count(count)

    def _ack(self, request_id: str, value: Any) -> None:
        ack = self._acks.get(request_id)
        if ack is not None:
            ack.ack(value)

    def _local_ack_broadcast(
        self, packet: Packet, opts: BroadcastOptions, reply: Callable[[Any], None]
    ) -> int:
        """Answer a remote broadcast with acks: deliver locally with a local ack id; returns the
        number of clients."""
        local = Packet(PacketType.EVENT, self.nsp.name, packet.data, self.nsp.next_ack_id())

        def on_reply(_sid: SocketId, value: Any) -> None:
            reply(value)

        return len(self.local_broadcast_with_ack(local, opts, on_reply))

    def _new_request_id(self) -> str:
        return secrets.token_hex(8)

    async def _ask_other_servers(
        self, publish: Callable[[str], None], timeout: float
    ) -> tuple[list[Any], int]:
        """Publish a request (``publish`` is given its new id) and gather the other servers'
        answers for at most ``timeout`` seconds: the answers, and how many were expected (0, and
        nothing published, when this server is alone)."""
        expected = await self.server_count() - 1
        if expected <= 0:
            return [], 0
        request_id = self._new_request_id()
        self._pending[request_id] = Pending(expected)
        publish(request_id)
        return await self._gather_existing(request_id, timeout), expected

    def _remote_sockets(self, responses: list[Any]) -> list[RemoteSocket]:
        return [
            RemoteSocket(self, details)
            for response in responses
            for details in response or ()
            if isinstance(details, dict) and details.get("id") is not None
        ]

    def _server_side_event(
        self, args: list[Any], reply: Callable[[list[Any]], None] | None
    ) -> None:
        """Run the server-side handlers of ``args`` (an event another server emitted)."""
        self.nsp.receive_server_side_emit(args, reply)

    def _server_side_reply(self, respond: Callable[[Any], None]) -> Callable[[list[Any]], None]:
        answered = False

        def reply(values: list[Any]) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            respond(values[0] if values else None)

        return reply

    # -- what each protocol writes ----------------------------------------------------------------

    @abstractmethod
    async def server_count(self) -> int:
        """How many servers of the cluster have this namespace (this one included)."""

    @abstractmethod
    def _publish_broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Send a broadcast without acks to the other servers."""

    @abstractmethod
    def _publish_ack_broadcast(
        self, packet: Packet, opts: BroadcastOptions, request_id: str
    ) -> None:
        """Send a broadcast whose acks the other servers return under ``request_id``."""

    @abstractmethod
    def _publish_request(self, message: Change | FetchSockets) -> None:
        """Send a join, leave, disconnect or fetch to the other servers."""

    @abstractmethod
    def _publish_server_side_emit(self, args: list[Any], request_id: str | None) -> None:
        """Send a server-side event; with ``request_id``, each server replies once."""

    @abstractmethod
    def _fetch_timeout(self, opts: BroadcastOptions) -> float:
        """How long ``fetch_sockets`` waits for the other servers (each Node mode has its
        rule)."""

    @abstractmethod
    def _fetch_timeout_hint(self) -> str:
        """How a caller makes ``fetch_sockets`` wait longer (the option of this mode's rule)."""

    # -- cluster operations -----------------------------------------------------------------------
    # The same in both modes, as in Node: the local part here, the rest published.

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        if not opts.flags.local:
            self._check_outgoing(packet.data)
            self._publish_broadcast(packet, opts)
        self.local_broadcast(packet, opts)

    async def broadcast_with_ack(
        self, packet: Packet, opts: BroadcastOptions
    ) -> tuple[list[Any], list[str]]:
        if opts.flags.local:
            return await super().broadcast_with_ack(packet, opts)
        expected_servers = max(await self.server_count(), 1)
        self._check_outgoing(packet.data)
        request_id = self._new_request_id()
        request = AckRequest(expected_servers)
        self._acks[request_id] = request
        self._publish_ack_broadcast(packet, opts, request_id)
        local_pending: set[SocketId] = set()

        def on_local(sid: SocketId, value: Any) -> None:
            if sid in local_pending:
                local_pending.discard(sid)
                request.ack(value)

        targets = self.local_broadcast_with_ack(packet, opts, on_local)
        local_pending.update(targets)
        request.client_count(len(targets))
        await self._wait_acks(request_id, request, opts.flags.timeout)
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

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        local: list[Any] = list(self.local_targets(opts))
        if opts.flags.local:
            return local
        wire = self._wire_options(opts)

        def publish(request_id: str) -> None:
            self._publish_request(FetchSockets(**self.envelope, opts=wire, request_id=request_id))

        timeout = self._fetch_timeout(opts)
        responses, expected = await self._ask_other_servers(publish, timeout)
        sockets = local + self._remote_sockets(responses)
        if len(responses) < expected and not opts.flags.partial:
            silent = expected - len(responses)
            raise FetchSocketsTimeout(
                f"fetch_sockets on namespace {self.nsp.name}: {silent} of {expected} other "
                f"server(s) did not answer within {timeout:g}s (Redis counts the servers, it "
                f"cannot name them); wait longer with {self._fetch_timeout_hint()}, or take "
                "what arrived with fetch_sockets(partial=True)",
                sockets=sockets,
                answered=len(responses),
                expected=expected,
                timeout=timeout,
            )
        return sockets

    def add_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_add_sockets(opts, rooms)
        if not opts.flags.local:
            wire = self._wire_options(opts)
            self._publish_request(SocketsJoin(**self.envelope, opts=wire, rooms=tuple(rooms)))

    def del_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_del_sockets(opts, rooms)
        if not opts.flags.local:
            wire = self._wire_options(opts)
            self._publish_request(SocketsLeave(**self.envelope, opts=wire, rooms=tuple(rooms)))

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        self.local_disconnect_sockets(opts, close)
        if not opts.flags.local:
            wire = self._wire_options(opts)
            self._publish_request(DisconnectSockets(**self.envelope, opts=wire, close=close))

    def _wire_options(self, opts: BroadcastOptions) -> WireOptions:
        return WireOptions.of(opts, flags=self.requests_carry_flags)

    def server_side_emit(self, args: list[Any]) -> None:
        self._publish_server_side_emit(args, None)

    async def server_side_emit_with_ack(self, args: list[Any], timeout: float | None) -> list[Any]:
        publish = partial(self._publish_server_side_emit, args)
        limit = timeout if timeout is not None else self.requests_timeout
        responses, expected = await self._ask_other_servers(publish, limit)
        if len(responses) < expected:
            raise AckTimeout(
                f"timeout reached: only {len(responses)} responses received out of {expected}",
                replies=responses,
            )
        return responses

    async def close(self) -> None:
        return None

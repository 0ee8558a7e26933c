"""What every cluster adapter shares, whatever carries its messages (Redis pub/sub, Redis
Streams, PostgreSQL ``NOTIFY``): ``socket.io-adapter``'s ``ClusterAdapter`` on this side.

* :class:`ClusterNamespaceAdapter`: the local part (the in-memory adapter), receiving (decode,
  then drop with one log line what may not be used), the requests that wait for other servers
  (:class:`ServerRequest`, :class:`AckRequest`) and the cluster operations written once; each
  adapter says how its messages are written and sent.
* :class:`ClusterMessageAdapter`: the same over the ``ClusterAdapter`` message set
  (:mod:`~aiosio.adapters.redis.sharded_messages`: ``{type, data, uid, nsp}``), which the sharded
  Redis adapter, the Redis Streams adapter and the Postgres adapter speak: its dispatch and its
  messages, sent by three hooks named after the reference's ``publish``,
  ``publishAndReturnOffset`` and ``publishResponse``.

The remote sockets of ``fetch_sockets`` are :class:`aiosio.server.remote.RemoteSocket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Sequence
from functools import partial
from typing import Any
from typing import ClassVar
from typing import Generic
from typing import Protocol
from typing import TypeVar
from typing import assert_never

from aiosio.adapters.redis.messages import Change
from aiosio.adapters.redis.messages import DisconnectSockets
from aiosio.adapters.redis.messages import Envelope
from aiosio.adapters.redis.messages import EventPacket
from aiosio.adapters.redis.messages import FetchSockets
from aiosio.adapters.redis.messages import InvalidMessage
from aiosio.adapters.redis.messages import MessageError
from aiosio.adapters.redis.messages import NotAnEvent
from aiosio.adapters.redis.messages import Refused
from aiosio.adapters.redis.messages import SocketsJoin
from aiosio.adapters.redis.messages import SocketsLeave
from aiosio.adapters.redis.messages import UnknownType
from aiosio.adapters.redis.messages import WireOptions
from aiosio.adapters.redis.messages import WrongShape
from aiosio.adapters.redis.sharded_messages import Broadcast
from aiosio.adapters.redis.sharded_messages import BroadcastAck
from aiosio.adapters.redis.sharded_messages import BroadcastClientCount
from aiosio.adapters.redis.sharded_messages import FetchSocketsResponse
from aiosio.adapters.redis.sharded_messages import Message
from aiosio.adapters.redis.sharded_messages import ServerSideEmit
from aiosio.adapters.redis.sharded_messages import ServerSideEmitResponse
from aiosio.errors import AckTimeout
from aiosio.errors import FetchSocketsTimeout
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import check_event
from aiosio.server.adapter import BroadcastOptions
from aiosio.server.adapter import InMemoryAdapter
from aiosio.server.adapter import NamespaceView
from aiosio.server.adapter import Room
from aiosio.server.adapter import SocketId
from aiosio.server.remote import RemoteSocket

__all__ = [
    "AckRequest",
    "ClusterAdapterFactory",
    "ClusterMessageAdapter",
    "ClusterNamespaceAdapter",
    "ClusterSettings",
    "CountedRequest",
    "ServerRequest",
    "socket_details",
]

M = TypeVar("M")
D = TypeVar("D")


class DropCounter(Protocol):
    """The part of a link's health a namespace adapter writes: the messages it dropped."""

    dropped_messages: int


class ClusterLink(Protocol):
    """What every namespace adapter reads of its link (each adapter types the rest)."""

    @property
    def health(self) -> DropCounter: ...


class ClusterSettings(Protocol):
    """What every namespace adapter reads of the factory that made it."""

    @property
    def max_message_size(self) -> int: ...

    @property
    def limits(self) -> Limits: ...


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


class ServerRequest(ABC):
    """A request to the other servers (``fetch_sockets``, ``server_side_emit`` with acks),
    waiting for one answer from each; ``responses`` are the answers in their order."""

    def __init__(self) -> None:
        self.responses: list[Any] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @abstractmethod
    def add(self, uid: str | None, value: Any) -> None:
        """Server ``uid`` answered ``value``."""

    @abstractmethod
    def forget(self, uid: str) -> None:
        """Server ``uid`` left the cluster: no longer waited for."""

    @property
    @abstractmethod
    def expected(self) -> int:
        """How many servers were asked (less those that left meanwhile)."""

    @property
    @abstractmethod
    def answered(self) -> int:
        """How many of them answered."""

    @property
    def missing(self) -> int:
        return self.expected - self.answered

    @abstractmethod
    def shortfall(self) -> str:
        """The reference's error when the answers fall short (its ``AckTimeout`` message)."""

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class CountedRequest(ServerRequest):
    """A request waiting for ``expected`` answers: the server count less one, as
    ``ClusterAdapter`` and the Redis adapter count (Redis counts the servers, it cannot name
    them)."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self._expected = expected

    def add(self, uid: str | None, value: Any) -> None:
        self.responses.append(value)
        if len(self.responses) >= self._expected:
            self._finish()

    def forget(self, uid: str) -> None:
        pass  # a count names no server: the one that left is still counted until the timeout

    @property
    def expected(self) -> int:
        return self._expected

    @property
    def answered(self) -> int:
        return len(self.responses)

    @property
    def missing(self) -> int:
        return max(self._expected - len(self.responses), 0)

    def shortfall(self) -> str:
        answered = len(self.responses)
        return f"timeout reached: only {answered} responses received out of {self._expected}"


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


async def _wait(done: asyncio.Future[None], timeout: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(done), timeout)


class ClusterNamespaceAdapter(InMemoryAdapter):
    """The adapter of one namespace of a cluster: local parts, requests waiting for other
    servers, the cluster operations; subclasses write and send the messages."""

    # The adapter's logger, and the factory's name in what it logs.
    log: ClassVar[logging.Logger]
    factory_name: ClassVar[str]
    # This server's uid and the namespace as its messages name them (nsp None where the
    # channel does, in the classic Redis protocol).
    uid: str
    envelope: Envelope
    # How long a request waits for the other servers unless told (Node's requestsTimeout).
    requests_timeout: float
    # Whether join, leave, disconnect and fetch requests carry the flags (the classic Redis
    # protocol's carry none). Where they do, a fetch's include its timeout, as the reference's
    # ClusterAdapter sends the call's flags whole (encodeOptions): the sharded Redis, Redis
    # Streams and Postgres adapters alike. No receiver reads it: it is the wire, not the wait.
    requests_carry_flags: ClassVar[bool] = True
    link: ClusterLink

    def __init__(self, nsp: NamespaceView, factory: ClusterSettings) -> None:
        super().__init__(nsp)
        self.max_size = factory.max_message_size
        self.limits = factory.limits
        self._requests: dict[str, ServerRequest] = {}
        self._acks: dict[str, AckRequest] = {}
        self._outgoing_warned: set[str] = set()

    # -- receiving --------------------------------------------------------------------------------

    @abstractmethod
    def _ignores(self, message: Any) -> bool:
        """Whether ``message`` is not for this adapter (its own, another namespace's)."""

    def _receive(self, channel: str, decode: Callable[[D], M], data: D) -> M | None:
        """The decoded message, or None when it is dropped (logged, unless it is this
        adapter's own message or another namespace's). ``data``: a message's bytes or text, or
        the fields of a stream entry."""
        try:
            message = decode(data)
        except Refused as exc:
            if not self._ignores(exc.message):
                self._dropped()
                self._refused(channel, exc)
            return None
        except UnknownType as exc:
            self.log.debug("ignored a message of unknown type %r on %s", exc.kind, channel)
            return None
        except WrongShape as exc:
            self._dropped()
            self.log.warning("dropped a message of the wrong shape on %s: %s", channel, exc)
            return None
        except InvalidMessage as exc:
            self._dropped()
            self.log.warning("dropped an invalid message on %s: %s", channel, exc)
            return None
        except MessageError as exc:  # pragma: no cover - every decoder error is one of the above
            self._dropped()
            self.log.warning("dropped a message on %s: %s", channel, exc)
            return None
        return None if self._ignores(message) else message

    def _dropped(self) -> None:
        self.link.health.dropped_messages += 1

    def _refused(self, channel: str, exc: Refused) -> None:
        if isinstance(exc, NotAnEvent):
            self.log.warning(
                "dropped a broadcast of packet type %r from another server (expected 2, an "
                "EVENT); nothing was delivered (the server or emitter that published it sends "
                "what no socket.io server may: fix it there)",
                exc.packet_type,
            )
            return
        self.log.warning(
            "dropped a %s from server %r on %s: %s; nothing was delivered (the server or "
            "emitter that published it sends what no socket.io server may: fix it there)",
            exc.what,
            str(exc.sender)[:40],
            channel,
            exc,
        )

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

    def _local_ack_broadcast(
        self, packet: Packet, opts: BroadcastOptions, reply: Callable[[Any], None]
    ) -> int:
        """Answer a remote broadcast with acks: deliver locally with a local ack id; returns the
        number of clients."""
        local = Packet(PacketType.EVENT, self.nsp.name, packet.data, self.nsp.next_ack_id())

        def on_reply(_sid: SocketId, value: Any) -> None:
            reply(value)

        return len(self.local_broadcast_with_ack(local, opts, on_reply))

    def _server_side_event(
        self, args: list[Any], reply: Callable[[list[Any]], None] | None
    ) -> None:
        """Run the server-side handlers of ``args`` (an event another server emitted)."""
        self.nsp.receive_server_side_emit(args, reply)

    def _server_side_reply(self, respond: Callable[[Any], None]) -> Callable[[list[Any]], None]:
        """A server-side event's ``reply``: the first handler's first value is the answer."""
        answered = False

        def reply(values: list[Any]) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            respond(values[0] if values else None)

        return reply

    # -- sending ----------------------------------------------------------------------------------

    def _check_outgoing(self, args: Any) -> None:
        """A broadcast other aiosio servers will refuse (past the limits they apply to what
        they receive) still reaches this server's clients: say so here, where it is sent, once
        per reason."""
        try:
            check_event(args, self.limits)
        except RemoteProtocolError as exc:
            reason = str(exc)
            if reason in self._outgoing_warned or len(self._outgoing_warned) >= 16:
                return
            self._outgoing_warned.add(reason)
            self.log.warning(
                "a broadcast on %s reaches this server's clients, but the other aiosio servers "
                "of the cluster drop it: %s; keep broadcasts within the limits, or give every "
                "server the same larger %s(limits=aiosio.Limits(...))",
                self.nsp.name,
                reason,
                self.factory_name,
            )

    # -- requests waiting for other servers -------------------------------------------------------

    def _new_request_id(self) -> str:
        return secrets.token_hex(8)

    async def _new_request(self) -> ServerRequest | None:
        """A request to the other servers, or None when this server is alone (the reference's
        ``serverCount() - 1`` answers awaited)."""
        expected = await self.server_count() - 1
        return CountedRequest(expected) if expected > 0 else None

    async def _ask_other_servers(
        self, publish: Callable[[str], None], timeout: float
    ) -> ServerRequest | None:
        """Publish a request (``publish`` is given its new id) and gather the other servers'
        answers for at most ``timeout`` seconds (None, and nothing published, when this server
        is alone)."""
        request = await self._new_request()
        if request is None:
            return None
        request_id = self._new_request_id()
        self._requests[request_id] = request
        publish(request_id)
        try:
            await _wait(request.done, timeout)
        finally:
            self._requests.pop(request_id, None)
        if request.missing:
            self.log.warning(
                "only %d of %d servers answered within %ss",
                request.answered,
                request.expected,
                timeout,
            )
        return request

    def _add_response(self, request_id: str, uid: str | None, value: Any) -> None:
        request = self._requests.get(request_id)
        if request is not None:
            request.add(uid, value)

    def _client_count(self, request_id: str, count: int) -> None:
        ack = self._acks.get(request_id)
        if ack is not None:
            ack.client_count(count)

    def _ack(self, request_id: str, value: Any) -> None:
        ack = self._acks.get(request_id)
        if ack is not None:
            ack.ack(value)

    def _remote_sockets(self, responses: list[Any]) -> list[RemoteSocket]:
        return [
            RemoteSocket(self, details)
            for response in responses
            for details in response or ()
            if isinstance(details, dict) and details.get("id") is not None
        ]

    # -- what each adapter writes -----------------------------------------------------------------

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
        """Send a fetch (and, unless :meth:`_publish_change` says otherwise, a join, leave or
        disconnect) to the other servers."""

    def _publish_change(self, change: Change) -> None:
        """Send a join, leave or disconnect to the other servers."""
        self._publish_request(change)

    @abstractmethod
    def _publish_server_side_emit(self, args: list[Any], request_id: str | None) -> None:
        """Send a server-side event; with ``request_id``, each server replies once."""

    @abstractmethod
    def _fetch_timeout(self, opts: BroadcastOptions) -> float:
        """How long ``fetch_sockets`` waits for the other servers (each Node adapter has its
        rule)."""

    @abstractmethod
    def _fetch_timeout_hint(self) -> str:
        """How a caller makes ``fetch_sockets`` wait longer (the option of this adapter's rule)."""

    @abstractmethod
    def _unanswered(self, request: ServerRequest) -> str:
        """What is known of the servers that did not answer ``request``."""

    # -- cluster operations -----------------------------------------------------------------------
    # The same in every adapter, as in Node: the local part here, the rest published.

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
        try:
            await _wait(request.done, opts.flags.timeout)
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

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        local: list[Any] = list(self.local_targets(opts))
        if opts.flags.local:
            return local
        wire = WireOptions.of(opts, flags=self.requests_carry_flags, timeout=True)

        def publish(request_id: str) -> None:
            self._publish_request(FetchSockets(**self.envelope, opts=wire, request_id=request_id))

        timeout = self._fetch_timeout(opts)
        request = await self._ask_other_servers(publish, timeout)
        if request is None:
            return local
        sockets = local + self._remote_sockets(request.responses)
        if request.missing and not opts.flags.partial:
            raise FetchSocketsTimeout(
                f"fetch_sockets on namespace {self.nsp.name}: {request.missing} of "
                f"{request.expected} other server(s) did not answer within {timeout:g}s "
                f"({self._unanswered(request)}); wait longer with {self._fetch_timeout_hint()}, "
                "or take what arrived with fetch_sockets(partial=True)",
                sockets=sockets,
                answered=request.answered,
                expected=request.expected,
                timeout=timeout,
            )
        return sockets

    def add_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_add_sockets(opts, rooms)
        if not opts.flags.local:
            wire = self._wire_options(opts)
            self._publish_change(SocketsJoin(**self.envelope, opts=wire, rooms=tuple(rooms)))

    def del_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_del_sockets(opts, rooms)
        if not opts.flags.local:
            wire = self._wire_options(opts)
            self._publish_change(SocketsLeave(**self.envelope, opts=wire, rooms=tuple(rooms)))

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        self.local_disconnect_sockets(opts, close)
        if not opts.flags.local:
            wire = self._wire_options(opts)
            self._publish_change(DisconnectSockets(**self.envelope, opts=wire, close=close))

    def _wire_options(self, opts: BroadcastOptions) -> WireOptions:
        return WireOptions.of(opts, flags=self.requests_carry_flags)

    def server_side_emit(self, args: list[Any]) -> None:
        self._publish_server_side_emit(args, None)

    async def server_side_emit_with_ack(self, args: list[Any], timeout: float | None) -> list[Any]:
        publish = partial(self._publish_server_side_emit, args)
        limit = timeout if timeout is not None else self.requests_timeout
        request = await self._ask_other_servers(publish, limit)
        if request is None:
            return []
        if request.missing:
            raise AckTimeout(request.shortfall(), replies=request.responses)
        return request.responses

    async def close(self) -> None:
        return None


class ClusterMessageAdapter(ClusterNamespaceAdapter):
    """A namespace adapter on ``ClusterAdapter``'s messages (``{type, data, uid, nsp}``): what
    it does with each, and how it writes each, sent by the hooks :meth:`_publish_request` (the
    reference's ``publish``), :meth:`_publish_update` (``publishAndReturnOffset``) and
    :meth:`_respond` (``publishResponse``)."""

    @abstractmethod
    def _publish_request(self, message: Message) -> None:
        """Send a request: a broadcast with acks, a fetch, a server-side event."""

    def _publish_update(self, message: Message) -> None:
        """Send a broadcast without acks, a join, leave or disconnect."""
        self._publish_request(message)

    def _publish_change(self, change: Change) -> None:
        self._publish_update(change)

    @abstractmethod
    def _respond(self, to_uid: str, message: Message) -> None:
        """Send an answer to server ``to_uid``'s request."""

    # -- receiving --------------------------------------------------------------------------------

    def _ignores(self, message: Message) -> bool:
        return message.uid == self.uid or message.nsp != self.nsp.name

    def _dispatch(self, message: Message) -> None:
        sender = str(message.uid)
        match message:
            case Broadcast():
                self._on_broadcast(sender, message)
            case SocketsJoin() | SocketsLeave() | DisconnectSockets():
                self._apply(message)
            case FetchSockets():
                sockets = [socket_details(s) for s in self.local_targets(message.opts.to_options())]
                self._respond(
                    sender,
                    FetchSocketsResponse(
                        **self.envelope, request_id=message.request_id, sockets=sockets
                    ),
                )
            case ServerSideEmit():
                self._on_server_side_emit(sender, message)
            case FetchSocketsResponse():
                self._add_response(message.request_id, message.uid, message.sockets)
            case ServerSideEmitResponse():
                self._add_response(message.request_id, message.uid, message.packet)
            case BroadcastClientCount():
                self._client_count(message.request_id, message.client_count)
            case BroadcastAck():
                self._ack(message.request_id, message.packet)
            case _:
                assert_never(message)

    def _on_broadcast(self, sender: str, message: Broadcast) -> None:
        packet = Packet(PacketType.EVENT, self.nsp.name, message.packet.data)
        request_id = message.request_id
        if request_id is None:
            self.local_broadcast(packet, message.opts.to_options())
            return

        def reply(value: Any) -> None:
            ack = BroadcastAck(**self.envelope, request_id=request_id, packet=value)
            self._respond(sender, ack)

        count = self._local_ack_broadcast(packet, message.opts.to_options(with_flags=False), reply)
        self._respond(
            sender,
            BroadcastClientCount(**self.envelope, request_id=request_id, client_count=count),
        )

    def _on_server_side_emit(self, sender: str, message: ServerSideEmit) -> None:
        request_id = message.request_id
        reply = None
        if request_id is not None:

            def respond(value: Any) -> None:
                response = ServerSideEmitResponse(
                    **self.envelope, request_id=request_id, packet=value
                )
                self._respond(sender, response)

            reply = self._server_side_reply(respond)
        self._server_side_event(message.packet, reply)

    # -- sending ----------------------------------------------------------------------------------

    def _broadcast_message(
        self, packet: Packet, opts: BroadcastOptions, request_id: str | None = None
    ) -> Broadcast:
        return Broadcast(
            **self.envelope,
            packet=EventPacket(data=packet.data),
            opts=WireOptions.of(opts, timeout=request_id is not None),
            request_id=request_id,
        )

    def _publish_broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        self._publish_update(self._broadcast_message(packet, opts))

    def _publish_ack_broadcast(
        self, packet: Packet, opts: BroadcastOptions, request_id: str
    ) -> None:
        self._publish_request(self._broadcast_message(packet, opts, request_id))

    def _publish_server_side_emit(self, args: list[Any], request_id: str | None) -> None:
        self._publish_request(ServerSideEmit(**self.envelope, packet=args, request_id=request_id))

    def _fetch_timeout(self, opts: BroadcastOptions) -> float:
        return opts.flags.timeout or self.requests_timeout

    def _fetch_timeout_hint(self) -> str:
        return f"sio.timeout(seconds).fetch_sockets() (default {self.requests_timeout:g}s)"


class FactoryLink(Protocol):
    """What a factory does with its link besides handing it to its namespace adapters."""

    async def ready(self, timeout: float = 5.0) -> bool: ...

    async def close(self) -> None: ...


A = TypeVar("A", bound=ClusterNamespaceAdapter)


class ClusterAdapterFactory(ABC, Generic[A]):
    """What an adapter factory (the ``adapter=`` a server is given) does: one namespace adapter
    per namespace, kept in ``adapters``; waiting for the link and closing it."""

    link: FactoryLink

    def __init__(self, *, max_message_size: int, limits: Limits | None) -> None:
        self.max_message_size = max_message_size
        self.limits = limits or Limits()
        self.adapters: list[A] = []

    @abstractmethod
    def _namespace_adapter(self, nsp: NamespaceView) -> A:
        """The adapter of namespace ``nsp``."""

    def __call__(self, nsp: NamespaceView) -> A:
        adapter = self._namespace_adapter(nsp)
        self.adapters.append(adapter)
        return adapter

    async def ready(self, timeout: float = 5.0) -> bool:
        """Wait until the link is ready to carry every namespace's messages (False when the
        broker is unreachable within ``timeout`` seconds)."""
        return await self.link.ready(timeout)

    async def close(self) -> None:
        await self.link.close()

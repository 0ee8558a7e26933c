"""The messages of ``@socket.io/redis-adapter``'s sharded protocol (``createShardedAdapter``,
Redis 7 ``SPUBLISH``), which is ``socket.io-adapter``'s ``ClusterAdapter`` protocol.

Every message is ``{"type", "data", "uid", "nsp"}`` (:class:`MessageType`), on ``<key>#<nsp>#``,
on a room's own channel ``<key>#<nsp>#<room>#`` (dynamic subscription modes), or, for responses,
on the requester's ``<key>#<nsp>#<uid>#``. :func:`decode` reads any of them; :func:`encode` writes
them as the Node adapter does: msgpack when a type that may carry binary does, JSON otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, assert_never

from aiosio.adapters.redis.codec import encode_json, encode_msgpack
from aiosio.adapters.redis.messages import (
    EventPacket,
    UnknownType,
    WireOptions,
    WrongShape,
    array,
    check_broadcast,
    check_server_side,
    integer,
    optional_str,
    payload,
    required_str,
    rooms,
)
from aiosio.protocol.socketio import Limits, has_binary

__all__ = [
    "Broadcast",
    "BroadcastAck",
    "BroadcastClientCount",
    "DisconnectSockets",
    "FetchSockets",
    "FetchSocketsResponse",
    "Message",
    "MessageType",
    "ServerSideEmit",
    "ServerSideEmitResponse",
    "SocketsJoin",
    "SocketsLeave",
    "decode",
    "encode",
    "message_type",
]


class MessageType(IntEnum):
    """The ``type`` of a cluster message (``socket.io-adapter``'s ``MessageType``). The
    heartbeat types belong to adapters with a heartbeat; the Redis adapter sends none."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


# Whose data may hold bytes: these travel as msgpack when they do (the Node adapter's ``encode``).
_MAY_BE_BINARY = frozenset(
    {
        MessageType.BROADCAST,
        MessageType.BROADCAST_ACK,
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
    }
)


def _envelope(
    kind: MessageType, data: dict[str, Any], uid: str | None, nsp: str | None
) -> dict[str, Any]:
    return {"type": int(kind), "data": data, "uid": uid, "nsp": nsp}


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast:
    """``BROADCAST``: ``{"packet": {"type": 2, "data"}, "opts"}``; with ``request_id`` (written
    between them), a broadcast with acks, answered with :class:`BroadcastClientCount` and
    :class:`BroadcastAck`."""

    uid: str | None
    nsp: str | None
    packet: EventPacket
    opts: WireOptions
    request_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {"packet": self.packet.to_wire()}
        if self.request_id is not None:
            data["requestId"] = self.request_id
        data["opts"] = self.opts.to_wire()
        return _envelope(MessageType.BROADCAST, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsJoin:
    """``SOCKETS_JOIN``: the sockets ``opts`` selects join ``rooms``."""

    uid: str | None
    nsp: str | None
    opts: WireOptions
    rooms: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        data = {"opts": self.opts.to_wire(), "rooms": list(self.rooms)}
        return _envelope(MessageType.SOCKETS_JOIN, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsLeave:
    """``SOCKETS_LEAVE``: the sockets ``opts`` selects leave ``rooms``."""

    uid: str | None
    nsp: str | None
    opts: WireOptions
    rooms: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        data = {"opts": self.opts.to_wire(), "rooms": list(self.rooms)}
        return _envelope(MessageType.SOCKETS_LEAVE, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectSockets:
    """``DISCONNECT_SOCKETS``: the sockets ``opts`` selects disconnect (``close``: their
    connection too)."""

    uid: str | None
    nsp: str | None
    opts: WireOptions
    close: bool

    def to_wire(self) -> dict[str, Any]:
        data = {"opts": self.opts.to_wire(), "close": self.close}
        return _envelope(MessageType.DISCONNECT_SOCKETS, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSockets:
    """``FETCH_SOCKETS``: the details of the sockets ``opts`` selects."""

    uid: str | None
    nsp: str | None
    opts: WireOptions
    request_id: str

    def to_wire(self) -> dict[str, Any]:
        data = {"opts": self.opts.to_wire(), "requestId": self.request_id}
        return _envelope(MessageType.FETCH_SOCKETS, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSocketsResponse:
    """One server's answer to :class:`FetchSockets`: ``[{id, handshake, rooms, data}]``."""

    uid: str | None
    nsp: str | None
    request_id: str
    sockets: list[Any]

    def to_wire(self) -> dict[str, Any]:
        data = {"requestId": self.request_id, "sockets": self.sockets}
        return _envelope(MessageType.FETCH_SOCKETS_RESPONSE, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmit:
    """``SERVER_SIDE_EMIT``: ``packet`` is ``[event, ...args]``; with ``request_id`` (written
    first), one :class:`ServerSideEmitResponse` per server is expected."""

    uid: str | None
    nsp: str | None
    packet: list[Any]
    request_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.request_id is not None:
            data["requestId"] = self.request_id
        data["packet"] = self.packet
        return _envelope(MessageType.SERVER_SIDE_EMIT, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmitResponse:
    """One server's reply to a :class:`ServerSideEmit` with a request id."""

    uid: str | None
    nsp: str | None
    request_id: str
    packet: Any

    def to_wire(self) -> dict[str, Any]:
        data = {"requestId": self.request_id, "packet": self.packet}
        return _envelope(MessageType.SERVER_SIDE_EMIT_RESPONSE, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastClientCount:
    """How many clients of one server a :class:`Broadcast` with acks reached."""

    uid: str | None
    nsp: str | None
    request_id: str
    client_count: int

    def to_wire(self) -> dict[str, Any]:
        data = {"requestId": self.request_id, "clientCount": self.client_count}
        return _envelope(MessageType.BROADCAST_CLIENT_COUNT, data, self.uid, self.nsp)


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastAck:
    """One client's ack to a :class:`Broadcast` with acks: its first argument."""

    uid: str | None
    nsp: str | None
    request_id: str
    packet: Any

    def to_wire(self) -> dict[str, Any]:
        data = {"requestId": self.request_id, "packet": self.packet}
        return _envelope(MessageType.BROADCAST_ACK, data, self.uid, self.nsp)


Message = (
    Broadcast
    | SocketsJoin
    | SocketsLeave
    | DisconnectSockets
    | FetchSockets
    | FetchSocketsResponse
    | ServerSideEmit
    | ServerSideEmitResponse
    | BroadcastClientCount
    | BroadcastAck
)


def message_type(message: Message) -> MessageType:
    """The ``type`` ``message`` is written with."""
    match message:
        case Broadcast():
            return MessageType.BROADCAST
        case SocketsJoin():
            return MessageType.SOCKETS_JOIN
        case SocketsLeave():
            return MessageType.SOCKETS_LEAVE
        case DisconnectSockets():
            return MessageType.DISCONNECT_SOCKETS
        case FetchSockets():
            return MessageType.FETCH_SOCKETS
        case FetchSocketsResponse():
            return MessageType.FETCH_SOCKETS_RESPONSE
        case ServerSideEmit():
            return MessageType.SERVER_SIDE_EMIT
        case ServerSideEmitResponse():
            return MessageType.SERVER_SIDE_EMIT_RESPONSE
        case BroadcastClientCount():
            return MessageType.BROADCAST_CLIENT_COUNT
        case BroadcastAck():
            return MessageType.BROADCAST_ACK
        case _:
            assert_never(message)


# -- decoding -------------------------------------------------------------------------------------


def decode(data: bytes, *, max_size: int, limits: Limits) -> Message:
    """One cluster message. Raises the :class:`~.messages.MessageError` subclasses of
    :mod:`~aiosio.adapters.redis.messages`."""
    raw = payload(data, max_size)
    if not isinstance(raw, dict):
        raise WrongShape("a cluster message must be an object")
    kind = raw.get("type")
    uid = optional_str(raw.get("uid"), "uid")
    nsp = optional_str(raw.get("nsp"), "nsp")
    body = raw.get("data")
    if not isinstance(body, dict):
        raise WrongShape(f"message of type {kind!r} without a data object")
    if type(kind) is not int:
        raise UnknownType(kind)
    try:
        message_kind = MessageType(kind)
    except ValueError:
        raise UnknownType(kind) from None
    try:
        return _message(message_kind, body, uid, nsp, limits)
    except WrongShape as exc:
        raise WrongShape(f"message of type {kind!r}: {exc}") from None


def _message(
    kind: MessageType, body: dict[str, Any], uid: str | None, nsp: str | None, limits: Limits
) -> Message:
    match kind:
        case MessageType.BROADCAST:
            packet = EventPacket.from_wire(
                body.get("packet"),
                data_rule="a broadcast needs packet.data as an array",
                non_empty=False,
            )
            broadcast = Broadcast(
                uid=uid,
                nsp=nsp,
                packet=packet,
                opts=WireOptions.from_wire(body.get("opts")),
                request_id=optional_str(body.get("requestId"), "requestId"),
            )
            check_broadcast(broadcast, packet, limits)
            return broadcast
        case MessageType.SOCKETS_JOIN:
            return SocketsJoin(
                uid=uid,
                nsp=nsp,
                opts=WireOptions.from_wire(body.get("opts")),
                rooms=rooms(_required(body, "rooms"), "rooms"),
            )
        case MessageType.SOCKETS_LEAVE:
            return SocketsLeave(
                uid=uid,
                nsp=nsp,
                opts=WireOptions.from_wire(body.get("opts")),
                rooms=rooms(_required(body, "rooms"), "rooms"),
            )
        case MessageType.DISCONNECT_SOCKETS:
            return DisconnectSockets(
                uid=uid,
                nsp=nsp,
                opts=WireOptions.from_wire(body.get("opts")),
                close=bool(body.get("close")),
            )
        case MessageType.FETCH_SOCKETS:
            return FetchSockets(
                uid=uid,
                nsp=nsp,
                opts=WireOptions.from_wire(body.get("opts")),
                request_id=required_str(body.get("requestId"), "requestId"),
            )
        case MessageType.SERVER_SIDE_EMIT:
            emit = ServerSideEmit(
                uid=uid,
                nsp=nsp,
                packet=array(body.get("packet"), "packet", non_empty=True),
                request_id=optional_str(body.get("requestId"), "requestId"),
            )
            check_server_side(emit, emit.packet)
            return emit
        case MessageType.FETCH_SOCKETS_RESPONSE:
            return FetchSocketsResponse(
                uid=uid,
                nsp=nsp,
                request_id=required_str(body.get("requestId"), "requestId"),
                sockets=array(body.get("sockets"), "sockets"),
            )
        case MessageType.SERVER_SIDE_EMIT_RESPONSE:
            return ServerSideEmitResponse(
                uid=uid,
                nsp=nsp,
                request_id=required_str(body.get("requestId"), "requestId"),
                packet=body.get("packet"),
            )
        case MessageType.BROADCAST_CLIENT_COUNT:
            return BroadcastClientCount(
                uid=uid,
                nsp=nsp,
                request_id=required_str(body.get("requestId"), "requestId"),
                client_count=integer(body.get("clientCount"), "clientCount"),
            )
        case MessageType.BROADCAST_ACK:
            return BroadcastAck(
                uid=uid,
                nsp=nsp,
                request_id=required_str(body.get("requestId"), "requestId"),
                packet=body.get("packet"),
            )
        case MessageType.INITIAL_HEARTBEAT | MessageType.HEARTBEAT | MessageType.ADAPTER_CLOSE:
            # Only adapters with a heartbeat send these; the Redis adapter has none.
            raise UnknownType(int(kind))
        case unreachable:
            assert_never(unreachable)


def _required(body: dict[str, Any], key: str) -> Any:
    if key not in body:
        raise WrongShape(f"{key} is missing")
    return body[key]


# -- encoding -------------------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    """The bytes the Node adapter writes for ``message``: msgpack when its data may hold bytes
    and does, JSON otherwise."""
    wire = message.to_wire()
    binary = message_type(message) in _MAY_BE_BINARY and has_binary(wire["data"])
    return encode_msgpack(wire) if binary else encode_json(wire)

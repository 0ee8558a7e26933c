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
from typing import Any, ClassVar, assert_never

from aiosio.adapters.redis.codec import encode_json, encode_msgpack
from aiosio.adapters.redis.messages import (
    EventPacket,
    UnknownType,
    WireOptions,
    WrongShape,
    array,
    check_broadcast,
    check_server_side,
    declared,
    integer,
    optional_str,
    payload,
    required_str,
    rooms,
    wire_object,
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


@dataclass(frozen=True, slots=True, kw_only=True)
class _ClusterMessage:
    """``{"type": TYPE, "data": {...}, "uid", "nsp"}``. A message type declares the fields of its
    ``data`` in the order Node writes them, and whether they may hold bytes (``MAY_BE_BINARY``:
    then it travels as msgpack when they do, the Node adapter's ``encode``)."""

    TYPE: ClassVar[MessageType]
    MAY_BE_BINARY: ClassVar[bool] = False
    uid: str | None
    nsp: str | None

    def to_wire(self) -> dict[str, Any]:
        data = wire_object(self, declared(self, but=_ENVELOPE))
        return {"type": int(self.TYPE), "data": data, "uid": self.uid, "nsp": self.nsp}


_ENVELOPE = ("uid", "nsp")


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast(_ClusterMessage):
    """``BROADCAST``: ``{"packet": {"type": 2, "data"}, "opts"}``; with ``request_id`` (written
    between them), a broadcast with acks, answered with :class:`BroadcastClientCount` and
    :class:`BroadcastAck`."""

    TYPE = MessageType.BROADCAST
    MAY_BE_BINARY = True
    packet: EventPacket
    request_id: str | None = None
    opts: WireOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class _Selecting(_ClusterMessage):
    """An operation on the sockets ``opts`` selects, in every server."""

    opts: WireOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsJoin(_Selecting):
    """``SOCKETS_JOIN``: the sockets ``opts`` selects join ``rooms``."""

    TYPE = MessageType.SOCKETS_JOIN
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsLeave(_Selecting):
    """``SOCKETS_LEAVE``: the sockets ``opts`` selects leave ``rooms``."""

    TYPE = MessageType.SOCKETS_LEAVE
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectSockets(_Selecting):
    """``DISCONNECT_SOCKETS``: the sockets ``opts`` selects disconnect (``close``: their
    connection too)."""

    TYPE = MessageType.DISCONNECT_SOCKETS
    close: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSockets(_Selecting):
    """``FETCH_SOCKETS``: the details of the sockets ``opts`` selects."""

    TYPE = MessageType.FETCH_SOCKETS
    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmit(_ClusterMessage):
    """``SERVER_SIDE_EMIT``: ``packet`` is ``[event, ...args]``; with ``request_id`` (written
    first), one :class:`ServerSideEmitResponse` per server is expected."""

    TYPE = MessageType.SERVER_SIDE_EMIT
    MAY_BE_BINARY = True
    request_id: str | None = None
    packet: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answer(_ClusterMessage):
    """One server's answer to the request ``request_id``, sent to the requester's channel."""

    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSocketsResponse(_Answer):
    """The answer to :class:`FetchSockets`: ``[{id, handshake, rooms, data}]``."""

    TYPE = MessageType.FETCH_SOCKETS_RESPONSE
    MAY_BE_BINARY = True
    sockets: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmitResponse(_Answer):
    """The reply to a :class:`ServerSideEmit` with a request id."""

    TYPE = MessageType.SERVER_SIDE_EMIT_RESPONSE
    MAY_BE_BINARY = True
    packet: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastClientCount(_Answer):
    """How many clients of the server a :class:`Broadcast` with acks reached."""

    TYPE = MessageType.BROADCAST_CLIENT_COUNT
    client_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastAck(_Answer):
    """One client's ack to a :class:`Broadcast` with acks: its first argument."""

    TYPE = MessageType.BROADCAST_ACK
    MAY_BE_BINARY = True
    packet: Any


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
    return message.TYPE


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
            request_id = optional_str(body.get("requestId"), "requestId")
            broadcast = Broadcast(
                uid=uid, nsp=nsp, packet=packet, request_id=request_id, opts=_opts(body)
            )
            check_broadcast(broadcast, packet, limits)
            return broadcast
        case MessageType.SOCKETS_JOIN:
            return SocketsJoin(uid=uid, nsp=nsp, opts=_opts(body), rooms=_rooms(body))
        case MessageType.SOCKETS_LEAVE:
            return SocketsLeave(uid=uid, nsp=nsp, opts=_opts(body), rooms=_rooms(body))
        case MessageType.DISCONNECT_SOCKETS:
            close = bool(body.get("close"))
            return DisconnectSockets(uid=uid, nsp=nsp, opts=_opts(body), close=close)
        case MessageType.FETCH_SOCKETS:
            return FetchSockets(uid=uid, nsp=nsp, opts=_opts(body), request_id=_request_id(body))
        case MessageType.SERVER_SIDE_EMIT:
            emit = ServerSideEmit(
                uid=uid,
                nsp=nsp,
                request_id=optional_str(body.get("requestId"), "requestId"),
                packet=array(body.get("packet"), "packet", non_empty=True),
            )
            check_server_side(emit, emit.packet)
            return emit
        case MessageType.FETCH_SOCKETS_RESPONSE:
            sockets = array(body.get("sockets"), "sockets")
            return FetchSocketsResponse(
                uid=uid, nsp=nsp, request_id=_request_id(body), sockets=sockets
            )
        case MessageType.SERVER_SIDE_EMIT_RESPONSE:
            return ServerSideEmitResponse(
                uid=uid, nsp=nsp, request_id=_request_id(body), packet=body.get("packet")
            )
        case MessageType.BROADCAST_CLIENT_COUNT:
            count = integer(body.get("clientCount"), "clientCount")
            return BroadcastClientCount(
                uid=uid, nsp=nsp, request_id=_request_id(body), client_count=count
            )
        case MessageType.BROADCAST_ACK:
            return BroadcastAck(
                uid=uid, nsp=nsp, request_id=_request_id(body), packet=body.get("packet")
            )
        case MessageType.INITIAL_HEARTBEAT | MessageType.HEARTBEAT | MessageType.ADAPTER_CLOSE:
            # Only adapters with a heartbeat send these; the Redis adapter has none.
            raise UnknownType(int(kind))
        case unreachable:
            assert_never(unreachable)


def _opts(body: dict[str, Any]) -> WireOptions:
    return WireOptions.from_wire(body.get("opts"))


def _rooms(body: dict[str, Any]) -> tuple[str, ...]:
    if "rooms" not in body:
        raise WrongShape("rooms is missing")
    return rooms(body["rooms"], "rooms")


def _request_id(body: dict[str, Any]) -> str:
    return required_str(body.get("requestId"), "requestId")


# -- encoding -------------------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    """The bytes the Node adapter writes for ``message``: msgpack when its data may hold bytes
    and does, JSON otherwise."""
    wire = message.to_wire()
    binary = message.MAY_BE_BINARY and has_binary(wire["data"])
    return encode_msgpack(wire) if binary else encode_json(wire)

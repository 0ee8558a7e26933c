"""The messages of ``@socket.io/redis-adapter``'s sharded protocol (``createShardedAdapter``,
Redis 7 ``SPUBLISH``), which is ``socket.io-adapter``'s ``ClusterAdapter`` protocol.

Every message is ``{"type", "data", "uid", "nsp"}`` (:class:`MessageType`), on ``<key>#<nsp>#``,
on a room's own channel ``<key>#<nsp>#<room>#`` (dynamic subscription modes), or, for responses,
on the requester's ``<key>#<nsp>#<uid>#``. :func:`decode` reads any of them; :func:`encode` writes
them as the Node adapter does: msgpack when a type that may carry binary does, JSON otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import ClassVar
from typing import assert_never

from aiosio.adapters.redis.codec import encode_json
from aiosio.adapters.redis.codec import encode_msgpack
from aiosio.adapters.redis.messages import ENVELOPE
from aiosio.adapters.redis.messages import BroadcastAck
from aiosio.adapters.redis.messages import BroadcastClientCount
from aiosio.adapters.redis.messages import DisconnectSockets
from aiosio.adapters.redis.messages import EventPacket
from aiosio.adapters.redis.messages import FetchSockets
from aiosio.adapters.redis.messages import MessageType
from aiosio.adapters.redis.messages import SocketsJoin
from aiosio.adapters.redis.messages import SocketsLeave
from aiosio.adapters.redis.messages import UnknownType
from aiosio.adapters.redis.messages import WireMessage
from aiosio.adapters.redis.messages import WireOptions
from aiosio.adapters.redis.messages import WrongShape
from aiosio.adapters.redis.messages import array
from aiosio.adapters.redis.messages import check_broadcast
from aiosio.adapters.redis.messages import check_server_side
from aiosio.adapters.redis.messages import declared
from aiosio.adapters.redis.messages import known
from aiosio.adapters.redis.messages import optional_str
from aiosio.adapters.redis.messages import payload
from aiosio.adapters.redis.messages import request_id_of
from aiosio.adapters.redis.messages import wire_object
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import has_binary

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
    "from_wire",
    "message_type",
    "to_wire",
]

# Every message is {"type": CLUSTER, "data": {...}, "uid", "nsp"}: the fields of a message type
# are its data, written in the order they are declared. The types both protocols write alike
# (SocketsJoin, SocketsLeave, DisconnectSockets, FetchSockets, BroadcastClientCount,
# BroadcastAck) are declared in messages; those of this protocol only, here.


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast(WireMessage):
    """``BROADCAST``: ``{"packet": {"type": 2, "data"}, "opts"}``; with ``request_id`` (written
    between them), a broadcast with acks, answered with :class:`BroadcastClientCount` and
    :class:`BroadcastAck`."""

    CLUSTER: ClassVar[MessageType] = MessageType.BROADCAST
    MAY_BE_BINARY = True
    packet: EventPacket
    request_id: str | None = None
    opts: WireOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmit(WireMessage):
    """``SERVER_SIDE_EMIT``: ``packet`` is ``[event, ...args]``; with ``request_id`` (written
    first), one :class:`ServerSideEmitResponse` per server is expected."""

    CLUSTER: ClassVar[MessageType] = MessageType.SERVER_SIDE_EMIT
    MAY_BE_BINARY = True
    request_id: str | None = None
    packet: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSocketsResponse(WireMessage):
    """The answer to :class:`FetchSockets`: ``[{id, handshake, rooms, data}]``."""

    CLUSTER: ClassVar[MessageType] = MessageType.FETCH_SOCKETS_RESPONSE
    MAY_BE_BINARY = True
    request_id: str
    sockets: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmitResponse(WireMessage):
    """The reply to a :class:`ServerSideEmit` with a request id."""

    CLUSTER: ClassVar[MessageType] = MessageType.SERVER_SIDE_EMIT_RESPONSE
    MAY_BE_BINARY = True
    request_id: str
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
    return message.CLUSTER


# -- decoding -------------------------------------------------------------------------------------


def decode(data: bytes, *, max_size: int, limits: Limits) -> Message:
    """One cluster message. Raises the :class:`~.messages.MessageError` subclasses of
    :mod:`~aiosio.adapters.redis.messages`."""
    return from_wire(payload(data, max_size), limits)


def from_wire(raw: Any, limits: Limits) -> Message:
    """One cluster message from its decoded value ``{"type", "data", "uid", "nsp"}`` (the
    Redis Streams adapter reads these from a stream entry's fields). Raises as :func:`decode`."""
    if not isinstance(raw, dict):
        raise WrongShape("a cluster message must be an object")
    kind = raw.get("type")
    uid = optional_str(raw.get("uid"), "uid")
    nsp = optional_str(raw.get("nsp"), "nsp")
    body = raw.get("data")
    if not isinstance(body, dict):
        raise WrongShape(f"message of type {kind!r} without a data object")
    message_kind = known(MessageType, kind)
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
                uid=uid,
                nsp=nsp,
                packet=packet,
                request_id=request_id,
                opts=WireOptions.from_wire(body.get("opts")),
            )
            check_broadcast(broadcast, packet, limits)
            return broadcast
        case MessageType.SOCKETS_JOIN:
            return SocketsJoin.from_data(body, uid=uid, nsp=nsp)
        case MessageType.SOCKETS_LEAVE:
            return SocketsLeave.from_data(body, uid=uid, nsp=nsp)
        case MessageType.DISCONNECT_SOCKETS:
            return DisconnectSockets.from_data(body, uid=uid, nsp=nsp)
        case MessageType.FETCH_SOCKETS:
            return FetchSockets.from_data(body, uid=uid, nsp=nsp)
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
                uid=uid, nsp=nsp, request_id=request_id_of(body), sockets=sockets
            )
        case MessageType.SERVER_SIDE_EMIT_RESPONSE:
            return ServerSideEmitResponse(
                uid=uid, nsp=nsp, request_id=request_id_of(body), packet=body.get("packet")
            )
        case MessageType.BROADCAST_CLIENT_COUNT:
            return BroadcastClientCount.from_data(body, uid=uid, nsp=nsp)
        case MessageType.BROADCAST_ACK:
            return BroadcastAck.from_data(body, uid=uid, nsp=nsp)
        case MessageType.INITIAL_HEARTBEAT | MessageType.HEARTBEAT | MessageType.ADAPTER_CLOSE:
            # Only adapters with a heartbeat send these; the Redis adapter has none.
            raise UnknownType(int(kind))
        case unreachable:
            assert_never(unreachable)


# -- encoding -------------------------------------------------------------------------------------


def to_wire(message: Message) -> dict[str, Any]:
    """``{"type", "data", "uid", "nsp"}``, the fields of ``message`` as its data."""
    data = wire_object(message, declared(message, but=ENVELOPE))
    return {"type": int(message.CLUSTER), "data": data, "uid": message.uid, "nsp": message.nsp}


def encode(message: Message) -> bytes:
    """The bytes the Node adapter writes for ``message``: msgpack when its data may hold bytes
    and does, JSON otherwise."""
    wire = to_wire(message)
    binary = message.MAY_BE_BINARY and has_binary(wire["data"])
    return encode_msgpack(wire) if binary else encode_json(wire)

"""The messages of ``@socket.io/redis-adapter``'s classic pub/sub protocol (``createAdapter``).

Three channels per namespace, each with its own decoder:

* ``<key>#<nsp>#`` and ``<key>#<nsp>#<room>#``: a broadcast, msgpack ``[uid, packet, opts]``
  (:func:`decode_broadcast`, :class:`Broadcast`);
* ``<key>-request#<nsp>#``: a request, a JSON or msgpack object with a ``type``
  (:class:`RequestType`; :func:`decode_request`);
* ``<key>-response#<nsp>#`` and ``<key>-response#<nsp>#<uid>#``: a response
  (:func:`decode_response`). The answers to ``SOCKETS``, ``ALL_ROOMS`` and ``REMOTE_FETCH`` carry
  no type: the request id says what they answer.

:func:`encode` writes any of them as the Node adapter does (msgpack for broadcasts, ``BROADCAST``
requests and ``BROADCAST_ACK`` responses, JSON for the rest), keys in Node's order.
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
from aiosio.adapters.redis.messages import Change
from aiosio.adapters.redis.messages import DisconnectSockets
from aiosio.adapters.redis.messages import EventPacket
from aiosio.adapters.redis.messages import FetchSockets
from aiosio.adapters.redis.messages import RequestType
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
from aiosio.adapters.redis.messages import required_str
from aiosio.adapters.redis.messages import rooms
from aiosio.adapters.redis.messages import wire_object
from aiosio.protocol.socketio import Limits

__all__ = [
    "AllRoomsRequest",
    "AllRoomsResponse",
    "Broadcast",
    "BroadcastAck",
    "BroadcastClientCount",
    "BroadcastRequest",
    "DisconnectSockets",
    "FetchSockets",
    "LegacyUpdate",
    "Message",
    "Request",
    "RequestType",
    "Response",
    "ServerSideEmit",
    "ServerSideEmitResponse",
    "SocketsJoin",
    "SocketsLeave",
    "SocketsRequest",
    "SocketsResponse",
    "UpdateResponse",
    "decode_broadcast",
    "decode_request",
    "decode_response",
    "encode",
]

# -- the broadcast channel ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast:
    """``[uid, {"type": 2, "data": [...], "nsp": "/"}, {"rooms", "except", "flags"}]``."""

    MAY_BE_BINARY: ClassVar[bool] = True
    uid: str
    packet: EventPacket
    opts: WireOptions

    def to_wire(self) -> list[Any]:
        return [self.uid, self.packet.to_wire(), self.opts.to_wire()]


# -- requests and responses -----------------------------------------------------------------------
# A request is {"uid", "requestId", "type": CLASSIC, ...}, a response {"type": CLASSIC,
# "requestId", ...}, then the fields a type declares, in the order Node writes them; ``uid`` and
# ``request_id`` only when set (None: the Node emitter's, and nothing waits for an answer). The
# types both protocols write alike (SocketsJoin, SocketsLeave, DisconnectSockets, FetchSockets
# as REMOTE_FETCH, BroadcastClientCount, BroadcastAck) are declared in messages; those of this
# protocol only, here.

_HEAD = ("uid", "request_id")
_NOT_FIELDS = (*ENVELOPE, "request_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsRequest(WireMessage):
    """``SOCKETS`` (older Node adapters): the ids of the sockets in ``rooms``."""

    CLASSIC: ClassVar[RequestType] = RequestType.SOCKETS
    request_id: str
    rooms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AllRoomsRequest(WireMessage):
    """``ALL_ROOMS``: the rooms of this server."""

    CLASSIC: ClassVar[RequestType] = RequestType.ALL_ROOMS
    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyUpdate(WireMessage):
    """The single-socket form of a join, leave or disconnect (older Node adapters),
    ``{"uid", "requestId", "type", "sid", "room" | "rooms" | "close"}``: ``change`` is made to
    the socket ``sid`` alone (its ``opts`` select that socket), and ``request_id`` is answered
    (:class:`UpdateResponse`)."""

    request_id: str | None = None
    change: Change

    @property
    def sid(self) -> str:
        return self.change.opts.rooms[0]

    def to_wire(self) -> dict[str, Any]:
        change = wire_object(self.change, declared(self.change, but=(*ENVELOPE, "opts")))
        if len(change.get("rooms", ())) == 1:
            change = {"room": change["rooms"][0]}
        head = wire_object(self, _HEAD)
        return {**head, "type": int(self.change.CLASSIC), "sid": self.sid, **change}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmit(WireMessage):
    """``SERVER_SIDE_EMIT``: ``data`` is ``[event, ...args]``; with ``request_id``, one reply per
    server is expected (:class:`ServerSideEmitResponse`)."""

    CLASSIC: ClassVar[RequestType] = RequestType.SERVER_SIDE_EMIT
    request_id: str | None = None
    data: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastRequest(WireMessage):
    """``BROADCAST``: a broadcast with acknowledgements (msgpack). Each server answers the
    number of its clients (:class:`BroadcastClientCount`), then each client's ack
    (:class:`BroadcastAck`)."""

    CLASSIC: ClassVar[RequestType] = RequestType.BROADCAST
    MAY_BE_BINARY = True
    request_id: str
    packet: EventPacket
    opts: WireOptions


Request = (
    SocketsRequest
    | AllRoomsRequest
    | SocketsJoin
    | SocketsLeave
    | DisconnectSockets
    | LegacyUpdate
    | FetchSockets
    | ServerSideEmit
    | BroadcastRequest
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsResponse(WireMessage):
    """The answer to ``SOCKETS`` (socket ids) and to ``REMOTE_FETCH`` (socket details), with
    no type: the request id says what it answers (as for the next two)."""

    CLASSIC: ClassVar[None] = None
    request_id: str
    sockets: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AllRoomsResponse(WireMessage):
    """The answer to ``ALL_ROOMS``."""

    CLASSIC: ClassVar[None] = None
    request_id: str
    rooms: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateResponse(WireMessage):
    """``{"requestId"}``: the answer to a :class:`LegacyUpdate`."""

    CLASSIC: ClassVar[None] = None
    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmitResponse(WireMessage):
    """One server's reply to a :class:`ServerSideEmit` with a request id."""

    CLASSIC: ClassVar[RequestType] = RequestType.SERVER_SIDE_EMIT
    request_id: str
    data: Any


Response = (
    SocketsResponse
    | AllRoomsResponse
    | UpdateResponse
    | ServerSideEmitResponse
    | BroadcastClientCount
    | BroadcastAck
)
Message = Broadcast | Request | Response
_RESPONSES = (
    SocketsResponse,
    AllRoomsResponse,
    UpdateResponse,
    ServerSideEmitResponse,
    BroadcastClientCount,
    BroadcastAck,
)

# -- decoding -------------------------------------------------------------------------------------


def decode_broadcast(data: bytes, *, max_size: int, limits: Limits) -> Broadcast:
    """A message of the broadcast channel. Raises the :class:`~.messages.MessageError`
    subclasses of :mod:`~aiosio.adapters.redis.messages`."""
    value = payload(data, max_size)
    if not isinstance(value, list) or len(value) != 3:
        raise WrongShape("a broadcast must be [uid, packet, opts]")
    uid, raw_packet, raw_opts = value
    if not isinstance(raw_packet, dict):
        raise WrongShape("the packet is not an object")
    packet = EventPacket.from_wire(
        raw_packet, data_rule="packet.data must be a non-empty array", non_empty=True
    )
    message = Broadcast(
        uid=required_str(uid, "uid"), packet=packet, opts=WireOptions.from_wire(raw_opts)
    )
    check_broadcast(message, packet, limits)
    return message


def decode_request(data: bytes, *, max_size: int, limits: Limits) -> Request:
    """A message of the request channel. Raises the :class:`~.messages.MessageError`
    subclasses of :mod:`~aiosio.adapters.redis.messages`."""
    raw = payload(data, max_size)
    if not isinstance(raw, dict):
        raise WrongShape("a request must be an object")
    kind = raw.get("type")
    try:
        return _request(raw, kind, limits)
    except WrongShape as exc:
        raise WrongShape(f"request of type {kind!r}: {exc}") from None


def _request(raw: dict[str, Any], kind: Any, limits: Limits) -> Request:
    uid = optional_str(raw.get("uid"), "uid")
    request_id = optional_str(raw.get("requestId"), "requestId")
    match known(RequestType, kind):
        case RequestType.SOCKETS:
            return SocketsRequest(
                uid=uid,
                request_id=required_str(request_id, "requestId"),
                rooms=rooms(raw.get("rooms"), "rooms"),
            )
        case RequestType.ALL_ROOMS:
            return AllRoomsRequest(uid=uid, request_id=required_str(request_id, "requestId"))
        case RequestType.REMOTE_JOIN:
            return _change(SocketsJoin, raw, uid, request_id)
        case RequestType.REMOTE_LEAVE:
            return _change(SocketsLeave, raw, uid, request_id)
        case RequestType.REMOTE_DISCONNECT:
            return _change(DisconnectSockets, raw, uid, request_id)
        case RequestType.REMOTE_FETCH:
            return FetchSockets.from_data(raw, uid=uid)
        case RequestType.SERVER_SIDE_EMIT:
            emit = ServerSideEmit(
                uid=uid, data=array(raw.get("data"), "data", non_empty=True), request_id=request_id
            )
            check_server_side(emit, emit.data)
            return emit
        case RequestType.BROADCAST:
            packet = EventPacket.from_wire(
                raw.get("packet"), data_rule="packet.data must be an array", non_empty=False
            )
            broadcast = BroadcastRequest(
                uid=uid,
                request_id=required_str(request_id, "requestId"),
                packet=packet,
                opts=WireOptions.from_wire(raw.get("opts") or {}),
            )
            check_broadcast(broadcast, packet, limits)
            return broadcast
        case RequestType.BROADCAST_CLIENT_COUNT | RequestType.BROADCAST_ACK:
            # Responses have no business on the request channel.
            raise UnknownType(kind)
        case unreachable:
            assert_never(unreachable)


def _change(
    cls: type[Change], raw: dict[str, Any], uid: str | None, request_id: str | None
) -> Change | LegacyUpdate:
    if "opts" in raw:
        return cls.from_data(raw, uid=uid)
    # The legacy single-socket form, {sid, room} / {sid, close}, answered with {requestId}: the
    # same change, to the sockets of the room sid.
    data = {"opts": {"rooms": [raw.get("sid")]}, "close": raw.get("close")}
    data["rooms"] = raw["rooms"] if "rooms" in raw else [raw["room"]] if "room" in raw else []
    return LegacyUpdate(uid=uid, request_id=request_id, change=cls.from_data(data, uid=uid))


def decode_response(data: bytes, *, max_size: int) -> Response:
    """A message of a response channel. Raises the :class:`~.messages.MessageError`
    subclasses of :mod:`~aiosio.adapters.redis.messages`."""
    raw = payload(data, max_size)
    if not isinstance(raw, dict):
        raise WrongShape("a response must be an object")
    request_id = raw.get("requestId")
    if not isinstance(request_id, str):
        raise WrongShape("a response needs a requestId")
    kind = raw.get("type")
    if kind == RequestType.BROADCAST_CLIENT_COUNT and type(kind) is int:
        return BroadcastClientCount.from_data(raw, uid=None)
    if kind == RequestType.BROADCAST_ACK and type(kind) is int:
        return BroadcastAck.from_data(raw, uid=None)
    if kind == RequestType.SERVER_SIDE_EMIT and type(kind) is int:
        return ServerSideEmitResponse(request_id=request_id, data=raw.get("data"))
    if kind is not None:
        raise UnknownType(kind)
    if "sockets" in raw:
        return SocketsResponse(request_id=request_id, sockets=array(raw["sockets"], "sockets"))
    if "rooms" in raw:
        return AllRoomsResponse(request_id=request_id, rooms=array(raw["rooms"], "rooms"))
    return UpdateResponse(request_id=request_id)


# -- encoding -------------------------------------------------------------------------------------


def _to_wire(message: Request | Response) -> dict[str, Any]:
    if isinstance(message, LegacyUpdate):
        return message.to_wire()
    names = declared(message)
    fields = wire_object(message, tuple(name for name in names if name not in _NOT_FIELDS))
    if isinstance(message, _RESPONSES):
        head = wire_object(message, ("request_id",))
        kind = message.CLASSIC
        return {**head, **fields} if kind is None else {"type": int(kind), **head, **fields}
    head = wire_object(message, tuple(name for name in _HEAD if name in names))
    return {**head, "type": int(message.CLASSIC), **fields}


def encode(message: Message) -> bytes:
    """The bytes the Node adapter writes for ``message``: msgpack for the types that may carry
    binary data (``MAY_BE_BINARY``), JSON for the others."""
    if isinstance(message, Broadcast):
        return encode_msgpack(message.to_wire())
    wire = _to_wire(message)
    return encode_msgpack(wire) if message.MAY_BE_BINARY else encode_json(wire)

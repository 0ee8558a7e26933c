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
from aiosio.protocol.socketio import Limits

__all__ = [
    "AllRoomsRequest",
    "AllRoomsResponse",
    "Broadcast",
    "BroadcastAck",
    "BroadcastClientCount",
    "BroadcastRequest",
    "Message",
    "RemoteDisconnect",
    "RemoteFetch",
    "RemoteJoin",
    "RemoteLeave",
    "Request",
    "RequestType",
    "Response",
    "ServerSideEmit",
    "ServerSideEmitResponse",
    "SocketsRequest",
    "SocketsResponse",
    "UpdateResponse",
    "decode_broadcast",
    "decode_request",
    "decode_response",
    "encode",
]


class RequestType(IntEnum):
    """The ``type`` of a request or response (the Node adapter's ``RequestType``)."""

    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9


# -- the broadcast channel ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast:
    """``[uid, {"type": 2, "data": [...], "nsp": "/"}, {"rooms", "except", "flags"}]``."""

    MSGPACK: ClassVar[bool] = True
    uid: str
    packet: EventPacket
    opts: WireOptions

    def to_wire(self) -> list[Any]:
        return [self.uid, self.packet.to_wire(), self.opts.to_wire()]


# -- requests -------------------------------------------------------------------------------------

_HEAD = ("uid", "request_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    """``{"uid", "requestId", "type": TYPE, ...}``, then the fields a request type declares, in
    the order Node writes them. Every request type has a ``request_id`` (None: nothing waits for
    an answer); ``uid`` None is the Node emitter's (no sender)."""

    TYPE: ClassVar[RequestType]
    MSGPACK: ClassVar[bool] = False
    uid: str | None

    def to_wire(self) -> dict[str, Any]:
        fields = wire_object(self, declared(self, but=_HEAD))
        return {**wire_object(self, _HEAD), "type": int(self.TYPE), **fields}


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsRequest(_Request):
    """``SOCKETS`` (older Node adapters): the ids of the sockets in ``rooms``."""

    TYPE = RequestType.SOCKETS
    request_id: str
    rooms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AllRoomsRequest(_Request):
    """``ALL_ROOMS``: the rooms of this server."""

    TYPE = RequestType.ALL_ROOMS
    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Membership(_Request):
    """A change to the sockets ``opts`` selects, ``{"opts", ...}`` after the type. ``opts`` None
    is the legacy form ``{"requestId", "sid", ...}``: the one socket ``sid`` changes, and
    ``request_id`` is answered (:class:`UpdateResponse`); one room is written ``"room"``."""

    opts: WireOptions | None
    sid: str | None = None
    request_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        change = wire_object(self, declared(self, but=_MEMBERSHIP))
        if self.opts is not None:
            head = wire_object(self, ("uid",))
            return {**head, "type": int(self.TYPE), "opts": self.opts.to_wire(), **change}
        if len(change.get("rooms", ())) == 1:
            change = {"room": change["rooms"][0]}
        return {**wire_object(self, _HEAD), "type": int(self.TYPE), "sid": self.sid, **change}


_MEMBERSHIP = (*_HEAD, "opts", "sid")


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteJoin(_Membership):
    """``REMOTE_JOIN``: the sockets ``opts`` selects join ``rooms``."""

    TYPE = RequestType.REMOTE_JOIN
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteLeave(_Membership):
    """``REMOTE_LEAVE``: the sockets ``opts`` selects leave ``rooms``."""

    TYPE = RequestType.REMOTE_LEAVE
    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteDisconnect(_Membership):
    """``REMOTE_DISCONNECT``: the sockets ``opts`` selects disconnect (``close``: their
    connection too)."""

    TYPE = RequestType.REMOTE_DISCONNECT
    close: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFetch(_Request):
    """``REMOTE_FETCH``: the details of the sockets ``opts`` selects (``fetchSockets``)."""

    TYPE = RequestType.REMOTE_FETCH
    request_id: str
    opts: WireOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmit(_Request):
    """``SERVER_SIDE_EMIT``: ``data`` is ``[event, ...args]``; with ``request_id``, one reply per
    server is expected (:class:`ServerSideEmitResponse`)."""

    TYPE = RequestType.SERVER_SIDE_EMIT
    request_id: str | None = None
    data: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastRequest(_Request):
    """``BROADCAST``: a broadcast with acknowledgements (msgpack). Each server answers the
    number of its clients (:class:`BroadcastClientCount`), then each client's ack
    (:class:`BroadcastAck`)."""

    TYPE = RequestType.BROADCAST
    MSGPACK = True
    request_id: str
    packet: EventPacket
    opts: WireOptions


Request = (
    SocketsRequest
    | AllRoomsRequest
    | RemoteJoin
    | RemoteLeave
    | RemoteDisconnect
    | RemoteFetch
    | ServerSideEmit
    | BroadcastRequest
)

# -- responses ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Response:
    """``{"type": TYPE, "requestId", ...}``, then the fields a response type declares. The
    answers to ``SOCKETS``, ``ALL_ROOMS``, ``REMOTE_FETCH`` and legacy updates have no type
    (``TYPE`` None): the request id says what they answer."""

    TYPE: ClassVar[RequestType | None] = None
    MSGPACK: ClassVar[bool] = False
    request_id: str

    def to_wire(self) -> dict[str, Any]:
        fields = wire_object(self, declared(self))
        return fields if self.TYPE is None else {"type": int(self.TYPE), **fields}


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsResponse(_Response):
    """The answer to ``SOCKETS`` (socket ids) and to ``REMOTE_FETCH`` (socket details)."""

    sockets: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AllRoomsResponse(_Response):
    """The answer to ``ALL_ROOMS``."""

    rooms: list[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateResponse(_Response):
    """``{"requestId"}``: the answer to a legacy (single-socket) join, leave or disconnect."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSideEmitResponse(_Response):
    """One server's reply to a :class:`ServerSideEmit` with a request id."""

    TYPE = RequestType.SERVER_SIDE_EMIT
    data: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastClientCount(_Response):
    """How many clients of one server a :class:`BroadcastRequest` reached."""

    TYPE = RequestType.BROADCAST_CLIENT_COUNT
    client_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastAck(_Response):
    """One client's ack to a :class:`BroadcastRequest` (msgpack): its first argument."""

    TYPE = RequestType.BROADCAST_ACK
    MSGPACK = True
    packet: Any


Response = (
    SocketsResponse
    | AllRoomsResponse
    | UpdateResponse
    | ServerSideEmitResponse
    | BroadcastClientCount
    | BroadcastAck
)
Message = Broadcast | Request | Response

# -- decoding -------------------------------------------------------------------------------------


def _known(types: type[RequestType], kind: Any) -> RequestType:
    if type(kind) is not int:
        raise UnknownType(kind)
    try:
        return types(kind)
    except ValueError:
        raise UnknownType(kind) from None


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
    match _known(RequestType, kind):
        case RequestType.SOCKETS:
            return SocketsRequest(
                uid=uid,
                request_id=required_str(request_id, "requestId"),
                rooms=rooms(raw.get("rooms"), "rooms"),
            )
        case RequestType.ALL_ROOMS:
            return AllRoomsRequest(uid=uid, request_id=required_str(request_id, "requestId"))
        case RequestType.REMOTE_JOIN:
            return _membership(raw, RequestType.REMOTE_JOIN, uid, request_id)
        case RequestType.REMOTE_LEAVE:
            return _membership(raw, RequestType.REMOTE_LEAVE, uid, request_id)
        case RequestType.REMOTE_DISCONNECT:
            return _membership(raw, RequestType.REMOTE_DISCONNECT, uid, request_id)
        case RequestType.REMOTE_FETCH:
            return RemoteFetch(
                uid=uid,
                request_id=required_str(request_id, "requestId"),
                opts=WireOptions.from_wire(raw.get("opts") or {}),
            )
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


def _membership(
    raw: dict[str, Any], kind: RequestType, uid: str | None, request_id: str | None
) -> RemoteJoin | RemoteLeave | RemoteDisconnect:
    opts: WireOptions | None = None
    sid: str | None = None
    if "opts" in raw:
        opts = WireOptions.from_wire(raw["opts"])
    else:
        # Legacy single-socket form: {sid, room} / {sid, close}, answered with {requestId}.
        sid = str(raw.get("sid"))
    if kind is RequestType.REMOTE_DISCONNECT:
        return RemoteDisconnect(
            uid=uid, opts=opts, close=bool(raw.get("close")), sid=sid, request_id=request_id
        )
    if "rooms" in raw:
        members = rooms(raw["rooms"], "rooms")
    else:
        members = (str(raw["room"]),) if "room" in raw else ()
    cls = RemoteJoin if kind is RequestType.REMOTE_JOIN else RemoteLeave
    return cls(uid=uid, opts=opts, rooms=members, sid=sid, request_id=request_id)


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
        return BroadcastClientCount(
            request_id=request_id, client_count=integer(raw.get("clientCount"), "clientCount")
        )
    if kind == RequestType.BROADCAST_ACK and type(kind) is int:
        return BroadcastAck(request_id=request_id, packet=raw.get("packet"))
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


def encode(message: Message) -> bytes:
    """The bytes the Node adapter writes for ``message``: msgpack for the types that may carry
    binary data (``MSGPACK``), JSON for the others."""
    wire = message.to_wire()
    return encode_msgpack(wire) if message.MSGPACK else encode_json(wire)

"""What the two protocols of ``@socket.io/redis-adapter`` share: their ``type`` numbers,
broadcast options, the packet a broadcast carries, the message types both write alike, the checks
on what another server asks to deliver, and the errors of the decoders.

Both protocols carry some operations with the same fields in the same order (join, leave,
disconnect, fetch, a broadcast's client count and acks): each of these is one class here
(:class:`SocketsJoin`, ...), which reads its fields with one ``from_data`` and is written by one
:func:`wire_object`; only the envelope around the fields differs (a classic request
``{uid, requestId, type, ...}``, a sharded message ``{type, data: {...}, uid, nsp}``), and each
protocol module writes its own.

The decoders (:mod:`~aiosio.adapters.redis.classic_messages`,
:mod:`~aiosio.adapters.redis.sharded_messages`) turn the bytes of one Redis message into one frozen
dataclass, or raise one of the :class:`MessageError` subclasses below, nothing else:

* :class:`InvalidMessage`: not JSON or msgpack, or over ``max_message_size``;
* :class:`WrongShape`: decodable, but not a message of the protocol (a field missing or of the
  wrong type);
* :class:`UnknownType`: a type this adapter does not use (Node ignores these too);
* :class:`Refused`: well formed, but it asks to deliver what no socket.io server may (a reserved
  event name, a forged attachment placeholder, past the :class:`~aiosio.Limits`), checked by the
  rules a client's packets are decoded with (:func:`~aiosio.protocol.socketio.check_event`);
  :class:`NotAnEvent` when the packet is not an EVENT. The refused message is attached, so its
  receiver can tell its own (dropped silently) from another server's (logged).

Every encoder writes the keys in the order the Node adapter writes them, so a message decoded
from Node's bytes encodes back to the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from enum import IntEnum
from typing import Any
from typing import ClassVar
from typing import Self
from typing import TypedDict
from typing import TypeVar

from aiosio.adapters.redis.codec import decode
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import check_event
from aiosio.server.adapter import BroadcastFlags
from aiosio.server.adapter import BroadcastOptions

T = TypeVar("T", bound=IntEnum)

__all__ = [
    "ENVELOPE",
    "NO_FLAGS",
    "BroadcastAck",
    "BroadcastClientCount",
    "Change",
    "DisconnectSockets",
    "Envelope",
    "EventPacket",
    "FetchSockets",
    "InvalidMessage",
    "MessageError",
    "MessageType",
    "NotAnEvent",
    "Refused",
    "RequestType",
    "SocketsJoin",
    "SocketsLeave",
    "UnknownType",
    "WireFlags",
    "WireMessage",
    "WireOptions",
    "WrongShape",
    "array",
    "check_broadcast",
    "check_server_side",
    "declared",
    "known",
    "optional_str",
    "payload",
    "request_id_of",
    "required_str",
    "rooms",
    "wire_object",
]


class RequestType(IntEnum):
    """The ``type`` of a classic request or response (the Node adapter's ``RequestType``)."""

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


class MessageType(IntEnum):
    """The ``type`` of a sharded cluster message (``socket.io-adapter``'s ``MessageType``). The
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


class MessageError(ValueError):
    """A message from Redis that is dropped; ``str(error)`` says why."""


class InvalidMessage(MessageError):
    """Not JSON or msgpack, or over ``max_message_size``."""


class WrongShape(MessageError):
    """Decodable, but not a message of the protocol."""


class UnknownType(MessageError):
    """A message type this adapter does not handle (the Node adapter ignores it too)."""

    def __init__(self, kind: Any) -> None:
        super().__init__(f"unknown message type {kind!r}")
        self.kind = kind


class Refused(MessageError):
    """A well-formed message that asks to deliver what no socket.io server may.

    ``message`` is the decoded message, ``what`` names it for the log (``"broadcast"``,
    ``"server-side emit"``), ``sender`` is the uid of the server that published it."""

    def __init__(self, message: Any, what: str, reason: str) -> None:
        super().__init__(reason)
        self.message = message
        self.what = what
        self.sender: Any = getattr(message, "uid", None)


class NotAnEvent(Refused):
    """A broadcast whose packet type is not EVENT (2) or BINARY_EVENT (5)."""

    def __init__(self, message: Any, packet_type: Any) -> None:
        super().__init__(
            message, "broadcast", f"packet type {packet_type!r} (expected 2, an EVENT)"
        )
        self.packet_type = packet_type


def known(types: type[T], kind: Any) -> T:
    """The member of ``types`` the ``type`` of a message names; raises :class:`UnknownType`."""
    if type(kind) is not int:
        raise UnknownType(kind)
    try:
        return types(kind)
    except ValueError:
        raise UnknownType(kind) from None


# -- fields ---------------------------------------------------------------------------------------


def payload(data: bytes, max_size: int) -> Any:
    """The value in ``data`` (:func:`~aiosio.adapters.redis.codec.decode`); raises
    :class:`InvalidMessage`."""
    try:
        return decode(data, max_size)
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from exc


def obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WrongShape(f"{what} must be an object")
    return value


def optional_str(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise WrongShape(f"{what} must be a string (got {type(value).__name__})")


def required_str(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    raise WrongShape(f"{what} must be a string (got {type(value).__name__})")


def rooms(value: Any, what: str) -> tuple[str, ...]:
    """An array of rooms (absent: none); numbers are rooms too, as in Node."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WrongShape(f"{what} must be an array (got {type(value).__name__})")
    return tuple(map(str, value))


def request_id_of(data: dict[str, Any]) -> str:
    """The ``requestId`` of a message that needs one."""
    return required_str(data.get("requestId"), "requestId")


def integer(value: Any, what: str) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise WrongShape(f"{what} must be an integer (got {type(value).__name__})")


def array(value: Any, what: str, *, non_empty: bool = False) -> list[Any]:
    if not isinstance(value, list) or (non_empty and not value):
        raise WrongShape(f"{what} must be a{' non-empty' if non_empty else 'n'} array")
    return value


# -- broadcast options ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WireFlags:
    """The flags of a broadcast as they travel: ``{"volatile": true, "compress": false,
    "timeout": ms}``, each key present only when it says something."""

    volatile: bool = False
    compress: bool = True
    timeout_ms: int | None = None

    @classmethod
    def from_wire(cls, raw: Any) -> WireFlags:
        if not raw or not isinstance(raw, dict):
            return NO_FLAGS  # as before: flags that are not an object are no flags
        timeout = raw.get("timeout")
        return cls(
            volatile=bool(raw.get("volatile")),
            compress=raw.get("compress") is not False,
            timeout_ms=timeout if type(timeout) is int else None,
        )

    @classmethod
    def of(cls, flags: BroadcastFlags, *, timeout: bool = False) -> WireFlags:
        """``flags`` as this server sends them; ``timeout`` adds the ack timeout (in
        milliseconds)."""
        timeout_ms = None
        if timeout and flags.timeout is not None:
            timeout_ms = round(flags.timeout * 1000)
        elif not flags.volatile and flags.compress:
            return NO_FLAGS
        return cls(volatile=flags.volatile, compress=flags.compress, timeout_ms=timeout_ms)

    def to_wire(self) -> dict[str, Any]:
        flags: dict[str, Any] = {}
        if self.volatile:
            flags["volatile"] = True
        if not self.compress:
            flags["compress"] = False
        if self.timeout_ms is not None:
            flags["timeout"] = self.timeout_ms
        return flags


NO_FLAGS = WireFlags()
_LOCAL_FLAGS = BroadcastFlags()


def _sorted(rooms: frozenset[str]) -> tuple[str, ...]:
    # Most broadcasts name no room or one: no sort for those (every broadcast is encoded here).
    return tuple(rooms) if len(rooms) < 2 else tuple(sorted(rooms))


@dataclass(frozen=True, slots=True, kw_only=True)
class WireOptions:
    """Who receives: ``{"rooms": [...], "except": [...], "flags": {...}}``. ``flags`` is None
    where the protocol leaves the key out (the classic adapter's requests)."""

    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    flags: WireFlags | None = None

    @classmethod
    def from_wire(cls, raw: Any) -> WireOptions:
        if not isinstance(raw, dict):
            raise WrongShape("opts must be an object")
        return cls(
            rooms=rooms(raw.get("rooms"), "opts.rooms"),
            except_rooms=rooms(raw.get("except"), "opts.except"),
            flags=WireFlags.from_wire(raw["flags"]) if "flags" in raw else None,
        )

    @classmethod
    def of(
        cls, opts: BroadcastOptions, *, flags: bool = True, timeout: bool = False
    ) -> WireOptions:
        """``opts`` as this server sends them: rooms sorted; ``flags`` False leaves them out;
        ``timeout`` adds the ack timeout (in milliseconds) to them."""
        return cls(
            rooms=_sorted(opts.rooms),
            except_rooms=_sorted(opts.except_rooms),
            flags=WireFlags.of(opts.flags, timeout=timeout) if flags else None,
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"rooms": list(self.rooms), "except": list(self.except_rooms)}
        if self.flags is not None:
            wire["flags"] = self.flags.to_wire()
        return wire

    def to_options(self, *, with_flags: bool = True) -> BroadcastOptions:
        """The local broadcast options (the ack timeout is the sender's business)."""
        flags = self.flags if with_flags and self.flags is not None else NO_FLAGS
        return BroadcastOptions(
            rooms=frozenset(self.rooms),
            except_rooms=frozenset(self.except_rooms),
            flags=(
                _LOCAL_FLAGS
                if flags is NO_FLAGS
                else BroadcastFlags(volatile=flags.volatile, compress=flags.compress)
            ),
        )


# -- the packet of a broadcast --------------------------------------------------------------------

EVENT_TYPES = (2, 5)  # EVENT, or BINARY_EVENT from a peer that encoded first


@dataclass(frozen=True, slots=True, kw_only=True)
class EventPacket:
    """``{"type": 2, "data": [event, ...args], "nsp": "/"}``; the sharded adapter leaves
    ``nsp`` out (None)."""

    data: list[Any]
    type: Any = 2
    nsp: str | None = None

    @classmethod
    def from_wire(cls, raw: Any, *, data_rule: str, non_empty: bool) -> EventPacket:
        packet = obj(raw, "the packet")
        data = packet.get("data")
        if not isinstance(data, list) or (non_empty and not data):
            raise WrongShape(data_rule)
        return cls(
            data=data,
            type=packet.get("type", 2),
            nsp=optional_str(packet.get("nsp"), "packet.nsp"),
        )

    @property
    def is_event(self) -> bool:
        return self.type in EVENT_TYPES and type(self.type) is int

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": self.type, "data": self.data}
        if self.nsp is not None:
            wire["nsp"] = self.nsp
        return wire


# -- the messages both protocols write alike --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WireMessage:
    """A message of either protocol: its fields, declared in the order the Node adapter writes
    them, and around them the envelope, which each protocol writes its own way. ``uid`` is the
    sender (None: a classic response, or a request of the Node emitter); ``nsp`` the namespace
    (written in a sharded message; a classic channel names it, and there it is None).

    ``CLASSIC`` and ``CLUSTER`` are the ``type`` a message is written with in the classic and the
    sharded protocol (a class of one protocol only has one of them); ``MAY_BE_BINARY``: its
    fields may hold bytes, and the Node adapter writes it as msgpack (always in the classic
    protocol, when they do in the sharded one)."""

    MAY_BE_BINARY: ClassVar[bool] = False
    uid: str | None = None
    nsp: str | None = None


ENVELOPE = ("uid", "nsp")


class Envelope(TypedDict):
    """What a server writes around each of its messages: ``SocketsJoin(**envelope, ...)``."""

    uid: str | None
    nsp: str | None


# Each reads its fields from ``data``: a sharded message's data object, or a classic request or
# response itself (its requestId included). Raises WrongShape.


@dataclass(frozen=True, slots=True, kw_only=True)
class _RoomsChange(WireMessage):
    opts: WireOptions
    rooms: tuple[str, ...]

    @classmethod
    def from_data(cls, data: dict[str, Any], *, uid: str | None, nsp: str | None = None) -> Self:
        if "rooms" not in data:
            raise WrongShape("rooms is missing")
        opts = WireOptions.from_wire(data.get("opts"))
        return cls(uid=uid, nsp=nsp, opts=opts, rooms=rooms(data["rooms"], "rooms"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsJoin(_RoomsChange):
    """The sockets ``opts`` selects join ``rooms``."""

    CLASSIC: ClassVar[RequestType] = RequestType.REMOTE_JOIN
    CLUSTER: ClassVar[MessageType] = MessageType.SOCKETS_JOIN


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketsLeave(_RoomsChange):
    """The sockets ``opts`` selects leave ``rooms``."""

    CLASSIC: ClassVar[RequestType] = RequestType.REMOTE_LEAVE
    CLUSTER: ClassVar[MessageType] = MessageType.SOCKETS_LEAVE


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectSockets(WireMessage):
    """The sockets ``opts`` selects disconnect (``close``: their connection too)."""

    CLASSIC: ClassVar[RequestType] = RequestType.REMOTE_DISCONNECT
    CLUSTER: ClassVar[MessageType] = MessageType.DISCONNECT_SOCKETS
    opts: WireOptions
    close: bool

    @classmethod
    def from_data(cls, data: dict[str, Any], *, uid: str | None, nsp: str | None = None) -> Self:
        opts = WireOptions.from_wire(data.get("opts"))
        return cls(uid=uid, nsp=nsp, opts=opts, close=bool(data.get("close")))


Change = SocketsJoin | SocketsLeave | DisconnectSockets


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSockets(WireMessage):
    """The details of the sockets ``opts`` selects (``fetchSockets``); the classic protocol
    writes ``request_id`` before the type, the sharded one after ``opts``."""

    CLASSIC: ClassVar[RequestType] = RequestType.REMOTE_FETCH
    CLUSTER: ClassVar[MessageType] = MessageType.FETCH_SOCKETS
    opts: WireOptions
    request_id: str

    @classmethod
    def from_data(cls, data: dict[str, Any], *, uid: str | None, nsp: str | None = None) -> Self:
        request_id = request_id_of(data)
        return cls(
            uid=uid, nsp=nsp, opts=WireOptions.from_wire(data.get("opts")), request_id=request_id
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastClientCount(WireMessage):
    """How many clients of one server a broadcast with acks reached."""

    CLASSIC: ClassVar[RequestType] = RequestType.BROADCAST_CLIENT_COUNT
    CLUSTER: ClassVar[MessageType] = MessageType.BROADCAST_CLIENT_COUNT
    request_id: str
    client_count: int

    @classmethod
    def from_data(cls, data: dict[str, Any], *, uid: str | None, nsp: str | None = None) -> Self:
        count = integer(data.get("clientCount"), "clientCount")
        return cls(uid=uid, nsp=nsp, request_id=request_id_of(data), client_count=count)


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastAck(WireMessage):
    """One client's ack to a broadcast with acks: its first argument."""

    CLASSIC: ClassVar[RequestType] = RequestType.BROADCAST_ACK
    CLUSTER: ClassVar[MessageType] = MessageType.BROADCAST_ACK
    MAY_BE_BINARY = True
    request_id: str
    packet: Any

    @classmethod
    def from_data(cls, data: dict[str, Any], *, uid: str | None, nsp: str | None = None) -> Self:
        return cls(uid=uid, nsp=nsp, request_id=request_id_of(data), packet=data.get("packet"))


# -- writing a message's fields ------------------------------------------------------------------

# Absent from the wire rather than null: a request without a sender (the Node emitter's) or
# without a request id (nothing waits for an answer).
_LEFT_OUT_WHEN_NONE = frozenset({"uid", "request_id"})


def declared(message: Any, *, but: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The field names of the dataclass ``message`` in the order they are declared, which is
    the order the Node adapter writes them in; ``but`` names those written elsewhere."""
    return tuple(f.name for f in fields(message) if f.name not in but)


def wire_object(message: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The attributes ``names`` of ``message`` as Node writes them: camelCase keys, nested
    options and packets by their own ``to_wire``, rooms as arrays; ``uid`` and ``request_id``
    only when set."""
    wire: dict[str, Any] = {}
    for name in names:
        value = getattr(message, name)
        if value is None and name in _LEFT_OUT_WHEN_NONE:
            continue
        if isinstance(value, WireOptions | EventPacket):
            value = value.to_wire()
        elif isinstance(value, tuple):
            value = list(value)
        wire[_camel_case(name)] = value
    return wire


def _camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


# -- what another server asks to deliver ----------------------------------------------------------

# What Namespace.server_side_emit refuses to send, refused on receipt too: these names are the
# server's own events.
SERVER_SIDE_RESERVED = frozenset(
    {"connect", "connection", "new_namespace", "disconnect", "disconnecting"}
)
# Server-side arguments go to Python handlers, not to clients: only the name rules apply.
_NO_LIMITS = Limits(max_attachments=2**31, max_depth=2**31)


def check_broadcast(message: Any, packet: EventPacket, limits: Limits) -> None:
    """Raise :class:`NotAnEvent` or :class:`Refused` when ``packet`` may not reach a client."""
    if not packet.is_event:
        raise NotAnEvent(message, packet.type)
    try:
        check_event(packet.data, limits)
    except RemoteProtocolError as exc:
        raise Refused(message, "broadcast", str(exc)) from exc


def check_server_side(message: Any, args: list[Any]) -> None:
    """Raise :class:`Refused` when ``args`` may not reach a server-side handler."""
    if args and isinstance(args[0], str) and args[0] in SERVER_SIDE_RESERVED:
        raise Refused(
            message, "server-side emit", f"server-side event name {args[0]!r} is reserved"
        )
    try:
        check_event(args, _NO_LIMITS)
    except RemoteProtocolError as exc:
        raise Refused(message, "server-side emit", str(exc)) from exc

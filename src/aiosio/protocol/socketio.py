"""Socket.IO packets: protocol 5 (socket.io 3.x/4.x) and 4 (socket.io 2.x, over Engine.IO 3).

Sans-I/O, like the reference ``socket.io-parser`` 4.x (``docs/socket.io-protocol/v5-current.md``,
"Packet format"): ``<type>[<attachments>-][<namespace>,][<ack id>][JSON payload]``, followed by the
binary attachments for BINARY_EVENT / BINARY_ACK, each in an Engine.IO message of its own, with
``{"_placeholder":true,"num":N}`` standing in the JSON for each.

The decoder is stricter than the reference where the reference is unsafe (HARDENING.md 1 to 7):
bounded attachments (each placeholder index an int in range), bounded namespace length, ack id
digits and JSON depth; payload types per packet type; reserved event names refused. Every rule
broken raises :class:`~aiosio.protocol.errors.RemoteProtocolError` and leaves no partial state.

JSON goes through orjson; where orjson refuses something JavaScript's ``JSON.parse`` /
``JSON.stringify`` accepts (lone surrogates, integers beyond 64 bits), the standard library
takes over instead of failing the connection.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from aiosio.protocol.errors import ParserMismatch
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.limits import Limits

__all__ = [
    "EVENT_VALUES",
    "RESERVED_EVENTS",
    "Decoder",
    "Limits",
    "Packet",
    "PacketType",
    "ValueRules",
    "check_event",
    "check_event_name",
    "check_payload",
    "check_values",
    "dumps",
    "encode",
    "encode_parts",
    "has_binary",
    "loads",
    "split_v4_namespace",
]

RESERVED_EVENTS = frozenset(
    {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
        "error",
    }
)


def check_event_name(event: Any) -> None:
    """Refuse, at the call, an event name a local emit may not use: not a string (TypeError) or
    a reserved name (ValueError), which a peer would refuse to deliver (HARDENING.md 1)."""
    if not isinstance(event, str):
        raise TypeError(f"event name must be a string, got {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


class PacketType(enum.IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(slots=True)
class Packet:
    """One Socket.IO packet. ``data`` is ``None`` when the packet has no payload; binary
    attachments appear in ``data`` as ``bytes`` (the decoder puts them back in place).

    Not frozen: one is built per received message, and a frozen dataclass costs three times
    as much to construct. Treat it as a value all the same."""

    type: PacketType
    nsp: str = "/"
    data: Any = None
    id: int | None = None


_DEFAULT_LIMITS = Limits()
_MAX_QUERY_KEYS = 1000
_DIGITS = re.compile(r"[0-9]+")
_TYPE_BY_CHAR = {str(t.value): t for t in PacketType}  # an enum call costs more than a lookup
# The message nearly every packet is: an EVENT or ACK on "/", maybe an ack id, then the array.
_HOT = re.compile(r"([23])([0-9]{1,16})?(?=\[)")
_PLAIN = (str, int, float, bool, type(None))
_BINARY = (bytes, bytearray, memoryview)
_OPT = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """``JSON.stringify`` as a JavaScript peer expects it."""
    try:
        return orjson.dumps(value, option=_OPT).decode()
    except TypeError:
        # Lone surrogates and integers beyond 64 bits: the standard library writes what
        # JSON.stringify would (escaped surrogates; big integers as digits; NaN as null).
        return json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=True)


# How deep the encoder's own walks (_finite, _deconstruct) go before they raise RecursionError,
# as the interpreter does for a value nested too deep or containing itself. Compiled with mypyc
# (setup.py), a call between these functions is a C call that Python's recursion limit does not
# count: without this bound such a value would overflow the C stack and crash the process.
# Interpreted, each level takes two frames (the comprehension is one): at 200 this bound, not the
# interpreter's limit of 1000 frames, is what both builds raise. orjson itself stops at 255.
_MAX_WALK_DEPTH = 200


def _too_deep() -> RecursionError:
    return RecursionError(f"value nested deeper than {_MAX_WALK_DEPTH} (or containing itself)")


def _finite(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_WALK_DEPTH:
        raise _too_deep()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_finite(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v, depth + 1) for k, v in value.items()}
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:20]} is out of range")
    return number


def loads(text: str) -> Any:
    """``JSON.parse``; raises ValueError for invalid JSON, or JSON nested too deeply to parse."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if "\\ud" not in text and "\\uD" not in text:
            raise
    # Escaped lone surrogates are valid for JSON.parse; orjson refuses them. The fallback is as
    # strict as orjson otherwise (no NaN/Infinity literals), and its recursion ends as orjson's
    # depth limit does: in a ValueError.
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None


def has_binary(value: Any, depth: int = 0) -> bool:
    """True when ``value`` holds bytes anywhere (the reference's ``hasBinary``)."""
    kind = type(value)
    if kind is list and depth <= 64:  # the arguments of every emit: no generator
        for item in value:  # noqa: SIM110 - a loop, not a generator, on the hot path
            if type(item) not in _PLAIN and has_binary(item, depth + 1):
                return True
        return False
    if kind in _PLAIN:
        return False
    if isinstance(value, _BINARY):
        return True
    if depth > 64:
        return False
    if isinstance(value, list | tuple):
        items: Any = value
    elif isinstance(value, dict):
        items = value.values()
    else:
        return False
    return any(type(item) not in _PLAIN and has_binary(item, depth + 1) for item in items)


def _deconstruct(value: Any, buffers: list[bytes], depth: int = 0) -> Any:
    if depth > _MAX_WALK_DEPTH:
        raise _too_deep()
    if isinstance(value, bytes | bytearray | memoryview):
        buffers.append(bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(value, list | tuple):
        return [_deconstruct(v, buffers, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _deconstruct(v, buffers, depth + 1) for k, v in value.items()}
    return value


_TYPE_DIGIT = {t: str(t.value) for t in PacketType}
# Enum members read once: on Python 3.11 each ``PacketType.X`` is a descriptor call.
_EVENT, _ACK = PacketType.EVENT, PacketType.ACK
_BINARY_EVENT, _BINARY_ACK = PacketType.BINARY_EVENT, PacketType.BINARY_ACK
_NO_BUFFERS: list[bytes] = []
# The first byte of a msgpack map (fixmap of 1 to 15 keys, map 16, map 32): what a packet of
# socket.io-msgpack-parser starts with.
_MSGPACK_MAP_HEADS = frozenset((*range(0x81, 0x90), 0xDE, 0xDF))


def encode(packet: Packet) -> list[str | bytes]:
    """Encode a packet into Engine.IO messages: the text header packet, then attachments."""
    return encode_parts(packet.type, packet.nsp, packet.data, packet.id)


def encode_parts(
    ptype: PacketType, nsp: str, data: Any, ack_id: int | None = None
) -> list[str | bytes]:
    """:func:`encode` without building a :class:`Packet` (what an ack answered on the hot path
    has at hand): ``<type>[<attachments>-][<namespace>,][<ack id>][JSON payload]``, then the
    attachments ("Packet format" in the protocol's spec). The one header encoder."""
    if (ptype is _EVENT or ptype is _ACK) and has_binary(data):
        ptype = _BINARY_EVENT if ptype is _EVENT else _BINARY_ACK
        buffers: list[bytes] = []
        data = _deconstruct(data, buffers)
        head = f"{_TYPE_DIGIT[ptype]}{len(buffers)}-"
    else:
        buffers = _NO_BUFFERS
        head = _TYPE_DIGIT[ptype]
    if nsp != "/" and nsp:
        head = f"{head}{nsp},"
    if ack_id is not None:
        head = f"{head}{ack_id}"
    if data is not None:
        head += dumps(data)
    if not buffers:
        return [head]
    return [head, *buffers]


class Decoder:
    """Decodes the Engine.IO messages of one connection into packets.

    :meth:`feed` returns a complete :class:`Packet`, or ``None`` while a binary packet still waits
    for attachments. Any violation raises :class:`RemoteProtocolError` and resets the decoder.

    ``protocol`` 4 (socket.io 2.x clients) carries the CONNECT's query in its namespace
    (``/admin?token=...``, see :func:`split_v4_namespace`): there ``max_namespace_length`` bounds
    the namespace before the ``?``, and the query is bounded by the message's size only, as a
    token may be long.
    """

    __slots__ = ("_attachments", "_expected", "_header", "_query_in_connect", "limits")

    def __init__(self, limits: Limits = _DEFAULT_LIMITS, *, protocol: int = 5) -> None:
        self.limits = limits
        self._query_in_connect = protocol == 4
        self._header: Packet | None = None
        self._expected = 0
        self._attachments: list[bytes] = []

    @property
    def pending(self) -> bool:
        """True while a binary packet waits for attachments."""
        return self._header is not None

    def reset(self) -> None:
        """Drop a partially received binary packet."""
        self._header = None
        self._expected = 0
        self._attachments = []

    def feed(self, message: str | bytes | bytearray) -> Packet | None:
        if isinstance(message, str):
            if self._header is not None:
                self.reset()
                raise RemoteProtocolError("got a text packet while waiting for binary attachments")
            return self._decode_string(message)
        if self._header is None:
            if message and message[0] in _MSGPACK_MAP_HEADS:
                raise ParserMismatch(
                    "got a binary message that no packet announced, and it looks like a "
                    "msgpack map: the peer likely uses the msgpack parser "
                    "(socket.io-msgpack-parser), this side the default JSON one",
                    peer="msgpack",
                )
            raise RemoteProtocolError("got a binary attachment that no packet announced")
        self._attachments.append(bytes(message))
        if len(self._attachments) < self._expected:
            return None
        header, buffers = self._header, self._attachments
        self.reset()
        return self._reconstruct(header, buffers)

    def _reconstruct(self, header: Packet, buffers: list[bytes]) -> Packet:
        data = _replace_placeholders(header.data, buffers, self.limits.max_depth)
        ptype = PacketType.EVENT if header.type is PacketType.BINARY_EVENT else PacketType.ACK
        return Packet(ptype, header.nsp, data, header.id)

    def _decode_string(self, text: str) -> Packet | None:
        """Any text packet: the packet, or ``None`` for the header of a binary packet, kept
        until its attachments arrive. Raises :class:`RemoteProtocolError`."""
        limits = self.limits
        hot = _HOT.match(text)
        if hot is not None:
            # Nearly every packet: an EVENT or ACK on "/", maybe an ack id, then the array. The
            # checks below, in the order they apply to this shape, without the general walk.
            digits = hot.group(2)
            ack_id: int | None = None
            if digits is not None:
                ack_id = int(digits)
                if ack_id > limits.max_ack_id:
                    raise RemoteProtocolError(f"ack id {ack_id} exceeds {limits.max_ack_id}")
            data: Any
            try:
                data = loads(text[hot.end() :])
            except (ValueError, RecursionError):
                raise RemoteProtocolError("invalid JSON payload") from None
            max_depth = limits.max_depth
            # _check_depth's own test first, without the call: a text with fewer opening
            # brackets than the limit cannot be nested that deep.
            if len(text) > 2 * max_depth and text.count("[") + text.count("{") > max_depth:
                _check_depth(data, text, max_depth)
            if text[0] == "2":  # the type, the regular expression's first group
                name = data[0] if type(data) is list and data else None
                if type(name) is not str or name in RESERVED_EVENTS:
                    check_payload(_EVENT, data)  # refuses it, or accepts a numeric name
                return Packet(_EVENT, "/", data, ack_id)
            if type(data) is not list:
                raise RemoteProtocolError("ACK payload must be an array")
            return Packet(_ACK, "/", data, ack_id)
        ptype = _TYPE_BY_CHAR.get(text[:1])
        if ptype is None:
            raise RemoteProtocolError(f"unknown packet type {text[:1]!r}")
        i = 1
        size = len(text)
        attachments: int | None = None
        if ptype is PacketType.BINARY_EVENT or ptype is PacketType.BINARY_ACK:
            dash = text.find("-", 1, 8)
            digits = text[1:dash] if dash > 0 else ""
            if not digits.isdigit() or not digits.isascii():
                raise RemoteProtocolError(f"illegal attachments count {text[1:8]!r}")
            attachments = int(digits)
            if attachments < 1 or attachments > limits.max_attachments:
                raise RemoteProtocolError(
                    f"attachments count {attachments} is outside 1..{limits.max_attachments}"
                )
            i = dash + 1
        nsp = "/"
        if i < size and text[i] == "/" and ptype is PacketType.CONNECT and self._query_in_connect:
            comma = text.find(",", i)
            nsp = text[i:comma] if comma >= 0 else text[i:]
            i = comma + 1 if comma >= 0 else size
            if len(nsp.partition("?")[0]) > limits.max_namespace_length:
                raise RemoteProtocolError(
                    f"namespace longer than max_namespace_length={limits.max_namespace_length}"
                )
        elif i < size and text[i] == "/":
            comma = text.find(",", i, i + limits.max_namespace_length + 1)
            if comma < 0:
                rest = text[i:]
                if len(rest) > limits.max_namespace_length:
                    raise RemoteProtocolError(
                        f"namespace longer than max_namespace_length={limits.max_namespace_length}"
                    )
                nsp, i = rest, size
            else:
                nsp, i = text[i:comma], comma + 1
        ack_id = None
        start = i
        match = _DIGITS.match(text, i)
        if match is not None:
            i = match.end()
            if i - start > 16:
                raise RemoteProtocolError("ack id has more than 16 digits")
        if i > start:
            ack_id = int(text[start:i])
            if ack_id > limits.max_ack_id:
                raise RemoteProtocolError(f"ack id {ack_id} exceeds {limits.max_ack_id}")
        data = None
        if i < size:
            try:
                data = loads(text[i:])
            except (ValueError, RecursionError):
                raise RemoteProtocolError("invalid JSON payload") from None
            _check_depth(data, text, limits.max_depth)
            check_payload(ptype, data)
        elif ptype is not PacketType.CONNECT and ptype is not PacketType.DISCONNECT:
            raise RemoteProtocolError(f"{ptype.name} packet without payload")
        packet = Packet(ptype, nsp, data, ack_id)
        if attachments is None:
            return packet
        self._header = packet
        self._expected = attachments
        return None


def check_payload(ptype: PacketType, data: Any) -> None:
    """Refuse a payload of the wrong type for ``ptype`` (HARDENING.md 1, 2): CONNECT an object,
    DISCONNECT none, CONNECT_ERROR a string or an object, EVENT a non-empty array whose first
    element is a string that is not reserved or a number, ACK an array. Raises
    :class:`RemoteProtocolError`; called with a payload present (``data`` not ``None``)."""
    if ptype is PacketType.CONNECT:
        if not isinstance(data, dict):
            raise RemoteProtocolError("CONNECT payload must be an object")
    elif ptype is PacketType.DISCONNECT:
        raise RemoteProtocolError("DISCONNECT packet must have no payload")
    elif ptype is PacketType.CONNECT_ERROR:
        if not isinstance(data, str | dict):
            raise RemoteProtocolError("CONNECT_ERROR payload must be a string or an object")
    elif ptype is PacketType.EVENT or ptype is PacketType.BINARY_EVENT:
        if not isinstance(data, list) or not data:
            raise RemoteProtocolError("EVENT payload must be a non-empty array")
        name = data[0]
        if isinstance(name, str):
            if name in RESERVED_EVENTS:
                raise RemoteProtocolError(f"event name {name!r} is reserved")
        elif isinstance(name, bool) or not isinstance(name, int | float):
            raise RemoteProtocolError("event name must be a string or a number")
    elif not isinstance(data, list):  # ACK / BINARY_ACK
        raise RemoteProtocolError(f"{ptype.name} payload must be an array")


def _check_depth(data: Any, text: str, max_depth: int) -> None:
    """Refuse values nested deeper than ``max_depth``. Free for small payloads: a text with
    fewer opening brackets than the limit cannot be that deep."""
    if len(text) <= 2 * max_depth or text.count("[") + text.count("{") <= max_depth:
        return
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise RemoteProtocolError(f"payload nested deeper than max_depth={max_depth}")
        if isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, list | dict))
        elif isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, list | dict))


def _replace_placeholders(value: Any, buffers: list[bytes], max_depth: int, depth: int = 0) -> Any:
    if depth > max_depth:
        raise RemoteProtocolError(f"payload nested deeper than max_depth={max_depth}")
    if isinstance(value, dict):
        if value.get("_placeholder") is True:
            num = value.get("num")
            if type(num) is not int or not 0 <= num < len(buffers):
                raise RemoteProtocolError(f"illegal attachment placeholder index {num!r}")
            return buffers[num]
        return {
            k: _replace_placeholders(v, buffers, max_depth, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_replace_placeholders(v, buffers, max_depth, depth + 1) for v in value]
    return value


def split_v4_namespace(nsp: str) -> tuple[str, dict[str, str]]:
    """The namespace and the query of a protocol 4 (socket.io 2.x) CONNECT, which carries the
    query in its namespace: ``/admin?token=x`` is ``("/admin", {"token": "x"})``.

    Split as Node's ``url.parse(nsp, true)`` splits a path (what the reference server does with
    it): a ``#`` starts a fragment, which is dropped; the path ends at the first ``?``; the query
    is form-encoded, its first 1000 fields kept (Node's ``maxKeys``). Slashes never name a host
    (``//admin`` is the namespace ``//admin``). Total: whatever the peer sent, it returns (``//[``
    is a namespace like any other, which no server declares), never raises.
    """
    head = nsp.partition("#")[0]
    path, _, query = head.partition("?")
    # Node's querystring.parse keeps the first 1000 keys (maxKeys) and ignores the rest.
    fields = query.split("&", _MAX_QUERY_KEYS)[:_MAX_QUERY_KEYS]
    return path or "/", dict(parse_qsl("&".join(fields), keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class ValueRules:
    """What a payload that arrives as values, not as text this module decoded, may hold: the
    rules :func:`check_values` walks it with, one set per format."""

    leaves: frozenset[type]
    """The types taken as they are; ``bytes``, unless one of them, are attachments."""
    container: str
    """What the messages call a ``dict``: ``object`` (JSON) or ``map`` (msgpack)."""
    expected: str
    """What the message about a value of another type says was expected."""
    refuse_placeholders: bool
    """Refuse attachment placeholder objects (``{"_placeholder": true, ...}``)."""


# The arguments of an EVENT as JSON values and bytes (check_event).
EVENT_VALUES = ValueRules(
    leaves=frozenset({str, int, float, bool, type(None)}),
    container="object",
    expected="JSON or bytes",
    refuse_placeholders=True,
)
_KEY_TYPES = (str, int, float)


def check_values(data: Any, limits: Limits, rules: ValueRules) -> None:
    """Walk ``data`` (without recursion, whatever its depth) by ``rules``: lists and dicts
    nested no deeper than ``limits.max_depth``, string or number keys, values of the types
    ``rules.leaves``, at most ``limits.max_attachments`` bytes values that are not leaves, and
    no placeholder objects where ``rules.refuse_placeholders``.

    Raises :class:`RemoteProtocolError` naming the first rule broken.
    """
    max_depth = limits.max_depth
    leaves = rules.leaves
    placeholders = rules.refuse_placeholders
    attachments = 0
    # Leaves are never pushed: what is popped is a container, an attachment or a wrong type.
    stack: list[tuple[Any, int]] = [] if type(data) in leaves else [(data, 1)]
    push = stack.append  # a loop, not extend(generator): half the time on small payloads
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is list or kind is dict:
            if depth > max_depth:
                raise RemoteProtocolError(f"payload nested deeper than max_depth={max_depth}")
            if kind is dict:
                if placeholders and value.get("_placeholder") is True:
                    raise RemoteProtocolError(
                        "attachment placeholder object in the arguments (only the encoder "
                        "writes placeholders)"
                    )
                for key in value:
                    if type(key) not in _KEY_TYPES:
                        raise RemoteProtocolError(
                            f"{rules.container} key of type {type(key).__name__} (expected a "
                            "string)"
                        )
                value = value.values()
            depth += 1
            for item in value:
                if type(item) not in leaves:
                    push((item, depth))
        elif kind is bytes:
            attachments += 1
            if attachments > limits.max_attachments:
                raise RemoteProtocolError(
                    f"more than max_attachments={limits.max_attachments} binary values"
                )
        else:
            raise RemoteProtocolError(f"value of type {kind.__name__} (expected {rules.expected})")


def check_event(data: Any, limits: Limits = _DEFAULT_LIMITS) -> None:
    """Check the arguments of an EVENT that arrive as values rather than text (from another
    server of the cluster, in msgpack or JSON) by the rules a client's packet is decoded with
    (HARDENING.md 1, 3, 4, 7): a non-empty list whose first element, the event name, is a string
    that is not reserved or a number; then :func:`check_values` by :data:`EVENT_VALUES`: at most
    ``limits.max_attachments`` binary values; nested no deeper than ``limits.max_depth``; no
    attachment placeholder objects (the encoder writes its own: a forged one would make the
    client put an attachment in the wrong place, or fail); only JSON values and bytes, with
    string or number object keys.

    Raises :class:`RemoteProtocolError` naming the first rule broken.
    """
    if not isinstance(data, list) or not data:
        raise RemoteProtocolError(f"EVENT payload must be a non-empty array (got {_kind(data)})")
    check_payload(PacketType.EVENT, data)
    check_values(data, limits, EVENT_VALUES)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an empty array"
    return type(value).__name__

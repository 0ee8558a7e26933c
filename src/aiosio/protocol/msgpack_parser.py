"""The msgpack parser: ``socket.io-msgpack-parser`` 3.x's format (``parser="msgpack"``).

Each packet is one binary Engine.IO message, a msgpack map written by ``notepack.io`` 2.x:
``type`` (0 CONNECT to 4 CONNECT_ERROR: no BINARY_EVENT or BINARY_ACK, binary values travel
inside the map), ``nsp`` (a string), ``data`` (absent for none) and ``id`` (absent for none); other
keys (socket.io-client writes ``options``) are ignored, as the reference does.

notepack's values, both ways: JavaScript numbers that are integers are msgpack integers, others
float 64; ``Buffer`` is msgpack bin (``bytes`` here); an ``ArrayBuffer`` or typed array is the
extension type 0 (``bytes`` here; written back as bin, which JavaScript reads as a ``Buffer`` in
Node, a ``Uint8Array``-like value in browsers); ``undefined`` is the fixext 1 of type 0 (``None``);
a ``Date`` is the fixext 8 of type 0, milliseconds since the epoch (a UTC ``datetime`` here, and
a ``datetime`` is written as one; a naive one is taken as UTC). Python's msgpack cannot tell a
fixext from an ext of the same length, which notepack writes for an ``ArrayBuffer`` of exactly 1
or 8 bytes: a message containing such an ext header reads those values as ``bytes``, any other
message reads them as ``undefined`` / ``Date``.

The decoder applies the JSON decoder's rules (HARDENING.md 1, 2, 7): the same payload types per
packet type, reserved event names refused, ``max_depth``, ``max_namespace_length`` and
``max_ack_id``; map keys strings or numbers; the message bounded by ``max_http_buffer_size`` before
it gets here, and msgpack's own lengths by the message's size. ``max_attachments`` does not apply:
there are no attachments, binary values are part of the one message.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgpack

from aiosio.protocol.errors import ParserMismatch
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.packing import PackerPool
from aiosio.protocol.parser import Parser
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import ValueRules
from aiosio.protocol.socketio import check_payload
from aiosio.protocol.socketio import check_values

__all__ = ["MSGPACK", "MsgpackDecoder", "MsgpackParser"]

_TYPES = {t.value: t for t in PacketType if t.value <= PacketType.CONNECT_ERROR}
_WIRE_TYPE = {
    **{t: t.value for t in _TYPES.values()},
    PacketType.BINARY_EVENT: PacketType.EVENT.value,
    PacketType.BINARY_ACK: PacketType.ACK.value,
}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# What notepack writes: binary values are part of the message (no attachments, no placeholders).
_NOTEPACK_VALUES = ValueRules(
    leaves=frozenset({str, int, float, bool, type(None), bytes, datetime.datetime}),
    container="map",
    expected="a value notepack writes",
    refuse_placeholders=False,
)
# The ext headers notepack writes for an ArrayBuffer of 1 and of 8 bytes (ext 8, type 0).
_EXT8_1, _EXT8_8 = b"\xc7\x01\x00", b"\xc7\x08\x00"


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        ms = (value - _EPOCH) // datetime.timedelta(milliseconds=1)
        return msgpack.ExtType(0, ms.to_bytes(8, "big", signed=True))
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, int):  # beyond 64 bits: the float JavaScript would make of it
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not msgpack serializable")


_PACKERS = PackerPool(default=_default)


class MsgpackParser(Parser):
    """``socket.io-msgpack-parser``'s format (:data:`MSGPACK`)."""

    name = "msgpack"

    def encode(self, packet: Packet) -> list[str | bytes]:
        return self.encode_parts(packet.type, packet.nsp, packet.data, packet.id)

    def encode_parts(
        self, ptype: PacketType, nsp: str, data: Any, ack_id: int | None = None
    ) -> list[str | bytes]:
        value: dict[str, Any] = {"type": _WIRE_TYPE[ptype], "nsp": nsp}
        if data is not None:
            value["data"] = data
        if ack_id is not None:
            value["id"] = ack_id
        return [_PACKERS.pack(value)]

    def decoder(self, limits: Limits, *, protocol: int = 5) -> MsgpackDecoder:
        return MsgpackDecoder(limits)


MSGPACK = MsgpackParser()


class MsgpackDecoder:
    """Decodes one connection's messages, each a whole packet (see the module)."""

    __slots__ = ("limits",)

    pending = False  # a packet is always one message

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def reset(self) -> None:
        return None

    def feed(self, message: str | bytes) -> Packet:
        """The packet ``message`` holds. Raises :class:`RemoteProtocolError` (its subclass
        :class:`ParserMismatch` for a text message: the peer uses the JSON parser)."""
        if isinstance(message, str):
            raise ParserMismatch(
                "got a text message where the msgpack parser expects binary ones: the peer "
                "likely uses the default JSON parser, this side the msgpack one",
                peer="json",
            )
        ambiguous = _EXT8_1 in message or _EXT8_8 in message
        try:
            value = msgpack.unpackb(
                message,
                raw=False,
                strict_map_key=False,
                ext_hook=_ext_as_bytes if ambiguous else _ext,
            )
        except RemoteProtocolError:
            raise
        except msgpack.StackError:
            raise RemoteProtocolError(
                f"payload nested deeper than max_depth={self.limits.max_depth}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - msgpack's errors, translated at the edge
            raise RemoteProtocolError(f"invalid msgpack packet: {_describe(exc)}") from None
        return _packet(value, self.limits)


def _describe(exc: Exception) -> str:
    if isinstance(exc, msgpack.ExtraData):
        return "extra bytes after the packet"
    text = str(exc)[:100]
    return text or type(exc).__name__


def _ext(code: int, data: bytes) -> Any:
    if code != 0:
        raise RemoteProtocolError(
            f"msgpack extension type {code}: socket.io-msgpack-parser writes only type 0"
        )
    size = len(data)
    if size == 1:  # undefined (fixext 1)
        return None
    if size == 8:  # a Date (fixext 8): milliseconds since the epoch
        ms = int.from_bytes(data, "big", signed=True)
        try:
            return _EPOCH + datetime.timedelta(milliseconds=ms)
        except OverflowError:
            raise RemoteProtocolError(f"date out of range: {ms} ms") from None
    return data


def _ext_as_bytes(code: int, data: bytes) -> Any:
    if code != 0:
        return _ext(code, data)
    return data


def _packet(value: Any, limits: Limits) -> Packet:
    if type(value) is not dict:
        raise RemoteProtocolError(f"msgpack packet must be a map, got {type(value).__name__}")
    raw_type = value.get("type")
    ptype = _TYPES.get(raw_type) if type(raw_type) is int else None
    if ptype is None:
        raise RemoteProtocolError(f"unknown packet type {raw_type!r}"[:100])
    nsp = value.get("nsp")
    if type(nsp) is not str:
        raise RemoteProtocolError(f"namespace must be a string, got {type(nsp).__name__}")
    if len(nsp) > limits.max_namespace_length:
        raise RemoteProtocolError(
            f"namespace longer than max_namespace_length={limits.max_namespace_length}"
        )
    ack_id = value.get("id")
    if ack_id is not None:
        if type(ack_id) is not int or ack_id < 0:
            shown = repr(ack_id)[:40]
            raise RemoteProtocolError(f"ack id must be a non-negative integer, got {shown}")
        if ack_id > limits.max_ack_id:
            raise RemoteProtocolError(f"ack id {ack_id} exceeds {limits.max_ack_id}")
    data = value.get("data")
    if data is None:
        if ptype is not PacketType.CONNECT and ptype is not PacketType.DISCONNECT:
            raise RemoteProtocolError(f"{ptype.name} packet without payload")
    else:
        check_values(data, limits, _NOTEPACK_VALUES)
        check_payload(ptype, data)
    return Packet(ptype, nsp, data, ack_id)

"""Engine.IO packets and polling payloads, protocol revisions 3 and 4.

Sans-I/O: values in, values out. The encodings follow the reference ``engine.io-parser`` 5.x
(revision 4) and 2.2.x (revision 3, still spoken by socket.io 2.x clients):

* revision 4 (``docs/engine.io-protocol/v4-current.md``, "Packet encoding", "Payload"):
  a text packet is its type digit followed by its data; a binary message is the raw bytes over
  WebSocket and ``b`` + base64 inside a polling payload; payload packets are joined with the record
  separator ``\\x1e``.
* revision 3 (``v3.md``): a binary packet over WebSocket is one type byte followed by the data;
  over text it is ``b`` + type digit + base64; a text payload is ``<length>:<packet>`` where the
  length counts UTF-16 code units (JavaScript's ``String.length``); a binary ("XHR2") payload is a
  sequence of ``<0 string | 1 binary><length digits as bytes><0xff><packet>``.
"""

from __future__ import annotations

import binascii
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field

from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.text import encode_text

__all__ = [
    "BINARY_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "Packet",
    "PacketType",
    "PayloadError",
    "decode_packet",
    "decode_payload",
    "encode_packet",
    "encode_payload",
    "encode_text",
    "utf16_length",
]

TEXT_CONTENT_TYPE = "text/plain; charset=UTF-8"
BINARY_CONTENT_TYPE = "application/octet-stream"

SEPARATOR = "\x1e"
_MAX_V3_LENGTH_DIGITS = 10


class PacketType(enum.IntEnum):
    """Engine.IO packet types; the same digits in both revisions."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_TYPE_BY_CHAR = {str(t.value): t for t in PacketType}
_CHAR_BY_TYPE = {t: str(t.value) for t in PacketType}


@dataclass(frozen=True, slots=True)
class Packet:
    """One Engine.IO packet. ``data`` is ``bytes`` for a binary message, else a string.

    ``compress`` is the sender's option, not on the wire (the reference's
    ``packet.options.compress``): ``False`` keeps a WebSocket message of this packet out of
    permessage-deflate; it takes no part in comparisons."""

    type: PacketType
    data: str | bytes = ""
    compress: bool = field(default=True, compare=False)


class PayloadError(RemoteProtocolError):
    """A polling payload held an undecodable packet.

    ``decoded`` keeps the packets before the bad one: the reference delivers them, then closes
    the session with reason ``parse error``.
    """

    def __init__(self, message: str, decoded: list[Packet]) -> None:
        super().__init__(message)
        self.decoded = decoded


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, as JavaScript's ``String.length`` counts it."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _b64decode(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError) as exc:
        raise RemoteProtocolError(f"invalid base64 in binary packet: {exc}") from exc


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def decode_packet(raw: str | bytes, protocol: int) -> Packet:
    """Decode one packet as received over WebSocket or split out of a payload.

    Raises :class:`RemoteProtocolError` for an empty packet, an unknown type or bad base64.
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw)
        if protocol == 4:
            return Packet(PacketType.MESSAGE, raw)
        if not raw:
            raise RemoteProtocolError("empty binary packet")
        try:
            ptype = PacketType(raw[0])
        except ValueError:
            raise RemoteProtocolError(f"unknown packet type byte {raw[0]}") from None
        return Packet(ptype, raw[1:])
    if not raw:
        raise RemoteProtocolError("empty packet")
    first = raw[0]
    if first == "b":
        if protocol == 4:
            return Packet(PacketType.MESSAGE, _b64decode(raw[1:]))
        b64_type = _TYPE_BY_CHAR.get(raw[1:2])
        if b64_type is None:
            raise RemoteProtocolError(f"unknown packet type {raw[1:2]!r} in base64 packet")
        return Packet(b64_type, _b64decode(raw[2:]))
    text_type = _TYPE_BY_CHAR.get(first)
    if text_type is None:
        raise RemoteProtocolError(f"unknown packet type {first!r}")
    return Packet(text_type, raw[1:])


def encode_packet(packet: Packet, protocol: int, supports_binary: bool = True) -> str | bytes:
    """Encode one packet for a WebSocket message (``supports_binary``) or a text payload."""
    data = packet.data
    if isinstance(data, bytes):
        if protocol == 4:
            return data if supports_binary else "b" + _b64encode(data)
        if supports_binary:
            return bytes((packet.type,)) + data
        return "b" + _CHAR_BY_TYPE[packet.type] + _b64encode(data)
    return _CHAR_BY_TYPE[packet.type] + data


def encode_payload(
    packets: Iterable[Packet], protocol: int, supports_binary: bool = True
) -> tuple[bytes, str]:
    """Encode a polling response body; returns ``(body, content_type)``."""
    packets = list(packets)
    if protocol == 4:
        text = SEPARATOR.join([encode_packet(p, 4, False) for p in packets])  # type: ignore[misc]
        return encode_text(text), TEXT_CONTENT_TYPE
    if supports_binary and any(isinstance(p.data, bytes) for p in packets):
        return _encode_v3_binary_payload(packets), BINARY_CONTENT_TYPE
    if not packets:
        return b"0:", TEXT_CONTENT_TYPE
    parts = []
    for p in packets:
        encoded = encode_packet(p, 3, False)
        assert isinstance(encoded, str)
        parts.append(f"{utf16_length(encoded)}:{encoded}")
    return encode_text("".join(parts)), TEXT_CONTENT_TYPE


def _encode_v3_binary_payload(packets: list[Packet]) -> bytes:
    out = bytearray()
    for p in packets:
        encoded = encode_packet(p, 3, True)
        if isinstance(encoded, str):
            body = encode_text(encoded)
            out.append(0)
        else:
            body = encoded
            out.append(1)
        out += bytes(int(d) for d in str(len(body)))
        out.append(0xFF)
        out += body
    return bytes(out)


def decode_payload(
    body: bytes, protocol: int, *, binary: bool = False, max_packets: int = 10_000
) -> list[Packet]:
    """Decode a polling request body into packets.

    ``binary`` is true when the request's content type is ``application/octet-stream`` (only
    revision 3 clients send binary payloads). Raises :class:`PayloadError` (with the packets
    decoded before the fault) for a malformed payload or more than ``max_packets`` packets.
    """
    if binary:
        if protocol == 4:
            raise PayloadError("binary (application/octet-stream) payload in protocol 4", [])
        return _decode_v3_binary_payload(body, max_packets)
    text = body.decode("utf-8", "replace")
    if protocol == 4:
        packets: list[Packet] = []
        for index, chunk in enumerate(text.split(SEPARATOR)):
            if index >= max_packets:
                raise PayloadError(f"payload holds more than max_packets={max_packets}", packets)
            try:
                packets.append(decode_packet(chunk, 4))
            except RemoteProtocolError as exc:
                raise PayloadError(str(exc), packets) from exc
        return packets
    return _decode_v3_text_payload(text, max_packets)


def _decode_v3_text_payload(text: str, max_packets: int) -> list[Packet]:
    packets: list[Packet] = []
    if not text:
        raise PayloadError("empty payload", packets)
    # Lengths count UTF-16 code units; work on a UTF-16 view when the text has astral characters.
    wide = not text.isascii() and utf16_length(text) != len(text)
    units = text.encode("utf-16-le", "surrogatepass") if wide else b""
    size = len(units) // 2 if wide else len(text)
    pos = 0
    while pos < size:
        colon = _find_colon(text, units, wide, pos, size)
        if colon < 0:
            raise PayloadError("payload ends inside a length prefix", packets)
        try:
            digits = _slice(text, units, wide, pos, colon)
        except UnicodeDecodeError:
            raise PayloadError("invalid length prefix in payload", packets) from None
        if not digits or not digits.isdigit() or not digits.isascii():
            raise PayloadError(f"invalid length prefix {digits[:16]!r} in payload", packets)
        if len(digits) > _MAX_V3_LENGTH_DIGITS:
            raise PayloadError("length prefix too long in payload", packets)
        length = int(digits)
        start, end = colon + 1, colon + 1 + length
        if end > size:
            raise PayloadError(
                f"packet length {length} exceeds the {size - start} units left in payload", packets
            )
        if length:
            if len(packets) >= max_packets:
                raise PayloadError(f"payload holds more than max_packets={max_packets}", packets)
            try:
                packets.append(decode_packet(_slice(text, units, wide, start, end), 3))
            except (RemoteProtocolError, UnicodeDecodeError) as exc:
                raise PayloadError(str(exc), packets) from exc
        pos = end
    return packets


def _find_colon(text: str, units: bytes, wide: bool, pos: int, size: int) -> int:
    if wide:
        i = pos
        while i < size and units[2 * i : 2 * i + 2] != b":\x00":
            i += 1
            if i - pos > _MAX_V3_LENGTH_DIGITS:
                break
    else:
        i = text.find(":", pos, pos + _MAX_V3_LENGTH_DIGITS + 1)
        if i < 0:
            i = size
    return i if i < size else -1


def _slice(text: str, units: bytes, wide: bool, start: int, end: int) -> str:
    if wide:
        return units[2 * start : 2 * end].decode("utf-16-le")
    return text[start:end]


def _decode_v3_binary_payload(body: bytes, max_packets: int) -> list[Packet]:
    packets: list[Packet] = []
    pos, size = 0, len(body)
    while pos < size:
        kind = body[pos]
        if kind not in (0, 1):
            raise PayloadError(f"invalid packet marker {kind} in binary payload", packets)
        end_digits = body.find(b"\xff", pos + 1, pos + 2 + _MAX_V3_LENGTH_DIGITS)
        if end_digits < 0:
            raise PayloadError("binary payload length not terminated", packets)
        digits = body[pos + 1 : end_digits]
        if not digits or any(d > 9 for d in digits):
            raise PayloadError("invalid length digits in binary payload", packets)
        length = int("".join(str(d) for d in digits))
        start = end_digits + 1
        if start + length > size:
            raise PayloadError(
                f"packet length {length} exceeds the {size - start} bytes left in payload", packets
            )
        if len(packets) >= max_packets:
            raise PayloadError(f"payload holds more than max_packets={max_packets}", packets)
        chunk = body[start : start + length]
        try:
            raw: str | bytes = chunk.decode("utf-8") if kind == 0 else chunk
            packets.append(decode_packet(raw, 3))
        except (RemoteProtocolError, UnicodeDecodeError) as exc:
            raise PayloadError(str(exc), packets) from exc
        pos = start + length
    return packets

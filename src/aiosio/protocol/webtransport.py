"""Engine.IO over a WebTransport bidirectional stream: the framing, sans-I/O.

WebTransport carries one Engine.IO session on one bidirectional stream, each packet behind a
length header (engine.io-parser 5.2 ``createPacketEncoderStream`` and
``createPacketDecoderStream``, used by ``engine.io`` 6.5+ and ``engine.io-client`` 6.5+):

- the first byte's high bit says binary (1) or text (0); its low 7 bits are the payload length
  when below 126, else 126 followed by a 16-bit length or 127 followed by a 64-bit length, big
  endian (the WebSocket way of writing lengths);
- the payload is the packet as a WebSocket message carries it: a text packet's UTF-8 (``4hello``,
  ``2``, ``0{"sid":...}``), or the raw bytes of a binary message (no type prefix).

The client opens the session by sending an OPEN packet first: ``0`` for a new session, or
``0{"sid":"..."}`` to upgrade an existing one (then ``2probe`` / ``3probe`` / ``5`` as on a
WebSocket). :func:`opening` reads it.

The decoder is bounded like the reference's: a length of zero or above ``max_payload`` is refused
from the header alone, before any payload is buffered, so a peer can make it hold at most one
header and one packet of ``max_payload`` bytes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from aiosio.protocol.errors import RemoteProtocolError

__all__ = [
    "CLOSE_SESSION_CAPSULE",
    "MAX_CLOSE_REASON",
    "MAX_SAFE_LENGTH",
    "FrameDecoder",
    "FrameError",
    "NewSession",
    "Opening",
    "UpgradeSession",
    "decode_close_capsule",
    "encode_close_capsule",
    "encode_frame",
    "encode_open",
    "opening",
]

MAX_SAFE_LENGTH = 2**53 - 1
"""The largest length the reference accepts (JavaScript's ``Number.MAX_SAFE_INTEGER``)."""

_BINARY = 0x80


class FrameError(RemoteProtocolError):
    """The peer sent a frame the decoder refuses; ``reason`` says why, in the house style."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_frame(message: str | bytes) -> bytes:
    """One Engine.IO message (text or binary, as a WebSocket would carry it) with its header."""
    if isinstance(message, str):
        payload = message.encode("utf-8", "surrogatepass")
        flag = 0
    else:
        payload = bytes(message)
        flag = _BINARY
    return _header(len(payload), flag) + payload


def _header(length: int, flag: int) -> bytes:
    if length < 126:
        return bytes((flag | length,))
    if length < 65536:
        return bytes((flag | 126,)) + struct.pack("!H", length)
    return bytes((flag | 127,)) + struct.pack("!Q", length)


def encode_open(sid: str | None = None) -> bytes:
    """The client's first frame: ``0`` for a new session, ``0{"sid":...}`` for an upgrade
    (engine.io-client's ``WT.doOpen`` writes the sid into the JSON by hand, as here)."""
    return encode_frame("0" if sid is None else '0{"sid":"' + sid + '"}')


class FrameDecoder:
    """Bytes of the stream in, Engine.IO messages out (``str`` for text, ``bytes`` for binary).

    ``max_payload`` bounds each frame (the server's ``max_http_buffer_size``). :meth:`feed`
    raises :class:`FrameError` for a zero or oversized length, a 64-bit length beyond
    :data:`MAX_SAFE_LENGTH`, or text that is not UTF-8; the decoder is then unusable (the
    reference's decoder emits its error packet and stops too)."""

    __slots__ = ("_binary", "_buffer", "_failed", "_length", "max_payload")

    def __init__(self, max_payload: int) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._length: int | None = None  # the payload length, once the header is read
        self._binary = False
        self._failed: str | None = None

    @property
    def pending(self) -> int:
        """Bytes received and not yet part of a complete frame (a truncated frame's)."""
        return len(self._buffer)

    @property
    def in_frame(self) -> bool:
        """A frame has started and is not complete: the stream ended in its middle if it ends
        now."""
        return bool(self._buffer) or self._length is not None

    def feed(self, data: bytes) -> list[str | bytes]:
        """The messages completed by ``data``, in order.

        :raises FrameError: the frame is refused (see the class docstring)."""
        if self._failed is not None:
            raise FrameError(self._failed)
        self._buffer += data
        messages: list[str | bytes] = []
        try:
            while True:
                if self._length is None and not self._read_header():
                    break
                length = self._length
                assert length is not None
                if len(self._buffer) < length:
                    break
                payload = bytes(self._buffer[:length])
                del self._buffer[:length]
                self._length = None
                if self._binary:
                    messages.append(payload)
                else:
                    try:
                        messages.append(payload.decode("utf-8"))
                    except UnicodeDecodeError as exc:
                        raise FrameError(
                            f"a text frame is not valid UTF-8 ({exc.reason})"
                        ) from None
        except FrameError as exc:
            self._failed = exc.reason
            self._buffer.clear()
            raise
        return messages

    def _read_header(self) -> bool:
        buffer = self._buffer
        if not buffer:
            return False
        first = buffer[0]
        size = first & 0x7F
        if size < 126:
            used, length = 1, size
        elif size == 126:
            if len(buffer) < 3:
                return False
            used, length = 3, struct.unpack_from("!H", buffer, 1)[0]
        else:
            if len(buffer) < 9:
                return False
            used, length = 9, struct.unpack_from("!Q", buffer, 1)[0]
            if length > MAX_SAFE_LENGTH:
                raise FrameError(
                    f"a frame announces {length} bytes, beyond the largest length JavaScript "
                    f"peers can state ({MAX_SAFE_LENGTH})"
                )
        if length == 0:
            raise FrameError("a frame announces 0 bytes; every Engine.IO packet has at least 1")
        if length > self.max_payload:
            raise FrameError(
                f"a frame announces {length} bytes, over the limit of {self.max_payload} "
                "(max_http_buffer_size)"
            )
        del buffer[:used]
        self._length = length
        self._binary = bool(first & _BINARY)
        return True


@dataclass(frozen=True, slots=True)
class NewSession:
    """The first packet was ``0``: a new Engine.IO session on this stream."""


@dataclass(frozen=True, slots=True)
class UpgradeSession:
    """The first packet was ``0{"sid":...}``: an upgrade of the existing session ``sid``."""

    sid: str


Opening = NewSession | UpgradeSession


def opening(message: str | bytes) -> Opening:
    """Read the client's first packet on the stream.

    :raises FrameError: it is not an OPEN packet, or its data is not ``{"sid": "..."}``."""
    if not isinstance(message, str) or message[:1] != "0":
        shown = message[:40] if isinstance(message, str) else f"{len(message)} binary bytes"
        raise FrameError(
            f"the first packet on a WebTransport stream must be OPEN ('0' or "
            f"'0{{\"sid\":...}}'), got {shown!r}"
        )
    data = message[1:]
    if not data:
        return NewSession()
    try:
        parsed = json.loads(data) if len(data) <= 256 else None
    except ValueError:
        parsed = None
    sid = parsed.get("sid") if isinstance(parsed, dict) else None
    if not isinstance(sid, str) or not sid:
        raise FrameError(
            f'the OPEN packet of an upgrade must carry {{"sid": "..."}}, got {data[:40]!r}'
        )
    return UpgradeSession(sid)


# -- the WebTransport session's own capsules (draft-ietf-webtrans-http3-02 section 5) -------------

CLOSE_SESSION_CAPSULE = 0x2843
"""CLOSE_WEBTRANSPORT_SESSION: an application error code (32 bits) and a UTF-8 reason."""

MAX_CLOSE_REASON = 1024
"""The longest reason a close capsule may carry, in bytes."""


def _varint(value: int) -> bytes:
    # QUIC variable-length integer (RFC 9000 section 16).
    if value < 0x40:
        return bytes((value,))
    if value < 0x4000:
        return struct.pack("!H", value | 0x4000)
    if value < 0x40000000:
        return struct.pack("!I", value | 0x80000000)
    return struct.pack("!Q", value | 0xC000000000000000)


def encode_close_capsule(code: int, reason: str) -> bytes:
    """The capsule that closes a WebTransport session with ``code`` and ``reason`` (cut to
    :data:`MAX_CLOSE_REASON` bytes at a character boundary), which a browser reports as the
    ``closeCode`` and ``reason`` of ``WebTransport.closed``."""
    raw = reason.encode("utf-8")[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode("utf-8")
    body = struct.pack("!I", code & 0xFFFFFFFF) + raw
    return _varint(CLOSE_SESSION_CAPSULE) + _varint(len(body)) + body


def decode_close_capsule(data: bytes) -> tuple[int, str] | None:
    """``(code, reason)`` of a close capsule at the start of ``data`` (the CONNECT stream's
    content), or ``None`` when ``data`` does not start with a complete one."""
    values: list[int] = []
    offset = 0
    for _ in range(2):
        if offset >= len(data):
            return None
        size = 1 << (data[offset] >> 6)
        if offset + size > len(data):
            return None
        value = int.from_bytes(data[offset : offset + size], "big") & ((1 << (8 * size - 2)) - 1)
        values.append(value)
        offset += size
    kind, length = values
    if kind != CLOSE_SESSION_CAPSULE or length < 4 or offset + length > len(data):
        return None
    body = data[offset : offset + length]
    return int.from_bytes(body[:4], "big"), body[4:].decode("utf-8", "replace")

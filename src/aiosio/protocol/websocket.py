"""Sans-I/O WebSocket codec: RFC 6455 framing and handshake, RFC 7692 permessage-deflate.

Nothing here touches a socket, a clock or a task. The I/O layer feeds the bytes it read to
:meth:`WebSocketProtocol.receive_data`, acts on the returned events, and writes whatever
:meth:`WebSocketProtocol.data_to_send` returns. The same class serves both sides
(:class:`Side`): the server requires masked frames and sends unmasked ones, the client the
reverse (RFC 6455 section 5.1).

Peer misbehaviour never raises. It becomes a :class:`ProtocolViolation` event, a close frame with
the matching code is queued, and every later byte is ignored; the I/O layer flushes and closes the
TCP connection (RFC 6455 section 7.1.7, "Fail the WebSocket Connection"). Only misuse of the API by
our own code raises: :class:`InvalidState` (sending in the wrong state) and :class:`ValueError`
(an argument the protocol cannot carry, such as a 200-byte ping).

Limits are checked before anything is buffered: a frame header announcing a message larger than
``max_message_size`` fails the connection before one byte of its payload is kept.

Split as the ``websockets`` library splits its protocol: this module is the connection's state
machine (with the frame parser, which feeds it in one loop, for speed);
:mod:`~aiosio.protocol.websocket_frames` is the frame format,
:mod:`~aiosio.protocol.websocket_handshake` the opening handshake and
:mod:`~aiosio.protocol.websocket_deflate` the permessage-deflate negotiation. Every public name
of those is importable from here too.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Final
from typing import TypeAlias

from aiosio.protocol.errors import LocalProtocolError
from aiosio.protocol.text import encode_text
from aiosio.protocol.websocket_deflate import DeflateParams
from aiosio.protocol.websocket_deflate import accept_deflate_response
from aiosio.protocol.websocket_deflate import client_deflate_offer
from aiosio.protocol.websocket_deflate import negotiate_deflate
from aiosio.protocol.websocket_frames import FIN
from aiosio.protocol.websocket_frames import MASK_BIT
from aiosio.protocol.websocket_frames import MAX_CONTROL_PAYLOAD
from aiosio.protocol.websocket_frames import OPCODE_NAMES
from aiosio.protocol.websocket_frames import RSV1
from aiosio.protocol.websocket_frames import RSV23
from aiosio.protocol.websocket_frames import CloseCode
from aiosio.protocol.websocket_frames import Opcode
from aiosio.protocol.websocket_frames import apply_mask
from aiosio.protocol.websocket_frames import close_payload
from aiosio.protocol.websocket_frames import encode_frame
from aiosio.protocol.websocket_handshake import GUID
from aiosio.protocol.websocket_handshake import HandshakeError
from aiosio.protocol.websocket_handshake import accept_key
from aiosio.protocol.websocket_handshake import check_client_handshake
from aiosio.protocol.websocket_handshake import check_server_handshake
from aiosio.protocol.websocket_handshake import new_client_key
from aiosio.protocol.websocket_handshake import shorten

__all__ = [
    "GUID",
    "BinaryMessage",
    "CloseCode",
    "CloseReceived",
    "DeflateParams",
    "Event",
    "HandshakeError",
    "InvalidState",
    "Opcode",
    "PingReceived",
    "PongReceived",
    "ProtocolViolation",
    "Side",
    "State",
    "TextMessage",
    "WebSocketProtocol",
    "accept_deflate_response",
    "accept_key",
    "check_client_handshake",
    "check_server_handshake",
    "client_deflate_offer",
    "encode_frame",
    "negotiate_deflate",
    "new_client_key",
]


class Side(enum.Enum):
    """Which end of the connection this codec plays; decides masking (RFC 6455 section 5.3)."""

    SERVER = "server"
    CLIENT = "client"


class State(enum.Enum):
    """Connection state; transitions happen only in :class:`WebSocketProtocol`'s ``_to_*``."""

    OPEN = "open"
    #: A close frame was sent (by us, or as the echo of the peer's): no more data may be sent.
    CLOSING = "closing"
    #: The TCP stream ended (:meth:`WebSocketProtocol.receive_eof`).
    CLOSED = "closed"


def _valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 section 7.4).

    1004 is reserved, 1005/1006/1015 must never be sent; 1012-1014 are registered with IANA
    (service restart, try again later, bad gateway) and sent by browsers and proxies; 3000-4999
    belong to libraries and applications.
    """
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


class InvalidState(LocalProtocolError):
    """Our own code called the codec in a state that does not allow it.

    Raised by the ``send_*`` methods after a close frame was sent or the stream ended, and by
    :meth:`WebSocketProtocol.send_frame` while an extension is active. Never raised for anything
    the peer sent.
    """


# ---------------------------------------------------------------------------------------------
# Framing helpers of the state machine (RFC 6455 section 5)

_UNPACK_64: Final = struct.Struct("!Q").unpack_from
# RFC 7692 section 7.2.1: the sender strips this empty stored block; the receiver appends it.
_DEFLATE_TAIL: Final = b"\x00\x00\xff\xff"
_PROTOCOL_ERROR: Final = CloseCode.PROTOCOL_ERROR


def _deflate_bound(size: int) -> int:
    """The most bytes any deflate stream may take for ``size`` bytes of input.

    zlib's conservative ``deflateBound`` (deflate.c) plus a few empty blocks for sync flushes:
    lets a message of exactly ``max_message_size`` bytes through even when the peer compressed
    incompressible data, while still bounding what we buffer.
    """
    return size + ((size + 7) >> 3) + ((size + 63) >> 6) + 64


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A complete text message, decoded from UTF-8."""

    data: str


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A complete binary message."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PingReceived:
    """A ping; the codec has already queued the pong (unless a close frame was sent)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A pong (solicited or not, RFC 6455 section 5.5.3)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's close frame; 1005 when it carried no status code.

    The codec has already echoed the code if we had not sent a close frame (section 5.5.1).
    """

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer broke the protocol; the codec has queued a close frame with ``code``.

    (Unless a close frame had been sent already: only one may be sent.) Every later byte is
    ignored; the I/O layer should flush :meth:`WebSocketProtocol.data_to_send` and close TCP.
    """

    code: CloseCode
    reason: str


Event: TypeAlias = (
    TextMessage | BinaryMessage | PingReceived | PongReceived | CloseReceived | ProtocolViolation
)


# ---------------------------------------------------------------------------------------------
# The protocol


class WebSocketProtocol:
    """One WebSocket connection after the opening handshake, as a byte-in, byte-out machine.

    ``max_message_size`` bounds a message's size (after decompression), ``None`` for no limit;
    ``max_fragments`` bounds the frames of one fragmented message; ``deflate`` is the result of
    :func:`negotiate_deflate` / :func:`accept_deflate_response`; messages of at least
    ``compress_threshold`` bytes are sent compressed when deflate is active.
    """

    __slots__ = (
        "_close_received",
        "_close_sent",
        "_compress_threshold",
        "_compressor",
        "_decompressor",
        "_deflate",
        "_discard",
        "_failed",
        "_frame_b0",
        "_frame_buf",
        "_frame_key",
        "_frame_need",
        "_head",
        "_local_bits",
        "_local_no_context",
        "_mask_expected",
        "_mask_out",
        "_max_compressed",
        "_max_fragments",
        "_max_size",
        "_msg_compressed",
        "_msg_frames",
        "_msg_inflated",
        "_msg_opcode",
        "_msg_parts",
        "_msg_size",
        "_out",
        "_remote_bits",
        "_remote_no_context",
        "side",
        "state",
    )

    def __init__(
        self,
        side: Side,
        *,
        max_message_size: int | None = 1_000_000,
        deflate: DeflateParams | None = None,
        max_fragments: int = 1024,
        compress_threshold: int = 1024,
    ) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0 or None (got {max_message_size})")
        if max_fragments < 1:
            raise ValueError(f"max_fragments must be >= 1 (got {max_fragments})")
        if compress_threshold < 0:
            raise ValueError(f"compress_threshold must be >= 0 (got {compress_threshold})")
        self.side = side
        self.state = State.OPEN
        self._max_size = max_message_size
        self._max_compressed = 0 if max_message_size is None else _deflate_bound(max_message_size)
        self._max_fragments = max_fragments
        self._compress_threshold = compress_threshold
        # Section 5.1: clients mask every frame, servers none.
        self._mask_out = side is Side.CLIENT
        self._mask_expected = MASK_BIT if side is Side.SERVER else 0
        self._deflate = deflate
        if deflate is None or side is Side.SERVER:
            params = deflate or DeflateParams()
            self._local_bits = params.server_max_window_bits
            self._local_no_context = params.server_no_context_takeover
            self._remote_bits = params.client_max_window_bits
            self._remote_no_context = params.client_no_context_takeover
        else:
            self._local_bits = deflate.client_max_window_bits
            self._local_no_context = deflate.client_no_context_takeover
            self._remote_bits = deflate.server_max_window_bits
            self._remote_no_context = deflate.server_no_context_takeover
        # zlib states are created lazily (about 300 KiB each at 15 bits) and dropped between
        # messages under no_context_takeover.
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._out: list[bytes] = []
        self._discard = False  # set after a violation, a received close, or EOF
        self._close_sent = False
        self._close_received = False
        self._failed = False
        # Bytes of an incomplete frame header (< 14).
        self._head = b""
        # The frame whose payload is arriving: first byte, mask key, bytes still due, what came.
        # One buffer, not a list of the reads: a frame trickled two bytes per read cost 21 times
        # its size in bytes objects.
        self._frame_b0 = 0
        self._frame_key: bytes | None = None
        self._frame_need = 0
        self._frame_buf = bytearray()
        # The message being assembled from fragments (opcode 0: none).
        self._msg_opcode = 0
        self._msg_compressed = False
        self._msg_parts: list[bytes] = []
        self._msg_size = 0
        self._msg_inflated = 0
        self._msg_frames = 0

    # -- state transitions (the only places that assign ``state``) ----------------------------

    def _to_closing(self, payload: bytes) -> None:
        """Queue our close frame: OPEN -> CLOSING. Only one close frame is ever sent."""
        self._out.append(encode_frame(Opcode.CLOSE, payload, mask=self._mask_out))
        self._close_sent = True
        self._compressor = None  # nothing more will be sent
        self.state = State.CLOSING

    def _to_closed(self) -> None:
        """The stream ended: any state -> CLOSED; incoming data is ignored from now on."""
        self.state = State.CLOSED
        self._stop_reading()

    def _stop_reading(self) -> None:
        self._discard = True
        self._head = b""
        self._frame_buf = bytearray()
        self._frame_need = 0
        self._msg_parts = []
        self._decompressor = None

    # -- receiving ----------------------------------------------------------------------------

    @property
    def close_expected(self) -> bool:
        """Whether the closing handshake is over and TCP should be closed after flushing.

        True once we both sent and received a close frame, once we failed the connection after a
        violation, and after EOF. RFC 6455 section 7.1.1: the server closes TCP first; a client
        should give it a moment before closing itself.
        """
        return (
            self._close_sent and (self._close_received or self._failed)
        ) or self.state is State.CLOSED

    @property
    def buffered(self) -> int:
        """Bytes of the peer's held until a frame or message completes: an incomplete header, a
        partial payload, the earlier fragments of a message. What a slow or hostile sender makes
        this connection keep, bounded by the limits."""
        return len(self._head) + len(self._frame_buf) + sum(map(len, self._msg_parts))

    def receive_eof(self) -> None:
        """The peer closed the TCP stream; the connection is CLOSED."""
        self._to_closed()

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes. Never raises for the peer's bytes."""
        if self._discard:
            return []
        events: list[Event] = []
        need = self._frame_need
        if need:
            # The payload of a frame whose header arrived earlier.
            buf = self._frame_buf
            if len(data) < need:
                if data:
                    buf += data
                    self._frame_need = need - len(data)
                return events
            buf += memoryview(data)[:need]
            self._frame_buf = bytearray()
            self._frame_need = 0
            key = self._frame_key
            payload = bytes(buf) if key is None else apply_mask(buf, key)
            if not self._on_frame(self._frame_b0, payload, events):
                return events
            data = data[need:]
        elif self._head:
            data = self._head + data
            self._head = b""
        self._parse(data, events)
        return events

    def _parse(self, data: bytes, events: list[Event]) -> None:
        """Parse whole frames from ``data``; keep a partial header or start a partial payload."""
        pos = 0
        end = len(data)
        mask_expected = self._mask_expected
        while end - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            # Fast path: a whole TEXT or BINARY message in one frame, correctly masked, while no
            # fragmented message is open is always valid; anything else gets the full check.
            if not (
                (b0 == 0x81 or b0 == 0x82)
                and (b1 & MASK_BIT) == mask_expected
                and not self._msg_opcode
            ):
                violation = self._check_header(b0, b1)
                if violation is not None:
                    self._fail(*violation, events)
                    return
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                start += 2
                if start > end:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == 127:
                start += 8
                if start > end:
                    break
                (length,) = _UNPACK_64(data, pos + 2)
                if length >> 63:
                    self._fail(
                        CloseCode.PROTOCOL_ERROR,
                        "64-bit payload length has its most significant bit set",
                        events,
                    )
                    return
            limit = self._max_size
            if not b0 & 0x08 and limit is not None:
                # Section 10.4: refuse an oversized message before buffering any of it. Deflate
                # may expand incompressible data a little; the decompressed size is checked by
                # _inflate.
                total = self._msg_size + length
                if self._msg_compressed if b0 & 0x0F == 0 else b0 & RSV1:
                    limit = self._max_compressed
                if total > limit:
                    self._fail(
                        CloseCode.MESSAGE_TOO_BIG,
                        f"message of at least {total} bytes exceeds "
                        f"max_message_size={self._max_size}",
                        events,
                    )
                    return
            if b1 & MASK_BIT:
                start += 4
                if start > end:
                    break
                key: bytes | None = data[start - 4 : start]
            else:
                key = None
            stop = start + length
            if stop > end:
                # Payload incomplete: keep what is here and the rest arrives in receive_data.
                self._frame_b0 = b0
                self._frame_key = key
                self._frame_need = stop - end
                self._frame_buf = bytearray(memoryview(data)[start:])
                return
            payload = data[start:stop]
            if key is not None:
                payload = apply_mask(payload, key)
            pos = stop
            # _message, unrolled: a call per frame is a measurable share of a small frame's
            # parse. A change to what a complete message yields goes in both.
            if b0 == 0x81:
                try:
                    events.append(TextMessage(payload.decode()))
                except UnicodeDecodeError as exc:
                    self._fail(CloseCode.INVALID_DATA, "text message " + _utf8_reason(exc), events)
                    return
            elif b0 == 0x82:
                events.append(BinaryMessage(payload))
            elif not self._on_frame(b0, payload, events):
                return
        if pos < end:
            self._head = data[pos:]

    def _check_header(self, b0: int, b1: int) -> tuple[CloseCode, str] | None:
        """Check the first two header bytes; return the close code and reason if they are bad.

        Everything decidable from two bytes is decided here, so a bad frame is refused at the
        same point however its bytes were split.
        """
        opcode = b0 & 0x0F
        if b0 & RSV23:
            return (
                _PROTOCOL_ERROR,
                "reserved bits RSV2/RSV3 set (no negotiated extension uses them)",
            )
        if b0 & RSV1 and self._deflate is None:
            return _PROTOCOL_ERROR, "reserved bit RSV1 set without a negotiated extension"
        if (b1 & MASK_BIT) != self._mask_expected:
            if self._mask_expected:
                return _PROTOCOL_ERROR, "unmasked frame from the client (expected masked frames)"
            return _PROTOCOL_ERROR, "masked frame from the server (expected unmasked frames)"
        if opcode & 0x8:
            if opcode > Opcode.PONG:
                return _PROTOCOL_ERROR, f"unknown opcode {opcode:#x}"
            name = OPCODE_NAMES[opcode]
            # RFC 7692 section 6: RSV1 only marks the first frame of a compressed data message.
            if b0 & RSV1:
                return _PROTOCOL_ERROR, f"reserved bit RSV1 set on a {name} frame"
            # Section 5.5: control frames are never fragmented and carry at most 125 bytes.
            if not b0 & FIN:
                return (
                    _PROTOCOL_ERROR,
                    f"fragmented {name} frame (control frames must have FIN set)",
                )
            if b1 & 0x7F > MAX_CONTROL_PAYLOAD:
                return _PROTOCOL_ERROR, f"{name} frame payload exceeds {MAX_CONTROL_PAYLOAD} bytes"
        elif opcode == Opcode.CONTINUATION:
            if b0 & RSV1:
                return _PROTOCOL_ERROR, "reserved bit RSV1 set on a continuation frame"
            # Section 5.4: fragments follow a TEXT or BINARY frame without FIN.
            if not self._msg_opcode:
                return _PROTOCOL_ERROR, "continuation frame without a message in progress"
            if self._msg_frames >= self._max_fragments:
                return (
                    CloseCode.MESSAGE_TOO_BIG,
                    f"message in more than {self._max_fragments} fragments exceeds "
                    f"max_fragments={self._max_fragments}",
                )
        elif opcode > Opcode.BINARY:
            return _PROTOCOL_ERROR, f"unknown opcode {opcode:#x}"
        elif self._msg_opcode:
            return (
                _PROTOCOL_ERROR,
                f"{OPCODE_NAMES[opcode]} frame while a fragmented message is in progress "
                "(expected a continuation frame)",
            )
        return None

    def _fail(self, code: CloseCode, reason: str, events: list[Event]) -> bool:
        """Fail the connection (section 7.1.7): report, queue a close frame, ignore the rest."""
        events.append(ProtocolViolation(code, reason))
        self._failed = True
        self._stop_reading()
        if self.state is State.OPEN:
            self._to_closing(close_payload(code, reason))
        return False

    def _on_frame(self, b0: int, payload: bytes, events: list[Event]) -> bool:
        """Handle one complete, unmasked frame; return False when reading must stop."""
        opcode = b0 & 0x0F
        if opcode & 0x8:
            return self._on_control(opcode, payload, events)
        fin = b0 & FIN
        if opcode:
            if fin and not b0 & RSV1:
                # The common case: a whole uncompressed message in one frame.
                return self._message(opcode, payload, events)
            self._msg_opcode = opcode
            self._msg_compressed = bool(b0 & RSV1)
        self._msg_frames += 1
        self._msg_size += len(payload)
        if self._msg_compressed:
            if not self._inflate(payload, fin, events):
                return False
        else:
            self._msg_parts.append(payload)
        if fin:
            return self._deliver(events)
        return True

    def _inflate(self, payload: bytes, fin: int, events: list[Event]) -> bool:
        """Decompress one frame of a compressed message, never past ``max_message_size``."""
        inflater = self._decompressor
        if inflater is None:
            inflater = self._decompressor = zlib.decompressobj(wbits=-self._remote_bits)
        if fin:
            payload += _DEFLATE_TAIL
        limit = self._max_size
        try:
            if limit is None:
                out = inflater.decompress(payload)
            else:
                # One byte over the room left is enough to know the message is too big.
                out = inflater.decompress(payload, limit - self._msg_inflated + 1)
        except zlib.error:
            return self._fail(
                CloseCode.INVALID_DATA, "invalid permessage-deflate compressed data", events
            )
        self._msg_inflated += len(out)
        if limit is not None and self._msg_inflated > limit:
            return self._fail(
                CloseCode.MESSAGE_TOO_BIG,
                f"message of at least {self._msg_inflated} bytes exceeds max_message_size={limit}",
                events,
            )
        self._msg_parts.append(out)
        # RFC 7692 section 7.2.3.4: a sender may end a message with a BFINAL block, which ends
        # the deflate stream; the next message then starts a new one.
        if fin and (self._remote_no_context or inflater.eof):
            self._decompressor = None
        return True

    def _deliver(self, events: list[Event]) -> bool:
        """Emit the message assembled from fragments and reset the assembly state."""
        data = b"".join(self._msg_parts)
        opcode = self._msg_opcode
        self._msg_parts = []
        self._msg_opcode = 0
        self._msg_compressed = False
        self._msg_size = 0
        self._msg_inflated = 0
        self._msg_frames = 0
        return self._message(opcode, data, events)

    def _message(self, opcode: int, data: bytes, events: list[Event]) -> bool:
        """Emit a complete TEXT or BINARY message, whole or reassembled from fragments or
        decompressed; a text message that is not valid UTF-8 fails the connection (section
        8.1). :meth:`_parse` unrolls this for its fast path."""
        if opcode == Opcode.TEXT:
            try:
                events.append(TextMessage(data.decode()))
            except UnicodeDecodeError as exc:
                return self._fail(
                    CloseCode.INVALID_DATA, "text message " + _utf8_reason(exc), events
                )
        else:
            events.append(BinaryMessage(data))
        return True

    def _on_control(self, opcode: int, payload: bytes, events: list[Event]) -> bool:
        if opcode == Opcode.PING:
            events.append(PingReceived(payload))
            if self.state is State.OPEN:  # section 5.5.2; nothing but close after our close
                self._out.append(encode_frame(Opcode.PONG, payload, mask=self._mask_out))
            return True
        if opcode == Opcode.PONG:
            events.append(PongReceived(payload))
            return True
        # CLOSE, section 5.5.1: no payload, or a 2-byte code and a UTF-8 reason.
        if not payload:
            code = int(CloseCode.NO_STATUS)
            reason = ""
        elif len(payload) == 1:
            return self._fail(
                CloseCode.PROTOCOL_ERROR,
                "close frame payload of 1 byte (expected 0 or at least 2 bytes)",
                events,
            )
        else:
            code = (payload[0] << 8) | payload[1]
            if not _valid_close_code(code):
                return self._fail(
                    CloseCode.PROTOCOL_ERROR,
                    f"invalid close code {code} (expected 1000-1003, 1007-1014 or 3000-4999)",
                    events,
                )
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError as exc:
                return self._fail(
                    CloseCode.INVALID_DATA, "close reason " + _utf8_reason(exc), events
                )
        events.append(CloseReceived(code, reason))
        self._close_received = True
        self._stop_reading()
        if self.state is State.OPEN:
            self._to_closing(payload[:2])  # echo the code, or nothing for 1005
        return False

    # -- sending ------------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self.state is not State.OPEN:
            raise InvalidState(
                f"cannot send {what}: the connection is {self.state.name} (expected OPEN)"
            )

    def _send_data(self, opcode: Opcode, payload: bytes, compress: bool) -> None:
        # Compression is optional per message (RFC 7692 section 6); zlib cannot compress a raw
        # stream with an 8-bit window, so a peer that asked for one gets uncompressed messages.
        if (
            compress
            and self._deflate is not None
            and len(payload) >= self._compress_threshold
            and self._local_bits > 8
        ):
            deflater = self._compressor
            if deflater is None:
                deflater = zlib.compressobj(wbits=-self._local_bits)
            # Section 7.2.1: sync flush, then drop the 00 00 ff ff it ends with.
            compressed = (deflater.compress(payload) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]
            self._compressor = None if self._local_no_context else deflater
            # Section 7.2.3.6: an empty message compresses to a single 0x00 byte.
            self._out.append(
                encode_frame(opcode, compressed or b"\x00", rsv1=True, mask=self._mask_out)
            )
        else:
            self._out.append(encode_frame(opcode, payload, mask=self._mask_out))

    def send_text(self, data: str, *, compress: bool = True) -> None:
        """Queue a text message, compressed when permessage-deflate is active, ``compress`` and
        it has at least ``compress_threshold`` bytes. Raises :class:`InvalidState` unless OPEN."""
        self._check_open("a text message")
        self._send_data(Opcode.TEXT, encode_text(data), compress)

    def send_binary(self, data: bytes, *, compress: bool = True) -> None:
        """Queue a binary message (compressed as :meth:`send_text` says). Raises
        :class:`InvalidState` unless OPEN."""
        self._check_open("a binary message")
        self._send_data(Opcode.BINARY, data, compress)

    def send_ping(self, data: bytes = b"") -> None:
        """Queue a ping. Raises :class:`InvalidState` unless OPEN, ValueError over 125 bytes."""
        self._check_open("a ping")
        self._out.append(encode_frame(Opcode.PING, data, mask=self._mask_out))

    def send_pong(self, data: bytes = b"") -> None:
        """Queue an unsolicited pong (pings are answered automatically)."""
        self._check_open("a pong")
        self._out.append(encode_frame(Opcode.PONG, data, mask=self._mask_out))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; ``code`` 1005 sends a close frame without a status.

        Raises :class:`InvalidState` if a close frame was already sent, :class:`ValueError` for
        a code that may not be sent or a reason longer than 123 bytes in UTF-8.
        """
        self._check_open("a close frame")
        encoded = reason.encode()
        if code == CloseCode.NO_STATUS:
            if reason:
                raise ValueError(f"close code 1005 carries no reason (got '{shorten(reason)}')")
            payload = b""
        elif not _valid_close_code(code):
            raise ValueError(
                f"invalid close code {code} (expected 1000-1003, 1007-1014 or 3000-4999)"
            )
        elif len(encoded) > MAX_CONTROL_PAYLOAD - 2:
            raise ValueError(
                f"close reason of {len(encoded)} bytes exceeds {MAX_CONTROL_PAYLOAD - 2} bytes"
            )
        else:
            payload = code.to_bytes(2, "big") + encoded
        self._to_closing(payload)

    def send_frame(self, frame: bytes) -> None:
        """Queue a frame pre-encoded with :func:`encode_frame` (the broadcast path).

        Raises :class:`InvalidState` unless OPEN or while an extension is active (a shared frame
        cannot take part in this connection's compression context), and :class:`ValueError` if
        ``frame`` sets reserved bits or its mask bit does not match this side.
        """
        self._check_open("a frame")
        if self._deflate is not None:
            raise InvalidState(
                "cannot send a pre-encoded frame: permessage-deflate is active "
                "(expected no extension)"
            )
        if (
            len(frame) < 2
            or frame[0] & 0x70
            or (frame[1] & MASK_BIT) != (MASK_BIT if self._mask_out else 0)
        ):
            raise ValueError(
                f"invalid pre-encoded frame for the {self.side.value} side (expected no reserved "
                f"bits and {'a' if self._mask_out else 'no'} mask)"
            )
        self._out.append(frame)

    def data_to_send(self) -> bytes:
        """Return and forget everything queued since the last call (``b""`` if nothing)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)


def _utf8_reason(exc: UnicodeDecodeError) -> str:
    return f"is not valid utf-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})"

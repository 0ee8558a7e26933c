"""WebSocket frames (RFC 6455 section 5): opcodes, close codes, the header bits, masking, and
encoding a frame. Values only: :mod:`aiosio.protocol.websocket` parses frames inside its state
machine (the parser and the state it feeds are one loop, for speed) and uses these names.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable
from typing import Final
from typing import Literal

__all__ = [
    "FIN",
    "MASK_BIT",
    "MAX_CONTROL_PAYLOAD",
    "OPCODE_NAMES",
    "RSV1",
    "RSV23",
    "CloseCode",
    "Opcode",
    "apply_mask",
    "close_payload",
    "encode_frame",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2); 0x3-0x7 and 0xB-0xF are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """Status codes of RFC 6455 section 7.4.1."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011


# The header's bits (section 5.2): FIN and the reserved bits in the first byte (RSV1 marks a
# compressed message, RFC 7692 section 6), the mask bit in the second.
FIN: Final = 0x80
RSV1: Final = 0x40
RSV23: Final = 0x30
MASK_BIT: Final = 0x80
_PACK_16: Final = struct.Struct("!BBH").pack
_PACK_64: Final = struct.Struct("!BBQ").pack
# Section 5.5: control frames carry at most 125 bytes.
MAX_CONTROL_PAYLOAD: Final = 125
OPCODE_NAMES: Final = {op.value: op.name.lower() for op in Opcode}


def _py_apply_mask(
    data: bytes | bytearray,
    key: bytes,
    _from_bytes: Callable[[bytes | bytearray, Literal["little"]], int] = int.from_bytes,
) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``key`` (RFC 6455 section 5.3).

    One big-integer XOR over the whole payload: a handful of C-level passes instead of a Python
    loop per byte. Byte order is irrelevant to XOR as long as both sides use the same one.
    ``_from_bytes`` is bound as a default to save attribute lookups on the hot path.
    """
    n = len(data)
    mask = (key * ((n >> 2) + 1))[:n]
    return (_from_bytes(data, "little") ^ _from_bytes(mask, "little")).to_bytes(n, "little")


try:
    # websockets' C unmasking (a pure function, no I/O) when installed (the `speed` extra):
    # several times faster on large frames.
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - depends on the environment
    apply_mask = _py_apply_mask
else:
    apply_mask = _c_apply_mask  # type: ignore[assignment]


def encode_frame(
    opcode: Opcode, payload: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = False
) -> bytes:
    """Encode one frame (RFC 6455 section 5.2).

    With ``mask=False`` (server frames) the result depends on the arguments only, so one frame can
    be encoded once and written to many connections. With ``mask=True`` (client frames) a fresh
    key comes from ``os.urandom`` (section 10.3: masks must be unpredictable).

    Raises :class:`ValueError` for a control frame that is fragmented, compressed or longer than
    125 bytes (section 5.5).
    """
    n = len(payload)
    if n < 126 and fin and not (rsv1 or mask or opcode & 0x8):
        # A whole data message of a server, short: what nearly every ack and event is.
        return bytes((0x80 | opcode, n)) + payload
    if opcode & 0x8 and (n > MAX_CONTROL_PAYLOAD or not fin or rsv1):
        raise ValueError(
            f"invalid {OPCODE_NAMES.get(opcode, 'control')} frame (expected fin, no rsv1 and at "
            f"most {MAX_CONTROL_PAYLOAD} bytes, got fin={fin}, rsv1={rsv1}, {n} bytes)"
        )
    b0 = (FIN if fin else 0) | (RSV1 if rsv1 else 0) | opcode
    mask_bit = MASK_BIT if mask else 0
    if n < 126:
        header = bytes((b0, mask_bit | n))
    elif n < 0x10000:
        header = _PACK_16(b0, mask_bit | 126, n)
    else:
        header = _PACK_64(b0, mask_bit | 127, n)
    if mask:
        key = os.urandom(4)
        return b"".join((header, key, apply_mask(payload, key)))
    return header + payload


def close_payload(code: int, reason: str) -> bytes:
    """The payload of the close frame that fails the connection with ``code`` and ``reason``."""
    encoded = reason.encode()
    if len(encoded) > MAX_CONTROL_PAYLOAD - 2:
        # Our own violation reasons: cut on a character boundary to fit section 5.5.
        encoded = encoded[: MAX_CONTROL_PAYLOAD - 2].decode(errors="ignore").encode()
    return code.to_bytes(2, "big") + encoded

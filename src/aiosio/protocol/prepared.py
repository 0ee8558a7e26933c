"""An Engine.IO message encoded once for many recipients (a broadcast).

Pure encoding: the Engine.IO MESSAGE packet and its WebSocket frame, built once per protocol
revision on first use, so that a broadcast writes the same bytes to every WebSocket recipient and
the same data to every polling one. The Socket.IO layer (adapters, sockets) prepares it; the
engine sends it.
"""

from __future__ import annotations

from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.engineio import encode_packet
from aiosio.protocol.text import encode_text
from aiosio.protocol.websocket import Opcode
from aiosio.protocol.websocket import encode_frame

__all__ = ["PreparedMessage"]


class PreparedMessage:
    """An Engine.IO message encoded once for many recipients, with its WebSocket frame built
    once per protocol revision on first use."""

    __slots__ = ("_frames", "data", "frame4")

    def __init__(self, data: str | bytes) -> None:
        self.data = data
        self._frames: dict[int, bytes] = {}
        # the frame of nearly every recipient: built by the first, then an attribute read (not
        # at all when no recipient is a WebSocket the server frames itself)
        self.frame4: bytes | None = None

    def frame(self, protocol: int) -> bytes:
        """The WebSocket frame of this message for Engine.IO revision ``protocol``."""
        frame = self._frames.get(protocol)
        if frame is None:
            encoded = encode_packet(Packet(PacketType.MESSAGE, self.data), protocol)
            if isinstance(encoded, str):
                frame = encode_frame(Opcode.TEXT, encode_text(encoded))
            else:
                frame = encode_frame(Opcode.BINARY, encoded)
            self._frames[protocol] = frame
            if protocol == 4:
                self.frame4 = frame
        return frame

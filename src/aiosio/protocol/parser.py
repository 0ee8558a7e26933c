"""Socket.IO parsers: how packets become Engine.IO messages and back, as the reference's
``parser`` option (``new Server({ parser })``, ``io(url, { parser })``) chooses.

Two are built in:

- ``"json"`` (the default, :data:`JSON`): ``socket.io-parser``'s format, a text header with the
  JSON payload, each binary value in an Engine.IO message of its own
  (:mod:`aiosio.protocol.socketio`);
- ``"msgpack"``: ``socket.io-msgpack-parser``'s, the whole packet as one msgpack map in one
  binary message, binary values inside it (:mod:`aiosio.protocol.msgpack_parser`).

Both sides of a connection must use the same one. A peer that uses the other one is told so:
its first message is of the wrong kind (text where the msgpack parser expects binary, a binary
message no packet announced where the JSON parser expects text), which the decoders report as
:class:`~aiosio.protocol.errors.ParserMismatch`; :func:`aiosio.protocol.parsers.mismatch_reply`
then builds, in the
peer's own format, a CONNECT_ERROR that says so.

A custom parser subclasses :class:`Parser`: ``encode`` turns a :class:`Packet` into the
Engine.IO messages (``str`` for text, ``bytes`` for binary) to send, ``decoder`` makes one
:class:`PacketDecoder` per connection, fed each message in order. A decoder must apply the
:class:`~aiosio.protocol.socketio.Limits` it is given (depth, namespace length, ack ids,
attachments where it has any), check payload types per packet type
(:func:`~aiosio.protocol.socketio.check_payload`) and raise only
:class:`~aiosio.protocol.errors.RemoteProtocolError`: the connection is then closed with that
reason. Messages are already bounded in size by ``max_http_buffer_size``.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from typing import Any
from typing import Protocol

from aiosio.protocol.socketio import Decoder
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import encode
from aiosio.protocol.socketio import encode_parts

__all__ = ["JSON", "JsonParser", "PacketDecoder", "Parser"]


class PacketDecoder(Protocol):
    """Decodes the Engine.IO messages of one connection into packets."""

    @property
    def pending(self) -> bool:
        """True while a packet waits for more messages (attachments)."""

    def feed(self, message: str | bytes) -> Packet | None:
        """The packet ``message`` completes, or ``None`` while one waits for more messages.
        Raises :class:`~aiosio.protocol.errors.RemoteProtocolError` (and forgets any partial
        packet) for anything the protocol or the limits forbid."""

    def reset(self) -> None:
        """Forget a partially received packet (the connection closed)."""


class Parser(ABC):
    """A Socket.IO packet format (see the module's documentation)."""

    name: str = "custom"
    """What logs and mismatch errors call it."""

    @abstractmethod
    def encode(self, packet: Packet) -> list[str | bytes]:
        """The Engine.IO messages that carry ``packet``. Raises ``TypeError`` or ``ValueError``
        for data the format cannot carry."""

    @abstractmethod
    def decoder(self, limits: Limits, *, protocol: int = 5) -> PacketDecoder:
        """A decoder for one connection (``protocol`` 4: a socket.io 2.x peer)."""

    def encode_parts(
        self, ptype: PacketType, nsp: str, data: Any, ack_id: int | None = None
    ) -> list[str | bytes]:
        """:meth:`encode` of the packet these make (the JSON parser encodes them without
        building the packet)."""
        return self.encode(Packet(ptype, nsp, data, ack_id))

    def __repr__(self) -> str:
        return f"<aiosio parser {self.name!r}>"


class JsonParser(Parser):
    """``socket.io-parser``'s format, the default (:data:`JSON`)."""

    name = "json"

    # The module's functions themselves, not methods that call them: the default path costs
    # what it cost before parsers were pluggable.
    encode = staticmethod(encode)
    encode_parts = staticmethod(encode_parts)

    def decoder(self, limits: Limits, *, protocol: int = 5) -> Decoder:
        return Decoder(limits, protocol=protocol)


JSON = JsonParser()
"""The default parser."""

"""The Engine.IO and Socket.IO packets the doctor sends and reads, built and parsed by
:mod:`aiosio.protocol` (the same encoders and decoders as the server and the client), so the
doctor speaks exactly the wire format it diagnoses.

What the doctor sends over long-polling is one Engine.IO payload (``docs/engine.io-protocol/
v4-current.md``, "Payload"); over WebSocket, one encoded packet per message ("Packet encoding").
"""

from __future__ import annotations

import json
from typing import Any

from aiosio.protocol import engineio as eio
from aiosio.protocol import socketio as sio
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.errors import RemoteProtocolError

__all__ = [
    "CLOSE",
    "CLOSE_PAYLOAD",
    "NOOP_PAYLOAD",
    "PONG",
    "PROBE_PING",
    "PROBE_PONG",
    "UPGRADE",
    "connect_message",
    "connect_payload",
    "handshake_of_payload",
    "is_handshake_message",
    "is_message_payload",
    "is_noop",
    "is_ping",
    "is_probe_pong",
    "is_v3_handshake",
    "message_payload",
    "namespace_answers",
    "read_message",
]

_REVISION = 4  # Engine.IO revision 4: socket.io 3.x and 4.x


def _encoded(packet: eio.Packet) -> str:
    encoded = eio.encode_packet(packet, _REVISION, supports_binary=False)
    assert isinstance(encoded, str)  # a text packet encodes to text
    return encoded


# The upgrade of a polling session (v4-current.md, "Upgrade"): the probe ping and its pong, the
# upgrade itself; a noop answers a waiting poll; a close ends the session.
PROBE_PING = _encoded(eio.Packet(PacketType.PING, "probe"))
PROBE_PONG = _encoded(eio.Packet(PacketType.PONG, "probe"))
UPGRADE = _encoded(eio.Packet(PacketType.UPGRADE))
CLOSE = _encoded(eio.Packet(PacketType.CLOSE))
PONG = _encoded(eio.Packet(PacketType.PONG))


def _payload(*packets: eio.Packet) -> bytes:
    body, _content_type = eio.encode_payload(packets, _REVISION)
    return body


# Polling POST bodies: a noop (what a client posts to say nothing), a close.
NOOP_PAYLOAD = _payload(eio.Packet(PacketType.NOOP))
CLOSE_PAYLOAD = _payload(eio.Packet(PacketType.CLOSE))


def message_payload(text: str) -> bytes:
    """A polling POST body of one Engine.IO MESSAGE carrying ``text``."""
    return _payload(eio.Packet(PacketType.MESSAGE, text))


def _connect(namespace: str, auth: dict[str, Any] | None) -> str:
    """A Socket.IO CONNECT to ``namespace`` with ``auth`` (``v5-current.md``, "Connection to a
    namespace"), as a client sends it; an empty ``auth`` is left out."""
    (header,) = sio.encode(sio.Packet(sio.PacketType.CONNECT, namespace, auth or None))
    assert isinstance(header, str)  # a CONNECT has no attachments
    return header


def connect_message(namespace: str, auth: dict[str, Any] | None) -> str:
    """The Engine.IO message of the CONNECT to ``namespace`` with ``auth``."""
    return _encoded(eio.Packet(PacketType.MESSAGE, _connect(namespace, auth)))


def connect_payload(namespace: str, auth: dict[str, Any] | None) -> bytes:
    """A polling POST body of the CONNECT to ``namespace`` with ``auth``."""
    return message_payload(_connect(namespace, auth))


def read_message(data: str | bytes) -> eio.Packet | None:
    """The Engine.IO packet of one WebSocket message, or ``None`` when it is not one."""
    try:
        return eio.decode_packet(data, _REVISION)
    except RemoteProtocolError:
        return None


def is_ping(data: str | bytes) -> bool:
    """Whether a WebSocket message is the server's heartbeat ping."""
    packet = read_message(data)
    return packet is not None and packet.type is PacketType.PING and not packet.data


def is_noop(data: str | bytes) -> bool:
    """Whether a WebSocket message is a noop (what answers a poll waiting during an upgrade)."""
    packet = read_message(data)
    return packet is not None and packet.type is PacketType.NOOP and not packet.data


def is_probe_pong(data: str | bytes) -> bool:
    """Whether a WebSocket message is the pong of the upgrade's probe ping."""
    return read_message(data) == eio.Packet(PacketType.PONG, "probe")


def _json_object(text: str | bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_handshake_message(data: str | bytes) -> bool:
    """Whether a WebSocket message is an Engine.IO OPEN packet with its JSON handshake."""
    packet = read_message(data)
    return (
        packet is not None
        and packet.type is PacketType.OPEN
        and isinstance(packet.data, str)
        and _json_object(packet.data) is not None
    )


def _packets(body: bytes, revision: int = _REVISION) -> list[eio.Packet]:
    try:
        return eio.decode_payload(body, revision)
    except eio.PayloadError as error:
        return error.decoded


def handshake_of_payload(body: bytes) -> dict[str, Any] | None:
    """The JSON of the OPEN packet that starts a polling answer, if it holds a ``sid``."""
    try:
        packets = eio.decode_payload(body, _REVISION)
    except eio.PayloadError:
        return None
    if not packets or packets[0].type is not PacketType.OPEN:
        return None
    handshake = _json_object(packets[0].data)
    return handshake if handshake is not None and "sid" in handshake else None


def is_v3_handshake(body: bytes) -> bool:
    """Whether a polling answer starts with an Engine.IO 3 OPEN packet (socket.io 2.x)."""
    packets = _packets(body, 3)
    return bool(packets) and packets[0].type is PacketType.OPEN and str(packets[0].data)[:1] == "{"


def is_message_payload(body: bytes) -> bool:
    """Whether a polling answer holds an Engine.IO MESSAGE (a Socket.IO packet)."""
    return any(packet.type is PacketType.MESSAGE for packet in _packets(body))


def namespace_answers(body: bytes, decoder: sio.Decoder) -> list[sio.Packet]:
    """The Socket.IO packets of a polling answer; packets that do not decode are left out."""
    found: list[sio.Packet] = []
    for packet in _packets(body):
        if packet.type is not PacketType.MESSAGE:
            continue
        try:
            decoded = decoder.feed(packet.data)
        except RemoteProtocolError:
            continue
        if decoded is not None:
            found.append(decoded)
    return found

"""The messages of ``@socket.io/postgres-adapter`` 0.5: ``socket.io-adapter``'s cluster messages
with a heartbeat, as PostgreSQL ``NOTIFY`` payloads or rows of the attachments table.

Every message is ``{"type", "data", "uid", "nsp"}`` (``data`` absent for the heartbeat types), the
:mod:`~aiosio.adapters.redis.sharded_messages` types plus :class:`InitialHeartbeat`,
:class:`Heartbeat` and :class:`AdapterClose`, on the channel ``<prefix>#<nsp>``. A message is sent
as the JSON text of a ``NOTIFY`` unless it must go through the attachments table:

* a broadcast, a broadcast's ack, a server-side emit or its reply holding binary values (JSON has
  no bytes), or
* any message whose JSON text is ``payload_threshold`` bytes or more (PostgreSQL refuses a
  ``NOTIFY`` payload of 8000 bytes or more).

Then the message is written as msgpack into a row of the attachments table and the ``NOTIFY``
carries a header ``{"uid", "type", "attachmentId"}`` (:class:`AttachmentHeader`) that names the row.

``@socket.io/postgres-emitter`` writes its messages with ``uid: "emitter"`` and without ``nsp``:
the channel names the namespace. The decoders raise only the
:class:`~aiosio.adapters.redis.messages.MessageError` subclasses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from typing import ClassVar

from aiosio.adapters.redis.codec import encode_json
from aiosio.adapters.redis.codec import encode_msgpack
from aiosio.adapters.redis.messages import InvalidMessage
from aiosio.adapters.redis.messages import MessageType
from aiosio.adapters.redis.messages import WireMessage
from aiosio.adapters.redis.messages import WrongShape
from aiosio.adapters.redis.messages import optional_str
from aiosio.adapters.redis.messages import payload
from aiosio.adapters.redis.sharded_messages import Message as ClusterMessage
from aiosio.adapters.redis.sharded_messages import from_wire
from aiosio.adapters.redis.sharded_messages import to_wire
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import has_binary

__all__ = [
    "EMITTER_UID",
    "AdapterClose",
    "AttachmentHeader",
    "Heartbeat",
    "InitialHeartbeat",
    "Message",
    "Outgoing",
    "decode_attachment",
    "decode_notification",
    "encode",
    "encode_header",
]

EMITTER_UID = "emitter"
"""The ``uid`` of ``@socket.io/postgres-emitter``'s messages (not a server: never counted)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InitialHeartbeat(WireMessage):
    """A server's adapter started: every other server answers with a :class:`Heartbeat`."""

    CLUSTER: ClassVar[MessageType] = MessageType.INITIAL_HEARTBEAT


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(WireMessage):
    """A server is alive (sent after ``heartbeat_interval`` without another message)."""

    CLUSTER: ClassVar[MessageType] = MessageType.HEARTBEAT


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterClose(WireMessage):
    """A server's adapter closed: it is no longer part of the cluster."""

    CLUSTER: ClassVar[MessageType] = MessageType.ADAPTER_CLOSE


HeartbeatMessage = InitialHeartbeat | Heartbeat | AdapterClose
Message = ClusterMessage | HeartbeatMessage

_HEARTBEATS: dict[int, type[HeartbeatMessage]] = {
    int(cls.CLUSTER): cls for cls in (InitialHeartbeat, Heartbeat, AdapterClose)
}

# The types the reference sends through the attachments table when they hold binary values.
_MAY_BE_BINARY = frozenset(
    {
        MessageType.BROADCAST,
        MessageType.BROADCAST_ACK,
        MessageType.SERVER_SIDE_EMIT,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
    }
)


@dataclass(frozen=True, slots=True)
class AttachmentHeader:
    """The ``NOTIFY`` of a message stored in the attachments table: who sent it, its type and
    the ``id`` of its row."""

    uid: str | None
    type: Any
    attachment_id: str


# -- decoding -------------------------------------------------------------------------------------


def decode_notification(
    text: str, *, nsp: str, max_size: int, limits: Limits, skip_uid: str | None = None
) -> Message | AttachmentHeader | None:
    """The message (or the header of an attachment) in the payload of a ``NOTIFY`` on the
    channel of namespace ``nsp``; None for a message of ``skip_uid`` (a server's own, which
    comes back to it: not checked further)."""
    raw = _json(text, max_size)
    if skip_uid is not None and isinstance(raw, dict) and raw.get("uid") == skip_uid:
        return None
    if isinstance(raw, dict) and "attachmentId" in raw:
        attachment = raw["attachmentId"]
        if type(attachment) is not int and not (isinstance(attachment, str) and attachment):
            raise WrongShape("attachmentId must be an integer or a non-empty string")
        return AttachmentHeader(
            uid=optional_str(raw.get("uid"), "uid"),
            type=raw.get("type"),
            attachment_id=str(attachment),
        )
    return decode_value_of(raw, nsp=nsp, limits=limits)


def _json(text: str, max_size: int) -> Any:
    """A ``NOTIFY`` payload is JSON text (the attachments' msgpack is in the table)."""
    if len(text) > max_size:
        raise InvalidMessage(f"notification of {len(text)} characters exceeds {max_size=}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage(f"invalid JSON notification: {exc}") from None


def decode_attachment(data: bytes, *, nsp: str, max_size: int, limits: Limits) -> Message:
    """The message in a row of the attachments table (msgpack)."""
    if data[:1] == b"{":  # a msgpack map never starts so; JSON would, and is not what we read
        raise WrongShape("an attachment must be a msgpack map")
    return decode_value_of(payload(data, max_size), nsp=nsp, limits=limits)


def decode_value_of(raw: Any, *, nsp: str, limits: Limits) -> Message:
    """A message from its decoded value; one without ``nsp`` (the emitter's) is for the
    namespace of its channel."""
    if not isinstance(raw, dict):
        raise WrongShape("a cluster message must be an object")
    if raw.get("nsp") is None:
        raw["nsp"] = nsp
    kind = raw.get("type")
    heartbeat = _HEARTBEATS.get(kind) if type(kind) is int else None
    if heartbeat is not None:
        return heartbeat(
            uid=optional_str(raw.get("uid"), "uid"), nsp=optional_str(raw.get("nsp"), "nsp")
        )
    return from_wire(raw, limits)


# -- encoding -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send: the text of its ``NOTIFY``, or (``attachment`` set) the msgpack bytes
    of its row in the attachments table, whose header :func:`encode_header` writes once the row
    has an id."""

    channel: str
    text: str | None
    attachment: bytes | None
    uid: str | None
    type: int


def encode(message: Message, *, channel: str, threshold: int) -> Outgoing:
    """``message`` as the reference sends it (see the module)."""
    kind = message.CLUSTER
    if isinstance(message, InitialHeartbeat | Heartbeat | AdapterClose):
        wire: dict[str, Any] = {"type": int(kind), "uid": message.uid, "nsp": message.nsp}
    else:
        wire = to_wire(message)
    if kind in _MAY_BE_BINARY and has_binary(wire.get("data")):
        return Outgoing(channel, None, encode_msgpack(wire), message.uid, int(kind))
    text = encode_json(wire)
    if len(text) >= threshold:
        return Outgoing(channel, None, encode_msgpack(wire), message.uid, int(kind))
    return Outgoing(channel, text.decode(), None, message.uid, int(kind))


def encode_header(outgoing: Outgoing, attachment_id: str) -> str:
    """The ``NOTIFY`` payload that names the row of an attachment (``attachmentId`` is the text
    of the ``bigserial`` id, as node-postgres returns it)."""
    header = {"uid": outgoing.uid, "type": outgoing.type, "attachmentId": attachment_id}
    return encode_json(header).decode()

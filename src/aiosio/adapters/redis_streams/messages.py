"""The messages of ``@socket.io/redis-streams-adapter`` 0.3: ``socket.io-adapter``'s
``ClusterAdapter`` messages (:mod:`~aiosio.adapters.redis.sharded_messages`), written two ways.

* **In a stream** (broadcasts without acks, join, leave, disconnect): an entry with the fields
  ``uid``, ``nsp``, ``type`` (the number as text) and ``data``: ``JSON.stringify(data)``, or,
  when a type that may carry binary does, the base64 of its msgpack (``onlyPlaintext`` skips
  that check: bytes are then written as JSON writes a Node Buffer).
* **On pub/sub** (broadcasts with acks, ``fetchSockets``, ``serverSideEmit`` and every
  answer): the whole message ``{type, data, uid, nsp}`` as msgpack, on ``<prefix>#<nsp>#``,
  answers on the requester's ``<prefix>#<nsp>#<uid>#``.

:func:`decode_entry` reads an entry into the frozen message dataclasses, with the checks of
:mod:`~aiosio.adapters.redis.messages` (size, shape, what may reach a client); it raises only
their :class:`~aiosio.adapters.redis.messages.MessageError` subclasses.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from aiosio.adapters.redis.codec import decode
from aiosio.adapters.redis.codec import encode_json
from aiosio.adapters.redis.codec import encode_msgpack
from aiosio.adapters.redis.messages import InvalidMessage
from aiosio.adapters.redis.messages import MessageType
from aiosio.adapters.redis.messages import UnknownType
from aiosio.adapters.redis.messages import WrongShape
from aiosio.adapters.redis.sharded_messages import Broadcast
from aiosio.adapters.redis.sharded_messages import Message
from aiosio.adapters.redis.sharded_messages import from_wire
from aiosio.adapters.redis.sharded_messages import to_wire
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import has_binary

__all__ = [
    "OFFSET",
    "decode_entry",
    "encode_pubsub",
    "entry_fields",
    "in_stream",
]

# A stream entry id, as the reference checks a client's offset before it reads the stream.
OFFSET = re.compile(r"[0-9]+-[0-9]+")


def in_stream(message: Message) -> bool:
    """Whether ``message`` goes in the stream (the reference's ``!isEphemeral``): everything but
    broadcasts with acks, server-side emits, fetches and answers."""
    if isinstance(message, Broadcast):
        return message.request_id is None
    return message.CLUSTER in (
        MessageType.SOCKETS_JOIN,
        MessageType.SOCKETS_LEAVE,
        MessageType.DISCONNECT_SOCKETS,
    )


def entry_fields(message: Message, *, only_plaintext: bool = False) -> dict[str, str]:
    """The fields of the stream entry of ``message``, in the reference's order."""
    wire = to_wire(message)
    data = wire["data"]
    if not only_plaintext and message.MAY_BE_BINARY and has_binary(data):
        text = base64.b64encode(encode_msgpack(data)).decode("ascii")
    else:
        text = encode_json(data).decode()
    return {
        "uid": message.uid or "",
        "nsp": message.nsp or "",
        "type": str(int(message.CLUSTER)),
        "data": text,
    }


def encode_pubsub(message: Message) -> bytes:
    """A message on pub/sub: the whole ``{type, data, uid, nsp}`` as msgpack."""
    return encode_msgpack(to_wire(message))


def _field(fields: dict[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise WrongShape(f"field {name.decode()} is not UTF-8") from None


def decode_entry(fields: dict[bytes, bytes], *, max_size: int, limits: Limits) -> Message:
    """The message of a stream entry. Raises the
    :class:`~aiosio.adapters.redis.messages.MessageError` subclasses."""
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size > max_size:
        raise InvalidMessage(f"stream entry of {size} bytes exceeds max_message_size={max_size}")
    kind = _field(fields, b"type")
    if kind is None or not kind.isdigit():
        raise UnknownType(kind)
    text = _field(fields, b"data")
    data: Any = None
    if text:
        if text.startswith("{"):
            raw = text.encode()
        else:
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidMessage(f"data is neither JSON nor base64: {exc}") from exc
            if raw[:1] == b"{":
                raise InvalidMessage("base64 data must hold msgpack, not JSON")
        try:
            data = decode(raw, max_size)
        except ValueError as exc:
            raise InvalidMessage(str(exc)) from exc
    raw_message = {
        "type": int(kind),
        "data": data,
        "uid": _field(fields, b"uid"),
        "nsp": _field(fields, b"nsp"),
    }
    return from_wire(raw_message, limits)

"""The Redis Streams adapter's messages as stream entries: decoded with the size cap and the
checks on what another server asks to deliver, and written as the reference writes them."""

from __future__ import annotations

import base64

import msgpack
import pytest

from aiosio import Limits
from aiosio.adapters.redis.messages import InvalidMessage
from aiosio.adapters.redis.messages import Refused
from aiosio.adapters.redis.messages import UnknownType
from aiosio.adapters.redis.messages import WrongShape
from aiosio.adapters.redis.sharded_messages import Broadcast
from aiosio.adapters.redis_streams import stream_of
from aiosio.adapters.redis_streams.messages import decode_entry
from aiosio.adapters.redis_streams.messages import entry_fields
from aiosio.adapters.redis_streams.messages import in_stream

LIMITS = Limits()


def entry(data: str, kind: str = "3") -> dict[bytes, bytes]:
    return {b"uid": b"u1", b"nsp": b"/", b"type": kind.encode(), b"data": data.encode()}


BROADCAST = '{"packet":{"type":2,"data":["hello",1]},"opts":{"rooms":["r"],"except":[],"flags":{}}}'


def test_a_json_broadcast_entry_reads_and_writes_back_the_same() -> None:
    fields = entry(BROADCAST)
    message = decode_entry(fields, max_size=10_000, limits=LIMITS)
    assert isinstance(message, Broadcast)
    assert message.packet.data == ["hello", 1]
    assert message.opts.rooms == ("r",)
    assert in_stream(message)
    assert {k.encode(): v.encode() for k, v in entry_fields(message).items()} == fields


def test_binary_data_is_base64_msgpack_and_plaintext_skips_the_check() -> None:
    data = {"packet": {"type": 2, "data": ["bin", b"\x00\xff"]}, "opts": {}}
    text = base64.b64encode(msgpack.packb(data, use_bin_type=True)).decode()
    message = decode_entry(entry(text), max_size=10_000, limits=LIMITS)
    assert isinstance(message, Broadcast)
    assert message.packet.data == ["bin", b"\x00\xff"]
    written = entry_fields(message)
    assert not written["data"].startswith("{")
    assert (
        decode_entry(
            {k.encode(): v.encode() for k, v in written.items()}, max_size=10_000, limits=LIMITS
        )
        == message
    )
    plain = entry_fields(message, only_plaintext=True)["data"]
    assert '"data":[0,255]' in plain  # what JSON.stringify makes of a Node Buffer


def test_the_size_cap_at_its_bound() -> None:
    fields = entry(BROADCAST)
    size = sum(len(k) + len(v) for k, v in fields.items())
    assert decode_entry(fields, max_size=size, limits=LIMITS)
    with pytest.raises(InvalidMessage, match=f"stream entry of {size} bytes exceeds"):
        decode_entry(fields, max_size=size - 1, limits=LIMITS)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (entry(BROADCAST, kind="x"), UnknownType),
        (entry(BROADCAST, kind="99"), UnknownType),
        (entry("%%%"), InvalidMessage),
        (entry(base64.b64encode(b"{}").decode()), InvalidMessage),
        (entry('{"packet":{"type":2,"data":"no"},"opts":{}}'), WrongShape),
        (entry('{"packet":{"type":2,"data":["disconnect"]},"opts":{}}'), Refused),
        (entry('{"packet":{"type":0,"data":["x"]},"opts":{}}'), Refused),
    ],
)
def test_what_may_not_be_used_is_refused(fields: dict[bytes, bytes], error: type) -> None:
    with pytest.raises(error):
        decode_entry(fields, max_size=10_000, limits=LIMITS)


@pytest.mark.parametrize(
    ("nsp", "count", "stream"),
    [
        # What Node computes (hashCode(nsp) % count, a JavaScript remainder, UTF-16 units).
        ("/", 1, "s"),
        ("/", 4, "s-3"),
        ("/chat", 3, "s-1"),
        ("/admin", 4, "s-0"),
        ("/room/12345678", 3, "s-0"),
        ("/notifications", 4, "s--3"),  # a negative hash: the reference's reader never reads it
        ("/dashboard-\U0001d11e", 3, "s--2"),
    ],
)
def test_streams_of_namespaces_follow_the_reference_hash(nsp: str, count: int, stream: str) -> None:
    assert stream_of(nsp, "s", count) == stream

"""The Postgres adapter's messages and options, without a database: what goes in a ``NOTIFY`` and
what through the attachments table, what the decoder accepts and refuses, and the bounds of
:class:`~aiosio.adapters.postgres.PostgresAdapter` with their errors. The wire against the Node
adapter itself is tests/interop/test_postgres_cluster.py's."""

from __future__ import annotations

import json
import sys

import msgpack
import pytest

from aiosio import Limits
from aiosio.adapters.postgres import PostgresAdapter
from aiosio.adapters.postgres.messages import AttachmentHeader
from aiosio.adapters.postgres.messages import Heartbeat
from aiosio.adapters.postgres.messages import InitialHeartbeat
from aiosio.adapters.postgres.messages import decode_attachment
from aiosio.adapters.postgres.messages import decode_notification
from aiosio.adapters.postgres.messages import encode
from aiosio.adapters.postgres.messages import encode_header
from aiosio.adapters.redis.messages import EventPacket
from aiosio.adapters.redis.messages import Refused
from aiosio.adapters.redis.messages import WireOptions
from aiosio.adapters.redis.messages import WrongShape
from aiosio.adapters.redis.sharded_messages import Broadcast
from aiosio.adapters.redis.sharded_messages import FetchSocketsResponse
from aiosio.adapters.redis.sharded_messages import ServerSideEmit
from aiosio.server.adapter import BroadcastOptions

CHANNEL = "socket.io#/"
LIMITS = Limits()


def broadcast(*args: object) -> Broadcast:
    return Broadcast(
        uid="0123456789abcdef",
        nsp="/",
        packet=EventPacket(data=["e", *args]),
        opts=WireOptions.of(BroadcastOptions()),
    )


def decode(text: str, **kwargs: object) -> object:
    return decode_notification(text, nsp="/", max_size=10_000, limits=LIMITS, **kwargs)  # type: ignore[arg-type]


def test_a_broadcast_is_the_json_the_node_adapter_writes() -> None:
    out = encode(broadcast(1, "é"), channel=CHANNEL, threshold=8000)
    assert out.attachment is None
    assert out.text == (
        '{"type":3,"data":{"packet":{"type":2,"data":["e",1,"é"]},"opts":{"rooms":[],'
        '"except":[],"flags":{}}},"uid":"0123456789abcdef","nsp":"/"}'
    )


def test_heartbeats_have_no_data() -> None:
    out = encode(InitialHeartbeat(uid="u", nsp="/"), channel=CHANNEL, threshold=8000)
    assert out.text == '{"type":1,"uid":"u","nsp":"/"}'
    assert decode('{"type":2,"uid":"u","nsp":"/"}') == Heartbeat(uid="u", nsp="/")


def test_the_threshold_is_in_bytes_and_a_payload_at_it_goes_through_the_table() -> None:
    base = len(encode(broadcast(""), channel=CHANNEL, threshold=8000).text or "")
    under = encode(broadcast("x" * (7999 - base)), channel=CHANNEL, threshold=8000)
    assert under.text is not None
    assert len(under.text.encode()) == 7999
    at = encode(broadcast("x" * (8000 - base)), channel=CHANNEL, threshold=8000)
    assert at.text is None
    assert at.attachment is not None
    # Two bytes per character: 4000 characters are 8000 bytes.
    wide = encode(broadcast("é" * 4000), channel=CHANNEL, threshold=8000)
    assert wide.attachment is not None


def test_binary_goes_through_the_table_as_msgpack_with_a_header() -> None:
    out = encode(broadcast(b"\x00\x01"), channel=CHANNEL, threshold=8000)
    assert out.text is None
    assert out.attachment is not None
    value = msgpack.unpackb(out.attachment)
    assert value["data"]["packet"]["data"] == ["e", b"\x00\x01"]
    assert list(value) == ["type", "data", "uid", "nsp"]
    header = encode_header(out, "42")
    assert header == '{"uid":"0123456789abcdef","type":3,"attachmentId":"42"}'
    assert decode(header) == AttachmentHeader(uid="0123456789abcdef", type=3, attachment_id="42")
    assert decode_attachment(out.attachment, nsp="/", max_size=10_000, limits=LIMITS) == (
        broadcast(b"\x00\x01")
    )


def test_a_fetch_response_with_bytes_stays_json_as_in_node() -> None:
    """Only broadcasts, acks and server-side emits go through the table for binary; other
    types are JSON.stringify'd, a Buffer as {"type": "Buffer", "data": [...]}."""
    response = FetchSocketsResponse(
        uid="u", nsp="/", request_id="r", sockets=[{"id": "s", "data": b"\x07"}]
    )
    out = encode(response, channel=CHANNEL, threshold=8000)
    assert out.text is not None
    assert json.loads(out.text)["data"]["sockets"][0]["data"] == {"type": "Buffer", "data": [7]}


def test_the_emitter_s_messages_take_their_namespace_from_the_channel() -> None:
    text = (
        '{"type":3,"data":{"packet":{"type":2,"data":["hi"],"nsp":"/chat"},"opts":{"rooms":[],'
        '"flags":{},"except":[]}},"uid":"emitter"}'
    )
    message = decode_notification(text, nsp="/chat", max_size=10_000, limits=LIMITS)
    assert isinstance(message, Broadcast)
    assert message.nsp == "/chat"
    assert message.uid == "emitter"


def test_a_server_s_own_message_is_skipped_before_it_is_checked() -> None:
    own = encode(broadcast(1), channel=CHANNEL, threshold=8000).text
    assert own is not None
    assert decode(own, skip_uid="0123456789abcdef") is None
    assert isinstance(decode(own, skip_uid="another"), Broadcast)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "invalid JSON notification"),
        ("x" * 10_001, "notification of 10001 characters exceeds max_size=10000"),
        ("[1]", "a cluster message must be an object"),
        ('{"uid":"u","type":3,"attachmentId":true}', "attachmentId must be"),
        ('{"type":3,"uid":"u","nsp":"/"}', "without a data object"),
        ('{"type":9,"data":{"packet":[]},"uid":"u"}', "packet must be a non-empty array"),
    ],
)
def test_malformed_notifications_raise_wrong_shape_or_invalid(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode(text)


def test_reserved_names_and_forged_placeholders_are_refused() -> None:
    emit = ServerSideEmit(uid="u", nsp="/", packet=["connection", 1])
    text = encode(emit, channel=CHANNEL, threshold=8000).text
    assert text is not None
    with pytest.raises(Refused, match="reserved"):
        decode(text)
    forged = encode(broadcast({"_placeholder": True, "num": 0}), channel=CHANNEL, threshold=8000)
    assert forged.text is not None
    with pytest.raises(Refused):
        decode(forged.text)


def test_an_attachment_over_max_message_size_is_refused() -> None:
    out = encode(broadcast(b"x" * 100), channel=CHANNEL, threshold=8000)
    assert out.attachment is not None
    with pytest.raises(ValueError, match="exceeds max_message_size=50"):
        decode_attachment(out.attachment, nsp="/", max_size=50, limits=LIMITS)
    with pytest.raises(WrongShape, match="msgpack map"):
        decode_attachment(b'{"type":3}', nsp="/", max_size=50, limits=LIMITS)


# -- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"payload_threshold": 8001}, "payload_threshold must be 1 to 8000 bytes, got 8001"),
        ({"payload_threshold": 0}, "payload_threshold must be 1 to 8000 bytes, got 0"),
        ({"table_name": "t; DROP TABLE x"}, "table_name must be a table name"),
        ({"heartbeat_timeout": 5.0}, r"heartbeat_timeout \(5.0s\) must be longer"),
        ({"heartbeat_interval": 0}, "heartbeat_interval must be more than 0 seconds"),
        ({"requests_timeout": -1}, "requests_timeout must be more than 0 seconds"),
        ({"max_publish_queue": 0}, "max_publish_queue must be at least 1 message"),
        ({"cleanup_interval": 0}, "cleanup_interval must be more than 0 seconds"),
        ({"channel_prefix": "p" * 62}, "PostgreSQL channel names are at most 63 bytes"),
        ({"max_message_size": 0}, "max_message_size must be at least 1 byte"),
    ],
)
def test_options_out_of_bounds_name_the_bound(options: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        PostgresAdapter("postgresql://x", **options)  # type: ignore[arg-type]


def test_boundaries_that_are_accepted() -> None:
    PostgresAdapter("postgresql://x", payload_threshold=8000, channel_prefix="p" * 61)
    PostgresAdapter("postgresql://x", payload_threshold=1, table_name="myschema.my_table")


def test_a_namespace_whose_channel_is_too_long_is_refused_with_the_fix() -> None:
    import aiosio

    sio = aiosio.Server(adapter=PostgresAdapter("postgresql://x", channel_prefix="p" * 40))
    sio.of("/" + "n" * 21)  # 40 + 1 + 22 = 63 bytes: accepted
    with pytest.raises(ValueError, match="use a shorter namespace or channel_prefix"):
        sio.of("/" + "n" * 22)


def test_without_asyncpg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(ImportError) as raised:
        PostgresAdapter("postgresql://x")
    message = str(raised.value)
    assert "PostgresAdapter needs the 'asyncpg' package, which is not installed" in message
    assert message.endswith('pip install "aiosio[postgres]"')

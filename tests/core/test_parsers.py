"""The parsers (``protocol/parser.py``, ``parsers.py``, ``msgpack_parser.py``) with bytes: the
msgpack format as notepack.io 2.x writes it, its bad input (wrong types, deep nesting, huge maps),
the limits at their boundaries, a fuzzer, and the mismatch between the JSON and msgpack parsers."""

from __future__ import annotations

import contextlib
import datetime
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import aiosio
from aiosio.protocol.errors import ParserMismatch
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.msgpack_parser import MSGPACK
from aiosio.protocol.msgpack_parser import MsgpackParser
from aiosio.protocol.parser import JSON
from aiosio.protocol.parser import JsonParser
from aiosio.protocol.parser import Parser
from aiosio.protocol.parsers import PARSER_MISMATCH
from aiosio.protocol.parsers import mismatch_reply
from aiosio.protocol.parsers import mismatch_text
from aiosio.protocol.parsers import resolve_parser
from aiosio.protocol.socketio import Decoder
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType

UTC = datetime.UTC
LIMITS = Limits()


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def feed(message: str | bytes, limits: Limits = LIMITS) -> Packet:
    return MSGPACK.decoder(limits).feed(message)


# -- choosing a parser --------------------------------------------------------------------------


def test_resolve_parser_names_and_instances() -> None:
    assert resolve_parser(None) is JSON
    assert resolve_parser("json") is JSON
    assert resolve_parser("msgpack") is MSGPACK
    custom = MsgpackParser()
    assert resolve_parser(custom) is custom
    assert isinstance(JSON, JsonParser)
    assert repr(MSGPACK) == "<aiosio parser 'msgpack'>"


def test_resolve_parser_refuses_unknown_names_and_types() -> None:
    with pytest.raises(ValueError, match=r"unknown parser 'cbor': expected 'json'"):
        resolve_parser("cbor")
    with pytest.raises(TypeError, match=r"parser must be 'json' .* got int"):
        resolve_parser(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown parser 'MSGPACK'"):
        aiosio.Server(parser="MSGPACK")
    with pytest.raises(ValueError, match="unknown parser"):
        aiosio.Client("http://127.0.0.1:1", parser="bson")


def test_the_json_parser_is_the_json_module() -> None:
    """The default path calls the JSON module's functions themselves (no method in between)."""
    from aiosio.protocol import socketio

    assert JSON.encode is socketio.encode
    assert JSON.encode_parts is socketio.encode_parts
    assert isinstance(JSON.decoder(LIMITS), Decoder)


def test_a_custom_parser_gets_encode_parts_from_encode() -> None:
    class Upper(Parser):
        name = "upper"

        def encode(self, packet: Packet) -> list[str | bytes]:
            return [JSON.encode(packet)[0].upper()]  # type: ignore[union-attr]

        def decoder(self, limits: Limits, *, protocol: int = 5) -> Decoder:
            return Decoder(limits, protocol=protocol)

    assert Upper().encode_parts(PacketType.EVENT, "/", ["hi"], 3) == ['23["HI"]']
    assert resolve_parser(Upper()).name == "upper"


# -- encoding ------------------------------------------------------------------------------------


def test_encode_writes_one_map_with_the_reference_keys() -> None:
    [message] = MSGPACK.encode(Packet(PacketType.EVENT, "/chat", ["hi", b"\x01"], 7))
    assert isinstance(message, bytes)
    assert msgpack.unpackb(message) == {"type": 2, "nsp": "/chat", "data": ["hi", b"\x01"], "id": 7}
    # No payload, no id: the keys are absent (undefined for the reference's checks).
    [message] = MSGPACK.encode(Packet(PacketType.DISCONNECT, "/"))
    assert msgpack.unpackb(message) == {"type": 1, "nsp": "/"}
    # The binary packet types of the JSON parser do not exist here.
    [message] = MSGPACK.encode_parts(PacketType.BINARY_ACK, "/", [b"x"], 1)
    assert msgpack.unpackb(message)["type"] == 3


def test_encode_values_as_notepack_reads_them() -> None:
    date = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    [message] = MSGPACK.encode(Packet(PacketType.EVENT, "/", ["d", date, memoryview(b"ab")]))
    assert isinstance(message, bytes)
    # A Date is notepack's fixext 8 of type 0: the milliseconds since the epoch.
    assert b"\xd7\x00" + struct.pack(">q", 1700000000123) in message
    assert b"\xc4\x02ab" in message  # bytes-like values are bin
    # A naive datetime is taken as UTC.
    [naive] = MSGPACK.encode(Packet(PacketType.EVENT, "/", ["d", date.replace(tzinfo=None)]))
    assert feed(naive).data == ["d", date]
    # Integers beyond 64 bits become the float JavaScript would make of them.
    [big] = MSGPACK.encode(Packet(PacketType.EVENT, "/", ["n", 2**70, [-(2**64)]]))
    assert feed(big).data == ["n", float(2**70), [-float(2**64)]]


def test_encode_refuses_values_msgpack_cannot_carry() -> None:
    with pytest.raises(TypeError, match="Object of type set is not msgpack serializable"):
        MSGPACK.encode(Packet(PacketType.EVENT, "/", ["x", {1, 2}]))


# -- decoding what notepack writes ---------------------------------------------------------------


def test_decode_a_reference_client_event() -> None:
    # socket.io-client writes an "options" key too; it is ignored, as by the reference.
    message = pack(
        {"type": 2, "data": ["echo", 1.5, None], "options": {"compress": True}, "nsp": "/", "id": 0}
    )
    assert feed(message) == Packet(PacketType.EVENT, "/", ["echo", 1.5, None], 0)


def test_decode_notepack_extensions() -> None:
    undefined = b"\xd4\x00\x00"
    date = b"\xd7\x00" + struct.pack(">q", 1700000000123)
    array_buffer = b"\xc7\x03\x00abc"
    head = b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x94\xa1e"
    packet = feed(head + undefined + date + array_buffer)
    assert packet.data == ["e", None, datetime.datetime.fromtimestamp(1700000000.123, UTC), b"abc"]
    # CONNECT with data undefined (socket.io-client without auth).
    assert feed(b"\x83\xa4type\x00\xa3nsp\xa1/\xa4data" + undefined).data is None


def test_decode_array_buffers_of_one_and_eight_bytes() -> None:
    """notepack writes an ArrayBuffer of 1 or 8 bytes as an ext 8 of type 0, which Python's
    msgpack reports as it reports undefined and Date: a message with such a header reads them
    as bytes."""
    head = b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x93\xa1e"
    packet = feed(head + b"\xc7\x01\x00\x07" + b"\xc7\x08\x0012345678")
    assert packet.data == ["e", b"\x07", b"12345678"]


# -- bad input -----------------------------------------------------------------------------------

BAD = [
    (pack(["not", "a", "map"]), "msgpack packet must be a map, got list"),
    (pack({"type": "2", "nsp": "/", "data": ["e"]}), "unknown packet type '2'"),
    (pack({"type": True, "nsp": "/", "data": ["e"]}), "unknown packet type True"),
    (pack({"type": 5, "nsp": "/", "data": ["e"]}), "unknown packet type 5"),
    (pack({"type": 2.0, "nsp": "/", "data": ["e"]}), "unknown packet type 2.0"),
    (pack({"nsp": "/", "data": ["e"]}), "unknown packet type None"),
    (pack({"type": 2, "nsp": 1, "data": ["e"]}), "namespace must be a string, got int"),
    (pack({"type": 2, "data": ["e"]}), "namespace must be a string, got NoneType"),
    (pack({"type": 2, "nsp": "/", "data": ["e"], "id": 1.5}), "ack id must be a non-negative"),
    (pack({"type": 2, "nsp": "/", "data": ["e"], "id": -1}), "ack id must be a non-negative"),
    (pack({"type": 2, "nsp": "/", "data": ["e"], "id": "1"}), "ack id must be a non-negative"),
    (pack({"type": 2, "nsp": "/", "data": ["e"], "id": 2**53}), "ack id 9007199254740992 exceeds"),
    (pack({"type": 2, "nsp": "/", "data": "e"}), "EVENT payload must be a non-empty array"),
    (pack({"type": 2, "nsp": "/", "data": []}), "EVENT payload must be a non-empty array"),
    (pack({"type": 2, "nsp": "/"}), "EVENT packet without payload"),
    (pack({"type": 2, "nsp": "/", "data": ["connect"]}), "event name 'connect' is reserved"),
    (pack({"type": 2, "nsp": "/", "data": [b"e"]}), "event name must be a string or a number"),
    (pack({"type": 3, "nsp": "/", "data": {"a": 1}}), "ACK payload must be an array"),
    (pack({"type": 0, "nsp": "/", "data": [1]}), "CONNECT payload must be an object"),
    (pack({"type": 1, "nsp": "/", "data": {}}), "DISCONNECT packet must have no payload"),
    (pack({"type": 2, "nsp": "/", "data": ["e", {b"k": 1}]}), "map key of type bytes"),
    (pack({"type": 2, "nsp": "/", "data": ["e", {None: 1}]}), "map key of type NoneType"),
    (pack({"type": 2, "nsp": "/", "data": ["e", msgpack.Timestamp(1)]}), "value of type Timestamp"),
    (
        pack({"type": 2, "nsp": "/", "data": ["e", msgpack.ExtType(5, b"x")]}),
        "msgpack extension type 5: socket.io-msgpack-parser writes only type 0",
    ),
    (pack({"type": 2, "nsp": "/", "data": ["e"]}) + b"\x00", "extra bytes after the packet"),
    (pack({"type": 2, "nsp": "/", "data": ["e"]})[:-1], "invalid msgpack packet"),
    (b"\xc1", "invalid msgpack packet"),
    (b"", "invalid msgpack packet"),
    # A map whose key is an array (unhashable in Python).
    (b"\x81\x91\x00\x00", "invalid msgpack packet"),
    # Huge maps and arrays: a header claiming 2**32 - 1 entries in a few bytes.
    (b"\xdf\xff\xff\xff\xff", "invalid msgpack packet"),
    (b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\xdd\xff\xff\xff\xff", "invalid msgpack packet"),
    # A date beyond datetime's range.
    (
        b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x92\xa1e\xd7\x00" + b"\x7f" + b"\xff" * 7,
        "date out of range",
    ),
]


@pytest.mark.parametrize(("message", "error"), BAD)
def test_bad_packets_are_refused_with_a_reason(message: bytes, error: str) -> None:
    with pytest.raises(RemoteProtocolError, match=error.replace("(", r"\(")):
        feed(message)


def deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_depth_at_the_boundary() -> None:
    limits = Limits(max_depth=5)
    # The payload array is level 1: the event name and four more levels fit.
    ok = pack({"type": 2, "nsp": "/", "data": ["e", deep(4)]})
    assert feed(ok, limits).data == ["e", deep(4)]
    too_deep = pack({"type": 2, "nsp": "/", "data": ["e", deep(5)]})
    with pytest.raises(RemoteProtocolError, match="payload nested deeper than max_depth=5"):
        feed(too_deep, limits)
    # Maps count as arrays do.
    nested = pack({"type": 2, "nsp": "/", "data": ["e", {"a": {"b": {"c": {"d": {"e": 1}}}}}]})
    with pytest.raises(RemoteProtocolError, match="max_depth=5"):
        feed(nested, limits)


def test_nesting_beyond_msgpacks_own_stack_is_refused() -> None:
    """msgpack's C decoder stops at its own bound (no recursion): refused with the limit."""
    message = b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data" + b"\x91" * 100_000 + b"\x90"
    with pytest.raises(RemoteProtocolError, match="payload nested deeper than max_depth=32"):
        feed(message)


def test_namespace_and_ack_id_at_the_boundary() -> None:
    limits = Limits(max_namespace_length=4, max_ack_id=9)
    assert feed(pack({"type": 2, "nsp": "/abc", "data": ["e"], "id": 9}), limits).id == 9
    with pytest.raises(RemoteProtocolError, match="namespace longer than max_namespace_length=4"):
        feed(pack({"type": 2, "nsp": "/abcd", "data": ["e"]}), limits)
    with pytest.raises(RemoteProtocolError, match="ack id 10 exceeds 9"):
        feed(pack({"type": 2, "nsp": "/", "data": ["e"], "id": 10}), limits)


def test_binary_values_are_not_attachments() -> None:
    """More binary values than max_attachments: they are part of the one message (bounded by
    max_http_buffer_size), not attachments."""
    data = ["e", *[b"x"] * 20]
    assert feed(pack({"type": 2, "nsp": "/", "data": data}), Limits(max_attachments=2)).data == data


# -- the other parser's messages -----------------------------------------------------------------


def test_text_reaching_the_msgpack_decoder_is_a_mismatch() -> None:
    with pytest.raises(ParserMismatch, match="the peer likely uses the default JSON parser") as e:
        feed('42["hi"]')
    assert e.value.peer == "json"


def test_msgpack_reaching_the_json_decoder_is_a_mismatch() -> None:
    [message] = MSGPACK.encode(Packet(PacketType.CONNECT, "/"))
    with pytest.raises(ParserMismatch, match="looks like a msgpack map") as e:
        Decoder().feed(message)
    assert e.value.peer == "msgpack"
    # Other unannounced binary data is not blamed on msgpack.
    with pytest.raises(RemoteProtocolError, match="no packet announced") as other:
        Decoder().feed(b"\x01\x02")
    assert not isinstance(other.value, ParserMismatch)


def test_mismatch_reply_speaks_the_peers_parser() -> None:
    text = mismatch_text("msgpack", "json", side="server")
    assert text.startswith(f"{PARSER_MISMATCH}: the server uses the msgpack parser")
    with pytest.raises(ParserMismatch) as json_peer:
        feed("0/chat,")
    [reply] = mismatch_reply(json_peer.value, "0/chat,", text, LIMITS)
    assert reply == "4/chat," + '{"message":"' + text + '"}'
    [connect] = MSGPACK.encode(Packet(PacketType.CONNECT, "/admin", {"token": "t"}))
    with pytest.raises(ParserMismatch) as msgpack_peer:
        Decoder().feed(connect)
    [reply] = mismatch_reply(msgpack_peer.value, connect, "why", LIMITS)
    assert msgpack.unpackb(reply) == {"type": 4, "nsp": "/admin", "data": {"message": "why"}}
    # Something that is not a packet of the peer's parser either: no reply.
    assert mismatch_reply(json_peer.value, "nonsense", text, LIMITS) == []
    assert mismatch_reply(json_peer.value, "51-[]", text, LIMITS) == []


# -- the fuzzer ----------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.text(max_size=3) | st.integers(-9, 9) | st.booleans()
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(
    value=st.fixed_dictionaries(
        {},
        optional={
            "type": st.integers(-1, 7) | st.text(max_size=2) | st.none(),
            "nsp": st.sampled_from(["/", "/a", ""]) | st.integers(0, 9),
            "data": values,
            "id": st.integers(-3, 2**60) | st.floats() | st.none(),
        },
    ),
    cut=st.integers(0, 3),
    limits=st.sampled_from([LIMITS, Limits(max_depth=2, max_namespace_length=1, max_ack_id=5)]),
)
def test_msgpack_decoder_raises_only_protocol_errors(
    value: dict[str, Any], cut: int, limits: Limits
) -> None:
    message = msgpack.packb(value, use_bin_type=True)
    if cut:
        message = message[:-cut]
    try:
        packet = feed(message, limits)
    except RemoteProtocolError:
        return
    assert packet.type in (
        PacketType.CONNECT,
        PacketType.DISCONNECT,
        PacketType.EVENT,
        PacketType.ACK,
        PacketType.CONNECT_ERROR,
    )
    # What decodes encodes back to the same packet.
    [again] = MSGPACK.encode(packet)
    assert feed(again, limits) == packet


@FUZZ
@given(message=st.binary(max_size=64))
def test_msgpack_decoder_on_any_bytes(message: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        feed(message)

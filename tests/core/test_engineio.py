"""Engine.IO packets and polling payloads (revisions 3 and 4), tested with bytes only.

Every expected encoding below was produced by the reference parsers: ``engine.io-parser`` 5.2.3
(revision 4) and ``engine.io`` 6.6.12 ``build/parser-v3`` (revision 3, the 2.2.x parser), both from
``tests/js/node_modules``. The node call that produced a value is in the comment next to it. Where
the reference does not raise but returns its ``{type: "error", data: "parser error"}`` packet (and
the server then closes the session with reason ``parse error``), we expect
:class:`PayloadError` / :class:`RemoteProtocolError` with the packets decoded before the fault.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from aiosio.protocol.engineio import BINARY_CONTENT_TYPE
from aiosio.protocol.engineio import TEXT_CONTENT_TYPE
from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.engineio import PayloadError
from aiosio.protocol.engineio import decode_packet
from aiosio.protocol.engineio import decode_payload
from aiosio.protocol.engineio import encode_packet
from aiosio.protocol.engineio import encode_payload
from aiosio.protocol.engineio import utf16_length
from aiosio.protocol.errors import ProtocolError
from aiosio.protocol.errors import RemoteProtocolError

T = PacketType
ALL_TYPES = list(PacketType)


def test_packet_type_digits() -> None:
    # commons.ts PACKET_TYPES (v4) and parser-v3 `packets`: the same digits.
    assert {t.name.lower(): t.value for t in PacketType} == {
        "open": 0,
        "close": 1,
        "ping": 2,
        "pong": 3,
        "message": 4,
        "upgrade": 5,
        "noop": 6,
    }


def test_payload_error_is_a_remote_protocol_error() -> None:
    err = PayloadError("bad", [Packet(T.MESSAGE, "a")])
    assert isinstance(err, RemoteProtocolError)
    assert isinstance(err, ProtocolError)
    assert err.decoded == [Packet(T.MESSAGE, "a")]
    assert str(err) == "bad"


def test_packet_is_frozen_with_empty_default_data() -> None:
    packet = Packet(T.PING)
    assert packet.data == ""
    with pytest.raises(AttributeError):
        packet.data = "x"  # type: ignore[misc]


# -- single packets ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("ptype", ALL_TYPES)
def test_encode_every_type_without_data(protocol: int, ptype: PacketType) -> None:
    # encodePacket({type}, true, cb) -> "0" .. "6" in both parsers.
    expected = str(ptype.value)
    assert encode_packet(Packet(ptype), protocol) == expected
    assert encode_packet(Packet(ptype), protocol, supports_binary=False) == expected


@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("ptype", ALL_TYPES)
def test_encode_every_type_with_data(protocol: int, ptype: PacketType) -> None:
    # encodePacket({type, data: "probe"}, ...) -> "0probe" .. "6probe" in both parsers.
    assert encode_packet(Packet(ptype, "probe"), protocol) == f"{ptype.value}probe"


@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("ptype", ALL_TYPES)
def test_decode_every_type(protocol: int, ptype: PacketType) -> None:
    digit = str(ptype.value)
    assert decode_packet(digit, protocol) == Packet(ptype, "")
    assert decode_packet(digit + "probe", protocol) == Packet(ptype, "probe")


@pytest.mark.parametrize("protocol", [3, 4])
def test_text_message_keeps_unicode_and_json(protocol: int) -> None:
    raw = '42["chat","é😀\\u0000"]'
    packet = decode_packet(raw, protocol)
    assert packet == Packet(T.MESSAGE, '2["chat","é😀\\u0000"]')
    assert encode_packet(packet, protocol) == raw


def test_handshake_packet_from_the_spec() -> None:
    # v4-current.md "Handshake": the OPEN packet the server sends.
    raw = (
        '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,'
        '"pingTimeout":5000,"maxPayload":1000000}'
    )
    packet = decode_packet(raw, 4)
    assert packet.type is T.OPEN
    assert encode_packet(packet, 4) == raw


# -- binary messages -----------------------------------------------------------------------------


def test_v4_binary_over_websocket_is_the_raw_bytes() -> None:
    # encodePacket({type:"message", data:Buffer[1,2,3,4]}, true) -> <Buffer 01 02 03 04>
    assert encode_packet(Packet(T.MESSAGE, b"\x01\x02\x03\x04"), 4) == b"\x01\x02\x03\x04"
    assert decode_packet(b"\x01\x02\x03\x04", 4) == Packet(T.MESSAGE, b"\x01\x02\x03\x04")


def test_v4_binary_in_text_is_b_base64() -> None:
    # encodePacket({type:"message", data:Buffer[1,2,3,4]}, false) -> "bAQIDBA=="
    packet = Packet(T.MESSAGE, b"\x01\x02\x03\x04")
    assert encode_packet(packet, 4, supports_binary=False) == "bAQIDBA=="
    assert decode_packet("bAQIDBA==", 4) == packet


@pytest.mark.parametrize("raw", [b"", bytearray(b""), memoryview(b"")])
def test_v4_empty_binary_message(raw: bytes) -> None:
    # A WebSocket binary frame of length 0 is a message with an empty buffer; decodePacket("b")
    # -> {type:"message", data:<Buffer >}.
    assert decode_packet(raw, 4) == Packet(T.MESSAGE, b"")
    assert decode_packet("b", 4) == Packet(T.MESSAGE, b"")
    assert encode_packet(Packet(T.MESSAGE, b""), 4, supports_binary=False) == "b"


def test_v4_binary_from_bytearray_and_memoryview() -> None:
    # Not in the signature, but accepted: a WebSocket layer may hand over either.
    for raw in (bytearray(b"\x00\xff"), memoryview(b"\x00\xff")):
        packet = decode_packet(raw, 4)  # type: ignore[arg-type]
        assert packet == Packet(T.MESSAGE, b"\x00\xff")
        assert type(packet.data) is bytes


def test_v4_binary_that_looks_like_a_type_digit_is_still_a_message() -> None:
    # A binary frame is always a message in revision 4, whatever its first byte.
    assert decode_packet(b"2probe", 4) == Packet(T.MESSAGE, b"2probe")


def test_v3_binary_over_websocket_has_the_type_byte() -> None:
    # parser-v3 encodePacket({type:"message", data:Buffer[1,2,3,4]}, true) -> <04 01 02 03 04>
    packet = Packet(T.MESSAGE, b"\x01\x02\x03\x04")
    assert encode_packet(packet, 3) == b"\x04\x01\x02\x03\x04"
    assert decode_packet(b"\x04\x01\x02\x03\x04", 3) == packet
    assert decode_packet(bytearray(b"\x04\x01"), 3) == Packet(T.MESSAGE, b"\x01")  # type: ignore[arg-type]


def test_v3_binary_in_text_is_b_type_base64() -> None:
    # parser-v3 encodePacket({type:"message", data:Buffer[1,2,3,4]}, false) -> "b4AQIDBA=="
    packet = Packet(T.MESSAGE, b"\x01\x02\x03\x04")
    assert encode_packet(packet, 3, supports_binary=False) == "b4AQIDBA=="
    assert decode_packet("b4AQIDBA==", 3) == packet


@pytest.mark.parametrize("ptype", ALL_TYPES)
def test_v3_binary_packet_of_every_type(ptype: PacketType) -> None:
    packet = Packet(ptype, b"\xff\x00")
    assert encode_packet(packet, 3) == bytes((ptype.value,)) + b"\xff\x00"
    assert decode_packet(bytes((ptype.value,)) + b"\xff\x00", 3) == packet
    assert decode_packet(f"b{ptype.value}/wA=", 3) == packet


def test_v3_binary_packet_with_only_the_type_byte() -> None:
    assert decode_packet(b"\x04", 3) == Packet(T.MESSAGE, b"")


# -- malformed single packets --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "protocol"),
    [
        ("", 4),  # decodePacket("") -> parser error
        ("", 3),
        ("7", 4),  # no such type
        ("7", 3),
        ("9hello", 4),
        ("x", 3),
        ("-1", 4),
        ("٣", 4),  # an Arabic-Indic digit is not a type
        ("b", 3),  # base64 packet without its type digit
        ("b9AQID", 3),
        ("bxAQID", 3),
        ("bA", 4),  # one base64 character is not a whole byte
        ("b4A", 3),
        ("bé", 4),  # base64 must be ASCII
        ("b4é", 3),
        (b"", 3),  # an empty binary frame
        (b"\x07abc", 3),  # unknown type byte
        (b"\xff", 3),
        (b"4abc", 3),  # the type is a byte value, not a digit
    ],
)
def test_decode_packet_rejects(raw: str | bytes, protocol: int) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_packet(raw, protocol)


def test_error_messages_name_the_bad_value() -> None:
    with pytest.raises(RemoteProtocolError, match=r"^unknown packet type '9'$"):
        decode_packet("9", 4)
    with pytest.raises(RemoteProtocolError, match=r"^empty packet$"):
        decode_packet("", 4)
    with pytest.raises(RemoteProtocolError, match=r"^unknown packet type byte 7$"):
        decode_packet(b"\x07", 3)
    with pytest.raises(RemoteProtocolError, match=r"^empty binary packet$"):
        decode_packet(b"", 3)
    with pytest.raises(RemoteProtocolError, match=r"^unknown packet type 'x' in base64 packet$"):
        decode_packet("bx", 3)
    with pytest.raises(RemoteProtocolError, match=r"^invalid base64 in binary packet: "):
        decode_packet("bA", 4)


def test_base64_error_keeps_its_cause() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_packet("bé", 4)
    assert isinstance(info.value.__cause__, ValueError)


# -- revision 4 payloads -------------------------------------------------------------------------


def test_v4_payload_mixed_text_and_binary() -> None:
    # encodePayload([{message,"hello"},{message,Buffer[1,2,3,4]}]) -> "4hello\x1ebAQIDBA=="
    packets = [Packet(T.MESSAGE, "hello"), Packet(T.MESSAGE, b"\x01\x02\x03\x04")]
    assert encode_payload(packets, 4) == (b"4hello\x1ebAQIDBA==", TEXT_CONTENT_TYPE)
    assert decode_payload(b"4hello\x1ebAQIDBA==", 4) == packets


def test_v4_payload_never_uses_binary_bodies() -> None:
    packets = [Packet(T.MESSAGE, b"\x01")]
    assert encode_payload(packets, 4, supports_binary=True) == (b"bAQ==", TEXT_CONTENT_TYPE)
    assert encode_payload(packets, 4, supports_binary=False) == (b"bAQ==", TEXT_CONTENT_TYPE)


def test_v4_payload_control_packets_and_utf8() -> None:
    # encodePayload([{message,"é😀"},{ping},{noop},{close}]) -> "4é😀\x1e2\x1e6\x1e1"
    packets = [Packet(T.MESSAGE, "é😀"), Packet(T.PING), Packet(T.NOOP), Packet(T.CLOSE)]
    body = "4é😀\x1e2\x1e6\x1e1".encode()
    assert encode_payload(packets, 4) == (body, TEXT_CONTENT_TYPE)
    assert decode_payload(body, 4) == packets


def test_v4_single_packet_payload_has_no_separator() -> None:
    assert encode_payload([Packet(T.NOOP)], 4) == (b"6", TEXT_CONTENT_TYPE)
    assert decode_payload(b"6", 4) == [Packet(T.NOOP)]


def test_v4_empty_payload_encodes_to_nothing_and_is_an_error_to_decode() -> None:
    # encodePayload([]) never calls back in the reference; an empty body decodes to an error.
    assert encode_payload([], 4) == (b"", TEXT_CONTENT_TYPE)
    with pytest.raises(PayloadError) as info:
        decode_payload(b"", 4)
    assert info.value.decoded == []


def test_v4_payload_invalid_utf8_is_replaced_as_node_does() -> None:
    # req.setEncoding("utf8") turns invalid sequences into U+FFFD.
    assert decode_payload(b"4a\xffb", 4) == [Packet(T.MESSAGE, "a\ufffdb")]


def test_v4_octet_stream_payload_is_refused() -> None:
    # polling.ts onDataRequest: isBinary && protocol === 4 -> "invalid content".
    with pytest.raises(PayloadError) as info:
        decode_payload(b"4hello", 4, binary=True)
    assert info.value.decoded == []


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        # decodePayload("4a\x1e9x\x1e4b") -> [{message,"a"}, {error}]: stops at the error.
        (b"4a\x1e9x\x1e4b", [Packet(T.MESSAGE, "a")]),
        (b"9", []),
        (b"4a\x1e\x1e4b", [Packet(T.MESSAGE, "a")]),  # empty packet in the middle
        (b"4a\x1e", [Packet(T.MESSAGE, "a")]),  # trailing separator
        (b"\x1e4a", []),
        (b"2\x1ebA", [Packet(T.PING)]),  # bad base64
    ],
)
def test_v4_malformed_payload_keeps_the_packets_before_the_fault(
    body: bytes, decoded: list[Packet]
) -> None:
    with pytest.raises(PayloadError) as info:
        decode_payload(body, 4)
    assert info.value.decoded == decoded
    assert isinstance(info.value.__cause__, RemoteProtocolError)


def test_v4_max_packets() -> None:
    assert decode_payload(b"4a\x1e4b", 4, max_packets=2) == [
        Packet(T.MESSAGE, "a"),
        Packet(T.MESSAGE, "b"),
    ]
    with pytest.raises(PayloadError, match="max_packets=2") as info:
        decode_payload(b"4a\x1e4b\x1e4c", 4, max_packets=2)
    assert info.value.decoded == [Packet(T.MESSAGE, "a"), Packet(T.MESSAGE, "b")]


# -- revision 3 text payloads --------------------------------------------------------------------


def test_utf16_length() -> None:
    assert utf16_length("") == 0
    assert utf16_length("hello") == 5
    assert utf16_length("é") == 1  # BMP: one unit
    assert utf16_length("€") == 1
    assert utf16_length("😀") == 2  # astral: a surrogate pair
    assert utf16_length("4😀") == 3
    assert utf16_length("a😀é𝄞") == 6
    assert utf16_length("\ud800") == 1  # a lone surrogate counts as one unit, as in JS


def test_v3_payload_lengths_count_utf16_units() -> None:
    # parser-v3 encodePayload([{message,"😀"}], false) -> "3:4😀"
    assert encode_payload([Packet(T.MESSAGE, "😀")], 3) == ("3:4😀".encode(), TEXT_CONTENT_TYPE)
    # encodePayload([{message,"hello"},{message,"é"},{pong}], false) -> "6:4hello2:4é1:3"
    packets = [Packet(T.MESSAGE, "hello"), Packet(T.MESSAGE, "é"), Packet(T.PONG)]
    assert encode_payload(packets, 3) == ("6:4hello2:4é1:3".encode(), TEXT_CONTENT_TYPE)
    assert decode_payload("6:4hello2:4é1:3".encode(), 3) == packets


def test_v3_decode_astral_characters() -> None:
    # parser-v3 decodePayload("3:4😀5:4abcd") -> {message,"😀"}, {message,"abcd"}
    assert decode_payload("3:4😀5:4abcd".encode(), 3) == [
        Packet(T.MESSAGE, "😀"),
        Packet(T.MESSAGE, "abcd"),
    ]
    assert decode_payload("5:4😀😀4:4é😀".encode(), 3) == [
        Packet(T.MESSAGE, "😀😀"),
        Packet(T.MESSAGE, "é😀"),
    ]


def test_v3_empty_payload() -> None:
    # encodePayload([], false) -> "0:"; decodePayload("0:") delivers nothing and no error.
    assert encode_payload([], 3) == (b"0:", TEXT_CONTENT_TYPE)
    assert encode_payload([], 3, supports_binary=False) == (b"0:", TEXT_CONTENT_TYPE)
    assert decode_payload(b"0:", 3) == []
    assert decode_payload(b"0:0:1:6", 3) == [Packet(T.NOOP)]


def test_v3_binary_as_base64_in_text_payload() -> None:
    # encodePayload([{message,"hi"},{message,Buffer[1,2,3,4]}], false) -> "3:4hi10:b4AQIDBA=="
    packets = [Packet(T.MESSAGE, "hi"), Packet(T.MESSAGE, b"\x01\x02\x03\x04")]
    assert encode_payload(packets, 3, supports_binary=False) == (
        b"3:4hi10:b4AQIDBA==",
        TEXT_CONTENT_TYPE,
    )
    assert decode_payload(b"3:4hi10:b4AQIDBA==", 3) == packets
    # decodePayload("6:b4AQID") -> {message, Buffer[1,2,3]}
    assert decode_payload(b"6:b4AQID", 3) == [Packet(T.MESSAGE, b"\x01\x02\x03")]


def test_v3_text_only_payload_stays_text_when_binary_is_supported() -> None:
    # encodePayload([{open,'{"sid":"abc"}'},{message,"hello"}], true) -> text, no binary packet.
    packets = [Packet(T.OPEN, '{"sid":"abc"}'), Packet(T.MESSAGE, "hello")]
    assert encode_payload(packets, 3, supports_binary=True) == (
        b'14:0{"sid":"abc"}6:4hello',
        TEXT_CONTENT_TYPE,
    )


def test_v3_length_prefix_with_ten_digits_is_read() -> None:
    # Leading zeros are digits like any other; ten digits is the most we read.
    assert decode_payload(b"0000000002:4a", 3) == [Packet(T.MESSAGE, "a")]
    assert decode_payload("0000000003:4😀".encode(), 3) == [Packet(T.MESSAGE, "😀")]


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (b"", []),  # decodePayload("") -> parser error
        (b"2:4a2:9x", [Packet(T.MESSAGE, "a")]),  # bad type -> {message,"a"} then error
        (b"2:4a5:4a", [Packet(T.MESSAGE, "a")]),  # length beyond the end
        (b"2:4a3", [Packet(T.MESSAGE, "a")]),  # ends inside a length prefix
        (b"2:4ax:4a", [Packet(T.MESSAGE, "a")]),  # bad length prefix
        (b":4a", []),  # empty length prefix
        (b"-1:4", []),
        ("٣:4ab".encode(), []),  # a non-ASCII digit
        (b"1:", []),  # length beyond the end
        (b"1:b", []),  # base64 packet without its type
        (b"3:b4A", []),  # bad base64
        (b"12345678901:4", []),  # eleven digits
        (b"99999999999999999999:4", []),
        (b"2:4a12345678901", [Packet(T.MESSAGE, "a")]),  # unterminated, too many digits
        ("2:4a4:4😀".encode(), [Packet(T.MESSAGE, "a")]),  # beyond the end, counted in units
        ("2:4😀".encode(), []),  # the length splits a surrogate pair
        ("2:4a1:😀".encode(), [Packet(T.MESSAGE, "a")]),  # a lone surrogate is no type
        ("3:4😀x:4".encode(), [Packet(T.MESSAGE, "😀")]),  # bad prefix after an astral char
        ("3:4😀12345678901:4".encode(), [Packet(T.MESSAGE, "😀")]),
        ("3:4😀1".encode(), [Packet(T.MESSAGE, "😀")]),  # unterminated, wide
        ("3:4😀1:".encode(), [Packet(T.MESSAGE, "😀")]),  # beyond the end, wide
    ],
)
def test_v3_malformed_text_payload(body: bytes, decoded: list[Packet]) -> None:
    with pytest.raises(PayloadError) as info:
        decode_payload(body, 3)
    assert info.value.decoded == decoded


def test_v3_text_payload_error_messages() -> None:
    with pytest.raises(PayloadError, match=r"^empty payload$"):
        decode_payload(b"", 3)
    with pytest.raises(PayloadError, match=r"^invalid length prefix 'x' in payload$"):
        decode_payload(b"x:4", 3)
    with pytest.raises(PayloadError, match=r"^payload ends inside a length prefix$"):
        decode_payload(b"12", 3)
    with pytest.raises(PayloadError, match=r"^packet length 5 exceeds the 2 units left"):
        decode_payload(b"5:4a", 3)
    with pytest.raises(PayloadError, match=r"^length prefix too long in payload$"):
        decode_payload("3:4😀12345678901:4".encode(), 3)


def test_v3_text_max_packets() -> None:
    assert decode_payload(b"2:4a0:2:4b", 3, max_packets=2) == [
        Packet(T.MESSAGE, "a"),
        Packet(T.MESSAGE, "b"),
    ]
    with pytest.raises(PayloadError, match="max_packets=2") as info:
        decode_payload(b"2:4a2:4b2:4c", 3, max_packets=2)
    assert info.value.decoded == [Packet(T.MESSAGE, "a"), Packet(T.MESSAGE, "b")]


def test_v3_long_length_prefix_before_astral_char_raises_payload_error() -> None:
    # Ten units then an astral character: the 11-unit window ends between the two halves of
    # the surrogate pair. The reference (parser-v3 decodePayload) reports a parser error.
    with pytest.raises(PayloadError) as info:
        decode_payload("1234567890😀:4".encode(), 3)
    assert info.value.decoded == []
    with pytest.raises(PayloadError) as info:
        decode_payload(b"\x00" * 10 + "𐀀".encode(), 3)
    assert info.value.decoded == []
    with pytest.raises(PayloadError) as info:
        decode_payload("2:4a1234567890😀".encode(), 3)
    assert info.value.decoded == [Packet(T.MESSAGE, "a")]


# -- revision 3 binary (XHR2) payloads -----------------------------------------------------------


def test_v3_xhr2_payload_encode() -> None:
    # encodePayload([{message,"hi"},{message,Buffer[1,2,3,4]}], true)
    #   -> <00 03 ff 34 68 69 01 05 ff 04 01 02 03 04>
    packets = [Packet(T.MESSAGE, "hi"), Packet(T.MESSAGE, b"\x01\x02\x03\x04")]
    body = bytes.fromhex("0003ff3468690105ff0401020304")
    assert encode_payload(packets, 3, supports_binary=True) == (body, BINARY_CONTENT_TYPE)
    assert decode_payload(body, 3, binary=True) == packets


def test_v3_xhr2_payload_utf8_lengths_and_two_digit_lengths() -> None:
    # encodePayload([{message,"é😀"},{message,Buffer.alloc(12,7)}], true)
    #   -> <00 07 ff 34 c3 a9 f0 9f 98 80 01 01 03 ff 04 07 x12>
    # String entries are counted in UTF-8 bytes; each length digit is one byte.
    packets = [Packet(T.MESSAGE, "é😀"), Packet(T.MESSAGE, b"\x07" * 12)]
    body = bytes.fromhex("0007ff34c3a9f09f9880010103ff04") + b"\x07" * 12
    assert encode_payload(packets, 3) == (body, BINARY_CONTENT_TYPE)
    assert decode_payload(body, 3, binary=True) == packets


def test_v3_xhr2_payload_decode_from_reference() -> None:
    # decodePayload(Buffer[0,2,255,0x34,0x61, 1,5,255,4,1,2,3,4])
    #   -> {message,"a"}, {message,Buffer[1,2,3,4]}
    body = bytes([0, 2, 255, 0x34, 0x61, 1, 5, 255, 4, 1, 2, 3, 4])
    assert decode_payload(body, 3, binary=True) == [
        Packet(T.MESSAGE, "a"),
        Packet(T.MESSAGE, b"\x01\x02\x03\x04"),
    ]
    # decodePayload(Buffer[0,4,255,0x34,0xc3,0xa9,0x21]) -> {message,"é!"}
    assert decode_payload(bytes([0, 4, 255, 0x34, 0xC3, 0xA9, 0x21]), 3, binary=True) == [
        Packet(T.MESSAGE, "é!")
    ]


def test_v3_xhr2_empty_body_holds_no_packet() -> None:
    # decodePayloadAsBinary(<Buffer >) calls back for nothing.
    assert decode_payload(b"", 3, binary=True) == []


def test_v3_xhr2_leading_zero_digits() -> None:
    assert decode_payload(bytes([0, 0, 0, 2, 255]) + b"4a", 3, binary=True) == [
        Packet(T.MESSAGE, "a")
    ]


def test_v3_binary_payload_with_control_packets() -> None:
    packets = [Packet(T.PONG, "probe"), Packet(T.MESSAGE, b""), Packet(T.NOOP)]
    body, content_type = encode_payload(packets, 3)
    assert content_type == BINARY_CONTENT_TYPE
    assert (
        body == bytes([0, 6, 255]) + b"3probe" + bytes([1, 1, 255, 4]) + bytes([0, 1, 255]) + b"6"
    )
    assert decode_payload(body, 3, binary=True) == packets


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (bytes([2, 1, 255]) + b"6", []),  # marker neither 0 nor 1
        (bytes([0, 1, 255]) + b"6" + bytes([7]), [Packet(T.NOOP)]),
        (bytes([0, 1]), []),  # length not terminated
        (bytes([0]), []),
        (bytes([0, 255]), []),  # no digits
        (bytes([0, 10, 255]) + b"4" * 10, []),  # a "digit" above 9
        (bytes([0, 5, 255]) + b"4a", []),  # length beyond the end
        (bytes([1, 3, 255]) + b"\x04", []),
        (bytes([0]) + bytes([1] * 11) + bytes([255]), []),  # eleven digits: not terminated
        (bytes([0, 1, 255]) + b"9", []),  # bad type in a string entry
        (bytes([0, 0, 255]), []),  # empty string entry
        (bytes([1, 0, 255]), []),  # empty binary entry (no type byte)
        (bytes([1, 1, 255, 9]), []),  # bad type byte
        (bytes([0, 2, 255, 0x34, 0xFF]), []),  # invalid UTF-8 in a string entry
        (bytes([0, 2, 255]) + b"4a" + bytes([0, 2, 255, 0x34, 0xC3]), [Packet(T.MESSAGE, "a")]),
        (bytes([0, 4, 255]) + b"b4A=", []),  # bad base64 in a string entry
    ],
)
def test_v3_malformed_xhr2_payload(body: bytes, decoded: list[Packet]) -> None:
    with pytest.raises(PayloadError) as info:
        decode_payload(body, 3, binary=True)
    assert info.value.decoded == decoded


def test_v3_xhr2_error_messages() -> None:
    with pytest.raises(PayloadError, match=r"^invalid packet marker 2 in binary payload$"):
        decode_payload(bytes([2]), 3, binary=True)
    with pytest.raises(PayloadError, match=r"^binary payload length not terminated$"):
        decode_payload(bytes([0, 1]), 3, binary=True)
    with pytest.raises(PayloadError, match=r"^invalid length digits in binary payload$"):
        decode_payload(bytes([0, 255]), 3, binary=True)
    with pytest.raises(PayloadError, match=r"^packet length 5 exceeds the 0 bytes left"):
        decode_payload(bytes([0, 5, 255]), 3, binary=True)


def test_v3_xhr2_ten_digit_length_is_read_eleven_is_not() -> None:
    ten = bytes([0]) + bytes(9) + bytes([2, 255]) + b"4a"
    assert decode_payload(ten, 3, binary=True) == [Packet(T.MESSAGE, "a")]
    eleven = bytes([0]) + bytes(10) + bytes([2, 255]) + b"4a"
    with pytest.raises(PayloadError, match="not terminated"):
        decode_payload(eleven, 3, binary=True)


def test_v3_xhr2_max_packets() -> None:
    one = bytes([0, 1, 255]) + b"6"
    assert decode_payload(one * 2, 3, binary=True, max_packets=2) == [Packet(T.NOOP)] * 2
    with pytest.raises(PayloadError, match="max_packets=2") as info:
        decode_payload(one * 3, 3, binary=True, max_packets=2)
    assert info.value.decoded == [Packet(T.NOOP)] * 2


# -- properties ----------------------------------------------------------------------------------

# Text that is likely to reach deep into the parsers: digits, colons, separators, type digits,
# the base64 marker, BMP and astral characters, then anything at all.
_tricky_text = st.text(
    alphabet=st.sampled_from(list("0123456789:\x1eb46AQ=/+é😀")) | st.characters(),
    max_size=80,
)
_tricky_bytes = st.one_of(
    st.binary(max_size=80),
    _tricky_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(
        st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x05", b"\x09", b"\xff", b"4", b"a"]),
        max_size=40,
    ).map(b"".join),
)


@settings(max_examples=500, deadline=None)
@given(raw=st.one_of(_tricky_text, _tricky_bytes), protocol=st.sampled_from([3, 4]))
def test_decode_packet_raises_only_remote_protocol_error(raw: str | bytes, protocol: int) -> None:
    try:
        packet = decode_packet(raw, protocol)
    except RemoteProtocolError:
        return
    assert isinstance(packet.type, PacketType)
    assert isinstance(packet.data, str | bytes)


@settings(max_examples=1000, deadline=None)
@given(
    body=_tricky_bytes,
    protocol=st.sampled_from([3, 4]),
    binary=st.booleans(),
    max_packets=st.integers(1, 5),
)
def test_decode_payload_raises_only_payload_error(
    body: bytes, protocol: int, binary: bool, max_packets: int
) -> None:
    try:
        packets = decode_payload(body, protocol, binary=binary, max_packets=max_packets)
    except PayloadError as exc:
        packets = exc.decoded
    assert len(packets) <= max_packets
    assert all(isinstance(p, Packet) for p in packets)


# Packet data without lone surrogates (they do not survive UTF-8, in node either).
_data_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_v4_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x1e"), max_size=30)

_v4_packets = st.lists(
    st.one_of(
        st.builds(Packet, st.just(T.MESSAGE), st.binary(max_size=30)),
        st.builds(Packet, st.sampled_from(ALL_TYPES), _v4_text),
    ),
    min_size=1,
    max_size=10,
)
_v3_packets = st.lists(
    st.one_of(
        st.builds(Packet, st.sampled_from(ALL_TYPES), st.binary(max_size=30)),
        st.builds(Packet, st.sampled_from(ALL_TYPES), _data_text),
    ),
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(packets=_v4_packets)
def test_v4_payload_round_trip(packets: list[Packet]) -> None:
    body, content_type = encode_payload(packets, 4)
    assert content_type == TEXT_CONTENT_TYPE
    assert decode_payload(body, 4) == packets


@settings(max_examples=300, deadline=None)
@given(packet=st.one_of(_v4_packets.map(lambda ps: ps[0])))
def test_v4_websocket_packet_round_trip(packet: Packet) -> None:
    assert decode_packet(encode_packet(packet, 4), 4) == packet
    assert decode_packet(encode_packet(packet, 4, supports_binary=False), 4) == packet


@settings(max_examples=300, deadline=None)
@given(packets=_v3_packets, supports_binary=st.booleans())
def test_v3_payload_round_trip(packets: list[Packet], supports_binary: bool) -> None:
    body, content_type = encode_payload(packets, 3, supports_binary)
    binary = content_type == BINARY_CONTENT_TYPE
    has_binary = any(isinstance(p.data, bytes) for p in packets)
    assert binary == (supports_binary and has_binary)
    assert decode_payload(body, 3, binary=binary) == packets


@settings(max_examples=300, deadline=None)
@given(packet=_v3_packets.filter(bool).map(lambda ps: ps[0]), supports_binary=st.booleans())
def test_v3_websocket_packet_round_trip(packet: Packet, supports_binary: bool) -> None:
    assert decode_packet(encode_packet(packet, 3, supports_binary), 3) == packet


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
def test_utf16_length_matches_javascript(text: str) -> None:
    assert utf16_length(text) == len(text.encode("utf-16-le", "surrogatepass")) // 2
    assert utf16_length(text) == sum(2 if ord(c) > 0xFFFF else 1 for c in text)

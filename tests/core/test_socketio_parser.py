"""Socket.IO packets (protocol 5), tested with strings and bytes only.

Every expected encoding below was produced by the reference parser, ``socket.io-parser`` 4.2.7
from ``tests/js/node_modules`` (``new Encoder().encode(packet)`` / ``new Decoder().add(...)``),
and pasted as a literal; the packet given to node is in the comment next to it.

Where we differ from the reference on purpose (HARDENING.md 1 to 7, ``/tmp/sio-spec.md`` section 0):
``"error"`` is a reserved event name too, zero attachments are refused, a placeholder ``num`` must
be an ``int`` in range (not a bool, float or string), and JSON depth, namespace length and ack ids
are bounded by :class:`aiosio.Limits`. Every violation raises :class:`RemoteProtocolError` and
leaves the decoder ready for the next packet.
"""

from __future__ import annotations

import array
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from aiosio import Limits
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.reasons import RECOVERABLE
from aiosio.protocol.reasons import DisconnectReason
from aiosio.protocol.socketio import RESERVED_EVENTS
from aiosio.protocol.socketio import Decoder
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import check_event_name
from aiosio.protocol.socketio import dumps
from aiosio.protocol.socketio import encode
from aiosio.protocol.socketio import encode_parts
from aiosio.protocol.socketio import has_binary
from aiosio.protocol.socketio import loads

T = PacketType


def ph(num: Any) -> dict[str, Any]:
    """A binary placeholder as the reference writes it."""
    return {"_placeholder": True, "num": num}


def ph_json(num: Any) -> str:
    return '{"_placeholder":true,"num":' + json.dumps(num) + "}"


def decode_all(*messages: str | bytes, limits: Limits | None = None) -> list[Packet]:
    """Feed ``messages`` to a fresh decoder; return the packets it completed."""
    decoder = Decoder(limits) if limits is not None else Decoder()
    out = []
    for message in messages:
        packet = decoder.feed(message)
        if packet is not None:
            out.append(packet)
    assert not decoder.pending
    return out


def decode_one(*messages: str | bytes, limits: Limits | None = None) -> Packet:
    packets = decode_all(*messages, limits=limits)
    assert len(packets) == 1, packets
    return packets[0]


def refused(*messages: str | bytes, limits: Limits | None = None, match: str = "") -> Decoder:
    """The last message raises; the decoder is left clean (a valid packet decodes after)."""
    decoder = Decoder(limits) if limits is not None else Decoder()
    for message in messages[:-1]:
        decoder.feed(message)
    with pytest.raises(RemoteProtocolError, match=match):
        decoder.feed(messages[-1])
    assert not decoder.pending
    assert decoder.feed('2["ok"]') == Packet(T.EVENT, "/", ["ok"])
    return decoder


# -- packet types ----------------------------------------------------------------------------------


def test_packet_type_digits() -> None:
    assert {t.name: t.value for t in PacketType} == {
        "CONNECT": 0,
        "DISCONNECT": 1,
        "EVENT": 2,
        "ACK": 3,
        "CONNECT_ERROR": 4,
        "BINARY_EVENT": 5,
        "BINARY_ACK": 6,
    }


def test_reserved_events_are_the_reference_list_plus_error() -> None:
    assert (
        frozenset(
            {
                "connect",
                "connect_error",
                "disconnect",
                "disconnecting",
                "newListener",
                "removeListener",
                "error",
            }
        )
        == RESERVED_EVENTS
    )


# -- encoding: exact strings from the reference ----------------------------------------------------

ENCODINGS: list[tuple[Packet, list[str | bytes]]] = [
    # {type: CONNECT, nsp: "/"}
    (Packet(T.CONNECT), ["0"]),
    # {type: CONNECT, nsp: "/", data: {token: "123"}}
    (Packet(T.CONNECT, "/", {"token": "123"}), ['0{"token":"123"}']),
    # {type: CONNECT, nsp: "/admin"}: the comma stays
    (Packet(T.CONNECT, "/admin"), ["0/admin,"]),
    # {type: CONNECT, nsp: "/admin", data: {sid: "abc"}}
    (Packet(T.CONNECT, "/admin", {"sid": "abc"}), ['0/admin,{"sid":"abc"}']),
    # {type: DISCONNECT, nsp: "/"} / nsp "/admin"
    (Packet(T.DISCONNECT), ["1"]),
    (Packet(T.DISCONNECT, "/admin"), ["1/admin,"]),
    # {type: EVENT, nsp: "/", data: ["hello", 1, "two", {three: [true, null]}]}
    (
        Packet(T.EVENT, "/", ["hello", 1, "two", {"three": [True, None]}]),
        ['2["hello",1,"two",{"three":[true,null]}]'],
    ),
    # {type: EVENT, nsp: "/", data: ["hello"], id: 0}: id 0 is written
    (Packet(T.EVENT, "/", ["hello"], 0), ['20["hello"]']),
    # {type: EVENT, nsp: "/admin", data: ["hello"], id: 456}
    (Packet(T.EVENT, "/admin", ["hello"], 456), ['2/admin,456["hello"]']),
    # {type: EVENT, nsp: "/", data: ["x"], id: 9007199254740991}
    (Packet(T.EVENT, "/", ["x"], 2**53 - 1), ['29007199254740991["x"]']),
    # {type: EVENT, nsp: "", data: ["x"]}: an empty namespace is the main one
    (Packet(T.EVENT, "", ["x"]), ['2["x"]']),
    # {type: EVENT, nsp: "/", data: [1, "a"]}: a numeric event name
    (Packet(T.EVENT, "/", [1, "a"]), ['2[1,"a"]']),
    # {type: ACK, nsp: "/", data: [], id: 0}
    (Packet(T.ACK, "/", [], 0), ["30[]"]),
    # {type: ACK, nsp: "/admin", data: ["a", 1], id: 12}
    (Packet(T.ACK, "/admin", ["a", 1], 12), ['3/admin,12["a",1]']),
    # {type: CONNECT_ERROR, nsp: "/", data: {message: "not authorized"}}
    (
        Packet(T.CONNECT_ERROR, "/", {"message": "not authorized"}),
        ['4{"message":"not authorized"}'],
    ),
    # {type: CONNECT_ERROR, nsp: "/random", data: {message: "Invalid namespace"}}
    (
        Packet(T.CONNECT_ERROR, "/random", {"message": "Invalid namespace"}),
        ['4/random,{"message":"Invalid namespace"}'],
    ),
    # {type: CONNECT_ERROR, nsp: "/", data: {message: "no", data: {code: 3}}}
    (
        Packet(T.CONNECT_ERROR, "/", {"message": "no", "data": {"code": 3}}),
        ['4{"message":"no","data":{"code":3}}'],
    ),
    # {type: CONNECT_ERROR, nsp: "/", data: "not authorized"} (protocol 4 style)
    (Packet(T.CONNECT_ERROR, "/", "not authorized"), ['4"not authorized"']),
    # {type: EVENT, nsp: "/admin", data: ["ev", Buffer [1,2,3]], id: 456}
    (
        Packet(T.EVENT, "/admin", ["ev", b"\x01\x02\x03"], 456),
        ['51-/admin,456["ev",' + ph_json(0) + "]", b"\x01\x02\x03"],
    ),
    # {type: EVENT, nsp: "/", data: ["ev", [B[1], {a: B[2], b: [B[3], "x"]}], {c: {d: B[4]}}, B[]]}
    # placeholders numbered depth-first: arrays by index, objects in key order
    (
        Packet(
            T.EVENT,
            "/",
            ["ev", [b"\x01", {"a": b"\x02", "b": [b"\x03", "x"]}], {"c": {"d": b"\x04"}}, b""],
        ),
        [
            '55-["ev",[{"_placeholder":true,"num":0},{"a":{"_placeholder":true,"num":1},'
            '"b":[{"_placeholder":true,"num":2},"x"]}],{"c":{"d":{"_placeholder":true,"num":3}}},'
            '{"_placeholder":true,"num":4}]',
            b"\x01",
            b"\x02",
            b"\x03",
            b"\x04",
            b"",
        ],
    ),
    # {type: ACK, nsp: "/", data: [Buffer [4,5,6]], id: 789}
    (Packet(T.ACK, "/", [b"\x04\x05\x06"], 789), ["61-789[" + ph_json(0) + "]", b"\x04\x05\x06"]),
    # {type: ACK, nsp: "/x", data: [{a: B[0], b: B[255]}], id: 0}
    (
        Packet(T.ACK, "/x", [{"a": b"\x00", "b": b"\xff"}], 0),
        ['62-/x,0[{"a":' + ph_json(0) + ',"b":' + ph_json(1) + "}]", b"\x00", b"\xff"],
    ),
    # {type: EVENT, nsp: "/", data: ["k", {1: "a", "null": "b", "false": "c", 1.5: "d"}]}
    (
        Packet(T.EVENT, "/", ["k", {1: "a", None: "b", False: "c", 1.5: "d"}]),
        ['2["k",{"1":"a","null":"b","false":"c","1.5":"d"}]'],
    ),
]


@pytest.mark.parametrize(("packet", "expected"), ENCODINGS, ids=lambda v: repr(v)[:40])
def test_encode_matches_reference(packet: Packet, expected: list[str | bytes]) -> None:
    assert encode(packet) == expected


def _as_js(value: Any) -> Any:
    """``value`` as a JavaScript peer sees it: arrays for tuples, string keys."""
    if isinstance(value, list | tuple):
        return [_as_js(v) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str) else dumps(k): _as_js(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("packet", "messages"), ENCODINGS, ids=lambda v: repr(v)[:40])
def test_decode_reference_encodings(packet: Packet, messages: list[str | bytes]) -> None:
    expected = Packet(packet.type, packet.nsp or "/", _as_js(packet.data), packet.id)
    assert decode_one(*messages) == expected


def test_decode_connect_error_payloads() -> None:
    assert decode_one('4{"message":"not authorized"}') == Packet(
        T.CONNECT_ERROR, "/", {"message": "not authorized"}
    )
    assert decode_one('4/random,"x"') == Packet(T.CONNECT_ERROR, "/random", "x")
    refused("4[1]", match="CONNECT_ERROR payload")
    refused("41", match="without payload")  # 41 is ack id 1 and no payload at all


def test_encode_bytes_like_values() -> None:
    # bytearray and memoryview are sent as their bytes, like a Buffer.
    messages = encode(Packet(T.EVENT, "/", ["m", bytearray(b"ab"), memoryview(b"cd")]))
    assert messages == ['52-["m",' + ph_json(0) + "," + ph_json(1) + "]", b"ab", b"cd"]
    assert all(type(m) is bytes for m in messages[1:])
    # a memoryview of another format: its raw bytes; a strided view: its elements' bytes
    ints = memoryview(array.array("i", [1]))
    assert encode(Packet(T.EVENT, "/", ["m", ints]))[1] == bytes(ints)
    assert encode(Packet(T.EVENT, "/", ["m", memoryview(b"abcdef")[::2]]))[1] == b"ace"
    # a tuple is an array, binary or not
    assert encode(Packet(T.EVENT, "/", ("t", 1))) == ['2["t",1]']
    assert encode(Packet(T.ACK, "/", (b"z",), 3)) == ["61-3[" + ph_json(0) + "]", b"z"]


def test_binary_is_found_anywhere() -> None:
    assert encode(Packet(T.EVENT, "/", ["x", {"deep": [[b"1"]]}])) == [
        '51-["x",{"deep":[[' + ph_json(0) + "]]}]",
        b"1",
    ]
    assert encode(Packet(T.ACK, "/", [], 1)) == ["31[]"]


def test_has_binary() -> None:
    assert has_binary(b"")
    assert has_binary(bytearray())
    assert has_binary(memoryview(b"x"))
    assert has_binary(["a", {"b": (1, b"x")}])
    assert not has_binary(["a", {"b": (1, "x")}, None, 1.5])
    assert not has_binary("bytes")
    deep: Any = b"x"
    for _ in range(70):
        deep = [deep]
    assert not has_binary(deep)  # bounded search: deeper than 64 is not looked at
    shallow: Any = b"x"
    for _ in range(60):
        shallow = [shallow]
    assert has_binary(shallow)


def test_deep_data_without_bytes_encodes() -> None:
    deep: Any = "x"
    for _ in range(70):
        deep = [deep]
    assert encode(Packet(T.EVENT, "/", ["d", deep])) == ['2["d",' + "[" * 70 + '"x"' + "]" * 71]


# -- JSON fidelity with a JavaScript peer ----------------------------------------------------------


def test_unicode_is_written_raw_like_json_stringify() -> None:
    # node: encode({type: EVENT, nsp: "/", data: ["ünï", "é/\u2028\u2029😀",
    #   "\u0000\u001f\"\\\b\f\n\r\t\u007f"]})
    packet = Packet(T.EVENT, "/", ["ünï", "é/\u2028\u2029😀", '\u0000\u001f"\\\b\f\n\r\t\u007f'])
    assert encode(packet) == [
        '2["ünï","é/\u2028\u2029😀","\\u0000\\u001f\\"\\\\\\b\\f\\n\\r\\t\u007f"]'
    ]
    assert decode_one(encode(packet)[0]) == packet


def test_astral_characters_both_ways() -> None:
    # JSON.stringify leaves "😀" raw; JSON.parse also accepts it as a surrogate-pair escape.
    assert dumps(["😀"]) == '["😀"]'
    assert decode_one('2["ünï","\\u00e9\\ud83d\\ude00","😀"]').data == ["ünï", "é😀", "😀"]


def test_lone_surrogates_go_out_escaped() -> None:
    # node: encode({type: EVENT, data: ["\ud800", "\udc00x\ud83d"]}) ->
    #   2["\ud800","\udc00x\ud83d"] (escaped, since JSON.stringify is well-formed)
    # orjson refuses lone surrogates; the stdlib writes the same escapes (everything else
    # non-ASCII escaped as well, which JSON.parse reads back to the same string).
    messages = encode(Packet(T.EVENT, "/", ["\ud800", "\udc00x\ud83d"]))
    assert messages == ['2["\\ud800","\\udc00x\\ud83d"]']
    mixed = dumps(["é", "\ud800"])
    assert mixed == '["\\u00e9","\\ud800"]'
    assert json.loads(mixed) == ["é", "\ud800"]


def test_lone_surrogates_come_in() -> None:
    # node: Decoder.add('2["\\ud800"]') -> data ["\ud800"]: JSON.parse accepts them
    assert decode_one('2["\\ud800"]').data == ["\ud800"]
    assert decode_one('2["\\uDC00x","\\ud83d"]').data == ["\udc00x", "\ud83d"]
    assert decode_one('2["\\uDFFF"]').data == ["\udfff"]
    assert loads('{"k\\ud800":1}') == {"k\ud800": 1}
    # a raw (unescaped) surrogate cannot come from a UTF-8 frame; it is invalid JSON here
    refused('2["\ud800"]', match="invalid JSON")


def test_big_integers_go_out_as_digits() -> None:
    # JSON.stringify has no integers beyond 2**53; JSON.parse reads these digits as the
    # nearest double, the same number a JS peer would have sent.
    assert dumps([2**64, -(2**70)]) == "[18446744073709551616,-1180591620717411303424]"
    assert dumps([2**64 - 1]) == "[18446744073709551615]"
    assert dumps({"big": 123456789012345678901234567890}) == (
        '{"big":123456789012345678901234567890}'
    )


def test_big_integers_come_in_as_js_numbers() -> None:
    # node: Decoder.add('2["n",18446744073709551617,-0,1.0]') -> ["n",18446744073709552000,0,1]
    data = decode_one('2["n",18446744073709551617,-0,1.0]').data
    assert data[1] == pytest.approx(18446744073709552000)
    assert data[2] == 0
    assert data[3] == 1


def test_floats_like_json_stringify() -> None:
    # node: encode({data: ["n", NaN, Infinity, -Infinity, 1.5, 0.1, 1e21, 1e-7, 5e-324,
    #   1.7976931348623157e308]}) -> 2["n",null,null,null,1.5,0.1,1e+21,1e-7,5e-324,
    #   1.7976931348623157e+308]
    values = [
        "n",
        math.nan,
        math.inf,
        -math.inf,
        1.5,
        0.1,
        1e21,
        1e-7,
        5e-324,
        1.7976931348623157e308,
    ]
    assert encode(Packet(T.EVENT, "/", values)) == [
        '2["n",null,null,null,1.5,0.1,1e+21,1e-7,5e-324,1.7976931348623157e+308]'
    ]
    # Python's 1.0 is written 1.0 (JS writes 1); JSON.parse reads the same number.
    assert dumps([1.0, -0.0]) == "[1.0,-0.0]"
    for value in (0.1, 1e-7, 5e-324, 1.7976931348623157e308, 123.456e-89):
        assert loads(dumps([value])) == [value]


@pytest.mark.parametrize("other", ["\ud800", 2**64], ids=["lone-surrogate", "big-int"])
def test_nan_is_null_even_in_the_stdlib_fallback(other: Any) -> None:
    text = dumps([other, math.nan, math.inf, -math.inf])
    assert text.endswith(",null,null,null]"), text


def test_non_str_keys_like_js() -> None:
    # JS object keys are strings: {1: "a"} is written {"1":"a"}
    assert dumps({1: "a", None: "b", 1.5: "d"}) == '{"1":"a","null":"b","1.5":"d"}'
    assert dumps({False: 0, "s": 1}) == '{"false":0,"s":1}'
    # the same keys in the stdlib fallback (a lone surrogate elsewhere)
    assert json.loads(dumps({1: "\ud800", None: 2})) == {"1": "\ud800", "null": 2}


def test_loads_refuses_invalid_json() -> None:
    with pytest.raises(ValueError):
        loads("[1,]")
    with pytest.raises(ValueError):
        loads('["\\ud800",]')  # the stdlib fallback refuses it too


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused(literal: str) -> None:
    # node: Decoder.add('2["x",NaN]') -> throws "invalid payload" (JSON.parse refuses it)
    refused(f'2["x",{literal}]', match="invalid JSON")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_literals_refused_with_a_lone_surrogate_too(literal: str) -> None:
    refused(f'2["\\ud800",{literal}]', match="invalid JSON")


# -- decoding --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # node: Decoder.add(text) for each
        ("0", Packet(T.CONNECT)),
        ("0/admin,", Packet(T.CONNECT, "/admin")),
        ("0/admin", Packet(T.CONNECT, "/admin")),
        ('0/admin,{"token":"x"}', Packet(T.CONNECT, "/admin", {"token": "x"})),
        ("0{}", Packet(T.CONNECT, "/", {})),
        ("1", Packet(T.DISCONNECT)),
        ("1/admin,", Packet(T.DISCONNECT, "/admin")),
        ('2[1,"a"]', Packet(T.EVENT, "/", [1, "a"])),
        ('2[1.5,"a"]', Packet(T.EVENT, "/", [1.5, "a"])),
        ('2/admin,0["x"]', Packet(T.EVENT, "/admin", ["x"], 0)),
        ('2007["x"]', Packet(T.EVENT, "/", ["x"], 7)),
        ('3/admin,12["a",1]', Packet(T.ACK, "/admin", ["a", 1], 12)),
        ("3[]", Packet(T.ACK, "/", [])),
        (
            '2["message",1,"2",{"3":[true]}]',
            Packet(T.EVENT, "/", ["message", 1, "2", {"3": [True]}]),
        ),
        ('2["x",{"_placeholder":true,"num":0}]', Packet(T.EVENT, "/", ["x", ph(0)])),
    ],
)
def test_decode(text: str, expected: Packet) -> None:
    assert decode_one(text) == expected


def test_decode_binary_event_in_two_steps() -> None:
    decoder = Decoder()
    # test-suite "binary": 452-["message",ph0,ph1] (the 4 is the Engine.IO message type)
    assert decoder.feed('52-["message",' + ph_json(0) + "," + ph_json(1) + "]") is None
    assert decoder.pending
    assert decoder.feed(b"\x01\x02\x03") is None
    assert decoder.pending
    packet = decoder.feed(bytearray(b"\x04\x05\x06"))
    assert not decoder.pending
    assert packet == Packet(T.EVENT, "/", ["message", b"\x01\x02\x03", b"\x04\x05\x06"])
    assert type(packet.data[2]) is bytes


def test_decode_binary_ack_with_namespace_and_id() -> None:
    # test-suite: 452-789["message-with-ack",ph0,ph1] / 462-789[ph0,ph1]
    assert decode_one("62-/x,789[" + ph_json(1) + "," + ph_json(0) + "]", b"a", b"b") == Packet(
        T.ACK, "/x", [b"b", b"a"], 789
    )


def test_decode_placeholder_used_twice_and_buffer_unused() -> None:
    # the reference indexes by num: a num may repeat, a buffer may go unused
    assert decode_one('52-["x",' + ph_json(0) + "," + ph_json(0) + "]", b"a", b"b").data == [
        "x",
        b"a",
        b"a",
    ]


def test_placeholder_lookalikes_are_data() -> None:
    # "_placeholder" must be exactly true to count
    data = ["x", {"_placeholder": 1, "num": 0}, {"_placeholder": "true", "num": 0}, ph(0)]
    text = "51-" + dumps(data)
    assert decode_one(text, b"z").data == [
        "x",
        {"_placeholder": 1, "num": 0},
        {"_placeholder": "true", "num": 0},
        b"z",
    ]


def test_decoder_limits_default() -> None:
    assert Decoder().limits == Limits()
    assert Limits() == Limits(
        max_attachments=10, max_depth=32, max_namespace_length=256, max_ack_id=2**53 - 1
    )


# -- rejections: payload per packet type (HARDENING 1, 2) ----------------------------------------


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_reserved_event_names_refused(name: str) -> None:
    refused(f'2["{name}",{{"x":1}}]', match="reserved")
    refused(f'2/admin,5["{name}"]', match="reserved")
    refused(f'51-["{name}",' + ph_json(0) + "]", match="reserved")


def test_reserved_names_are_case_sensitive_like_the_reference() -> None:
    assert decode_one('2["Connect"]').data == ["Connect"]
    assert decode_one('2["connection"]').data == ["connection"]


@pytest.mark.parametrize(
    "text",
    [
        "2[]",  # empty event array
        "2{}",  # not an array
        '2"x"',
        "2 1",
        "2null",
        "2[null]",  # event name neither string nor number
        "2[true]",
        "2[false]",
        '2[["x"]]',
        '2[{"x":1}]',
        "2",  # no payload at all
        "2/admin,",
        "5" + "1-[" + ph_json(0) + "]",  # the name is a placeholder
    ],
)
def test_invalid_event_payloads_refused(text: str) -> None:
    refused(text, match="EVENT|event name")


@pytest.mark.parametrize("text", ["0[]", '0"x"', "01", "0null", "0/admin,[1]", "0true"])
def test_connect_payload_must_be_an_object(text: str) -> None:
    if text == "01":
        # "1" is the ack id; no payload is fine for CONNECT
        assert decode_one(text) == Packet(T.CONNECT, "/", None, 1)
        return
    refused(text, match="CONNECT payload")


@pytest.mark.parametrize("text", ["1{}", "1[]", '1"x"', "1/admin,{}", "1null"])
def test_disconnect_has_no_payload(text: str) -> None:
    refused(text, match="DISCONNECT")


@pytest.mark.parametrize("text", ["3{}", '3"x"', "31{}", "3/a,1null", "31", "61-1{}"])
def test_ack_payload_must_be_an_array(text: str) -> None:
    refused(text, match="ACK")


@pytest.mark.parametrize("text", ["", "7", "8[]", "9", "a", "-1", " 2[]", "\u0662[]", "٢"])
def test_unknown_packet_types_refused(text: str) -> None:
    # the reference decodes "" as CONNECT (Number("") is 0); we refuse it
    refused(text, match="unknown packet type")


@pytest.mark.parametrize(
    "text",
    [
        '2["x"]garbage',
        '2["x"',
        "2[1,]",
        '2abc["x"]',  # node: '42abc[...]' -> invalid payload
        "2['x']",
        '2["x"\x00]',
        "4abc",
        '2[1e400,"x"]',  # JSON.parse gives Infinity; refused as orjson does
        '2["\\x41"]',
    ],
)
def test_invalid_json_refused(text: str) -> None:
    refused(text, match="invalid JSON")


# -- rejections: attachments (HARDENING 3, 4, 5) ---------------------------------------------------


def test_attachment_count_boundaries() -> None:
    refused('50-["x"]', match="attachments count 0")  # refused on purpose
    refused("60-[]", match="attachments count 0")
    buffers = [bytes([i]) for i in range(10)]
    ten = '510-["x",' + ",".join(ph_json(i) for i in range(10)) + "]"
    assert decode_one(ten, *buffers).data == ["x", *buffers]
    assert decode_one('501-["x",' + ph_json(0) + "]", b"z").data == ["x", b"z"]  # leading zero
    refused('511-["x"]', match="attachments count 11")
    refused('5999999-["x"]', match="attachments count 999999")
    refused('59999999-["x"]', match="illegal attachments count")  # no dash within 7 characters


def test_attachment_count_follows_limits() -> None:
    limits = Limits(max_attachments=2)
    assert decode_one('52-["x",' + ph_json(1) + "]", b"a", b"b", limits=limits).data == ["x", b"b"]
    refused('53-["x"]', limits=limits, match="outside 1..2")


@pytest.mark.parametrize(
    "text",
    [
        '5-["x"]',
        '5a-["x"]',
        '51.0-["x"]',
        '5-1-["x"]',
        '5+1-["x"]',
        '5 1-["x"]',
        '5\u0661-["x"]',  # ARABIC-INDIC DIGIT ONE: isdigit() but not ASCII
        '5\u00b9-["x"]',  # SUPERSCRIPT ONE
        '51["x"]',
        "5",
        "6",
        "51",
        "6a-[]",
    ],
)
def test_non_numeric_attachment_counts_refused(text: str) -> None:
    refused(text, match="attachments count")


@pytest.mark.parametrize(
    "num",
    [True, False, "0", 0.0, 0.5, -1, 1, 2, 2**53, None, [0], {"n": 0}],
    ids=repr,
)
def test_illegal_placeholder_index_refused(num: Any) -> None:
    refused('51-["x",' + ph_json(num) + "]", b"z", match="placeholder")


def test_placeholder_without_num_refused() -> None:
    refused('51-["x",{"_placeholder":true}]', b"z", match="placeholder")


def test_placeholder_index_is_checked_deep_inside() -> None:
    text = '52-["x",{"a":[1,{"b":' + ph_json(0) + "}]},[[" + ph_json(2) + "]]]"
    refused(text, b"a", b"b", match="placeholder")


def test_text_while_waiting_for_attachments() -> None:
    # node: "got plaintext data when reconstructing a packet"
    decoder = Decoder()
    assert decoder.feed('52-["x",' + ph_json(0) + "," + ph_json(1) + "]") is None
    assert decoder.feed(b"a") is None
    with pytest.raises(RemoteProtocolError, match="waiting for binary attachments"):
        decoder.feed('2["y"]')
    # the partial packet is gone: the next packet decodes on its own
    assert not decoder.pending
    assert decoder.feed('2["y"]') == Packet(T.EVENT, "/", ["y"])
    with pytest.raises(RemoteProtocolError, match="no packet announced"):
        decoder.feed(b"b")  # the second attachment of the dropped packet


def test_text_while_waiting_even_if_invalid() -> None:
    decoder = Decoder()
    decoder.feed('51-["x",' + ph_json(0) + "]")
    with pytest.raises(RemoteProtocolError, match="waiting"):
        decoder.feed("garbage")
    assert not decoder.pending
    assert decoder.feed('51-["x",' + ph_json(0) + "]") is None
    assert decoder.feed(b"ok") == Packet(T.EVENT, "/", ["x", b"ok"])


def test_attachment_nobody_announced() -> None:
    # node: "got binary data when not reconstructing a packet"
    refused(b"\x01", match="no packet announced")
    refused(bytearray(), match="no packet announced")
    refused('2["x"]', b"\x01", match="no packet announced")


def test_failed_reconstruction_frees_the_partial_packet() -> None:
    decoder = refused('52-["x",' + ph_json(5) + "]", b"a", b"b", match="placeholder")
    assert not decoder.pending


def test_reset_drops_a_partial_packet() -> None:
    decoder = Decoder()
    decoder.feed('51-["x",' + ph_json(0) + "]")
    assert decoder.pending
    decoder.reset()
    assert not decoder.pending
    assert decoder.feed('2["ok"]') == Packet(T.EVENT, "/", ["ok"])


# -- rejections: bounds (HARDENING 7) --------------------------------------------------------------


def nested(depth: int) -> str:
    """An EVENT payload whose value is ``depth`` arrays/objects deep, the outer array counted."""
    inner = "1"
    for level in range(depth - 1):
        inner = f"[{inner}]" if level % 2 else f'{{"k":{inner}}}'
    return f'["x",{inner}]'


@pytest.mark.parametrize("max_depth", [1, 2, 3, 32])
def test_json_depth_boundary(max_depth: int) -> None:
    limits = Limits(max_depth=max_depth)
    text = "2" + nested(max_depth)
    assert json.loads(text[1:])  # valid JSON
    assert decode_one(text, limits=limits).data == json.loads(text[1:])
    refused("2" + nested(max_depth + 1), limits=limits, match="max_depth")


def test_json_depth_default_is_32() -> None:
    assert decode_one("2" + nested(32)).type is T.EVENT
    refused("2" + nested(33), match="max_depth=32")


def test_json_depth_counts_nesting_not_brackets() -> None:
    # many brackets, shallow nesting; brackets inside strings
    wide = '2["x",' + ",".join(["[]"] * 100) + "]"
    assert len(decode_one(wide).data) == 101
    assert decode_one('2["' + "[" * 100 + '"]').data == ["[" * 100]
    assert decode_one('2["x",{"a":[{"b":[]}]},' + "{}," * 40 + "{}]").type is T.EVENT


def test_json_depth_bounded_for_binary_packets() -> None:
    refused("51-" + nested(33)[:-1] + "," + ph_json(0) + "]", match="max_depth")
    text = "51-" + nested(32)[:-1] + "," + ph_json(0) + "]"
    assert decode_one(text, b"z").data[-1] == b"z"


def test_json_depth_huge_nesting_is_an_error_not_a_crash() -> None:
    refused("2" + "[" * 100_000 + "]" * 100_000, match="invalid JSON|max_depth")
    refused('2["\\ud800",' + "[" * 100_000 + "]" * 100_001, match="invalid JSON|max_depth")
    refused("2" + "[" * 1000 + "]" * 1000, match="max_depth")


def test_namespace_length_boundary() -> None:
    limits = Limits(max_namespace_length=8)
    ok = "/" + "a" * 7
    assert decode_one(f'2{ok},["x"]', limits=limits).nsp == ok
    assert decode_one(f"0{ok}", limits=limits).nsp == ok  # no comma: the rest is the namespace
    refused(f'2{ok}b,["x"]', limits=limits, match="max_namespace_length=8")
    refused(f"0{ok}b", limits=limits, match="max_namespace_length=8")
    refused(f'2{ok}b,1["x"]', limits=limits, match="max_namespace_length")


def test_namespace_length_default() -> None:
    ok = "/" + "n" * 255
    assert decode_one(f'2{ok},["x"]').nsp == ok
    refused(f'2{ok}n,["x"]', match="max_namespace_length=256")
    refused("0/" + "n" * 10_000, match="max_namespace_length")


def test_namespace_forms() -> None:
    # a namespace runs to the first comma; characters are not checked beyond that
    assert decode_one('2/a/b?x=1,["x"]').nsp == "/a/b?x=1"
    assert decode_one('2/ünï,["x"]').nsp == "/ünï"
    assert decode_one('2/,["x"]').nsp == "/"
    # no leading slash: no namespace; "admin,..." is then not JSON
    refused('2admin,["x"]', match="invalid JSON")
    # a namespace with no comma swallows the payload: an EVENT without payload
    refused('2/admin["x"]', match="without payload")


def test_ack_id_boundaries() -> None:
    assert decode_one('20["x"]').id == 0
    assert decode_one('2000["x"]').id == 0
    assert decode_one('29007199254740991["x"]').id == 2**53 - 1
    assert decode_one('20000000000000001["x"]').id == 1  # 16 digits
    refused('29007199254740992["x"]', match="exceeds")
    refused('299999999999999999["x"]', match="16 digits")
    refused('200000000000000001["x"]', match="16 digits")  # 17 digits, even if small
    refused("3" + "9" * 10_000 + "[]", match="16 digits")
    limits = Limits(max_ack_id=100)
    assert decode_one("3100[]", limits=limits).id == 100
    refused("3101[]", limits=limits, match="exceeds 100")


def test_ack_id_digits_are_ascii() -> None:
    refused('2\u0661["x"]', match="invalid JSON")


def test_custom_limits_do_not_leak_between_decoders() -> None:
    small = Decoder(Limits(max_depth=1))
    big = Decoder()
    with pytest.raises(RemoteProtocolError):
        small.feed('2["x",[1]]')
    assert big.feed('2["x",[1]]') == Packet(T.EVENT, "/", ["x", [1]])


# -- properties -----------------------------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
_KEYS = _TEXT.filter(lambda k: k != "_placeholder")


def _json(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4)
        ),
        max_leaves=12,
    )


_EVENT_NAMES = st.one_of(
    _TEXT.filter(lambda n: n not in RESERVED_EVENTS), st.integers(0, 2**53), st.just("é😀")
)
_NSP = st.one_of(
    st.just("/"),
    st.text(st.characters(exclude_characters=",", exclude_categories=["Cs"]), max_size=10).map(
        lambda s: "/" + s
    ),
)
_IDS = st.one_of(st.none(), st.integers(0, 2**53 - 1))


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    kind = draw(st.sampled_from([T.CONNECT, T.DISCONNECT, T.EVENT, T.ACK, T.CONNECT_ERROR]))
    nsp = draw(_NSP)
    if kind is T.CONNECT:
        return Packet(
            kind, nsp, draw(st.none() | st.dictionaries(_KEYS, _json(_LEAVES), max_size=4))
        )
    if kind is T.DISCONNECT:
        return Packet(kind, nsp)
    if kind is T.CONNECT_ERROR:
        return Packet(kind, nsp, draw(_TEXT | st.dictionaries(_KEYS, _json(_LEAVES), max_size=3)))
    leaves = st.one_of(_LEAVES, st.binary(max_size=8))
    args = draw(st.lists(_json(leaves), max_size=4))
    data = [draw(_EVENT_NAMES), *args] if kind is T.EVENT else args
    # at most max_attachments buffers in one packet
    buffers = _count_bytes(data)
    if buffers > 10:
        data = _strip_bytes(data)
    return Packet(kind, nsp, data, draw(_IDS))


def _count_bytes(value: Any) -> int:
    if isinstance(value, bytes):
        return 1
    if isinstance(value, list):
        return sum(_count_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_bytes(v) for v in value.values())
    return 0


def _strip_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_strip_bytes(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_bytes(v) for k, v in value.items()}
    return value


def _js_equal(a: Any, b: Any) -> bool:
    """Equality as JSON.parse would see it: ints beyond 2**64 are doubles on both sides."""
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return a == b or float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_js_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_js_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets())
def test_round_trip(packet: Packet) -> None:
    messages = encode(packet)
    decoded = decode_one(*messages)
    assert decoded.type is packet.type
    assert decoded.nsp == packet.nsp
    assert decoded.id == packet.id
    assert _js_equal(decoded.data, packet.data), (messages, decoded.data, packet.data)
    # the header is JSON after its prefix, and bytes travel as separate messages
    assert all(isinstance(m, bytes) for m in messages[1:])
    assert isinstance(messages[0], str)


_LONE = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(_LONE, _TEXT), min_size=1, max_size=6))
def test_round_trip_lone_surrogates(parts: list[str]) -> None:
    value = "x".join(parts)  # "x" between parts: no high+low pair is formed
    packet = Packet(T.EVENT, "/", ["s", value, {value: [value]}])
    assert decode_one(*encode(packet)) == packet


_PREFIXES = st.sampled_from(
    ["", "0", "1", "2", "3", "4", "5", "6", "51-", "52-", "61-7", "2/a,", "5" + "1-/a,", "210"]
)
_SNIPPETS = st.sampled_from(
    [
        '["x"]',
        "[",
        "]",
        "{",
        "}",
        ph_json(0),
        ph_json(1),
        '"_placeholder":true',
        ",",
        '"connect"',
        "NaN",
        "\\ud800",
        '"',
        "1",
        "-",
        "/",
    ]
)
_FRAMES = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=8),
    st.builds(lambda p, s: p + "".join(s), _PREFIXES, st.lists(_SNIPPETS, max_size=8)),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_FRAMES, max_size=12))
def test_fuzz_decoder_raises_only_protocol_errors_and_recovers(frames: list[str | bytes]) -> None:
    decoder = Decoder(Limits(max_depth=4, max_attachments=3, max_namespace_length=6))
    for frame in frames:
        try:
            packet = decoder.feed(frame)
        except RemoteProtocolError:
            assert not decoder.pending
            assert decoder.feed('2["ok"]') == Packet(T.EVENT, "/", ["ok"])
            continue
        if packet is not None:
            assert not decoder.pending
            assert packet.type in (T.CONNECT, T.DISCONNECT, T.EVENT, T.ACK, T.CONNECT_ERROR)
            if packet.type is T.EVENT:
                name = packet.data[0]
                assert isinstance(name, str | int | float)
                assert not isinstance(name, bool)
                assert name not in RESERVED_EVENTS
            if packet.id is not None:
                assert 0 <= packet.id <= 2**53 - 1
            assert len(packet.nsp) <= 6
    decoder.reset()
    assert decoder.feed('2["ok"]') == Packet(T.EVENT, "/", ["ok"])


# -- one header encoder, the event name check, the close reasons ---------------------------------


@pytest.mark.parametrize(
    "packet",
    [
        Packet(T.ACK, "/", ["received"], 12),
        Packet(T.ACK, "/", [], 0),
        Packet(T.ACK, "/admin", [{"a": 1}, None], 2**53 - 1),
        Packet(T.ACK, "/", [b"\x00\x01", {"k": [b"z"]}], 7),
        Packet(T.EVENT, "/", ["news", 1]),
        Packet(T.EVENT, "/chat", ["news", b"x"], 3),
        Packet(T.CONNECT, "/", {"sid": "abc"}),
        Packet(T.CONNECT_ERROR, "/x", {"message": "Invalid namespace"}),
        Packet(T.DISCONNECT, "/admin"),
    ],
)
def test_encode_parts_is_encode_without_a_packet(packet: Packet) -> None:
    # What an ack answered on the hot path goes through: the same header as every packet.
    assert encode_parts(packet.type, packet.nsp, packet.data, packet.id) == encode(packet)
    assert decode_one(*encode(packet)) == packet


@pytest.mark.parametrize(
    ("text", "packet"),
    [
        ('2["chat","hi"]', Packet(T.EVENT, "/", ["chat", "hi"])),
        ('25["chat"]', Packet(T.EVENT, "/", ["chat"], 5)),
        ("3[]", Packet(T.ACK, "/", [], None)),
        ("39007199254740991[1]", Packet(T.ACK, "/", [1], 2**53 - 1)),
        ('2[7,"numeric name"]', Packet(T.EVENT, "/", [7, "numeric name"])),
    ],
)
def test_the_common_shape_decodes_as_any_packet(text: str, packet: Packet) -> None:
    # EVENT and ACK on "/" take the first branch of the string decoder; the same packet as
    # the general walk gives for the same packet on another namespace.
    assert Decoder().feed(text) == packet
    other = Decoder().feed(f"{text[0]}/n,{text[1:]}")
    assert other == Packet(packet.type, "/n", packet.data, packet.id)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('2["connect"]', "reserved"),
        ("2[]", "non-empty array"),
        ("2[true]", "string or a number"),
        ('2{"a":1}', "non-empty array"),
        ('3{"a":1}', "ACK payload must be an array"),
        ("39007199254740992[1]", "exceeds"),
        ("2[", "invalid JSON"),
        ("2" + "[" * 40 + "]" * 40, "max_depth"),
    ],
)
def test_the_common_shape_is_checked_as_any_packet(text: str, message: str) -> None:
    for candidate in (text, f"{text[0]}/n,{text[1:]}"):
        with pytest.raises(RemoteProtocolError, match=message):
            Decoder().feed(candidate)


def test_check_event_name() -> None:
    check_event_name("chat")
    with pytest.raises(TypeError, match="event name must be a string, got int"):
        check_event_name(1)
    for name in RESERVED_EVENTS:
        with pytest.raises(ValueError, match="is a reserved event name"):
            check_event_name(name)


def test_disconnect_reasons_are_the_reference_strings() -> None:
    # socket.io 4.8 lib/socket.ts DisconnectReason, and RECOVERABLE_DISCONNECT_REASONS.
    assert {str(reason) for reason in DisconnectReason} == {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "parse error",
        "server shutting down",
        "forced server close",
        "client namespace disconnect",
        "server namespace disconnect",
    }
    assert {str(reason) for reason in RECOVERABLE} == {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }
    assert DisconnectReason.PING_TIMEOUT == "ping timeout"
    assert DisconnectReason.of("ping timeout") is DisconnectReason.PING_TIMEOUT
    assert DisconnectReason.of("a reason added later") == "a reason added later"

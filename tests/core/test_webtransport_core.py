"""The WebTransport framing (engine.io-parser's createPacketEncoderStream and
createPacketDecoderStream): bytes in, messages out, the limits at their boundaries; and the
session cores (server and client) with WebTransport as a transport."""

from __future__ import annotations

import struct

import pytest

from aiosio.engine.options import EngineOptions
from aiosio.protocol.client_session import ClientConfig
from aiosio.protocol.client_session import ClientSession
from aiosio.protocol.client_session import StartProbe
from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.session import EngineSession
from aiosio.protocol.session import ProbeSend
from aiosio.protocol.session import SessionId
from aiosio.protocol.session import TransportKind
from aiosio.protocol.session import Upgraded
from aiosio.protocol.session import WebSocketSend
from aiosio.protocol.webtransport import MAX_CLOSE_REASON
from aiosio.protocol.webtransport import MAX_SAFE_LENGTH
from aiosio.protocol.webtransport import FrameDecoder
from aiosio.protocol.webtransport import FrameError
from aiosio.protocol.webtransport import NewSession
from aiosio.protocol.webtransport import UpgradeSession
from aiosio.protocol.webtransport import decode_close_capsule
from aiosio.protocol.webtransport import encode_close_capsule
from aiosio.protocol.webtransport import encode_frame
from aiosio.protocol.webtransport import encode_open
from aiosio.protocol.webtransport import opening


def test_headers_as_the_reference_writes_them() -> None:
    # Text: the length in the low 7 bits; binary: the high bit set too.
    assert encode_frame("4hi") == b"\x034hi"
    assert encode_frame(b"\x01\x02") == b"\x82\x01\x02"
    assert encode_frame("é") == b"\x02\xc3\xa9"  # the UTF-8 length, not the characters
    assert encode_frame("x" * 125)[:1] == b"\x7d"
    assert encode_frame("x" * 126)[:3] == b"\x7e\x00\x7e"
    assert encode_frame(b"x" * 65535)[:3] == b"\xfe\xff\xff"
    assert encode_frame("x" * 65536)[:9] == b"\x7f" + struct.pack("!Q", 65536)
    assert encode_open() == b"\x010"
    assert encode_open("abc") == b'\x0e0{"sid":"abc"}'


@pytest.mark.parametrize("size", [1, 125, 126, 127, 65535, 65536, 70000])
def test_round_trip_at_every_length_boundary(size: int) -> None:
    decoder = FrameDecoder(100_000)
    text, data = "a" * size, bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    assert decoder.feed(encode_frame(text) + encode_frame(data)) == [text, data]
    assert decoder.pending == 0
    assert not decoder.in_frame


def test_fed_one_byte_at_a_time() -> None:
    decoder = FrameDecoder(1000)
    stream = encode_frame("4hello") + encode_frame(b"\x00" * 300) + encode_frame("2")
    out: list[str | bytes] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == ["4hello", b"\x00" * 300, "2"]


def test_a_truncated_frame_stays_pending() -> None:
    decoder = FrameDecoder(1000)
    frame = encode_frame("4" + "x" * 200)
    assert decoder.feed(frame[:100]) == []
    assert decoder.in_frame
    assert decoder.pending == 97  # the 3 header bytes are read already


def test_the_limit_is_inclusive_and_checked_from_the_header() -> None:
    decoder = FrameDecoder(200)
    assert decoder.feed(encode_frame("x" * 200)) == ["x" * 200]
    # One byte over: refused from the 3 header bytes alone, nothing buffered.
    with pytest.raises(FrameError) as caught:
        FrameDecoder(200).feed(encode_frame("x" * 201)[:3])
    assert caught.value.reason == (
        "a frame announces 201 bytes, over the limit of 200 (max_http_buffer_size)"
    )


def test_refused_lengths() -> None:
    with pytest.raises(FrameError, match="announces 0 bytes"):
        FrameDecoder(10).feed(b"\x00")
    with pytest.raises(FrameError, match="beyond the largest length JavaScript"):
        FrameDecoder(10).feed(b"\x7f" + struct.pack("!Q", MAX_SAFE_LENGTH + 1))
    with pytest.raises(FrameError, match="over the limit"):
        FrameDecoder(10).feed(b"\x7f" + struct.pack("!Q", MAX_SAFE_LENGTH))


def test_invalid_utf8_text_and_a_failed_decoder_stays_failed() -> None:
    decoder = FrameDecoder(10)
    with pytest.raises(FrameError, match="not valid UTF-8"):
        decoder.feed(b"\x02\xff\xfe")
    with pytest.raises(FrameError, match="not valid UTF-8"):
        decoder.feed(encode_frame("4ok"))
    assert decoder.pending == 0  # nothing kept


def test_opening_packet() -> None:
    assert opening("0") == NewSession()
    assert opening('0{"sid":"abc"}') == UpgradeSession("abc")
    for bad in ("2probe", b"0", "0{}", '0{"sid":1}', "0{not json", '0{"sid":""}'):
        with pytest.raises(FrameError):
            opening(bad)
    with pytest.raises(FrameError, match="must carry"):
        opening('0{"sid":"' + "x" * 300 + '"}')  # bounded before parsing


def test_close_capsule() -> None:
    assert encode_close_capsule(0, "") == b"\x68\x43\x04\x00\x00\x00\x00"  # Chromium's own
    assert decode_close_capsule(encode_close_capsule(7, "bye")) == (7, "bye")
    long = encode_close_capsule(1, "é" * 1000)  # 2000 bytes: cut at a character boundary
    decoded = decode_close_capsule(long)
    assert decoded is not None
    assert decoded[1] == "é" * (MAX_CLOSE_REASON // 2)
    assert decode_close_capsule(b"\x68\x43") is None
    assert decode_close_capsule(b"\x01\x02ab") is None


# -- the session cores with WebTransport ----------------------------------------------------------


def test_the_handshake_offers_webtransport_when_enabled() -> None:
    on = EngineOptions(transports=("polling", "websocket", "webtransport"))
    assert on.session_config.upgrades == ("websocket", "webtransport")
    assert EngineOptions().session_config.upgrades == ("websocket",)  # off by default
    assert EngineOptions(transports=("polling", "webtransport")).session_config.upgrades == (
        "webtransport",
    )
    with pytest.raises(ValueError, match="subset of"):
        EngineOptions(transports=("polling", "quic"))


def test_server_session_upgrades_to_webtransport() -> None:
    config = EngineOptions(transports=("polling", "webtransport")).session_config
    session = EngineSession(
        sid=SessionId("s"), protocol=4, transport=TransportKind.POLLING, config=config, now=0.0
    )
    assert session.attach_probe(1.0, TransportKind.WEBTRANSPORT) == []
    events = session.receive_probe_message("2probe", 1.0)
    assert events[0] == ProbeSend("3probe")
    assert Upgraded() in session.receive_probe_message("5", 1.1)
    assert session.transport is TransportKind.WEBTRANSPORT
    assert session.send("hi") == "4hi"  # messages as on a WebSocket
    direct = EngineSession(
        sid=SessionId("d"), protocol=4, transport=TransportKind.WEBTRANSPORT, config=config, now=0
    )
    (send,) = direct.initial_messages()
    assert isinstance(send, WebSocketSend)
    assert '"upgrades":[]' in str(send.messages[0])


def test_client_session_favours_webtransport_then_probes_websocket() -> None:
    session = ClientSession(ClientConfig(transports=("polling", "websocket", "webtransport")))
    handshake = (
        '{"sid":"s","upgrades":["websocket","webtransport"],"pingInterval":25000,'
        '"pingTimeout":20000,"maxPayload":1000000}'
    )
    events = session.handshake([Packet(PacketType.OPEN, handshake)], TransportKind.POLLING, 0.0)
    assert StartProbe(TransportKind.WEBTRANSPORT) in events
    assert session.probe_failed(0.5) == [StartProbe(TransportKind.WEBSOCKET)]
    assert session.probe_failed(1.0) == []  # nothing left: polling goes on
    assert session.transport is TransportKind.POLLING

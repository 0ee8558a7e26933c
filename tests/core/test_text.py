"""Text with surrogates goes on the wire as a JavaScript peer writes it (aiosio.protocol.text):
Python refuses to encode a lone surrogate, Node's Buffer.from and TextEncoder write U+FFFD, and a
high surrogate followed by a low one is the character they stand for. The expected bytes are
Node's own (``Buffer.from("a\\ud800b")``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.engineio import encode_payload
from aiosio.protocol.prepared import PreparedMessage
from aiosio.protocol.text import encode_text
from aiosio.protocol.text import js_text
from aiosio.protocol.websocket import Side
from aiosio.protocol.websocket import WebSocketProtocol

REPLACEMENT = "\ufffd".encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", b"plain"),
        ("\u00e9t\u00e9 \u4e2d", "\u00e9t\u00e9 \u4e2d".encode()),
        ("a\ud800b", b"a" + REPLACEMENT + b"b"),  # lone high
        ("a\udc00", b"a" + REPLACEMENT),  # lone low
        ("\udc00\ud800", REPLACEMENT * 2),  # low then high: two lone ones
        ("\ud83d\ude00", "\U0001f600".encode()),  # a pair as two code points: the emoji
        ("x\ud83d\ude00\ud800", "x\U0001f600".encode() + REPLACEMENT),
    ],
)
def test_like_node(text: str, expected: bytes) -> None:
    assert encode_text(text) == expected
    assert js_text(text) == expected.decode()


@given(st.text())
def test_any_text_encodes_and_round_trips_without_surrogates(text: str) -> None:
    encoded = encode_text(text)
    if not any(0xD800 <= ord(c) < 0xE000 for c in text):
        assert encoded == text.encode()
    encoded.decode("utf-8")  # always valid UTF-8 (raises otherwise)


def test_polling_bodies_and_websocket_frames() -> None:
    packet = Packet(PacketType.MESSAGE, "a\ud800")
    assert encode_payload([packet], 4)[0] == b"4a" + REPLACEMENT
    assert encode_payload([packet], 3)[0] == b"3:4a" + REPLACEMENT  # 3 UTF-16 units, as JS
    binary = Packet(PacketType.MESSAGE, b"\x01")
    body = encode_payload([packet, binary], 3, True)[0]
    assert body.startswith(b"\x00\x05\xff4a" + REPLACEMENT)  # 5 bytes, as Buffer.byteLength

    server = WebSocketProtocol(Side.SERVER)
    server.send_text("a\ud800")
    assert server.data_to_send().endswith(b"a" + REPLACEMENT)

    assert PreparedMessage("a\ud800").frame(4).endswith(b"4a" + REPLACEMENT)

"""PreparedMessage: one Engine.IO message, its WebSocket frame built once per revision."""

from __future__ import annotations

from aiosio.protocol.prepared import PreparedMessage
from aiosio.protocol.websocket import Opcode
from aiosio.protocol.websocket import encode_frame


def test_text_frame_per_revision_built_once() -> None:
    message = PreparedMessage('2["news",1]')
    assert message.frame4 is None
    frame = message.frame(4)
    assert frame == encode_frame(Opcode.TEXT, b'42["news",1]')
    assert message.frame4 is frame
    assert message.frame(4) is frame
    assert message.frame(3) == frame  # text is the same in both revisions
    assert message.data == '2["news",1]'


def test_binary_frame_keeps_the_revision_3_type_byte() -> None:
    message = PreparedMessage(b"\x01\x02")
    assert message.frame(4) == encode_frame(Opcode.BINARY, b"\x01\x02")
    assert message.frame(3) == encode_frame(Opcode.BINARY, b"\x04\x01\x02")
    assert message.frame4 == message.frame(4)


def test_the_engine_module_re_exports_it() -> None:
    from aiosio.engine.server import PreparedMessage as FromEngine

    assert FromEngine is PreparedMessage

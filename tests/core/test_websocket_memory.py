"""What the sans-I/O WebSocket codec holds for a frame that arrives in pieces (HARDENING 8:
bounded memory, not only bounded bytes). Bytes in, events out; memory measured with tracemalloc.
"""

from __future__ import annotations

import gc
import os
import tracemalloc

import pytest

from aiosio.protocol.websocket import BinaryMessage
from aiosio.protocol.websocket import Side
from aiosio.protocol.websocket import TextMessage
from aiosio.protocol.websocket import WebSocketProtocol


def masked_head(opcode: int, size: int, key: bytes) -> bytes:
    assert 1 << 16 <= size < 1 << 63
    return bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big") + key


def mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def test_a_frame_trickled_two_bytes_per_read_costs_about_its_size() -> None:
    # Each read of a frame's payload was kept as its own bytes object until the frame was
    # complete: 2-byte reads cost 21 times the payload (17 MB for a 1 MB message).
    size = 200_000
    key = os.urandom(4)
    payload = os.urandom(size)
    wire = mask(payload, key)
    codec = WebSocketProtocol(Side.SERVER, max_message_size=1_000_000)
    assert codec.receive_data(masked_head(0x2, size, key) + wire[:2]) == []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2, size - 2, 2):
            assert codec.receive_data(wire[i : i + 2]) == []
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 3 * size, grown
    events = codec.receive_data(wire[size - 2 :])
    assert events == [BinaryMessage(payload)]


@pytest.mark.parametrize("split", [1, 7, 65_535, 65_537, 99_999])
def test_a_frame_in_two_reads_is_delivered_whole(split: int) -> None:
    size = 100_000
    key = os.urandom(4)
    text = ("é" * size)[: size // 2]
    data = text.encode()
    wire = masked_head(0x1, len(data), key) + mask(data, key)
    codec = WebSocketProtocol(Side.SERVER, max_message_size=1_000_000)
    events = codec.receive_data(wire[:split]) + codec.receive_data(wire[split:])
    assert events == [TextMessage(text)]

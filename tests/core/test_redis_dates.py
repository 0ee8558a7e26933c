"""A JavaScript ``Date`` in a message from a Node server (``io.emit("x", new Date())``, every
live event of ``@socket.io/admin-ui``): notepack.io writes it as the msgpack timestamp extension
(type -1), which msgpack decodes itself; the codec turns it into the text a Node server sends
its clients (``JSON.stringify``), so that the message passes ``check_event`` and reaches the
clients of an aiosio server as it reaches a Node server's. The bytes are notepack.io's
(``notepack.encode(["x", {when: d}, [d]])``)."""

from __future__ import annotations

import msgpack
import pytest

from aiosio.adapters.redis.codec import decode
from aiosio.protocol.socketio import check_event

# Date, then notepack.io's bytes for ["x", {when: date}, [date]] (timestamp 32, 64 and 96).
NOTEPACK = [
    ("2023-11-14T22:13:20.000Z", "93a17881a47768656ed6ff6553f10091d6ff6553f100"),
    (
        "2023-11-14T22:13:20.123Z",
        "93a17881a47768656ed7ff1d5353006553f10091d7ff1d5353006553f100",
    ),
    (
        "1969-12-31T23:59:59.999Z",
        "93a17881a47768656ec70cff3b8b87c0ffffffffffffffff91c70cff3b8b87c0ffffffffffffffff",
    ),
]


@pytest.mark.parametrize(("text", "hex_bytes"), NOTEPACK)
def test_a_node_date_is_its_json_text(text: str, hex_bytes: str) -> None:
    value = decode(bytes.fromhex(hex_bytes), 1000)
    assert value == ["x", {"when": text}, [text]]
    check_event(value)  # what another server asks to deliver: it passes


def test_a_date_alone_and_deep_inside() -> None:
    stamp = msgpack.Timestamp(1_700_000_000, 5_000_000)
    assert decode(msgpack.packb(stamp), 100) == "2023-11-14T22:13:20.005Z"
    # 1000 arrays deep (msgpack's own limit is near 1024), past Python's recursion limit for
    # a recursive walk: the walk is iterative.
    value = decode(b"\x91" * 1000 + msgpack.packb([stamp]), 100_000)
    for _ in range(1000):
        value = value[0]
    assert value == ["2023-11-14T22:13:20.005Z"]


def test_bytes_that_look_like_a_date_marker_stay_bytes() -> None:
    blob = b"\xd6\xff\x00\x00\x00\x00"
    assert decode(msgpack.packb(["x", blob], use_bin_type=True), 100) == ["x", blob]


def test_a_date_past_pythons_calendar_is_refused() -> None:
    far = msgpack.Timestamp(10**12)  # year 33658: a JavaScript Date, not a datetime
    with pytest.raises(ValueError, match="a date out of range"):
        decode(msgpack.packb(["x", far]), 100)

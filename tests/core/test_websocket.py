"""The sans-I/O WebSocket codec, tested with bytes only (RFC 6455, RFC 7692)."""

from __future__ import annotations

import ast
import base64
import dataclasses
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import aiosio.protocol.websocket as ws_module
from aiosio.protocol.errors import LocalProtocolError
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.websocket import GUID
from aiosio.protocol.websocket import BinaryMessage
from aiosio.protocol.websocket import CloseCode
from aiosio.protocol.websocket import CloseReceived
from aiosio.protocol.websocket import DeflateParams
from aiosio.protocol.websocket import Event
from aiosio.protocol.websocket import HandshakeError
from aiosio.protocol.websocket import InvalidState
from aiosio.protocol.websocket import Opcode
from aiosio.protocol.websocket import PingReceived
from aiosio.protocol.websocket import PongReceived
from aiosio.protocol.websocket import ProtocolViolation
from aiosio.protocol.websocket import Side
from aiosio.protocol.websocket import State
from aiosio.protocol.websocket import TextMessage
from aiosio.protocol.websocket import WebSocketProtocol
from aiosio.protocol.websocket import accept_deflate_response
from aiosio.protocol.websocket import accept_key
from aiosio.protocol.websocket import check_client_handshake
from aiosio.protocol.websocket import check_server_handshake
from aiosio.protocol.websocket import client_deflate_offer
from aiosio.protocol.websocket import encode_frame
from aiosio.protocol.websocket import negotiate_deflate
from aiosio.protocol.websocket import new_client_key
from aiosio.protocol.websocket_frames import close_payload

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# -- helpers -----------------------------------------------------------------------------------


def read_frames(data: bytes) -> list[tuple[int, bytes]]:
    """An independent, minimal decoder: (first byte, unmasked payload) of each frame."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        key = b""
        if b1 & 0x80:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + length]
        assert len(payload) == length, "truncated frame"
        pos += length
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        frames.append((b0, payload))
    return frames


def raw_frame(
    b0: int,
    payload: bytes = b"",
    *,
    key: bytes | None = b"\x01\x02\x03\x04",
    length: int | None = None,
) -> bytes:
    """Build a frame by hand, valid or not: any first byte, any announced length."""
    n = len(payload) if length is None else length
    mask_bit = 0x80 if key is not None else 0
    if n < 126:
        header = bytes((b0, mask_bit | n))
    elif n < 0x10000:
        header = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", b0, mask_bit | 127, n)
    if key is None:
        return header + payload
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def cframe(opcode: Opcode, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A frame as a client sends it (masked)."""
    return encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=True)


def server(**kwargs: object) -> WebSocketProtocol:
    return WebSocketProtocol(Side.SERVER, **kwargs)  # type: ignore[arg-type]


def client(**kwargs: object) -> WebSocketProtocol:
    return WebSocketProtocol(Side.CLIENT, **kwargs)  # type: ignore[arg-type]


def close_code_sent(proto: WebSocketProtocol) -> int | None:
    """The status code of the close frame in ``proto``'s output (None: no status)."""
    frames = read_frames(proto.data_to_send())
    assert frames, "no frame queued"
    b0, payload = frames[-1]
    assert b0 == 0x88, f"last frame is not a close frame: {b0:#x}"
    return int.from_bytes(payload[:2], "big") if payload else None


def deflate_raw(data: bytes, *, wbits: int = 15, flush: int = zlib.Z_SYNC_FLUSH) -> bytes:
    compressor = zlib.compressobj(wbits=-wbits)
    out = compressor.compress(data) + compressor.flush(flush)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def state_of(proto: WebSocketProtocol) -> State:
    """The state, read through a call so that mypy does not keep an earlier narrowing."""
    return proto.state


def close_expected(proto: WebSocketProtocol) -> bool:
    """The property, read through a call for the same reason."""
    return proto.close_expected


def pump(src: WebSocketProtocol, dst: WebSocketProtocol) -> list[Event]:
    """Deliver everything ``src`` queued to ``dst``."""
    return dst.receive_data(src.data_to_send())


def assert_violation(
    proto: WebSocketProtocol, events: list[Event], code: CloseCode, reason: str | None = None
) -> None:
    violation = events[-1]
    assert isinstance(violation, ProtocolViolation), events
    assert violation.code == code
    if reason is not None:
        assert violation.reason == reason
    assert close_code_sent(proto) == code
    assert proto.state is State.CLOSING
    assert proto.close_expected
    # Everything after a violation is ignored.
    assert proto.receive_data(cframe(Opcode.TEXT, b"late")) == []
    assert proto.data_to_send() == b""


# -- the module stays sans-I/O -----------------------------------------------------------------


def test_speedups_import_loads_no_io() -> None:
    import subprocess
    import sys

    code = "import sys, websockets.speedups; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_module_imports_no_io() -> None:
    # the source beside the module: compiled by mypyc (setup.py), __file__ is the extension's
    tree = ast.parse(Path(ws_module.__file__).with_name("websocket.py").read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {
        "__future__",
        "aiosio",
        "base64",
        "collections",
        "dataclasses",
        "enum",
        "hashlib",
        "os",
        "struct",
        "typing",
        "zlib",
        # only websockets.speedups.apply_mask, a C function (no I/O: importing it loads no
        # asyncio, checked below)
        "websockets",
    }, imported


def test_exports_exist() -> None:
    for name in ws_module.__all__:
        assert hasattr(ws_module, name), name


def test_error_families() -> None:
    assert issubclass(InvalidState, LocalProtocolError)
    assert issubclass(HandshakeError, RemoteProtocolError)


def test_events_are_frozen() -> None:
    event = TextMessage("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "y"  # type: ignore[misc]


# -- opening handshake -------------------------------------------------------------------------


def test_accept_key_rfc_example() -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_new_client_key() -> None:
    keys = {new_client_key() for _ in range(10)}
    assert len(keys) == 10
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 16


def good_request() -> dict[str, str]:
    return {
        "host": "example.com",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-version": "13",
        "sec-websocket-key": RFC_KEY,
    }


def test_check_client_handshake_accepts() -> None:
    assert check_client_handshake("GET", good_request()) == RFC_ACCEPT
    headers = good_request() | {"upgrade": "WebSocket", "connection": "keep-alive, Upgrade"}
    assert check_client_handshake("GET", headers) == RFC_ACCEPT


@pytest.mark.parametrize(
    ("method", "changes", "status", "reason", "extra"),
    [
        (
            "POST",
            {},
            405,
            "expected method 'GET' for a websocket upgrade (got 'POST')",
            (("Allow", "GET"),),
        ),
        (
            "GET",
            {"upgrade": None},
            400,
            "missing 'Upgrade: websocket' header (got no 'Upgrade' header)",
            (),
        ),
        (
            "GET",
            {"upgrade": "h2c"},
            400,
            "missing 'Upgrade: websocket' header (got 'Upgrade: h2c')",
            (),
        ),
        (
            "GET",
            {"connection": None},
            400,
            "missing 'Connection: upgrade' header (got no 'Connection' header)",
            (),
        ),
        (
            "GET",
            {"connection": "keep-alive"},
            400,
            "missing 'Connection: upgrade' header (got 'Connection: keep-alive')",
            (),
        ),
        (
            "GET",
            {"connection": "upgrades"},
            400,
            "missing 'Connection: upgrade' header (got 'Connection: upgrades')",
            (),
        ),
        (
            "GET",
            {"sec-websocket-version": None},
            426,
            "unsupported 'Sec-WebSocket-Version' (expected '13', got none)",
            (("Sec-WebSocket-Version", "13"),),
        ),
        (
            "GET",
            {"sec-websocket-version": "8"},
            426,
            "unsupported 'Sec-WebSocket-Version' (expected '13', got '8')",
            (("Sec-WebSocket-Version", "13"),),
        ),
        ("GET", {"sec-websocket-key": None}, 400, "missing 'Sec-WebSocket-Key' header", ()),
        (
            "GET",
            {"sec-websocket-key": "not base64!"},
            400,
            "invalid 'Sec-WebSocket-Key' header (expected base64 of 16 bytes, got 'not base64!')",
            (),
        ),
        (
            "GET",
            {"sec-websocket-key": base64.b64encode(b"x" * 15).decode()},
            400,
            "invalid 'Sec-WebSocket-Key' header (expected base64 of 16 bytes, "
            "got 'eHh4eHh4eHh4eHh4eHh4')",
            (),
        ),
        (
            "GET",
            {"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ"},  # no padding
            400,
            None,
            (),
        ),
        ("GET", {"sec-websocket-key": "é" * 24}, 400, None, ()),
    ],
)
def test_check_client_handshake_errors(
    method: str,
    changes: dict[str, str | None],
    status: int,
    reason: str | None,
    extra: tuple[tuple[str, str], ...],
) -> None:
    headers = good_request()
    for name, value in changes.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(HandshakeError) as info:
        check_client_handshake(method, headers)
    assert info.value.status == status
    assert info.value.headers == extra
    if reason is not None:
        assert info.value.reason == reason
        assert str(info.value) == reason


def test_handshake_error_echo_is_bounded() -> None:
    headers = good_request() | {"upgrade": "x" * 10_000}
    with pytest.raises(HandshakeError) as info:
        check_client_handshake("GET", headers)
    assert len(info.value.reason) < 200
    assert info.value.reason.endswith("...')")


def good_response() -> dict[str, str]:
    return {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-accept": RFC_ACCEPT}


def test_check_server_handshake_accepts() -> None:
    check_server_handshake(101, good_response(), RFC_KEY)


@pytest.mark.parametrize(
    ("status", "changes", "reason"),
    [
        (200, {}, "expected status 101 for a websocket upgrade (got 200)"),
        (101, {"upgrade": None}, "missing 'Upgrade: websocket' header (got no 'Upgrade' header)"),
        (101, {"upgrade": "h2c"}, "missing 'Upgrade: websocket' header (got 'Upgrade: h2c')"),
        (
            101,
            {"connection": "close"},
            "missing 'Connection: upgrade' header (got 'Connection: close')",
        ),
        (
            101,
            {"sec-websocket-accept": None},
            f"missing 'Sec-WebSocket-Accept' header (expected '{RFC_ACCEPT}')",
        ),
        (
            101,
            {"sec-websocket-accept": "bogus"},
            f"invalid 'Sec-WebSocket-Accept' header (expected '{RFC_ACCEPT}', got 'bogus')",
        ),
    ],
)
def test_check_server_handshake_errors(
    status: int, changes: dict[str, str | None], reason: str
) -> None:
    headers = good_response()
    for name, value in changes.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(HandshakeError) as info:
        check_server_handshake(status, headers, RFC_KEY)
    assert info.value.reason == reason
    assert info.value.status == status


def test_handshake_round_trip() -> None:
    key = new_client_key()
    request = good_request() | {"sec-websocket-key": key}
    accept = check_client_handshake("GET", request)
    check_server_handshake(101, good_response() | {"sec-websocket-accept": accept}, key)


# -- permessage-deflate negotiation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "response", "params"),
    [
        ("permessage-deflate", "permessage-deflate", DeflateParams()),
        ("Permessage-Deflate", "permessage-deflate", DeflateParams()),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate", DeflateParams()),
        (
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10",
            DeflateParams(client_max_window_bits=10),
        ),
        (
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9",
            DeflateParams(server_max_window_bits=9),
        ),
        (
            'permessage-deflate; server_max_window_bits="12"; client_max_window_bits = 8',
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=8",
            DeflateParams(server_max_window_bits=12, client_max_window_bits=8),
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            DeflateParams(client_no_context_takeover=True),
        ),
        # The first acceptable offer wins; unknown extensions and bad offers are skipped.
        (
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=7, "
            "permessage-deflate; server_max_window_bits=10, permessage-deflate",
            "permessage-deflate; server_max_window_bits=10",
            DeflateParams(server_max_window_bits=10),
        ),
        (client_deflate_offer(), "permessage-deflate", DeflateParams()),
    ],
)
def test_negotiate_deflate_accepts(offer: str, response: str, params: DeflateParams) -> None:
    assert negotiate_deflate(offer, enabled=True) == (response, params)


@pytest.mark.parametrize(
    "offer",
    [
        None,
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits",  # requires a value
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=09",  # leading zero
        'permessage-deflate; client_max_window_bits=""',
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; mystery",
        "permessage-deflate; " + "a" * 4096,  # too long, whatever it holds
        ", " * 32 + "permessage-deflate",  # too many offers
    ],
)
def test_negotiate_deflate_declines(offer: str | None) -> None:
    assert negotiate_deflate(offer, enabled=True) == (None, None)


def test_negotiate_deflate_disabled() -> None:
    assert negotiate_deflate("permessage-deflate", enabled=False) == (None, None)


@pytest.mark.parametrize(
    ("header", "params"),
    [
        (None, None),
        ("", None),
        ("permessage-deflate", DeflateParams()),
        (
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
            DeflateParams(server_no_context_takeover=True, client_max_window_bits=9),
        ),
        (
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
            DeflateParams(client_no_context_takeover=True, server_max_window_bits=10),
        ),
    ],
)
def test_accept_deflate_response(header: str | None, params: DeflateParams | None) -> None:
    assert accept_deflate_response(header) == params


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (
            "permessage-deflate, permessage-deflate",
            "invalid 'Sec-WebSocket-Extensions' header (expected one 'permessage-deflate', "
            "got 'permessage-deflate, permessage-deflate')",
        ),
        ("x-custom", "unexpected extension 'x-custom' (offered only 'permessage-deflate')"),
        (
            "permessage-deflate; client_max_window_bits",
            "invalid permessage-deflate response: "
            "parameter 'client_max_window_bits' requires a value",
        ),
        (
            "permessage-deflate; foo=1",
            "invalid permessage-deflate response: unknown parameter 'foo'",
        ),
        (
            "permessage-deflate; server_max_window_bits=20",
            "invalid permessage-deflate response: invalid 'server_max_window_bits' value "
            "(expected 8 to 15, got '20')",
        ),
        (
            "permessage-deflate; " + "x" * 5000,
            "invalid 'Sec-WebSocket-Extensions' header (expected at most 4096 characters, "
            "got 5020)",
        ),
    ],
)
def test_accept_deflate_response_errors(header: str, reason: str) -> None:
    with pytest.raises(HandshakeError) as info:
        accept_deflate_response(header)
    assert info.value.reason == reason


# -- encode_frame ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x82\x00"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_encode_frame_lengths(size: int, header: bytes) -> None:
    payload = os.urandom(size)
    frame = encode_frame(Opcode.BINARY, payload)
    assert frame == header + payload
    masked = encode_frame(Opcode.BINARY, payload, mask=True)
    assert masked[0] == header[0]
    assert masked[1] == header[1] | 0x80
    assert masked[2 : len(header)] == header[2:]
    assert read_frames(masked) == [(0x82, payload)]


def test_encode_frame_flags_and_purity() -> None:
    assert encode_frame(Opcode.TEXT, b"hi", fin=False) == b"\x01\x02hi"
    assert encode_frame(Opcode.CONTINUATION, b"hi", rsv1=True) == b"\xc0\x02hi"
    assert encode_frame(Opcode.TEXT, b"hi") == encode_frame(Opcode.TEXT, b"hi")
    # Masks are fresh for every frame.
    assert len({encode_frame(Opcode.TEXT, b"same", mask=True) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    ("opcode", "payload", "kwargs"),
    [
        (Opcode.PING, b"x" * 126, {}),
        (Opcode.CLOSE, b"", {"fin": False}),
        (Opcode.PONG, b"", {"rsv1": True}),
    ],
)
def test_encode_frame_rejects_bad_control_frames(
    opcode: Opcode, payload: bytes, kwargs: dict[str, bool]
) -> None:
    with pytest.raises(ValueError, match="invalid"):
        encode_frame(opcode, payload, **kwargs)


def test_close_payload_is_truncated_on_a_character_boundary() -> None:
    payload = close_payload(1002, "é" * 100)
    assert len(payload) <= 125
    assert payload[:2] == b"\x03\xea"
    assert payload[2:].decode() == "é" * 61


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_server_parses_masked_messages(size: int) -> None:
    proto = server()
    text = "é" * (size // 2) + "a" * (size % 2)
    data = os.urandom(size)
    events = proto.receive_data(cframe(Opcode.TEXT, text.encode()) + cframe(Opcode.BINARY, data))
    assert events == [TextMessage(text), BinaryMessage(data)]
    assert proto.data_to_send() == b""


@pytest.mark.parametrize("size", [0, 125, 126, 65536])
def test_client_parses_unmasked_messages(size: int) -> None:
    proto = client()
    data = os.urandom(size)
    events = proto.receive_data(
        encode_frame(Opcode.BINARY, data) + encode_frame(Opcode.TEXT, b"ok")
    )
    assert events == [BinaryMessage(data), TextMessage("ok")]


def test_server_rejects_unmasked_frames() -> None:
    proto = server()
    events = proto.receive_data(encode_frame(Opcode.TEXT, b"hi"))
    assert_violation(
        proto,
        events,
        CloseCode.PROTOCOL_ERROR,
        "unmasked frame from the client (expected masked frames)",
    )


def test_client_rejects_masked_frames() -> None:
    proto = client()
    events = proto.receive_data(cframe(Opcode.TEXT, b"hi"))
    violation = events[-1]
    assert violation == ProtocolViolation(
        CloseCode.PROTOCOL_ERROR, "masked frame from the server (expected unmasked frames)"
    )
    # The client's close frame is masked.
    out = proto.data_to_send()
    assert out[1] & 0x80
    assert read_frames(out) == [(0x88, b"\x03\xea" + violation.reason.encode())]


def test_fragmented_text_with_interleaved_ping() -> None:
    proto = server()
    text = "héllo wörld"
    raw = text.encode()
    events = proto.receive_data(
        cframe(Opcode.TEXT, raw[:2], fin=False)  # splits the é
        + cframe(Opcode.PING, b"p1")
        + cframe(Opcode.CONTINUATION, raw[2:7], fin=False)
        + cframe(Opcode.PONG, b"p2")
        + cframe(Opcode.CONTINUATION, b"", fin=False)
        + cframe(Opcode.CONTINUATION, raw[7:])
    )
    assert events == [PingReceived(b"p1"), PongReceived(b"p2"), TextMessage(text)]
    assert read_frames(proto.data_to_send()) == [(0x8A, b"p1")]


def test_fragmented_binary_then_single_frame() -> None:
    proto = server()
    events = proto.receive_data(
        cframe(Opcode.BINARY, b"ab", fin=False)
        + cframe(Opcode.CONTINUATION, b"cd")
        + cframe(Opcode.BINARY, b"ef")
    )
    assert events == [BinaryMessage(b"abcd"), BinaryMessage(b"ef")]


def test_client_answers_ping_with_masked_pong() -> None:
    proto = client()
    assert proto.receive_data(encode_frame(Opcode.PING, b"x" * 125)) == [PingReceived(b"x" * 125)]
    out = proto.data_to_send()
    assert out[1] & 0x80
    assert read_frames(out) == [(0x8A, b"x" * 125)]


def test_payload_arriving_in_pieces() -> None:
    proto = server()
    frame = cframe(Opcode.BINARY, b"0123456789" * 20)
    assert proto.receive_data(frame[:5]) == []
    assert proto.receive_data(frame[5:50]) == []
    assert proto.receive_data(b"") == []
    assert proto.receive_data(frame[50:100]) == []
    assert proto.receive_data(frame[100:] + cframe(Opcode.TEXT, b"next")) == [
        BinaryMessage(b"0123456789" * 20),
        TextMessage("next"),
    ]


def test_client_payload_arriving_in_pieces() -> None:
    proto = client()
    frame = encode_frame(Opcode.TEXT, "ü".encode() * 100)
    assert proto.receive_data(frame[:3]) == []
    assert proto.receive_data(frame[3:101]) == []  # splits a character
    assert proto.receive_data(frame[101:]) == [TextMessage("ü" * 100)]


VIOLATIONS: list[tuple[str, Callable[[], WebSocketProtocol], list[bytes], CloseCode, str]] = [
    (
        "rsv1 without extension",
        server,
        [raw_frame(0xC1, b"x")],
        CloseCode.PROTOCOL_ERROR,
        "reserved bit RSV1 set without a negotiated extension",
    ),
    (
        "rsv2",
        server,
        [raw_frame(0xA1, b"x")],
        CloseCode.PROTOCOL_ERROR,
        "reserved bits RSV2/RSV3 set (no negotiated extension uses them)",
    ),
    (
        "rsv3 with deflate",
        lambda: server(deflate=DeflateParams()),
        [raw_frame(0x91, b"x")],
        CloseCode.PROTOCOL_ERROR,
        "reserved bits RSV2/RSV3 set (no negotiated extension uses them)",
    ),
    ("opcode 3", server, [raw_frame(0x83)], CloseCode.PROTOCOL_ERROR, "unknown opcode 0x3"),
    ("opcode 7", server, [raw_frame(0x87)], CloseCode.PROTOCOL_ERROR, "unknown opcode 0x7"),
    ("opcode 11", server, [raw_frame(0x8B)], CloseCode.PROTOCOL_ERROR, "unknown opcode 0xb"),
    ("opcode 15", server, [raw_frame(0x8F)], CloseCode.PROTOCOL_ERROR, "unknown opcode 0xf"),
    (
        "fragmented ping",
        server,
        [raw_frame(0x09, b"x")],
        CloseCode.PROTOCOL_ERROR,
        "fragmented ping frame (control frames must have FIN set)",
    ),
    (
        "long ping",
        server,
        [raw_frame(0x89, b"x" * 126)],
        CloseCode.PROTOCOL_ERROR,
        "ping frame payload exceeds 125 bytes",
    ),
    (
        "long close",
        server,
        [raw_frame(0x88, b"\x03\xe8" + b"x" * 200)],
        CloseCode.PROTOCOL_ERROR,
        "close frame payload exceeds 125 bytes",
    ),
    (
        "continuation without start",
        server,
        [raw_frame(0x80, b"x")],
        CloseCode.PROTOCOL_ERROR,
        "continuation frame without a message in progress",
    ),
    (
        "text during fragmented message",
        server,
        [raw_frame(0x01, b"a"), raw_frame(0x81, b"b")],
        CloseCode.PROTOCOL_ERROR,
        "text frame while a fragmented message is in progress (expected a continuation frame)",
    ),
    (
        "binary during fragmented message",
        server,
        [raw_frame(0x02, b"a"), raw_frame(0x02, b"b")],
        CloseCode.PROTOCOL_ERROR,
        "binary frame while a fragmented message is in progress (expected a continuation frame)",
    ),
    (
        "invalid utf-8",
        server,
        [raw_frame(0x81, b"ok\xff")],
        CloseCode.INVALID_DATA,
        "text message is not valid utf-8 (byte 0xff at offset 2)",
    ),
    (
        "invalid utf-8 surrogate",
        server,
        [raw_frame(0x81, b"\xed\xa0\x80")],
        CloseCode.INVALID_DATA,
        "text message is not valid utf-8 (byte 0xed at offset 0)",
    ),
    (
        "invalid utf-8 across fragments",
        server,
        [raw_frame(0x01, b"\xc3"), raw_frame(0x80, b"x")],
        CloseCode.INVALID_DATA,
        "text message is not valid utf-8 (byte 0xc3 at offset 0)",
    ),
    (
        "truncated utf-8",
        server,
        [raw_frame(0x81, b"\xe2\x82")],
        CloseCode.INVALID_DATA,
        "text message is not valid utf-8 (byte 0xe2 at offset 0)",
    ),
    (
        "close payload of 1 byte",
        server,
        [raw_frame(0x88, b"\x03")],
        CloseCode.PROTOCOL_ERROR,
        "close frame payload of 1 byte (expected 0 or at least 2 bytes)",
    ),
    (
        "close reason not utf-8",
        server,
        [raw_frame(0x88, b"\x03\xe8\xff")],
        CloseCode.INVALID_DATA,
        "close reason is not valid utf-8 (byte 0xff at offset 0)",
    ),
    (
        "64-bit length with msb",
        lambda: server(max_message_size=None),
        [b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00"],
        CloseCode.PROTOCOL_ERROR,
        "64-bit payload length has its most significant bit set",
    ),
    (
        "rsv1 on ping with deflate",
        lambda: server(deflate=DeflateParams()),
        [raw_frame(0xC9, b"")],
        CloseCode.PROTOCOL_ERROR,
        "reserved bit RSV1 set on a ping frame",
    ),
    (
        "rsv1 on continuation with deflate",
        lambda: server(deflate=DeflateParams()),
        [raw_frame(0x41, deflate_raw(b"ab")), raw_frame(0xC0, b"")],
        CloseCode.PROTOCOL_ERROR,
        "reserved bit RSV1 set on a continuation frame",
    ),
    (
        "invalid deflate data",
        lambda: server(deflate=DeflateParams()),
        [raw_frame(0xC1, b"\xff\xff\xff\xff")],
        CloseCode.INVALID_DATA,
        "invalid permessage-deflate compressed data",
    ),
    (
        "client: masked ping",
        client,
        [raw_frame(0x89, b"")],
        CloseCode.PROTOCOL_ERROR,
        "masked frame from the server (expected unmasked frames)",
    ),
]


@pytest.mark.parametrize(
    ("make", "frames", "code", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in VIOLATIONS],
)
def test_violations(
    make: Callable[[], WebSocketProtocol], frames: list[bytes], code: CloseCode, reason: str
) -> None:
    proto = make()
    events = proto.receive_data(b"".join(frames))
    assert [type(e) for e in events] == [ProtocolViolation]
    assert_violation(proto, events, code, reason)


@pytest.mark.parametrize(
    ("make", "frames", "code", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in VIOLATIONS],
)
def test_violations_byte_by_byte(
    make: Callable[[], WebSocketProtocol], frames: list[bytes], code: CloseCode, reason: str
) -> None:
    proto = make()
    events: list[Event] = []
    for byte in b"".join(frames) + b"\x00" * 4:
        events += proto.receive_data(bytes([byte]))
    assert events == [ProtocolViolation(code, reason)]
    assert close_code_sent(proto) == code


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_invalid_close_codes(code: int) -> None:
    proto = server()
    events = proto.receive_data(raw_frame(0x88, code.to_bytes(2, "big") + b"bye"))
    assert_violation(
        proto,
        events,
        CloseCode.PROTOCOL_ERROR,
        f"invalid close code {code} (expected 1000-1003, 1007-1014 or 3000-4999)",
    )


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_valid_close_codes_are_echoed(code: int) -> None:
    proto = server()
    events = proto.receive_data(raw_frame(0x88, code.to_bytes(2, "big") + "ciao ✓".encode()))
    assert events == [CloseReceived(code, "ciao ✓")]
    # RFC 6455 section 5.5.1: the echo carries the code (and no reason).
    assert read_frames(proto.data_to_send()) == [(0x88, code.to_bytes(2, "big"))]
    assert proto.close_expected


def test_violation_after_our_close_queues_no_second_close() -> None:
    proto = server()
    proto.send_close(1001, "going")
    assert read_frames(proto.data_to_send()) == [(0x88, b"\x03\xe9going")]
    events = proto.receive_data(raw_frame(0x83))
    assert events == [ProtocolViolation(CloseCode.PROTOCOL_ERROR, "unknown opcode 0x3")]
    assert proto.data_to_send() == b""
    assert proto.close_expected


def test_events_before_violation_are_kept() -> None:
    proto = server()
    events = proto.receive_data(
        cframe(Opcode.TEXT, b"a") + cframe(Opcode.PING, b"") + raw_frame(0x83)
    )
    assert events[:2] == [TextMessage("a"), PingReceived(b"")]
    assert isinstance(events[2], ProtocolViolation)
    assert [b0 for b0, _ in read_frames(proto.data_to_send())] == [0x8A, 0x88]


# -- limits ------------------------------------------------------------------------------------


def test_max_message_size_single_frame_boundary() -> None:
    proto = server(max_message_size=1000)
    assert proto.receive_data(cframe(Opcode.BINARY, b"x" * 1000)) == [BinaryMessage(b"x" * 1000)]
    proto = server(max_message_size=1000)
    events = proto.receive_data(cframe(Opcode.BINARY, b"x" * 1001))
    assert_violation(
        proto,
        events,
        CloseCode.MESSAGE_TOO_BIG,
        "message of at least 1001 bytes exceeds max_message_size=1000",
    )


def test_max_message_size_is_enforced_before_buffering() -> None:
    proto = server(max_message_size=1000)
    # Only the header of a frame announcing 2**40 bytes: refused at once.
    events = proto.receive_data(raw_frame(0x82, length=2**40)[:14])
    assert_violation(
        proto,
        events,
        CloseCode.MESSAGE_TOO_BIG,
        f"message of at least {2**40} bytes exceeds max_message_size=1000",
    )


def test_max_message_size_fragmented_boundary() -> None:
    fragments = [b"x" * 400, b"y" * 400]
    proto = server(max_message_size=1000)
    events = proto.receive_data(
        cframe(Opcode.BINARY, fragments[0], fin=False)
        + cframe(Opcode.CONTINUATION, fragments[1], fin=False)
        + cframe(Opcode.CONTINUATION, b"z" * 200)
    )
    assert events == [BinaryMessage(b"x" * 400 + b"y" * 400 + b"z" * 200)]

    proto = server(max_message_size=1000)
    head = cframe(Opcode.TEXT, b"x" * 400, fin=False) + cframe(
        Opcode.CONTINUATION, b"y" * 400, fin=False
    )
    assert proto.receive_data(head) == []
    # The header of the last fragment is enough.
    events = proto.receive_data(cframe(Opcode.CONTINUATION, b"z" * 201)[:8])
    assert_violation(
        proto,
        events,
        CloseCode.MESSAGE_TOO_BIG,
        "message of at least 1001 bytes exceeds max_message_size=1000",
    )


def test_max_message_size_none() -> None:
    proto = server(max_message_size=None)
    data = os.urandom(3_000_000)
    assert proto.receive_data(cframe(Opcode.BINARY, data)) == [BinaryMessage(data)]


def test_max_message_size_zero() -> None:
    proto = server(max_message_size=0)
    assert proto.receive_data(cframe(Opcode.TEXT, b"")) == [TextMessage("")]
    events = proto.receive_data(cframe(Opcode.TEXT, b"x"))
    assert_violation(proto, events, CloseCode.MESSAGE_TOO_BIG)


def test_control_frames_do_not_count_towards_the_message() -> None:
    proto = server(max_message_size=10)
    events = proto.receive_data(
        cframe(Opcode.TEXT, b"x" * 5, fin=False)
        + cframe(Opcode.PING, b"p" * 100)
        + cframe(Opcode.CONTINUATION, b"y" * 5)
    )
    assert events == [PingReceived(b"p" * 100), TextMessage("x" * 5 + "y" * 5)]


def test_max_fragments_boundary() -> None:
    proto = server(max_fragments=4)
    frames = [cframe(Opcode.BINARY, b"a", fin=False)]
    frames += [cframe(Opcode.CONTINUATION, b"b", fin=False) for _ in range(2)]
    frames.append(cframe(Opcode.CONTINUATION, b"c"))
    assert proto.receive_data(b"".join(frames)) == [BinaryMessage(b"abbc")]
    # The count restarts with each message.
    assert proto.receive_data(b"".join(frames)) == [BinaryMessage(b"abbc")]

    proto = server(max_fragments=4)
    frames = [cframe(Opcode.BINARY, b"", fin=False)]
    frames += [cframe(Opcode.CONTINUATION, b"", fin=False) for _ in range(10_000)]
    events = proto.receive_data(b"".join(frames))
    assert_violation(
        proto,
        events,
        CloseCode.MESSAGE_TOO_BIG,
        "message in more than 4 fragments exceeds max_fragments=4",
    )


def test_default_max_fragments_stops_a_flood() -> None:
    proto = server()
    flood = cframe(Opcode.TEXT, b"", fin=False) + cframe(Opcode.CONTINUATION, b"", fin=False) * 5000
    events = proto.receive_data(flood)
    assert events == [
        ProtocolViolation(
            CloseCode.MESSAGE_TOO_BIG,
            "message in more than 1024 fragments exceeds max_fragments=1024",
        )
    ]


def test_partial_header_is_bounded() -> None:
    proto = server()
    frame = raw_frame(0x82, b"x" * 70000)
    for i in range(13):  # the header is 14 bytes (64-bit length, mask key)
        assert proto.receive_data(frame[i : i + 1]) == []
        assert proto.buffered == i + 1  # the header's bytes so far, nothing more
    assert proto.receive_data(frame[13:114]) == []
    assert proto.buffered == 100  # the payload's bytes so far
    assert proto.receive_data(frame[114:]) == [BinaryMessage(b"x" * 70000)]
    assert proto.buffered == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_message_size": -1}, {"max_fragments": 0}, {"compress_threshold": -1}],
)
def test_constructor_rejects_bad_limits(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be >= "):
        server(**kwargs)


# -- compressed messages -----------------------------------------------------------------------


def test_compressed_message_decompressed_size_boundary() -> None:
    params = DeflateParams()
    proto = server(deflate=params, max_message_size=5000)
    assert proto.receive_data(raw_frame(0xC1, deflate_raw(b"a" * 5000))) == [
        TextMessage("a" * 5000)
    ]

    proto = server(deflate=params, max_message_size=5000)
    events = proto.receive_data(raw_frame(0xC1, deflate_raw(b"a" * 5001)))
    assert_violation(
        proto,
        events,
        CloseCode.MESSAGE_TOO_BIG,
        "message of at least 5001 bytes exceeds max_message_size=5000",
    )


def test_compressed_fragmented_message_decompressed_size_boundary() -> None:
    compressed = deflate_raw(b"b" * 3000 + b"c" * 2000)
    pieces = [compressed[:5], compressed[5:9], compressed[9:]]

    def frames() -> bytes:
        return (
            raw_frame(0x42, pieces[0])
            + raw_frame(0x00, pieces[1])
            + raw_frame(0x89, b"ping")
            + raw_frame(0x80, pieces[2])
        )

    proto = server(deflate=DeflateParams(), max_message_size=5000)
    assert proto.receive_data(frames()) == [
        PingReceived(b"ping"),
        BinaryMessage(b"b" * 3000 + b"c" * 2000),
    ]
    proto = server(deflate=DeflateParams(), max_message_size=4999)
    events = proto.receive_data(frames())
    assert events[0] == PingReceived(b"ping")
    assert_violation(
        proto,
        events,
        CloseCode.MESSAGE_TOO_BIG,
        "message of at least 5000 bytes exceeds max_message_size=4999",
    )


def test_compressed_bomb_is_stopped_while_decompressing() -> None:
    proto = server(deflate=DeflateParams())
    bomb = deflate_raw(b"\x00" * 50_000_000)  # about 50 KB on the wire
    events = proto.receive_data(raw_frame(0xC2, bomb))
    assert_violation(
        proto,
        events,
        CloseCode.MESSAGE_TOO_BIG,
        "message of at least 1000001 bytes exceeds max_message_size=1000000",
    )


def test_incompressible_message_at_the_limit_passes() -> None:
    data = os.urandom(5000)
    compressed = deflate_raw(data)
    assert len(compressed) > 5000
    proto = server(deflate=DeflateParams(), max_message_size=5000)
    assert proto.receive_data(raw_frame(0xC2, compressed)) == [BinaryMessage(data)]


def test_compressed_wire_size_is_bounded_before_buffering() -> None:
    # zlib's deflateBound(1000) (1000 + 125 + 16) plus 64 bytes of empty sync-flush blocks: the
    # most a peer may send for a message of max_message_size bytes, refused beyond it.
    bound = 1205
    proto = server(deflate=DeflateParams(), max_message_size=1000)
    assert proto.receive_data(raw_frame(0xC2, length=bound)[:8]) == []
    proto = server(deflate=DeflateParams(), max_message_size=1000)
    events = proto.receive_data(raw_frame(0xC2, length=bound + 1)[:8])
    assert_violation(
        proto,
        events,
        CloseCode.MESSAGE_TOO_BIG,
        f"message of at least {bound + 1} bytes exceeds max_message_size=1000",
    )


def test_compressed_message_ending_with_bfinal_block() -> None:
    # RFC 7692 section 7.2.3.4: a message may end the deflate stream; the next starts anew.
    proto = server(deflate=DeflateParams())
    first = deflate_raw(b"first" * 10, flush=zlib.Z_FINISH)
    second = deflate_raw(b"second" * 10, flush=zlib.Z_FINISH)
    events = proto.receive_data(raw_frame(0xC1, first) + raw_frame(0xC1, second))
    assert events == [TextMessage("first" * 10), TextMessage("second" * 10)]


def test_compressed_empty_message() -> None:
    proto = server(deflate=DeflateParams())
    assert proto.receive_data(raw_frame(0xC1, b"\x00")) == [TextMessage("")]
    assert proto.receive_data(raw_frame(0xC1, b"")) == [TextMessage("")]


def test_uncompressed_messages_with_deflate_active() -> None:
    proto = server(deflate=DeflateParams())
    assert proto.receive_data(cframe(Opcode.TEXT, b"plain")) == [TextMessage("plain")]


@pytest.mark.parametrize("side", [Side.CLIENT, Side.SERVER])
def test_compress_false_sends_a_message_uncompressed_with_deflate_active(side: Side) -> None:
    """The per-message flag (Node: ``compress(false)``): no RSV1, the payload as it is; the
    next message compresses again in the same context, and the peer reads all three."""
    sender = WebSocketProtocol(side, deflate=DeflateParams(), compress_threshold=0)
    other = Side.SERVER if side is Side.CLIENT else Side.CLIENT
    receiver = WebSocketProtocol(other, deflate=DeflateParams())
    sender.send_text("one " * 50)
    sender.send_text("two " * 50, compress=False)
    sender.send_binary(b"three" * 50, compress=False)
    sender.send_binary(b"four" * 50)
    wire = sender.data_to_send()
    assert [b0 & 0x40 for b0, _ in read_frames(wire)] == [0x40, 0, 0, 0x40]
    assert receiver.receive_data(wire) == [
        TextMessage("one " * 50),
        TextMessage("two " * 50),
        BinaryMessage(b"three" * 50),
        BinaryMessage(b"four" * 50),
    ]


def test_no_offer_and_an_answer_with_an_extension() -> None:
    """A client that offered no extension fails a server that answers with one (RFC 6455
    section 4.1)."""
    assert accept_deflate_response(None, offered=False) is None
    with pytest.raises(HandshakeError) as info:
        accept_deflate_response("permessage-deflate", offered=False)
    assert info.value.reason == (
        "unexpected extension 'permessage-deflate' (offered none: per_message_deflate is off)"
    )


def test_compressed_text_with_invalid_utf8() -> None:
    proto = server(deflate=DeflateParams())
    events = proto.receive_data(raw_frame(0xC1, deflate_raw(b"abc\xff")))
    assert_violation(
        proto,
        events,
        CloseCode.INVALID_DATA,
        "text message is not valid utf-8 (byte 0xff at offset 3)",
    )


def test_unlimited_compressed_message() -> None:
    proto = server(deflate=DeflateParams(), max_message_size=None)
    data = b"z" * 2_000_000
    assert proto.receive_data(raw_frame(0xC2, deflate_raw(data))) == [BinaryMessage(data)]


def connect(
    params: DeflateParams | None, **kwargs: object
) -> tuple[WebSocketProtocol, WebSocketProtocol]:
    return server(deflate=params, **kwargs), client(deflate=params, **kwargs)


def negotiated(offer: str) -> DeflateParams:
    response, params = negotiate_deflate(offer, enabled=True)
    assert params is not None
    assert accept_deflate_response(response) == params
    return params


@pytest.mark.parametrize(
    "offer",
    [
        client_deflate_offer(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
    ],
)
def test_deflate_round_trip(offer: str) -> None:
    params = negotiated(offer)
    srv, cli = connect(params)
    text = "Socket.IO " * 500
    data = bytes(range(256)) * 20
    for _ in range(3):
        cli.send_text(text)
        cli.send_binary(data)
        cli.send_text("short")
        wire = cli.data_to_send()
        frames = read_frames(wire)
        compressed = [bool(b0 & 0x40) for b0, _ in frames]
        # 8-bit windows cannot be produced by zlib: the client then sends plain messages.
        big = params.client_max_window_bits > 8
        assert compressed == [big, big, False]
        if big:
            assert len(wire) < len(text) + len(data)
        assert srv.receive_data(wire) == [
            TextMessage(text),
            BinaryMessage(data),
            TextMessage("short"),
        ]

        srv.send_text(text)
        srv.send_binary(data)
        wire = srv.data_to_send()
        big = params.server_max_window_bits > 8
        assert [bool(b0 & 0x40) for b0, _ in read_frames(wire)] == [big, big]
        assert cli.receive_data(wire) == [TextMessage(text), BinaryMessage(data)]


def test_context_takeover_shrinks_repeated_messages() -> None:
    text = "a somewhat repetitive payload " + os.urandom(600).hex()
    srv, _ = connect(DeflateParams())
    srv.send_text(text)
    first = len(srv.data_to_send())
    srv.send_text(text)
    second = len(srv.data_to_send())
    assert second < first / 4

    srv, cli = connect(DeflateParams(server_no_context_takeover=True))
    srv.send_text(text)
    first_frame = srv.data_to_send()
    srv.send_text(text)
    second_frame = srv.data_to_send()
    assert first_frame == second_frame  # the compressor starts afresh each message
    assert cli.receive_data(first_frame + second_frame) == [TextMessage(text)] * 2


def test_no_context_takeover_receiver_resets() -> None:
    # A peer honouring no_context_takeover compresses every message alone; so may we decode.
    text = b"hello deflate " * 100
    frame = raw_frame(0xC1, deflate_raw(text))
    proto = server(deflate=DeflateParams(client_no_context_takeover=True))
    assert proto.receive_data(frame + frame) == [TextMessage(text.decode())] * 2


def test_compress_threshold() -> None:
    srv, cli = connect(DeflateParams(), compress_threshold=0)
    srv.send_text("")
    srv.send_binary(b"x")
    wire = srv.data_to_send()
    assert [b0 for b0, _ in read_frames(wire)] == [0xC1, 0xC2]
    assert read_frames(wire)[0][1] == b"\x00"  # RFC 7692 section 7.2.3.6
    assert cli.receive_data(wire) == [TextMessage(""), BinaryMessage(b"x")]

    srv = server(deflate=DeflateParams())
    srv.send_binary(b"x" * 1023)
    srv.send_binary(b"x" * 1024)
    assert [b0 for b0, _ in read_frames(srv.data_to_send())] == [0x82, 0xC2]


# -- byte-by-byte ------------------------------------------------------------------------------


def sample_stream() -> bytes:
    return b"".join(
        [
            cframe(Opcode.TEXT, "héllo".encode()),
            cframe(Opcode.BINARY, b"\x00\x01" * 70),  # 16-bit length
            cframe(Opcode.TEXT, b"frag", fin=False),
            cframe(Opcode.PING, b"ping!"),
            cframe(Opcode.CONTINUATION, b"ment", fin=False),
            cframe(Opcode.CONTINUATION, b"ed"),
            cframe(Opcode.PONG, b""),
            cframe(Opcode.BINARY, b""),
            raw_frame(0xC1, deflate_raw(b"compressed " * 30)),
            raw_frame(0x42, deflate_raw(b"abc" * 50)[:3])
            + raw_frame(0x80, deflate_raw(b"abc" * 50)[3:]),
            cframe(Opcode.CLOSE, b"\x03\xe8done"),
            cframe(Opcode.TEXT, b"ignored after close"),
        ]
    )


def feed(proto: WebSocketProtocol, chunks: list[bytes]) -> tuple[list[Event], bytes]:
    events: list[Event] = []
    out = b""
    for chunk in chunks:
        events += proto.receive_data(chunk)
        out += proto.data_to_send()
    return events, out


def test_split_at_every_offset_gives_the_same_events() -> None:
    stream = sample_stream()
    expected_events, expected_out = feed(server(deflate=DeflateParams()), [stream])
    assert expected_events == [
        TextMessage("héllo"),
        BinaryMessage(b"\x00\x01" * 70),
        PingReceived(b"ping!"),
        TextMessage("fragmented"),
        PongReceived(b""),
        BinaryMessage(b""),
        TextMessage("compressed " * 30),
        BinaryMessage(b"abc" * 50),
        CloseReceived(1000, "done"),
    ]
    assert read_frames(expected_out) == [(0x8A, b"ping!"), (0x88, b"\x03\xe8")]
    for i in range(len(stream) + 1):
        got = feed(server(deflate=DeflateParams()), [stream[:i], stream[i:]])
        assert got == (expected_events, expected_out), i
    one_by_one = [stream[i : i + 1] for i in range(len(stream))]
    assert feed(server(deflate=DeflateParams()), one_by_one) == (expected_events, expected_out)


def test_large_frame_split_in_header_and_payload() -> None:
    data = os.urandom(70_000)
    stream = cframe(Opcode.BINARY, data) + cframe(Opcode.TEXT, b"after")
    expected = [BinaryMessage(data), TextMessage("after")]
    for i in [*range(16), 1000, 69_999, 70_013, 70_014, len(stream) - 1]:
        assert feed(server(), [stream[:i], stream[i:]])[0] == expected, i


# -- closing handshake -------------------------------------------------------------------------


def test_close_initiated_by_server() -> None:
    srv, cli = server(), client()
    srv.send_close(1001, "going away")
    assert srv.state is State.CLOSING
    assert not close_expected(srv)
    assert pump(srv, cli) == [CloseReceived(1001, "going away")]
    assert cli.state is State.CLOSING
    assert cli.close_expected
    assert pump(cli, srv) == [CloseReceived(1001, "")]
    assert close_expected(srv)
    assert srv.data_to_send() == b""
    srv.receive_eof()
    assert state_of(srv) is State.CLOSED


def test_close_initiated_by_client() -> None:
    srv, cli = server(), client()
    cli.send_close()
    assert not cli.close_expected
    assert pump(cli, srv) == [CloseReceived(1000, "")]
    assert srv.close_expected
    assert pump(srv, cli) == [CloseReceived(1000, "")]
    assert cli.close_expected


def test_close_without_status() -> None:
    srv, cli = server(), client()
    cli.send_close(CloseCode.NO_STATUS)
    assert read_frames(cli.data_to_send()) == [(0x88, b"")]
    assert srv.receive_data(cframe(Opcode.CLOSE, b"")) == [CloseReceived(1005, "")]
    assert read_frames(srv.data_to_send()) == [(0x88, b"")]


def test_messages_still_arrive_while_closing() -> None:
    srv = server()
    srv.send_close()
    srv.data_to_send()
    events = srv.receive_data(cframe(Opcode.TEXT, b"last words") + cframe(Opcode.PING, b"?"))
    assert events == [TextMessage("last words"), PingReceived(b"?")]
    assert srv.data_to_send() == b""  # no pong after our close frame
    assert not srv.close_expected


def test_data_after_close_is_ignored() -> None:
    srv = server()
    events = srv.receive_data(cframe(Opcode.CLOSE, b"\x03\xe8") + cframe(Opcode.TEXT, b"x"))
    assert events == [CloseReceived(1000, "")]
    assert srv.receive_data(cframe(Opcode.TEXT, b"y")) == []


def test_receive_eof() -> None:
    srv = server()
    srv.receive_data(cframe(Opcode.TEXT, b"partial")[:4])
    srv.receive_eof()
    assert state_of(srv) is State.CLOSED
    assert srv.close_expected
    assert srv.receive_data(cframe(Opcode.TEXT, b"x")) == []
    with pytest.raises(InvalidState, match="the connection is CLOSED"):
        srv.send_text("x")


@pytest.mark.parametrize(
    "send",
    [
        lambda p: p.send_text("x"),
        lambda p: p.send_binary(b"x"),
        lambda p: p.send_ping(),
        lambda p: p.send_pong(),
        lambda p: p.send_close(),
        lambda p: p.send_frame(encode_frame(Opcode.TEXT, b"x")),
    ],
)
def test_send_after_close_raises(send: Callable[[WebSocketProtocol], None]) -> None:
    proto = server()
    proto.send_close()
    with pytest.raises(InvalidState) as info:
        send(proto)
    assert "the connection is CLOSING (expected OPEN)" in str(info.value)


@pytest.mark.parametrize(
    ("code", "reason", "match"),
    [
        (1005, "why", "close code 1005 carries no reason"),
        (1006, "", "invalid close code 1006"),
        (999, "", "invalid close code 999"),
        (1000, "x" * 124, "close reason of 124 bytes exceeds 123 bytes"),
    ],
)
def test_send_close_rejects_bad_arguments(code: int, reason: str, match: str) -> None:
    proto = server()
    with pytest.raises(ValueError, match=match):
        proto.send_close(code, reason)
    assert proto.state is State.OPEN


def test_send_close_accepts_maximum_reason() -> None:
    proto = server()
    proto.send_close(4000, "x" * 123)
    assert read_frames(proto.data_to_send()) == [(0x88, b"\x0f\xa0" + b"x" * 123)]


def test_send_ping_rejects_long_payload() -> None:
    with pytest.raises(ValueError, match="invalid ping frame"):
        server().send_ping(b"x" * 126)


# -- send_frame (broadcast) --------------------------------------------------------------------


def test_send_frame_broadcast() -> None:
    frame = encode_frame(Opcode.TEXT, b'42["news",{"hello":"world"}]')
    peers = [server() for _ in range(3)]
    for peer in peers:
        peer.send_frame(frame)
        peer.send_text("after")
    for peer in peers:
        out = peer.data_to_send()
        assert out == frame + encode_frame(Opcode.TEXT, b"after")
        assert client().receive_data(out) == [
            TextMessage('42["news",{"hello":"world"}]'),
            TextMessage("after"),
        ]


def test_send_frame_client_side_needs_masked_frames() -> None:
    proto = client()
    proto.send_frame(encode_frame(Opcode.BINARY, b"x", mask=True))
    with pytest.raises(ValueError, match="invalid pre-encoded frame for the client side"):
        proto.send_frame(encode_frame(Opcode.BINARY, b"x"))


@pytest.mark.parametrize(
    "frame",
    [
        encode_frame(Opcode.TEXT, b"x", mask=True),
        encode_frame(Opcode.TEXT, b"x", rsv1=True),
        b"\x81",
    ],
)
def test_send_frame_rejects_frames_this_side_cannot_send(frame: bytes) -> None:
    with pytest.raises(ValueError, match="invalid pre-encoded frame for the server side"):
        server().send_frame(frame)


def test_send_frame_refused_with_deflate() -> None:
    proto = server(deflate=DeflateParams())
    with pytest.raises(InvalidState, match="permessage-deflate is active"):
        proto.send_frame(encode_frame(Opcode.TEXT, b"x"))


# -- server <-> client -------------------------------------------------------------------------


def test_round_trip_server_client() -> None:
    srv, cli = server(), client()
    cli.send_text("hello")
    cli.send_binary(b"\x00\xff" * 40_000)
    cli.send_ping(b"are you there")
    assert pump(cli, srv) == [
        TextMessage("hello"),
        BinaryMessage(b"\x00\xff" * 40_000),
        PingReceived(b"are you there"),
    ]
    srv.send_text("world ✓")
    srv.send_pong(b"unsolicited")
    assert pump(srv, cli) == [
        PongReceived(b"are you there"),
        TextMessage("world ✓"),
        PongReceived(b"unsolicited"),
    ]
    assert srv.data_to_send() == b""
    assert cli.data_to_send() == b""


def test_data_to_send_joins_and_clears() -> None:
    proto = server()
    assert proto.data_to_send() == b""
    proto.send_text("a")
    assert proto.data_to_send() == b"\x81\x01a"
    proto.send_text("a")
    proto.send_binary(b"b")
    assert proto.data_to_send() == b"\x81\x01a\x82\x01b"
    assert proto.data_to_send() == b""


# -- fuzzing -----------------------------------------------------------------------------------

DOCUMENTED_EVENTS = (
    TextMessage,
    BinaryMessage,
    PingReceived,
    PongReceived,
    CloseReceived,
    ProtocolViolation,
)


def check_fuzzed(proto: WebSocketProtocol, chunks: list[bytes]) -> None:
    events: list[Event] = []
    out = b""
    for chunk in chunks:
        events += proto.receive_data(chunk)
        out += proto.data_to_send()
    for i, event in enumerate(events):
        assert isinstance(event, DOCUMENTED_EVENTS)
        if isinstance(event, ProtocolViolation | CloseReceived):
            assert i == len(events) - 1  # nothing after the end
    frames = read_frames(out)  # everything we queued is well formed
    for b0, payload in frames:
        assert b0 in (0x88, 0x8A)
        assert len(payload) <= 125
    assert [b0 for b0, _ in frames].count(0x88) <= 1
    proto.receive_eof()
    assert proto.state is State.CLOSED


chunked_bytes = st.lists(st.binary(max_size=64), max_size=8)


@settings(max_examples=300, deadline=None)
@given(chunks=chunked_bytes, deflate=st.booleans(), limit=st.sampled_from([None, 0, 10, 1000]))
def test_fuzz_arbitrary_bytes(chunks: list[bytes], deflate: bool, limit: int | None) -> None:
    proto = server(deflate=DeflateParams() if deflate else None, max_message_size=limit)
    check_fuzzed(proto, chunks)


@settings(max_examples=200, deadline=None)
@given(chunks=chunked_bytes, deflate=st.booleans())
def test_fuzz_arbitrary_bytes_client_side(chunks: list[bytes], deflate: bool) -> None:
    proto = client(deflate=DeflateParams() if deflate else None, max_message_size=100)
    events: list[Event] = []
    for chunk in chunks:
        events += proto.receive_data(chunk)
    assert all(isinstance(event, DOCUMENTED_EVENTS) for event in events)
    read_frames(proto.data_to_send())


@st.composite
def plausible_frames(draw: st.DrawFn) -> bytes:
    """Frames with valid-looking headers, so the fuzzer reaches past the first checks."""
    frames = []
    for _ in range(draw(st.integers(1, 6))):
        b0 = draw(
            st.sampled_from([0x81, 0x82, 0x01, 0x02, 0x80, 0x00, 0x89, 0x8A, 0x88, 0xC1, 0xC2])
        )
        payload = draw(
            st.one_of(
                st.binary(max_size=40),
                st.text(max_size=20).map(str.encode),
                st.builds(lambda t: deflate_raw(t.encode()), st.text(max_size=40)),
                st.builds(
                    lambda c, t: c.to_bytes(2, "big") + t.encode(),
                    st.integers(0, 5000),
                    st.text(max_size=5),
                ),
            )
        )
        frames.append(raw_frame(b0, payload, key=draw(st.binary(min_size=4, max_size=4))))
    return b"".join(frames)


@settings(max_examples=300, deadline=None)
@given(stream=plausible_frames(), cut=st.integers(0, 400), deflate=st.booleans())
def test_fuzz_plausible_frames(stream: bytes, cut: int, deflate: bool) -> None:
    params = DeflateParams() if deflate else None
    check_fuzzed(server(deflate=params, max_fragments=3), [stream[:cut], stream[cut:]])
    # Splitting never changes the outcome.
    whole = server(deflate=params).receive_data(stream)
    assert feed(server(deflate=params), [stream[:cut], stream[cut:]])[0] == whole


@settings(max_examples=100, deadline=None)
@given(offer=st.text(max_size=300))
def test_fuzz_negotiate_deflate(offer: str) -> None:
    response, params = negotiate_deflate(offer, enabled=True)
    assert (response is None) == (params is None)
    if response is not None:
        assert accept_deflate_response(response) == params


@settings(max_examples=100, deadline=None)
@given(header=st.text(max_size=300))
def test_fuzz_accept_deflate_response(header: str) -> None:
    error: HandshakeError | None = None
    try:
        result = accept_deflate_response(header)
    except HandshakeError as exc:
        error = exc
    if error is not None:
        assert error.reason == str(error)
        assert error.status == 101
    else:
        assert result is None or isinstance(result, DeflateParams)

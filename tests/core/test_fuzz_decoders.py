"""Every decoder of the library, fuzzed: whatever the input, each raises only the exceptions its
docstring lists (STYLE.md principle 4, HARDENING.md 1 to 7 and 19).

Inputs are structured (a valid prefix, then an arbitrary tail; valid encodings, then cut, spliced
or mutated), not only random bytes, so the fuzzer gets past the first check of each parser. The
whole file is bounded: a fixed number of examples per test, no deadline per example (the machine
is shared), well under 30 seconds in all.

Decoders and what they may raise:

* ``protocol.engineio.decode_packet`` (revisions 3 and 4): :class:`RemoteProtocolError`;
  ``decode_payload`` (v4 text, v3 text, v3 binary): :class:`PayloadError`.
* ``protocol.socketio.Decoder.feed`` (text packets, attachments, their reconstruction):
  :class:`RemoteProtocolError`, and the decoder is clean after it; ``split_v4_namespace`` (the
  protocol 4 CONNECT namespace and query): nothing; ``check_event`` (values from other servers):
  :class:`RemoteProtocolError`.
* ``protocol.websocket.WebSocketProtocol.receive_data`` (frames, both sides, with and without
  permessage-deflate): nothing (violations are events); ``check_client_handshake`` /
  ``check_server_handshake`` / ``accept_deflate_response``: :class:`HandshakeError`;
  ``negotiate_deflate``: nothing.
* ``protocol.session.EngineSession`` inputs that decode (a POST body, a WebSocket message, a probe
  message): nothing (a bad packet closes the session with ``parse error``).
* ``protocol.cors.Cors`` on any ``Origin`` and preflight headers: nothing.
* ``adapters.redis.codec.decode`` (messages from Redis): :class:`ValueError`.
* ``engine.ended.EndedSessions.get`` on any session id: nothing.
* ``client.http.HttpConnection.request`` on any answer from a server: :class:`ConnectError` (a
  ``101`` answer used to escape as httptools' ``HttpParserUpgrade``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import zlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from aiosio.adapters.redis.codec import decode as redis_decode
from aiosio.adapters.redis.codec import encode_json
from aiosio.adapters.redis.codec import encode_msgpack
from aiosio.client.errors import ConnectError
from aiosio.client.http import Endpoint
from aiosio.client.http import HttpConnection
from aiosio.client.http import HttpResult
from aiosio.client.http import WebSocketConnection
from aiosio.engine.ended import EndedSessions
from aiosio.protocol import engineio
from aiosio.protocol import socketio
from aiosio.protocol import websocket as ws
from aiosio.protocol.cors import Cors
from aiosio.protocol.cors import is_preflight
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.session import Closed
from aiosio.protocol.session import EngineConfig
from aiosio.protocol.session import EngineSession
from aiosio.protocol.session import SessionId
from aiosio.protocol.session import State
from aiosio.protocol.session import TransportKind
from aiosio.protocol.socketio import Limits

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies -----------------------------------------------------------------------------------

# Text that reaches the interesting branches: digits, separators, brackets, JSON punctuation,
# non-ASCII, astral characters and lone surrogates (what JavaScript strings may hold).
_ALPHABET = st.sampled_from(
    [*"0123456789:-,/?#[]{}\"'bpr_ \x1e\x00\\", "é", "\u2028", "😀", "\ud800", "\udfff", "\uffff"]
)
tails = st.text(_ALPHABET, max_size=40) | st.text(max_size=20)
raw_bytes = st.binary(max_size=64)


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Cut, splice or flip ``data``: a valid encoding made slightly wrong."""
    if not data:
        return draw(raw_bytes)
    op = draw(st.sampled_from(["cut", "insert", "flip", "splice", "same"]))
    at = draw(st.integers(0, len(data)))
    if op == "cut":
        return data[:at]
    if op == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if op == "flip" and at < len(data):
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if op == "splice":
        return data[:at] + data[draw(st.integers(0, len(data))) :]
    return data


# -- Engine.IO ------------------------------------------------------------------------------------

_EIO_TYPES = [str(t.value) for t in engineio.PacketType]


@st.composite
def eio_text_packets(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["", *_EIO_TYPES, "b", "b4", "b9", "7", "x"]))
    if prefix.startswith("b") and draw(st.booleans()):
        return prefix + base64.b64encode(draw(raw_bytes)).decode()[: draw(st.integers(0, 90))]
    return prefix + draw(tails)


@FUZZ
@given(
    raw=eio_text_packets() | raw_bytes | st.builds(lambda b: b"\x04" + b, raw_bytes),
    protocol=st.sampled_from([3, 4]),
)
def test_engineio_decode_packet(raw: str | bytes, protocol: int) -> None:
    try:
        packet = engineio.decode_packet(raw, protocol)
    except RemoteProtocolError:
        return
    assert isinstance(packet.type, engineio.PacketType)
    assert isinstance(packet.data, str | bytes)


_packet_values = st.builds(
    engineio.Packet,
    st.sampled_from(list(engineio.PacketType)),
    st.text(_ALPHABET, max_size=12) | st.binary(max_size=12),
)


@st.composite
def eio_payloads(draw: st.DrawFn) -> tuple[bytes, int, bool]:
    """A valid payload of either revision, then maybe mutated; or pieces of the v3 framing."""
    protocol = draw(st.sampled_from([3, 4]))
    packets = draw(st.lists(_packet_values, max_size=5))
    if protocol == 4:
        packets = [
            p if isinstance(p.data, bytes) else engineio.Packet(p.type, p.data.replace("\x1e", ""))
            for p in packets
        ]
    supports_binary = draw(st.booleans())
    try:
        body, content_type = engineio.encode_payload(packets, protocol, supports_binary)
    except UnicodeEncodeError:  # a lone surrogate: not sendable as UTF-8, draw pieces instead
        body, content_type = b"", engineio.TEXT_CONTENT_TYPE
    binary = content_type == engineio.BINARY_CONTENT_TYPE
    if draw(st.booleans()):
        pieces = draw(
            st.lists(
                st.sampled_from([b"0:", b"1:", b"2:4", b"10:", b"\x00", b"\x01", b"\xff", b":"])
                | st.builds(lambda n: str(n).encode() + b":", st.integers(0, 10**11))
                | st.builds(lambda n: bytes([0, *map(int, str(n))]) + b"\xff", st.integers(0, 99))
                | st.text(_ALPHABET, max_size=6).map(lambda t: t.encode("utf-8", "replace")),
                max_size=8,
            )
        )
        body = b"".join(pieces)
        binary = draw(st.booleans())
    return mutate(body, draw), protocol, binary


@FUZZ
@given(case=eio_payloads(), max_packets=st.integers(1, 6))
def test_engineio_decode_payload(case: tuple[bytes, int, bool], max_packets: int) -> None:
    body, protocol, binary = case
    try:
        packets = engineio.decode_payload(body, protocol, binary=binary, max_packets=max_packets)
    except engineio.PayloadError as exc:
        packets = exc.decoded
    assert len(packets) <= max_packets
    assert all(isinstance(p, engineio.Packet) for p in packets)


# -- Socket.IO ------------------------------------------------------------------------------------

_SIO_PREFIXES = [
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "51-",
    "52-",
    "511-",
    "50-",
    "5-1-",
    "61-",
    "6\u0661-",  # a non-ASCII digit
    "0/admin,",
    "0/admin?token=x,",
    "2/a,",
    "212",
    "3/x,9",
    "2" + "9" * 17,
    "0//[",
    "0//]?x=[",
]
_SIO_BODIES = [
    '["x"]',
    '["connect"]',
    '["disconnect","x"]',
    "[1]",
    "[true]",
    "[null]",
    "[]",
    "{}",
    '{"token":1}',
    '"text"',
    '["x",{"_placeholder":true,"num":0}]',
    '["x",{"_placeholder":true,"num":"0"}]',
    '["x",{"_placeholder":true,"num":1.0}]',
    '["x",{"_placeholder":true,"num":true}]',
    '["x",{"_placeholder":true,"num":99}]',
    "[" * 40 + "]" * 40,
    '["\\ud800"]',
    "[1e999]",
    "NaN",
]


@st.composite
def sio_messages(draw: st.DrawFn) -> list[str | bytes]:
    messages: list[str | bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["packet", "packet", "attachment", "text"]))
        if kind == "attachment":
            messages.append(draw(st.binary(max_size=8)))
        elif kind == "text":
            messages.append(draw(tails))
        else:
            body = draw(st.sampled_from(["", *_SIO_BODIES]) | tails)
            messages.append(draw(st.sampled_from(_SIO_PREFIXES)) + body)
    return messages


@FUZZ
@given(
    messages=sio_messages(),
    limits=st.sampled_from(
        [Limits(), Limits(max_attachments=2, max_depth=3, max_namespace_length=4, max_ack_id=99)]
    ),
    protocol=st.sampled_from([5, 4]),
)
def test_socketio_decoder(messages: list[str | bytes], limits: Limits, protocol: int) -> None:
    decoder = socketio.Decoder(limits, protocol=protocol)
    for message in messages:
        try:
            packet = decoder.feed(message)
        except RemoteProtocolError:
            assert not decoder.pending  # nothing half-decoded is kept
            continue
        if packet is None:
            assert decoder.pending
            continue
        assert packet.type in (
            socketio.PacketType.CONNECT,
            socketio.PacketType.DISCONNECT,
            socketio.PacketType.EVENT,
            socketio.PacketType.ACK,
            socketio.PacketType.CONNECT_ERROR,
        )
        if packet.type is socketio.PacketType.EVENT:
            name = packet.data[0]
            assert type(name) in (str, int, float)
            assert name not in socketio.RESERVED_EVENTS
        nsp = packet.nsp
        if protocol == 4 and packet.type is socketio.PacketType.CONNECT:
            nsp = socketio.split_v4_namespace(nsp)[0]  # the query is not the namespace
        assert len(nsp) <= limits.max_namespace_length
        assert packet.id is None or 0 <= packet.id <= limits.max_ack_id
    decoder.reset()
    assert decoder.feed('2["ok"]') == socketio.Packet(socketio.PacketType.EVENT, "/", ["ok"])


@st.composite
def binary_packets(draw: st.DrawFn) -> list[str | bytes]:
    """A binary packet with its attachments, placeholders in and out of range, then maybe fewer
    or more attachments than announced."""
    count = draw(st.integers(0, 4))
    nums = draw(
        st.lists(
            st.integers(-1, 5) | st.sampled_from(["0", 1.0, True, None, [0]]),
            min_size=1,
            max_size=4,
        )
    )
    args = ["ev", *({"_placeholder": True, "num": n} for n in nums)]
    prefix = draw(st.sampled_from(["5", "6", "5/nsp,", "61"]))
    header = f"{prefix}{count}-{'7' if prefix.startswith('6') else ''}{json.dumps(args)}"
    sent = draw(st.integers(0, count + 1))
    return [header, *(draw(st.binary(max_size=4)) for _ in range(sent))]


@FUZZ
@given(messages=binary_packets())
def test_socketio_attachments_reconstruction(messages: list[str | bytes]) -> None:
    decoder = socketio.Decoder(Limits(max_attachments=3))
    for message in messages:
        try:
            packet = decoder.feed(message)
        except RemoteProtocolError:
            assert not decoder.pending
            return
        if packet is not None:
            assert not decoder.pending
            # Every placeholder was replaced by an attachment.
            assert "_placeholder" not in json.dumps(packet.data, default=lambda _b: "bin")


@FUZZ
@given(nsp=st.builds(lambda a, b: a + b, st.sampled_from(["/", "//", "///", "/a?", "/a#"]), tails))
def test_split_v4_namespace_never_raises(nsp: str) -> None:
    path, query = socketio.split_v4_namespace(nsp)
    assert path.startswith("/")
    assert nsp.startswith(path) or path == "/"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in query.items())


_json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(_ALPHABET, max_size=5)
    | st.binary(max_size=4)
)
_values = st.recursive(
    _json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=3)
            | st.integers(0, 3)
            | st.binary(max_size=2)
            | st.just("_placeholder"),
            inner | st.just(True),
            max_size=3,
        )
    ),
    max_leaves=20,
)


@FUZZ
@given(
    name=st.sampled_from([*socketio.RESERVED_EVENTS, "ev", 1, 2.5, True, None]) | _values,
    args=st.lists(_values, max_size=3),
    whole=st.none() | _values,
)
def test_check_event(name: Any, args: list[Any], whole: Any) -> None:
    data = [name, *args] if whole is None else whole
    limits = Limits(max_attachments=3, max_depth=4)
    try:
        socketio.check_event(data, limits)
    except RemoteProtocolError:
        return
    # What passes is what a client's packet may carry, and it encodes.
    assert isinstance(data, list)
    assert data
    assert type(data[0]) in (str, int, float)
    assert data[0] not in socketio.RESERVED_EVENTS
    socketio.encode(socketio.Packet(socketio.PacketType.EVENT, "/", data))


# -- WebSocket ------------------------------------------------------------------------------------


def _frame(b0: int, payload: bytes, key: bytes | None, length_form: int) -> bytes:
    mask_bit = 0x80 if key is not None else 0
    n = len(payload)
    if length_form == 0 and n < 126:
        head = bytes([b0, mask_bit | n])
    elif length_form <= 1 and n < 65536:
        head = bytes([b0, mask_bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mask_bit | 127]) + struct.pack("!Q", n)
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


@st.composite
def ws_streams(draw: st.DrawFn) -> tuple[bool, bool, list[bytes]]:
    """Frames with plausible headers for one side (masked or not as it expects, sometimes not),
    payloads valid or not, then cut into chunks anywhere."""
    server_side = draw(st.booleans())
    deflate = draw(st.booleans())
    stream = b""
    for _ in range(draw(st.integers(1, 6))):
        b0 = draw(
            st.sampled_from([0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x88, 0x89, 0x8A, 0xC1, 0x41])
            | st.integers(0, 255)
        )
        payload = draw(
            st.binary(max_size=40)
            | st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass"))
            | st.text(max_size=30).map(lambda t: _deflated(t.encode("utf-8", "replace")))
            | st.builds(
                lambda code, reason: code.to_bytes(2, "big") + reason,
                st.integers(0, 5000),
                st.binary(max_size=6),
            )
        )
        masked = server_side if draw(st.integers(0, 9)) else not server_side
        key = draw(st.binary(min_size=4, max_size=4)) if masked else None
        stream += _frame(b0, payload, key, draw(st.integers(0, 2)))
    stream = mutate(stream, draw) if draw(st.integers(0, 3)) == 0 else stream
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return server_side, deflate, chunks


_WS_EVENTS = (
    ws.TextMessage,
    ws.BinaryMessage,
    ws.PingReceived,
    ws.PongReceived,
    ws.CloseReceived,
    ws.ProtocolViolation,
)


@FUZZ
@given(case=ws_streams(), limit=st.sampled_from([None, 0, 16, 1000]))
def test_websocket_frame_parser(case: tuple[bool, bool, list[bytes]], limit: int | None) -> None:
    server_side, deflate, chunks = case
    proto = ws.WebSocketProtocol(
        ws.Side.SERVER if server_side else ws.Side.CLIENT,
        max_message_size=limit,
        deflate=ws.DeflateParams() if deflate else None,
        max_fragments=3,
    )
    events: list[ws.Event] = []
    for chunk in chunks:
        events += proto.receive_data(chunk)  # never raises for the peer's bytes
        proto.data_to_send()
    assert all(isinstance(event, _WS_EVENTS) for event in events)
    ends = [
        i for i, e in enumerate(events) if isinstance(e, ws.ProtocolViolation | ws.CloseReceived)
    ]
    assert ends in ([], [len(events) - 1])  # nothing after the end
    if limit is not None:
        sizes = [len(e.data) for e in events if isinstance(e, ws.TextMessage | ws.BinaryMessage)]
        assert all(size <= limit * 4 + 4 for size in sizes)  # text: characters, not bytes


_header_names = st.sampled_from(
    [
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "host",
    ]
)
_header_values = st.sampled_from(
    [
        "websocket",
        "Upgrade",
        "upgrade, keep-alive",
        "13",
        "8",
        "dGhlIHNhbXBsZSBub25jZQ==",
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "permessage-deflate",
        "permessage-deflate; x=1",
        "",
    ]
) | st.text(max_size=30)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "get", ""]),
    headers=st.dictionaries(_header_names, _header_values, max_size=7),
    status=st.sampled_from([101, 200, 400]) | st.integers(0, 999),
)
def test_websocket_handshakes(method: str, headers: dict[str, str], status: int) -> None:
    try:
        key = ws.check_client_handshake(method, headers)
    except ws.HandshakeError:
        pass
    else:
        assert isinstance(key, str)
    with contextlib.suppress(ws.HandshakeError):
        ws.check_server_handshake(status, headers, "dGhlIHNhbXBsZSBub25jZQ==")
    offer = headers.get("sec-websocket-extensions")
    response, params = ws.negotiate_deflate(offer, enabled=True)
    assert (response is None) == (params is None)
    with contextlib.suppress(ws.HandshakeError):
        ws.accept_deflate_response(offer)


# -- the Engine.IO session's decoding inputs ------------------------------------------------------

_SID = SessionId("fuzz")


@FUZZ
@given(
    protocol=st.sampled_from([3, 4]),
    body=eio_payloads(),
    message=eio_text_packets() | raw_bytes,
)
def test_session_inputs(protocol: int, body: tuple[bytes, int, bool], message: str | bytes) -> None:
    config = EngineConfig(max_payload_packets=4)
    polling = EngineSession(_SID, protocol, TransportKind.POLLING, config, 0.0)
    events = polling.receive_poll_data(body[0], body[2], 1.0)
    closes = [e for e in events if isinstance(e, Closed)]
    assert len(closes) <= 1
    if closes:
        assert polling.state is State.CLOSED
    # A probe on the polling session, then the session's own WebSocket.
    if polling.state is State.POLLING:
        polling.attach_probe(2.0)
        polling.receive_probe_message(message, 3.0)
    socket = EngineSession(_SID, protocol, TransportKind.WEBSOCKET, config, 0.0)
    socket.initial_messages()
    result = socket.receive_message(message, 4.0)
    if isinstance(result, list):
        assert len([e for e in result if isinstance(e, Closed)]) <= 1
    else:  # a MESSAGE: its data, the packet type stripped
        assert len(result) == len(message) - (
            0 if protocol == 4 and isinstance(message, bytes) else 1
        )


# -- CORS -----------------------------------------------------------------------------------------

_CORS = [
    Cors(),
    Cors(origins=True, credentials=True),
    Cors(origins=False),
    Cors(origins="https://app.example.com", credentials=True),
    Cors(origins=["https://a.example.com", "http://localhost:3000", "null"]),
]
_origins = (
    st.none()
    | st.sampled_from(
        [
            "https://app.example.com",
            "https://app.example.com/",
            "HTTPS://APP.EXAMPLE.COM",
            "https://app.example.com:443",
            "http://localhost:3000",
            "http://localhost:99999",
            "http://[::1",
            "https://[",
            "null",
            "",
        ]
    )
    | st.builds(
        lambda a, b: a + b,
        st.sampled_from(["https://", "http://", "ws://", "", "https://app.example.com"]),
        tails,
    )
)


@FUZZ
@given(
    config=st.sampled_from(range(len(_CORS))),
    origin=_origins,
    request_headers=st.dictionaries(
        st.sampled_from(["access-control-request-method", "access-control-request-headers"]),
        st.text(max_size=20),
    ),
)
def test_cors_origin_parsing(
    config: int, origin: str | None, request_headers: dict[str, str]
) -> None:
    cors = _CORS[config]
    allowed = cors.match_origin(origin)
    assert allowed in (True, False)
    cors.refuses(origin, allowed)
    cors.response_headers(origin, allowed)
    headers = {**request_headers, **({"origin": origin} if origin is not None else {})}
    is_preflight("OPTIONS", headers)
    cors.preflight_headers(origin, allowed, headers)
    hint = cors.hint_for_origin(origin)
    assert hint is None or isinstance(hint, str)
    if origin is not None:
        assert isinstance(cors.refusal_reason(origin), str)


# -- messages from Redis --------------------------------------------------------------------------

_redis_messages = st.builds(
    lambda args, room: [
        "uid",
        {"type": 2, "data": args, "nsp": "/"},
        {"rooms": [room], "except": [], "flags": {"volatile": True}},
    ],
    st.lists(_values, min_size=1, max_size=3),
    st.text(max_size=4),
)


@st.composite
def redis_payloads(draw: st.DrawFn) -> bytes:
    message = draw(_redis_messages)
    encoded = encode_msgpack(message)
    if draw(st.booleans()):
        with_json = {"type": 3, "data": {"packet": message[1], "opts": message[2]}}
        with contextlib.suppress(TypeError, ValueError):  # keys JSON cannot write
            encoded = encode_json(with_json)
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(raw_bytes)
    if choice == 1:
        return b"{" + draw(raw_bytes)
    return mutate(encoded, draw)


@FUZZ
@given(data=redis_payloads(), max_size=st.sampled_from([16, 10_000]))
def test_redis_message_decoder(data: bytes, max_size: int) -> None:
    try:
        redis_decode(data, max_size)
    except ValueError:
        return
    assert len(data) <= max_size


def test_redis_message_decoder_deep_msgpack() -> None:
    """msgpack nested past the unpacker's stack: the documented ValueError too."""
    deep = b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(ValueError, match="invalid msgpack message"):
        redis_decode(deep, 10_000_000)
    assert redis_decode(msgpack.packb([[["x"]]]), 100) == [[["x"]]]


# -- the record of ended sessions -----------------------------------------------------------------


@FUZZ
@given(
    recorded=st.lists(st.text(max_size=24), max_size=12),
    asked=st.lists(
        st.text(max_size=24) | st.sampled_from(["__proto__", "__class__", ""]), max_size=6
    ),
    reasons=st.lists(st.text(max_size=8), min_size=1, max_size=4),
)
def test_ended_sessions_lookup(recorded: list[str], asked: list[str], reasons: list[str]) -> None:
    ended = EndedSessions(capacity=5)
    for i, sid in enumerate(recorded):
        ended.add(sid, reasons[i % len(reasons)], float(i))
    for sid in asked + recorded:
        found = ended.get(sid)
        assert found is None or (isinstance(found[0], str) and isinstance(found[1], float))


# -- the client's HTTP response parser ------------------------------------------------------------

_STATUS_LINES = [
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n",
    b"HTTP/1.1 400 Bad Request\r\n",
    b"HTTP/1.0 200 OK\r\n",
    b"HTTP/2 200\r\n",
    b"ICY 200 OK\r\n",
    b"",
]
_HEADERS = [
    b"Content-Length: 3\r\n",
    b"Content-Length: 99\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 3\r\nContent-Length: 4\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
    b"Connection: close\r\n",
    b"Set-Cookie: io=abc; Path=/\r\n",
    b"Set-Cookie: \x00=\r\n",
    b"X: " + b"y" * 100 + b"\r\n",
    b"Bad Header\r\n",
]


@st.composite
def http_answers(draw: st.DrawFn) -> bytes:
    head = draw(st.sampled_from(_STATUS_LINES)) + b"".join(
        draw(st.lists(st.sampled_from(_HEADERS), max_size=3))
    )
    body = draw(st.sampled_from([b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"zz\r\n", b""]) | raw_bytes)
    answer = head + draw(st.sampled_from([b"\r\n", b"\n", b""])) + body
    return mutate(answer, draw) if draw(st.integers(0, 2)) == 0 else answer


async def _exchange(answer: bytes) -> HttpResult | ConnectError:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = HttpConnection(Endpoint("127.0.0.1", port, False, None, 5.0), max_body=1000)
    try:
        return await connection.request("GET", "/socket.io/", {}, url=f"http://127.0.0.1:{port}/")
    except ConnectError as exc:
        return exc
    finally:
        connection.close()
        server.close()
        await server.wait_closed()


@FEW
@given(answer=http_answers())
def test_client_http_response_parser(answer: bytes) -> None:
    result = asyncio.run(asyncio.wait_for(_exchange(answer), 10))
    assert isinstance(result, HttpResult | ConnectError)


def test_client_http_101_answer_is_a_connect_error() -> None:
    result = asyncio.run(
        _exchange(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
    )
    assert isinstance(result, ConnectError)
    assert "switched protocols (status 101)" in str(result)


def test_redis_encoders_take_lone_surrogates() -> None:
    """A JavaScript string may hold a lone surrogate; UTF-8 may not. Broadcasting one over Redis
    raised UnicodeEncodeError at the emit (found by the fuzzer above): now written as Node writes
    it, U+FFFD in msgpack and an escape in JSON."""
    value = ["ev", "a\ud800b", {"\udfff": ["\ud83d\ude00"]}]
    assert msgpack.unpackb(encode_msgpack(value)) == ["ev", "a\ufffdb", {"\ufffd": ["\U0001f600"]}]
    assert encode_json(value) == b'["ev","a\\ud800b",{"\\udfff":["\\ud83d\\ude00"]}]'
    # JSON.parse of the escapes: the lone ones stay, the pair is one character.
    decoded = ["ev", "a\ud800b", {"\udfff": ["\U0001f600"]}]
    assert redis_decode(encode_json({"x": value}), 1000) == {"x": decoded}


@FUZZ
@given(
    head=st.sampled_from(["", '"\\ud800",', '"\\uDFFF",', "1,", "NaN,"]),
    depth=st.integers(0, 3000),
    tail=tails,
)
def test_socketio_loads(head: str, depth: int, tail: str) -> None:
    """``JSON.parse``: ValueError only, even nested past Python's recursion limit in the
    fallback that takes escaped lone surrogates (it raised RecursionError)."""
    text = "[" + head + "[" * depth + tail + "]" * depth + "]"
    with contextlib.suppress(ValueError):
        socketio.loads(text)


# -- check_event at its bounds: the same verdicts as the decoder of a client's packets -----------


def _nested(levels: int) -> list[Any]:
    """``["ev", [[...]]]``: ``levels`` arrays in all, the event's own included."""
    value: Any = "x"
    for _ in range(levels - 1):
        value = [value]
    return ["ev", value] if levels > 1 else ["ev"]


@pytest.mark.parametrize("levels", [1, 31, 32, 33])
def test_check_event_depth_bound(levels: int) -> None:
    data = _nested(levels)
    refused = levels > 32
    if refused:
        with pytest.raises(RemoteProtocolError, match=r"^payload nested deeper than max_depth=32$"):
            socketio.check_event(data)
    else:
        socketio.check_event(data)
    # The decoder of a client's packet says the same of the same value.
    try:
        socketio.Decoder().feed("2" + json.dumps(data))
    except RemoteProtocolError:
        assert refused
    else:
        assert not refused


@pytest.mark.parametrize("count", [10, 11])
def test_check_event_attachments_bound(count: int) -> None:
    data = ["ev", *[b"\x00"] * count]
    if count <= 10:
        socketio.check_event(data)
        return
    with pytest.raises(RemoteProtocolError, match=r"^more than max_attachments=10 binary values$"):
        socketio.check_event(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["disconnect"], "event name 'disconnect' is reserved"),
        ([None], "event name must be a string or a number"),
        ([], "EVENT payload must be a non-empty array (got an empty array)"),
        ({"a": 1}, "EVENT payload must be a non-empty array (got dict)"),
        (
            ["ev", {"_placeholder": True, "num": 0}],
            "attachment placeholder object in the arguments",
        ),
        (["ev", {b"k": 1}], "object key of type bytes (expected a string)"),
        (["ev", {1, 2}], "value of type set (expected JSON or bytes)"),
    ],
)
def test_check_event_messages(data: Any, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        socketio.check_event(data)
    assert str(caught.value).startswith(message)
    socketio.check_event(["ev", {"_placeholder": False, "num": 0}, 1, 2.5, None, b"x"])
    socketio.check_event([7, "numeric names pass, as from clients"])


@st.composite
def websocket_answers(draw: st.DrawFn) -> tuple[bytes, bool]:
    """An answer to the client's WebSocket handshake; ``True`` to put the right accept key in."""
    status = draw(
        st.sampled_from(
            [b"HTTP/1.1 101 Switching Protocols\r\n", b"HTTP/1.1 400 Bad Request\r\n", b""]
        )
    )
    headers = b"".join(
        draw(
            st.lists(
                st.sampled_from(
                    [
                        b"Upgrade: websocket\r\n",
                        b"Connection: Upgrade\r\n",
                        b"Sec-WebSocket-Extensions: permessage-deflate\r\n",
                        b"Sec-WebSocket-Extensions: permessage-deflate; x\r\n",
                        b"Sec-WebSocket-Accept: wrong\r\n",
                        b"Content-Length: 5\r\n",
                        b"Transfer-Encoding: chunked\r\n",
                    ]
                ),
                max_size=4,
            )
        )
    )
    tail = draw(st.sampled_from([b"\r\n", b"\r\n\x81\x02hi", b"\r\nhello", b""]) | raw_bytes)
    answer = status + headers + tail
    if draw(st.integers(0, 2)) == 0:
        answer = mutate(answer, draw)
    return answer, draw(st.booleans())


async def _ws_exchange(answer: bytes, accept: bool) -> str:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = head.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0].decode()
            line = f"Sec-WebSocket-Accept: {ws.accept_key(key)}\r\n".encode()
            writer.write(answer.replace(b"\r\n", b"\r\n" + line, 1) if accept else answer)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        connection, _result = await WebSocketConnection.connect(
            Endpoint("127.0.0.1", port, False, None, 5.0),
            "/socket.io/?EIO=4&transport=websocket",
            {},
            max_message_size=1000,
            url=f"ws://127.0.0.1:{port}/",
        )
    except ConnectError:
        return "error"
    finally:
        server.close()
        await server.wait_closed()
    if connection is None:
        return "refused"
    connection.close()
    return "open"


@FEW
@given(case=websocket_answers())
def test_client_websocket_handshake_answer(case: tuple[bytes, bool]) -> None:
    outcome = asyncio.run(asyncio.wait_for(_ws_exchange(*case), 10))
    assert outcome in ("error", "refused", "open")

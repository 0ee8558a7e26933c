"""The Redis adapter's wire messages against the bytes the Node adapter writes.

``tests/js/redis_wire.golden.jsonl`` holds what ``@socket.io/redis-adapter`` 8.3 (classic and
sharded) and ``@socket.io/redis-emitter`` 5.1 publish, captured by ``tests/js/redis_wire.mjs``
(``tests/interop/test_redis_wire_node.py`` checks the file against the script). Each message
decodes into the typed message written out here, and encodes back to the same bytes; where
aiosio sends the same operation, the message it builds (from its ``BroadcastOptions``) is that
one. Invalid messages are refused with the error the decoders document, and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from aiosio import Emitter
from aiosio.adapters.redis import classic_messages as classic
from aiosio.adapters.redis import sharded_messages as sharded
from aiosio.adapters.redis.messages import EventPacket
from aiosio.adapters.redis.messages import InvalidMessage
from aiosio.adapters.redis.messages import MessageError
from aiosio.adapters.redis.messages import NotAnEvent
from aiosio.adapters.redis.messages import Refused
from aiosio.adapters.redis.messages import UnknownType
from aiosio.adapters.redis.messages import WireFlags
from aiosio.adapters.redis.messages import WireOptions
from aiosio.adapters.redis.messages import WrongShape
from aiosio.protocol.socketio import Limits
from aiosio.server.adapter import BroadcastFlags
from aiosio.server.adapter import BroadcastOptions

GOLDEN = Path(__file__).resolve().parent.parent / "js" / "redis_wire.golden.jsonl"
LIMITS = Limits()
MAX = 10_000_000


def load_golden() -> dict[str, tuple[str, bytes]]:
    messages = {}
    for line in GOLDEN.read_text().splitlines():
        entry = json.loads(line)
        messages[entry["name"]] = (entry["channel"], bytes.fromhex(entry["hex"]))
    return messages


NODE = load_golden()

# The ids the capture script's counter gives.
UID = "HIJKLM"  # the classic adapter's uid2(6)
SUID = "2a2b2c2d2e2f3031"  # the sharded adapter's randomId()
OTHER = "0123456789abcdef"
SOCKET = "AAAAAAAAAAAAAAAAAAAA"
DETAILS = {
    "id": SOCKET,
    "handshake": {
        "headers": {"host": "example.com"},
        "time": "Mon Dec 07 2026 06:00:00 GMT+0000 (Coordinated Universal Time)",
        "address": "::1",
        "xdomain": False,
        "secure": False,
        "issued": 1796623200000,
        "url": "/socket.io/?EIO=4&transport=websocket",
        "query": {"EIO": "4", "transport": "websocket"},
        "auth": {"name": "n1"},
    },
    "rooms": [SOCKET, "a"],
    "data": {"name": "n1"},
}


def opts(
    rooms: frozenset[str] = frozenset(),
    except_rooms: frozenset[str] = frozenset(),
    *,
    volatile: bool = False,
    compress: bool = True,
    timeout: float | None = None,
) -> BroadcastOptions:
    return BroadcastOptions(
        rooms=rooms,
        except_rooms=except_rooms,
        flags=BroadcastFlags(volatile=volatile, compress=compress, timeout=timeout),
    )


A, B = frozenset({"a"}), frozenset({"b"})

# name -> (decoder, the message as aiosio builds it for the same operation)
Decoder = Callable[[bytes], Any]


def classic_broadcast(data: bytes) -> Any:
    return classic.decode_broadcast(data, max_size=MAX, limits=LIMITS)


def classic_request(data: bytes) -> Any:
    return classic.decode_request(data, max_size=MAX, limits=LIMITS)


def classic_response(data: bytes) -> Any:
    return classic.decode_response(data, max_size=MAX)


def sharded_message(data: bytes) -> Any:
    return sharded.decode(data, max_size=MAX, limits=LIMITS)


EXPECTED: dict[str, tuple[Decoder, Any]] = {
    # -- classic: the broadcast channel
    "classic broadcast": (
        classic_broadcast,
        classic.Broadcast(
            uid=UID,
            packet=EventPacket(data=["ev", 1, "two", {"three": [3]}, None], nsp="/"),
            opts=WireOptions.of(opts()),
        ),
    ),
    "classic broadcast to a room": (
        classic_broadcast,
        classic.Broadcast(
            uid=UID, packet=EventPacket(data=["ev", "x"], nsp="/"), opts=WireOptions.of(opts(A, B))
        ),
    ),
    "classic broadcast volatile binary": (
        classic_broadcast,
        classic.Broadcast(
            uid=UID,
            packet=EventPacket(data=["bin", b"\x01\x02\x03", {"nested": b"\x04"}], nsp="/"),
            opts=WireOptions.of(opts(volatile=True)),
        ),
    ),
    "classic broadcast uncompressed": (
        classic_broadcast,
        classic.Broadcast(
            uid=UID,
            packet=EventPacket(data=["ev"], nsp="/"),
            opts=WireOptions.of(opts(compress=False)),
        ),
    ),
    # -- classic: requests
    "classic broadcast with acks": (
        classic_request,
        classic.BroadcastRequest(
            uid=UID,
            request_id="OPQRST",
            packet=EventPacket(data=["ask", 1], nsp="/"),
            opts=WireOptions.of(opts(timeout=1.0), timeout=True),
        ),
    ),
    "classic remote join": (
        classic_request,
        classic.SocketsJoin(
            uid=UID, opts=WireOptions.of(opts(A, B), flags=False), rooms=("r1", "r2")
        ),
    ),
    "classic remote leave": (
        classic_request,
        classic.SocketsLeave(uid=UID, opts=WireOptions.of(opts(A), flags=False), rooms=("r1",)),
    ),
    "classic remote disconnect": (
        classic_request,
        classic.DisconnectSockets(uid=UID, opts=WireOptions.of(opts(A), flags=False), close=True),
    ),
    "classic server-side emit": (
        classic_request,
        classic.ServerSideEmit(uid=UID, data=["sse", 1, {"k": "v"}]),
    ),
    "classic server-side emit with ack": (
        classic_request,
        classic.ServerSideEmit(uid=UID, data=["sse", 2], request_id="VWXYZa"),
    ),
    "classic remote fetch": (
        classic_request,
        classic.FetchSockets(
            uid=UID, request_id="cdefgh", opts=WireOptions.of(opts(A, B), flags=False)
        ),
    ),
    "classic all rooms": (classic_request, classic.AllRoomsRequest(uid=UID, request_id="jklmno")),
    # -- classic: responses
    "classic sockets response": (
        classic_response,
        classic.SocketsResponse(request_id="req001", sockets=[SOCKET]),
    ),
    "classic all rooms response": (
        classic_response,
        classic.AllRoomsResponse(request_id="req002", rooms=[SOCKET, "a"]),
    ),
    "classic remote fetch response": (
        classic_response,
        classic.SocketsResponse(request_id="req003", sockets=[DETAILS]),
    ),
    "classic server-side emit response": (
        classic_response,
        classic.ServerSideEmitResponse(request_id="req004", data={"answer": [5]}),
    ),
    "classic broadcast client count": (
        classic_response,
        classic.BroadcastClientCount(request_id="req005", client_count=1),
    ),
    "classic broadcast ack": (
        classic_response,
        classic.BroadcastAck(request_id="req005", packet={"reply": b"\x09"}),
    ),
    # -- sharded
    "sharded broadcast": (
        sharded_message,
        sharded.Broadcast(
            uid=SUID,
            nsp="/",
            packet=EventPacket(data=["ev", 1, "two", {"three": [3]}, None]),
            opts=WireOptions.of(opts()),
        ),
    ),
    "sharded broadcast to a room": (
        sharded_message,
        sharded.Broadcast(
            uid=SUID, nsp="/", packet=EventPacket(data=["ev", "x"]), opts=WireOptions.of(opts(A, B))
        ),
    ),
    "sharded broadcast volatile binary": (
        sharded_message,
        sharded.Broadcast(
            uid=SUID,
            nsp="/",
            packet=EventPacket(data=["bin", b"\x01\x02\x03"]),
            opts=WireOptions.of(opts(volatile=True, compress=False)),
        ),
    ),
    "sharded broadcast with acks": (
        sharded_message,
        sharded.Broadcast(
            uid=SUID,
            nsp="/",
            packet=EventPacket(data=["ask", 1]),
            opts=WireOptions.of(opts(timeout=1.0), timeout=True),
            request_id="3132333435363738",
        ),
    ),
    "sharded sockets join": (
        sharded_message,
        sharded.SocketsJoin(uid=SUID, nsp="/", opts=WireOptions.of(opts(A, B)), rooms=("r1", "r2")),
    ),
    "sharded sockets leave": (
        sharded_message,
        sharded.SocketsLeave(uid=SUID, nsp="/", opts=WireOptions.of(opts(A)), rooms=("r1",)),
    ),
    "sharded disconnect sockets": (
        sharded_message,
        sharded.DisconnectSockets(uid=SUID, nsp="/", opts=WireOptions.of(opts(A)), close=True),
    ),
    "sharded fetch sockets": (
        sharded_message,
        sharded.FetchSockets(
            uid=SUID, nsp="/", opts=WireOptions.of(opts(A)), request_id="38393a3b3c3d3e3f"
        ),
    ),
    "sharded fetch sockets with a timeout": (
        sharded_message,
        sharded.FetchSockets(
            uid=SUID,
            nsp="/",
            opts=WireOptions.of(opts(A, timeout=1.0), timeout=True),
            request_id="464748494a4b4c4d",
        ),
    ),
    "sharded server-side emit": (
        sharded_message,
        sharded.ServerSideEmit(uid=SUID, nsp="/", packet=["sse", 1, {"k": "v"}]),
    ),
    "sharded server-side emit with ack": (
        sharded_message,
        sharded.ServerSideEmit(uid=SUID, nsp="/", packet=["sse", 2], request_id="3f40414243444546"),
    ),
    "sharded fetch sockets response": (
        sharded_message,
        sharded.FetchSocketsResponse(uid=SUID, nsp="/", request_id="f00d", sockets=[DETAILS]),
    ),
    "sharded server-side emit response": (
        sharded_message,
        sharded.ServerSideEmitResponse(
            uid=SUID, nsp="/", request_id="5e5e", packet={"answer": [5]}
        ),
    ),
    "sharded broadcast client count": (
        sharded_message,
        sharded.BroadcastClientCount(uid=SUID, nsp="/", request_id="acc0", client_count=1),
    ),
    "sharded broadcast ack": (
        sharded_message,
        sharded.BroadcastAck(uid=SUID, nsp="/", request_id="acc0", packet={"reply": b"\x09"}),
    ),
}

# What the Node emitter publishes, as the adapters decode it. Its broadcasts write the options
# in another order ({rooms, flags, except}), so they are not re-encoded by the adapter's encoder:
# aiosio.Emitter writes those bytes (test_emitter_writes_the_node_emitters_bytes).
EMITTER: dict[str, tuple[Decoder, Any]] = {
    "emitter broadcast": (
        classic_broadcast,
        classic.Broadcast(
            uid="emitter",
            packet=EventPacket(data=["ev", 1, {"two": [2]}], nsp="/"),
            opts=WireOptions.of(opts()),
        ),
    ),
    "emitter broadcast to a room": (
        classic_broadcast,
        classic.Broadcast(
            uid="emitter",
            packet=EventPacket(data=["ev", b"\x01"], nsp="/"),
            opts=WireOptions.of(opts(A, B, volatile=True)),
        ),
    ),
    "emitter sockets join": (
        classic_request,
        classic.SocketsJoin(uid=None, opts=WireOptions.of(opts(A), flags=False), rooms=("r1",)),
    ),
    "emitter sockets leave": (
        classic_request,
        classic.SocketsLeave(uid=None, opts=WireOptions.of(opts(A, B), flags=False), rooms=("r1",)),
    ),
    "emitter disconnect sockets": (
        classic_request,
        classic.DisconnectSockets(uid=None, opts=WireOptions.of(opts(A), flags=False), close=True),
    ),
    "emitter server-side emit": (
        classic_request,
        classic.ServerSideEmit(uid="emitter", data=["sse", 1]),
    ),
}


def test_every_captured_message_is_checked() -> None:
    assert set(NODE) == set(EXPECTED) | set(EMITTER)


def encoder(decoder: Decoder) -> Callable[[Any], bytes]:
    """The encoder of the protocol ``decoder`` reads (the types both protocols write alike are
    one class, which each protocol encodes its own way)."""
    return sharded.encode if decoder is sharded_message else classic.encode


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_node_message_decodes_and_encodes_back(name: str) -> None:
    _channel, data = NODE[name]
    decoder, expected = EXPECTED[name]
    message = decoder(data)
    assert message == expected
    encode = encoder(decoder)
    assert encode(message) == data
    assert encode(expected) == data  # what aiosio sends for the same operation


@pytest.mark.parametrize("name", sorted(EMITTER))
def test_node_emitter_message_decodes(name: str) -> None:
    _channel, data = NODE[name]
    decoder, expected = EMITTER[name]
    assert decoder(data) == expected
    if not name.startswith("emitter broadcast"):
        assert classic.encode(expected) == data


class RecordingRedis:
    """What an Emitter needs of a redis client: it records what is published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, channel: str, data: bytes) -> int:
        self.published.append((channel, data))
        return 1


async def test_emitter_writes_the_node_emitters_bytes() -> None:
    redis = RecordingRedis()
    emitter = Emitter(redis, key="k")
    await emitter.emit("ev", 1, {"two": [2]})
    await emitter.to("a").except_("b").volatile.emit("ev", b"\x01")
    await emitter.in_("a").sockets_join("r1")
    await emitter.in_("a").except_("b").sockets_leave("r1")
    await emitter.in_("a").disconnect_sockets(close=True)
    await emitter.server_side_emit("sse", 1)
    names = [
        "emitter broadcast",
        "emitter broadcast to a room",
        "emitter sockets join",
        "emitter sockets leave",
        "emitter disconnect sockets",
        "emitter server-side emit",
    ]
    assert redis.published == [NODE[name] for name in names]


class RecordingShardedRedis(RecordingRedis):
    async def spublish(self, channel: str, data: bytes) -> int:
        self.published.append((channel, data))
        return 1


async def test_sharded_emitter_bytes() -> None:
    """The Node emitter has no sharded mode: these are the bytes aiosio.Emitter(sharded=True)
    has always written (JSON for everything but broadcasts, bytes as JSON.stringify writes a
    Buffer), and what the sharded adapters decode."""
    redis = RecordingShardedRedis()
    emitter = Emitter(redis, key="k", sharded=True)
    await emitter.emit("ev", 1, {"two": [2]})
    await emitter.to("a").except_("b").volatile.emit("ev", b"\x01")
    await emitter.in_("a").sockets_join("r1")
    await emitter.in_("a").except_("b").sockets_leave("r1")
    await emitter.in_("a").disconnect_sockets(close=True)
    await emitter.server_side_emit("sse", 1)
    await emitter.server_side_emit("sse", b"\x02")
    tail = b'"uid":"emitter","nsp":"/"}'
    assert redis.published == [
        (
            "k#/#",
            b"\x84\xa4type\x03\xa4data\x82\xa6packet\x82\xa4type\x02\xa4data\x93\xa2ev\x01"
            b"\x81\xa3two\x91\x02\xa4opts\x83\xa5rooms\x90\xa6except\x90\xa5flags\x80"
            b"\xa3uid\xa7emitter\xa3nsp\xa1/",
        ),
        (
            "k#/#",
            b"\x84\xa4type\x03\xa4data\x82\xa6packet\x82\xa4type\x02\xa4data\x92\xa2ev"
            b"\xc4\x01\x01\xa4opts\x83\xa5rooms\x91\xa1a\xa6except\x91\xa1b\xa5flags\x81"
            b"\xa8volatile\xc3\xa3uid\xa7emitter\xa3nsp\xa1/",
        ),
        (
            "k#/#",
            b'{"type":4,"data":{"opts":{"rooms":["a"],"except":[],"flags":{}},"rooms":["r1"]},'
            + tail,
        ),
        (
            "k#/#",
            b'{"type":5,"data":{"opts":{"rooms":["a"],"except":["b"],"flags":{}},'
            b'"rooms":["r1"]},' + tail,
        ),
        (
            "k#/#",
            b'{"type":6,"data":{"opts":{"rooms":["a"],"except":[],"flags":{}},"close":true},'
            + tail,
        ),
        ("k#/#", b'{"type":9,"data":{"packet":["sse",1]},' + tail),
        ("k#/#", b'{"type":9,"data":{"packet":["sse",{"type":"Buffer","data":[2]}]},' + tail),
    ]
    for _channel, data in redis.published:
        sharded_message(data)


def test_sharded_binary_types_travel_as_msgpack_only_with_bytes() -> None:
    text = sharded.BroadcastAck(uid=SUID, nsp="/", request_id="r", packet="x")
    binary = sharded.BroadcastAck(uid=SUID, nsp="/", request_id="r", packet=b"x")
    assert sharded.encode(text).startswith(b"{")
    assert msgpack.unpackb(sharded.encode(binary))["data"]["packet"] == b"x"
    # A type that cannot carry bytes is JSON whatever it holds (Buffer as JSON.stringify does).
    join = sharded.SocketsJoin(uid=SUID, nsp="/", opts=WireOptions(flags=WireFlags()), rooms=())
    assert sharded.encode(join).startswith(b"{")


def test_what_both_protocols_write_alike_is_one_type() -> None:
    """A join, leave, disconnect, fetch, client count or ack is one class in both protocols,
    with the same fields; each protocol writes its own envelope around them."""
    for name in (
        "SocketsJoin",
        "SocketsLeave",
        "DisconnectSockets",
        "FetchSockets",
        "BroadcastClientCount",
        "BroadcastAck",
    ):
        assert getattr(classic, name) is getattr(sharded, name)
    fetch = sharded.FetchSockets(uid=SUID, nsp="/", opts=WireOptions.of(opts(A)), request_id="r")
    as_classic = json.loads(classic.encode(fetch))
    assert list(as_classic) == ["uid", "requestId", "type", "opts"]
    assert as_classic.pop("type") == classic.RequestType.REMOTE_FETCH
    as_sharded = json.loads(sharded.encode(fetch))
    assert list(as_sharded["data"]) == ["opts", "requestId"]
    assert as_sharded["type"] == sharded.MessageType.FETCH_SOCKETS
    assert {**as_sharded["data"], "uid": SUID} == as_classic


# -- the legacy single-socket requests (older Node adapters) ------------------------------------

S1 = WireOptions(rooms=("s1",))  # the one socket a legacy request changes


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (
            {"uid": "old", "requestId": "q1", "type": 2, "sid": "s1", "room": "r1"},
            classic.LegacyUpdate(
                uid="old",
                request_id="q1",
                change=classic.SocketsJoin(uid="old", opts=S1, rooms=("r1",)),
            ),
        ),
        (
            {"uid": "old", "requestId": "q2", "type": 3, "sid": "s1", "room": "r1"},
            classic.LegacyUpdate(
                uid="old",
                request_id="q2",
                change=classic.SocketsLeave(uid="old", opts=S1, rooms=("r1",)),
            ),
        ),
        (
            {"uid": "old", "requestId": "q3", "type": 4, "sid": "s1", "close": True},
            classic.LegacyUpdate(
                uid="old",
                request_id="q3",
                change=classic.DisconnectSockets(uid="old", opts=S1, close=True),
            ),
        ),
    ],
)
def test_legacy_requests(wire: dict[str, Any], expected: Any) -> None:
    data = json.dumps(wire, separators=(",", ":")).encode()
    assert classic_request(data) == expected
    assert classic.encode(expected) == data
    answer = classic.UpdateResponse(request_id=wire["requestId"])
    assert classic_response(classic.encode(answer)) == answer


# -- refused ------------------------------------------------------------------------------------


def js(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def mp(value: Any) -> bytes:
    return msgpack.packb(value)  # type: ignore[no-any-return]


NO_OPTS = {"rooms": [], "except": [], "flags": {}}
DEEP: Any = "x"
for _ in range(40):
    DEEP = [DEEP]


def envelope(kind: int, data: Any, uid: str = OTHER) -> bytes:
    return js({"type": kind, "data": data, "uid": uid, "nsp": "/"})


# (decoder, bytes, error class, what str(error) says)
REFUSED: list[tuple[str, Decoder, bytes, type[MessageError], str]] = [
    ("garbage", classic_broadcast, b"\xc1\xff", InvalidMessage, "invalid msgpack message"),
    (
        "trailing bytes",
        classic_request,
        mp({"type": 0}) + b"\x00",
        InvalidMessage,
        "invalid msgpack message",
    ),
    (
        "too big",
        lambda data: classic.decode_response(data, max_size=10),
        js({"requestId": "x" * 20}),
        InvalidMessage,
        "bytes exceeds max_message_size=10",
    ),
    ("bad JSON", sharded_message, b'{"type":\xff}', InvalidMessage, ""),
    (
        "broadcast not an array",
        classic_broadcast,
        mp({"uid": "x"}),
        WrongShape,
        "a broadcast must be [uid, packet, opts]",
    ),
    (
        "packet not an object",
        classic_broadcast,
        mp(["x", "p", {}]),
        WrongShape,
        "the packet is not an object",
    ),
    (
        "no event",
        classic_broadcast,
        mp(["x", {"type": 2, "data": []}, NO_OPTS]),
        WrongShape,
        "packet.data must be a non-empty array",
    ),
    (
        "opts a number",
        classic_broadcast,
        mp(["x", {"type": 2, "data": ["ev"]}, 5]),
        WrongShape,
        "opts must be an object",
    ),
    (
        "rooms a number",
        classic_broadcast,
        mp(["x", {"type": 2, "data": ["ev"]}, {"rooms": 5}]),
        WrongShape,
        "opts.rooms must be an array (got int)",
    ),
    (
        "uid a number",
        classic_broadcast,
        mp([1, {"type": 2, "data": ["ev"]}, {}]),
        WrongShape,
        "uid must be a string",
    ),
    (
        "reserved event",
        classic_broadcast,
        mp(["x", {"type": 2, "data": ["disconnect"]}, NO_OPTS]),
        Refused,
        "event name 'disconnect' is reserved",
    ),
    (
        "forged placeholder",
        classic_broadcast,
        mp(["x", {"type": 2, "data": ["ev", {"_placeholder": True, "num": 0}]}, NO_OPTS]),
        Refused,
        "attachment placeholder object",
    ),
    (
        "too many attachments",
        classic_broadcast,
        mp(["x", {"type": 2, "data": ["ev", *[b"x"] * 11]}, NO_OPTS]),
        Refused,
        "more than max_attachments=10 binary values",
    ),
    (
        "not an event",
        classic_broadcast,
        mp(["x", {"type": 1, "data": ["ev"]}, NO_OPTS]),
        NotAnEvent,
        "packet type 1 (expected 2, an EVENT)",
    ),
    ("request a number", classic_request, mp(7), WrongShape, "a request must be an object"),
    (
        "unknown request type",
        classic_request,
        js({"type": 42}),
        UnknownType,
        "unknown message type 42",
    ),
    ("response type on the request channel", classic_request, js({"type": 8}), UnknownType, "8"),
    ("type a string", classic_request, js({"type": "2"}), UnknownType, "'2'"),
    (
        "fetch opts a string",
        classic_request,
        js({"uid": "x", "type": 5, "requestId": "r", "opts": "x"}),
        WrongShape,
        "request of type 5: opts must be an object",
    ),
    (
        "fetch without a request id",
        classic_request,
        js({"uid": "x", "type": 5}),
        WrongShape,
        "request of type 5: requestId must be a string (got NoneType)",
    ),
    (
        "join rooms a number",
        classic_request,
        js({"uid": "x", "type": 2, "opts": {"rooms": 5}, "rooms": ["evil"]}),
        WrongShape,
        "request of type 2: opts.rooms must be an array",
    ),
    (
        "join without rooms",
        classic_request,
        js({"uid": "x", "type": 2, "opts": NO_OPTS}),
        WrongShape,
        "request of type 2: rooms is missing",
    ),
    (
        "fetch without opts",
        classic_request,
        js({"uid": "x", "type": 5, "requestId": "r"}),
        WrongShape,
        "request of type 5: opts must be an object",
    ),
    (
        "server-side emit without data",
        classic_request,
        js({"uid": "x", "type": 6, "data": []}),
        WrongShape,
        "request of type 6: data must be a non-empty array",
    ),
    (
        "server-side emit of a server event",
        classic_request,
        js({"uid": "x", "type": 6, "data": ["connection", 1]}),
        Refused,
        "server-side event name 'connection' is reserved",
    ),
    (
        "ack broadcast of a reserved event",
        classic_request,
        mp({"uid": "x", "requestId": "r", "type": 7, "packet": {"type": 2, "data": ["connect"]}}),
        Refused,
        "event name 'connect' is reserved",
    ),
    ("response a list", classic_response, mp([1, 2]), WrongShape, "a response must be an object"),
    (
        "response without id",
        classic_response,
        js({"sockets": []}),
        WrongShape,
        "a response needs a requestId",
    ),
    (
        "client count a string",
        classic_response,
        js({"type": 8, "requestId": "r", "clientCount": "3"}),
        WrongShape,
        "clientCount must be an integer (got str)",
    ),
    (
        "unknown response type",
        classic_response,
        js({"type": 99, "requestId": "r"}),
        UnknownType,
        "99",
    ),
    (
        "sharded array",
        sharded_message,
        mp([{"type": 3}]),
        WrongShape,
        "a cluster message must be an object",
    ),
    (
        "sharded data a string",
        sharded_message,
        envelope(3, "x"),
        WrongShape,
        "message of type 3 without a data object",
    ),
    (
        "sharded broadcast without opts",
        sharded_message,
        envelope(3, {"packet": {"type": 2, "data": ["ev"]}}),
        WrongShape,
        "message of type 3: opts must be an object",
    ),
    (
        "sharded broadcast data a string",
        sharded_message,
        envelope(3, {"packet": {"type": 2, "data": "ev"}, "opts": NO_OPTS}),
        WrongShape,
        "message of type 3: a broadcast needs packet.data as an array",
    ),
    (
        "sharded join without rooms",
        sharded_message,
        envelope(4, {"opts": NO_OPTS}),
        WrongShape,
        "message of type 4: rooms is missing",
    ),
    (
        "sharded fetch without a request id",
        sharded_message,
        envelope(7, {"opts": {}}),
        WrongShape,
        "message of type 7: requestId must be a string",
    ),
    ("sharded heartbeat", sharded_message, envelope(2, {}), UnknownType, "unknown message type 2"),
    (
        "sharded server-side emit of a server event",
        sharded_message,
        envelope(9, {"packet": ["disconnecting"]}),
        Refused,
        "server-side event name 'disconnecting' is reserved",
    ),
    (
        "sharded broadcast too deep",
        sharded_message,
        envelope(3, {"packet": {"type": 2, "data": ["ev", DEEP]}, "opts": NO_OPTS}),
        Refused,
        "nested deeper than max_depth=32",
    ),
]


@pytest.mark.parametrize(
    ("decoder", "data", "error", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_invalid_messages_are_refused(
    decoder: Decoder, data: bytes, error: type[MessageError], text: str
) -> None:
    with pytest.raises(error) as caught:
        decoder(data)
    assert type(caught.value) is error
    assert text in str(caught.value)


def test_a_refused_message_names_its_sender() -> None:
    """The receiver drops its own refused messages silently (a broadcast past the limits
    reaches its own clients and is refused by the others): the message travels with the error."""
    data = mp(["me", {"type": 2, "data": ["ev", *[b"x"] * 11], "nsp": "/"}, NO_OPTS])
    with pytest.raises(Refused) as caught:
        classic_broadcast(data)
    assert caught.value.sender == "me"
    assert caught.value.what == "broadcast"
    assert isinstance(caught.value.message, classic.Broadcast)
    assert caught.value.message.packet.nsp == "/"


def test_wire_options_to_local_options() -> None:
    wire = WireOptions.from_wire(
        {
            "rooms": ["a", 1],
            "except": ["b"],
            "flags": {"volatile": True, "compress": False, "timeout": 5},
        }
    )
    assert wire.rooms == ("a", "1")  # a number is a room too, as in Node
    assert wire.to_options() == opts(frozenset({"a", "1"}), B, volatile=True, compress=False)
    assert wire.to_options(with_flags=False) == opts(frozenset({"a", "1"}), B)
    # Flags that are not an object are no flags, as before.
    assert WireOptions.from_wire({"flags": 3}).flags == WireFlags()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {"type": st.integers(-1, 14), "data": json_values, "uid": json_values, "nsp": json_values},
    optional={"requestId": json_values, "opts": json_values, "packet": json_values},
)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(json_values, message_like, st.lists(json_values, min_size=3, max_size=3)))
def test_decoders_raise_only_message_errors(value: Any) -> None:
    for data in (mp(value), js(value)):
        for decoder in (classic_broadcast, classic_request, classic_response, sharded_message):
            try:
                message = decoder(data)
            except MessageError:
                continue
            # Whatever decodes encodes, and decodes again to the same message.
            assert decoder(encoder(decoder)(message)) == message

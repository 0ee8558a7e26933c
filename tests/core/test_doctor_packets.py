"""The packets of ``aiosio doctor`` (aiosio.doctor.packets): what it sends, byte for byte as a
socket.io-client 4.x sends it, and how it reads what servers answer, including answers that are
not what it expects (they are never an exception)."""

from __future__ import annotations

import pytest

from aiosio.doctor import packets
from aiosio.protocol.socketio import Decoder
from aiosio.protocol.socketio import PacketType

HANDSHAKE = b'0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}'


def test_upgrade_packets_are_the_clients() -> None:
    # v4-current.md, "Upgrade": the client sends 2probe, the server 3probe, the client 5.
    assert packets.PROBE_PING == "2probe"
    assert packets.PROBE_PONG == "3probe"
    assert packets.UPGRADE == "5"
    assert packets.CLOSE == "1"
    assert packets.PONG == "3"
    assert packets.NOOP_PAYLOAD == b"6"
    assert packets.CLOSE_PAYLOAD == b"1"


@pytest.mark.parametrize(
    ("namespace", "auth", "expected"),
    [
        ("/", None, "40"),
        ("/", {}, "40"),  # an empty auth is not sent, as before
        ("/admin", None, "40/admin,"),
        ("/", {"token": "abc"}, '40{"token":"abc"}'),
        ("/secure", {"token": "a b", "n": 1}, '40/secure,{"token":"a b","n":1}'),
    ],
)
def test_connect_message(namespace: str, auth: dict[str, object] | None, expected: str) -> None:
    assert packets.connect_message(namespace, auth) == expected
    assert packets.connect_payload(namespace, auth) == expected.encode()


def test_message_payload_has_the_size_asked() -> None:
    assert packets.message_payload("x" * 99) == b"4" + b"x" * 99


def test_handshake_of_payload() -> None:
    assert packets.handshake_of_payload(HANDSHAKE) == {
        "sid": "abc",
        "upgrades": ["websocket"],
        "pingInterval": 25000,
        "pingTimeout": 20000,
    }
    assert packets.handshake_of_payload(HANDSHAKE + b"\x1e40") is not None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"0",  # no JSON
        b'0{"upgrades":[]}',  # no sid
        b'0["sid"]',  # not an object
        b'4{"sid":"abc"}',  # a message, not an open packet
        b'96:0{"sid":"abc"}',  # Engine.IO 3
        b"<html>Cannot GET</html>",
        b'{"code":5,"message":"Unsupported protocol version"}',
        b"\xff\xfe",
    ],
)
def test_not_a_handshake(body: bytes) -> None:
    assert packets.handshake_of_payload(body) is None


def test_v3_handshake() -> None:
    # What a socket.io 2.x server answers: <length>:<packet>, the length in UTF-16 units.
    open_packet = b'0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000}'
    v3 = b"%d:%s2:40" % (len(open_packet), open_packet)
    assert packets.is_v3_handshake(v3)
    assert not packets.is_v3_handshake(HANDSHAKE)
    assert not packets.is_v3_handshake(b"<html></html>")
    assert not packets.is_v3_handshake(b"")
    assert not packets.is_v3_handshake(b"2:40")  # a payload, but no open packet


def test_websocket_messages() -> None:
    assert packets.is_handshake_message(HANDSHAKE.decode())
    assert not packets.is_handshake_message("0")
    assert not packets.is_handshake_message("hello")
    assert not packets.is_handshake_message(b"\x00\x01")
    assert not packets.is_handshake_message("")
    assert packets.is_ping("2")
    assert not packets.is_ping("2probe")
    assert not packets.is_ping("3")
    assert packets.is_noop("6")
    assert not packets.is_noop("4")
    assert packets.is_probe_pong("3probe")
    assert not packets.is_probe_pong("3")
    assert not packets.is_probe_pong(b"3probe")  # binary: a message in Engine.IO 4
    assert not packets.is_probe_pong("")


def test_message_payload_detection() -> None:
    assert packets.is_message_payload(b'40{"sid":"x"}')
    assert packets.is_message_payload(b'2\x1e6\x1e42["a"]')
    assert not packets.is_message_payload(b"6")
    assert not packets.is_message_payload(b"2\x1e6")
    assert not packets.is_message_payload(b"")


def test_namespace_answers() -> None:
    body = (
        b'2\x1e40{"sid":"a"}\x1e44/admin,{"message":"Invalid namespace"}\x1e'
        b'42["welcome",1]\x1e44/x,"refused"\x1e9oops\x1e42["error"]'
    )
    found = packets.namespace_answers(body, Decoder())
    assert [(p.type, p.nsp, p.data) for p in found] == [
        (PacketType.CONNECT, "/", {"sid": "a"}),
        (PacketType.CONNECT_ERROR, "/admin", {"message": "Invalid namespace"}),
        (PacketType.EVENT, "/", ["welcome", 1]),
        (PacketType.CONNECT_ERROR, "/x", "refused"),
    ]


def test_namespace_answers_keep_the_packets_before_a_bad_one() -> None:
    found = packets.namespace_answers(b'40{"sid":"a"}\x1e', Decoder())
    assert [(p.type, p.data) for p in found] == [(PacketType.CONNECT, {"sid": "a"})]

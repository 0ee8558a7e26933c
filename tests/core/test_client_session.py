"""The client side of an Engine.IO session (``protocol/client_session.py``), driven by method calls
and a virtual clock: no socket, no event loop, no mock.

Expected behaviour is engine.io-client 6.x (``lib/socket.ts``, ``lib/transports/polling.ts``);
the comments name the code path of the reference that produces each expected event.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from aiosio.protocol.client_session import TRANSITIONS
from aiosio.protocol.client_session import ClientConfig
from aiosio.protocol.client_session import ClientEvent
from aiosio.protocol.client_session import ClientSession
from aiosio.protocol.client_session import ClientState
from aiosio.protocol.client_session import Closed
from aiosio.protocol.client_session import CloseReason
from aiosio.protocol.client_session import MessageReceived
from aiosio.protocol.client_session import PingReceived
from aiosio.protocol.client_session import Poll
from aiosio.protocol.client_session import Post
from aiosio.protocol.client_session import PostClose
from aiosio.protocol.client_session import ProbeClose
from aiosio.protocol.client_session import ProbeSend
from aiosio.protocol.client_session import StartProbe
from aiosio.protocol.client_session import TransportClose
from aiosio.protocol.client_session import TransportKind
from aiosio.protocol.client_session import Upgraded
from aiosio.protocol.client_session import WebSocketSend
from aiosio.protocol.client_session import check_transition
from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.engineio import decode_payload
from aiosio.protocol.engineio import encode_payload
from aiosio.protocol.errors import LocalProtocolError
from aiosio.protocol.errors import RemoteProtocolError

POLLING = TransportKind.POLLING
WEBSOCKET = TransportKind.WEBSOCKET
T0 = 1000.0  # the virtual clock's start; any value works, the core never reads a clock
TIMEOUT = 20.0  # the driver's request_timeout, used for the probe, the pause and the close
CONFIG = ClientConfig(probe_timeout=TIMEOUT, pause_timeout=TIMEOUT, close_timeout=TIMEOUT)


def handshake_packet(
    upgrades: tuple[str, ...] = ("websocket",),
    ping_interval: int = 25000,
    ping_timeout: int = 20000,
    max_payload: int = 1_000_000,
) -> Packet:
    data = {
        "sid": "abc",
        "upgrades": list(upgrades),
        "pingInterval": ping_interval,
        "pingTimeout": ping_timeout,
        "maxPayload": max_payload,
    }
    return Packet(PacketType.OPEN, json.dumps(data))


def names(events: list[ClientEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def body(packets: list[Packet]) -> bytes:
    return encode_payload(packets, 4)[0]


def message(data: str) -> Packet:
    return Packet(PacketType.MESSAGE, data)


# -- sessions in each state ----------------------------------------------------------------------


# Every transition the sessions of these tests take (to check the table against them).
taken: set[tuple[ClientState, ClientState]] = set()


def opening() -> ClientSession:
    return ClientSession(CONFIG, on_transition=lambda old, new: taken.add((old, new)))


def open_polling() -> ClientSession:
    """Open on polling, no upgrade offered: a GET in flight, no POST."""
    session = opening()
    assert names(session.handshake([handshake_packet(upgrades=())], POLLING, T0)) == ["Poll"]
    return session


def open_websocket() -> ClientSession:
    session = opening()
    assert session.handshake([handshake_packet()], WEBSOCKET, T0) == []
    return session


def probing_connecting() -> ClientSession:
    """Open on polling, the server offers websocket: the probe is connecting."""
    session = opening()
    assert session.handshake([handshake_packet()], POLLING, T0) == [Poll(), StartProbe()]
    assert session.state is ClientState.PROBING
    return session


def probing() -> ClientSession:
    """The probe connected and sent "2probe"."""
    session = probing_connecting()
    assert session.probe_opened(T0) == [ProbeSend("2probe")]
    return session


def probing_posting() -> ClientSession:
    """Probing, with a POST in flight."""
    session = probing()
    assert session.send("x") == [Post(b"4x")]
    return session


def pausing() -> ClientSession:
    """ "3probe" came while the GET is in flight: polling pauses."""
    session = probing()
    assert session.probe_message("3probe", T0) == []
    assert session.state is ClientState.PAUSING
    return session


def closing() -> ClientSession:
    """close() with a POST in flight: the close waits for it."""
    session = open_polling()
    assert names(session.send("x")) == ["Post"]
    assert session.close(T0) == []
    assert session.state is ClientState.CLOSING
    return session


def closing_upgrade() -> ClientSession:
    session = pausing()
    assert session.close(T0) == []
    assert session.state is ClientState.CLOSING_UPGRADE
    return session


def closed() -> ClientSession:
    session = open_websocket()
    assert names(session.close(T0)) == ["TransportClose", "Closed"]
    return session


SETUPS: dict[str, Callable[[], ClientSession]] = {
    "OPENING": opening,
    "OPEN/polling": open_polling,
    "OPEN/websocket": open_websocket,
    "PROBING/connecting": probing_connecting,
    "PROBING/2probe": probing,
    "PROBING/posting": probing_posting,
    "PAUSING": pausing,
    "CLOSING": closing,
    "CLOSING_UPGRADE": closing_upgrade,
    "CLOSED": closed,
}

INPUTS: dict[str, Callable[[ClientSession], list[ClientEvent]]] = {
    "handshake": lambda s: s.handshake([handshake_packet()], POLLING, T0),
    "handshake_failed": lambda s: s.handshake_failed(),
    "send": lambda s: s.send("m"),
    "received MESSAGE": lambda s: s.received(message("m"), T0),
    "received PING": lambda s: s.received(Packet(PacketType.PING), T0),
    "received CLOSE": lambda s: s.received(Packet(PacketType.CLOSE), T0),
    "received NOOP": lambda s: s.received(Packet(PacketType.NOOP), T0),
    "poll_ended": lambda s: s.poll_ended(T0),
    "post_ended": lambda s: s.post_ended(T0),
    "transport_error": lambda s: s.transport_error("boom", T0),
    "transport_closed": lambda s: s.transport_closed("bye", T0),
    "parse_error": lambda s: s.parse_error("garbage", T0),
    "probe_opened": lambda s: s.probe_opened(T0),
    "probe_failed": lambda s: s.probe_failed(T0),
    "probe_message 3probe": lambda s: s.probe_message("3probe", T0),
    "probe_message other": lambda s: s.probe_message("3nope", T0),
    "probe_closed": lambda s: s.probe_closed(T0),
    "timer": lambda s: s.timer(T0),
    "close": lambda s: s.close(T0),
}


def outcome(setup: str, name: str) -> str:
    """``STATE: Event, Event`` after the input, or the error it raises."""
    session = SETUPS[setup]()
    try:
        events = INPUTS[name](session)
    except LocalProtocolError as exc:
        return f"LocalProtocolError: {exc}"
    return f"{session.state.name}: {', '.join(names(events))}".rstrip(" ").rstrip(":")


# Every state x every input: the state after it and the events, or the precise error. Inputs that
# can race with the network (a late answer, a probe that connects after the session closed) are
# accepted and do nothing; inputs only a broken driver sends are errors.
TABLE: dict[str, dict[str, str]] = {
    "OPENING": {
        "handshake": "PROBING: Poll, StartProbe",
        "handshake_failed": "CLOSED",
        "send": "OPENING",
        "received MESSAGE": "LocalProtocolError: received() before the handshake",
        "received PING": "LocalProtocolError: received() before the handshake",
        "received CLOSE": "LocalProtocolError: received() before the handshake",
        "received NOOP": "LocalProtocolError: received() before the handshake",
        "poll_ended": "LocalProtocolError: poll_ended() before the handshake",
        "post_ended": "LocalProtocolError: post_ended() before the handshake",
        "transport_error": "LocalProtocolError: transport_error() before the handshake",
        "transport_closed": "LocalProtocolError: transport_closed() before the handshake",
        "parse_error": "LocalProtocolError: parse_error() before the handshake",
        "probe_opened": "LocalProtocolError: probe_opened() before the handshake",
        "probe_failed": "LocalProtocolError: probe_failed() before the handshake",
        "probe_message 3probe": "LocalProtocolError: probe_message() before the handshake",
        "probe_message other": "LocalProtocolError: probe_message() before the handshake",
        "probe_closed": "LocalProtocolError: probe_closed() before the handshake",
        "timer": "OPENING",
        "close": "CLOSED: Closed",
    },
    "OPEN/polling": {
        "handshake": "LocalProtocolError: handshake() in state open",
        "handshake_failed": "LocalProtocolError: handshake_failed() in state open",
        "send": "OPEN: Post",
        "received MESSAGE": "OPEN: MessageReceived",
        "received PING": "OPEN: Post, PingReceived",
        "received CLOSE": "CLOSED: TransportClose, Closed",
        "received NOOP": "OPEN",
        "poll_ended": "OPEN: Poll",
        "post_ended": "LocalProtocolError: post_ended() without a POST in flight",
        "transport_error": "CLOSED: TransportClose, Closed",
        "transport_closed": "CLOSED: TransportClose, Closed",
        "parse_error": "CLOSED: TransportClose, Closed",
        "probe_opened": "OPEN: ProbeClose",
        "probe_failed": "OPEN",
        "probe_message 3probe": "OPEN",
        "probe_message other": "OPEN",
        "probe_closed": "OPEN",
        "timer": "OPEN",
        "close": "CLOSED: PostClose, Closed",
    },
    "OPEN/websocket": {
        "handshake": "LocalProtocolError: handshake() in state open",
        "handshake_failed": "LocalProtocolError: handshake_failed() in state open",
        "send": "OPEN: WebSocketSend",
        "received MESSAGE": "OPEN: MessageReceived",
        "received PING": "OPEN: WebSocketSend, PingReceived",
        "received CLOSE": "CLOSED: TransportClose, Closed",
        "received NOOP": "OPEN",
        "poll_ended": "OPEN",
        "post_ended": "OPEN",
        "transport_error": "CLOSED: TransportClose, Closed",
        "transport_closed": "CLOSED: TransportClose, Closed",
        "parse_error": "CLOSED: TransportClose, Closed",
        "probe_opened": "OPEN: ProbeClose",
        "probe_failed": "OPEN",
        "probe_message 3probe": "OPEN",
        "probe_message other": "OPEN",
        "probe_closed": "OPEN",
        "timer": "OPEN",
        "close": "CLOSED: TransportClose, Closed",
    },
    "PROBING/connecting": {
        "handshake": "LocalProtocolError: handshake() in state probing",
        "handshake_failed": "LocalProtocolError: handshake_failed() in state probing",
        "send": "PROBING: Post",
        "received MESSAGE": "PROBING: MessageReceived",
        "received PING": "PROBING: Post, PingReceived",
        "received CLOSE": "CLOSED: ProbeClose, TransportClose, Closed",
        "received NOOP": "PROBING",
        "poll_ended": "PROBING: Poll",
        "post_ended": "LocalProtocolError: post_ended() without a POST in flight",
        "transport_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "transport_closed": "CLOSED: ProbeClose, TransportClose, Closed",
        "parse_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "probe_opened": "PROBING: ProbeSend",
        "probe_failed": "OPEN",
        "probe_message 3probe": "PROBING",
        "probe_message other": "PROBING",
        "probe_closed": "OPEN",
        "timer": "PROBING",
        "close": "CLOSED: ProbeClose, PostClose, Closed",
    },
    "PROBING/2probe": {
        "handshake": "LocalProtocolError: handshake() in state probing",
        "handshake_failed": "LocalProtocolError: handshake_failed() in state probing",
        "send": "PROBING: Post",
        "received MESSAGE": "PROBING: MessageReceived",
        "received PING": "PROBING: Post, PingReceived",
        "received CLOSE": "CLOSED: ProbeClose, TransportClose, Closed",
        "received NOOP": "PROBING",
        "poll_ended": "PROBING: Poll",
        "post_ended": "LocalProtocolError: post_ended() without a POST in flight",
        "transport_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "transport_closed": "CLOSED: ProbeClose, TransportClose, Closed",
        "parse_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "probe_opened": "LocalProtocolError: probe_opened() while a probe is open",
        "probe_failed": "OPEN",
        "probe_message 3probe": "PAUSING",
        "probe_message other": "OPEN: ProbeClose",
        "probe_closed": "OPEN",
        "timer": "PROBING",
        "close": "CLOSED: ProbeClose, PostClose, Closed",
    },
    "PROBING/posting": {
        "handshake": "LocalProtocolError: handshake() in state probing",
        "handshake_failed": "LocalProtocolError: handshake_failed() in state probing",
        "send": "PROBING",
        "received MESSAGE": "PROBING: MessageReceived",
        "received PING": "PROBING: PingReceived",
        "received CLOSE": "CLOSED: ProbeClose, TransportClose, Closed",
        "received NOOP": "PROBING",
        "poll_ended": "PROBING: Poll",
        "post_ended": "PROBING",
        "transport_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "transport_closed": "CLOSED: ProbeClose, TransportClose, Closed",
        "parse_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "probe_opened": "LocalProtocolError: probe_opened() while a probe is open",
        "probe_failed": "OPEN",
        "probe_message 3probe": "PAUSING",
        "probe_message other": "OPEN: ProbeClose",
        "probe_closed": "OPEN",
        "timer": "PROBING",
        "close": "CLOSING: ProbeClose",
    },
    "PAUSING": {
        "handshake": "LocalProtocolError: handshake() in state pausing",
        "handshake_failed": "LocalProtocolError: handshake_failed() in state pausing",
        "send": "PAUSING",
        "received MESSAGE": "PAUSING: MessageReceived",
        "received PING": "PAUSING: PingReceived",
        "received CLOSE": "CLOSED: ProbeClose, TransportClose, Closed",
        "received NOOP": "PAUSING",
        "poll_ended": "OPEN: ProbeSend, Upgraded",
        "post_ended": "LocalProtocolError: post_ended() without a POST in flight",
        "transport_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "transport_closed": "CLOSED: ProbeClose, TransportClose, Closed",
        "parse_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "probe_opened": "LocalProtocolError: probe_opened() while a probe is open",
        "probe_failed": "PAUSING",
        "probe_message 3probe": "PAUSING",
        "probe_message other": "PAUSING",
        "probe_closed": "OPEN",
        "timer": "PAUSING",
        "close": "CLOSING_UPGRADE",
    },
    "CLOSING": {
        "handshake": "LocalProtocolError: handshake() in state closing",
        "handshake_failed": "LocalProtocolError: handshake_failed() in state closing",
        "send": "CLOSING",
        "received MESSAGE": "CLOSING: MessageReceived",
        "received PING": "CLOSING: PingReceived",
        "received CLOSE": "CLOSED: TransportClose, Closed",
        "received NOOP": "CLOSING",
        "poll_ended": "CLOSING: Poll",
        "post_ended": "CLOSED: PostClose, Closed",
        "transport_error": "CLOSED: TransportClose, Closed",
        "transport_closed": "CLOSED: TransportClose, Closed",
        "parse_error": "CLOSED: TransportClose, Closed",
        "probe_opened": "CLOSING: ProbeClose",
        "probe_failed": "CLOSING",
        "probe_message 3probe": "CLOSING",
        "probe_message other": "CLOSING",
        "probe_closed": "CLOSING",
        "timer": "CLOSING",
        "close": "CLOSING",
    },
    "CLOSING_UPGRADE": {
        "handshake": "LocalProtocolError: handshake() in state closing during upgrade",
        "handshake_failed": (
            "LocalProtocolError: handshake_failed() in state closing during upgrade"
        ),
        "send": "CLOSING_UPGRADE",
        "received MESSAGE": "CLOSING_UPGRADE: MessageReceived",
        "received PING": "CLOSING_UPGRADE: PingReceived",
        "received CLOSE": "CLOSED: ProbeClose, TransportClose, Closed",
        "received NOOP": "CLOSING_UPGRADE",
        "poll_ended": "CLOSED: ProbeSend, Upgraded, TransportClose, Closed",
        "post_ended": "LocalProtocolError: post_ended() without a POST in flight",
        "transport_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "transport_closed": "CLOSED: ProbeClose, TransportClose, Closed",
        "parse_error": "CLOSED: ProbeClose, TransportClose, Closed",
        "probe_opened": "LocalProtocolError: probe_opened() while a probe is open",
        "probe_failed": "CLOSING_UPGRADE",
        "probe_message 3probe": "CLOSING_UPGRADE",
        "probe_message other": "CLOSING_UPGRADE",
        "probe_closed": "CLOSED: PostClose, Closed",
        "timer": "CLOSING_UPGRADE",
        "close": "CLOSING_UPGRADE",
    },
    "CLOSED": {
        "handshake": "LocalProtocolError: handshake() in state closed",
        "handshake_failed": "LocalProtocolError: handshake_failed() in state closed",
        "send": "CLOSED",
        "received MESSAGE": "CLOSED",
        "received PING": "CLOSED",
        "received CLOSE": "CLOSED",
        "received NOOP": "CLOSED",
        "poll_ended": "CLOSED",
        "post_ended": "CLOSED",
        "transport_error": "CLOSED",
        "transport_closed": "CLOSED",
        "parse_error": "CLOSED",
        "probe_opened": "CLOSED: ProbeClose",
        "probe_failed": "CLOSED",
        "probe_message 3probe": "CLOSED",
        "probe_message other": "CLOSED",
        "probe_closed": "CLOSED",
        "timer": "CLOSED",
        "close": "CLOSED",
    },
}


@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_state_and_input(setup: str, name: str) -> None:
    assert outcome(setup, name) == TABLE[setup][name]


def test_the_table_covers_every_state_and_input() -> None:
    reached = {SETUPS[setup]().state for setup in SETUPS}
    assert reached == set(ClientState)
    assert set(TABLE) == set(SETUPS)
    assert all(set(row) == set(INPUTS) for row in TABLE.values())


def test_every_declared_transition_is_taken() -> None:
    taken.clear()
    for setup in SETUPS:
        for name in INPUTS:
            outcome(setup, name)
    declared = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert taken == declared


def test_an_undeclared_transition_is_a_local_error() -> None:
    check_transition(ClientState.OPEN, ClientState.PROBING)
    with pytest.raises(LocalProtocolError, match="no transition from open to pausing"):
        check_transition(ClientState.OPEN, ClientState.PAUSING)


# -- handshake -----------------------------------------------------------------------------------


def test_handshake_reads_the_server_settings() -> None:
    session = opening()
    session.handshake([handshake_packet(("websocket", "webtransport"), 300, 200, 77)], POLLING, T0)
    assert session.sid == "abc"
    assert (session.ping_interval, session.ping_timeout, session.max_payload) == (0.3, 0.2, 77)
    assert session.upgrades == ("websocket",)  # only the transports the client may use
    assert session.transport is POLLING
    assert session.deadline == T0 + 0.5


def test_no_probe_when_upgrade_is_off_or_websocket_not_allowed() -> None:
    for config in (ClientConfig(upgrade=False), ClientConfig(transports=("polling",))):
        session = ClientSession(config)
        assert names(session.handshake([handshake_packet()], POLLING, T0)) == ["Poll"]
        assert session.state is ClientState.OPEN


@pytest.mark.parametrize(
    "packets",
    [
        [],
        [Packet(PacketType.MESSAGE, "{}")],
        [Packet(PacketType.OPEN, "not json")],
        [Packet(PacketType.OPEN, "[]")],
        [Packet(PacketType.OPEN, '{"sid":"a"}')],
        [Packet(PacketType.OPEN, '{"sid":"a","pingInterval":"x","pingTimeout":1}')],
    ],
)
def test_a_bad_handshake_is_a_remote_error_and_the_session_stays_opening(
    packets: list[Packet],
) -> None:
    session = opening()
    with pytest.raises(RemoteProtocolError):
        session.handshake(packets, POLLING, T0)
    assert session.state is ClientState.OPENING
    assert session.handshake_failed() == []
    assert session.state is ClientState.CLOSED


def test_messages_sent_before_the_handshake_go_in_the_first_post() -> None:
    session = opening()
    assert session.send("a") == session.send("b") == []
    events = session.handshake([handshake_packet(upgrades=())], POLLING, T0)
    assert events == [Poll(), Post(body([message("a"), message("b")]))]


def test_packets_after_the_open_packet_are_handled() -> None:
    session = opening()
    events = session.handshake(
        [handshake_packet(upgrades=()), message("hi"), Packet(PacketType.PING)], POLLING, T0
    )
    assert events == [
        MessageReceived("hi"),
        Post(body([Packet(PacketType.PONG)])),
        PingReceived(),
        Poll(),
    ]


def test_a_close_packet_after_the_open_packet_closes() -> None:
    session = opening()
    events = session.handshake([handshake_packet(), Packet(PacketType.CLOSE)], POLLING, T0)
    assert events[-1] == Closed(
        CloseReason.TRANSPORT_CLOSE, {"description": "transport closed by the server"}
    )
    assert session.state is ClientState.CLOSED


def test_websocket_handshake_flushes_the_buffer_as_messages() -> None:
    session = opening()
    session.send("a")
    session.send(b"\x01")
    assert session.handshake([handshake_packet()], WEBSOCKET, T0) == [
        WebSocketSend(("4a", b"\x01"))
    ]


# -- sending -------------------------------------------------------------------------------------


def test_one_post_at_a_time() -> None:
    session = open_polling()
    assert session.send("a") == [Post(b"4a")]
    assert not session.writable
    assert session.send("b") == session.send("c") == []
    assert session.post_ended(T0) == [Post(body([message("b"), message("c")]))]
    assert session.post_ended(T0) == []
    assert session.writable


def test_the_buffer_is_split_by_max_payload() -> None:
    # engine.io-client _getWritablePackets: 1 + each packet's length + 2, the first always goes.
    session = opening()
    session.handshake([handshake_packet(upgrades=(), max_payload=10)], POLLING, T0)
    assert session.send("12345") == [Post(b"412345")]
    session.send("abc")
    session.send("de")
    session.send("fghij")
    # 1 + 3 = 4, + 2 = 6, + 2 = 8, + 2 = 10, + 5 = 15 > 10: the third waits.
    assert session.post_ended(T0) == [Post(body([message("abc"), message("de")]))]
    assert session.post_ended(T0) == [Post(b"4fghij")]


def test_binary_messages_go_base64_in_a_post() -> None:
    session = open_polling()
    [post] = session.send(b"\x00\xff")
    assert isinstance(post, Post)
    assert decode_payload(post.body, 4) == [Packet(PacketType.MESSAGE, b"\x00\xff")]


def test_websocket_is_writable_while_polling_waits_for_its_post() -> None:
    session = open_websocket()
    assert session.writable
    assert session.send("a") == [WebSocketSend(("4a",))]
    assert session.writable


def test_the_compress_option_of_each_message_goes_with_it() -> None:
    session = open_websocket()
    assert session.send("a", compress=False) == [WebSocketSend(("4a",), (False,))]
    [event] = session.send("b")
    assert event == WebSocketSend(("4b",))
    assert list(event.pairs()) == [("4b", True)]


def test_buffered_messages_keep_their_compress_option_through_the_upgrade() -> None:
    session = probing_connecting()
    session.probe_opened(T0)
    session.probe_message("3probe", T0)
    assert session.state is ClientState.PAUSING  # the GET in flight holds the switch
    assert session.send("x", compress=False) == []
    assert session.send("y") == []
    [send] = [e for e in session.poll_ended(T0) if isinstance(e, WebSocketSend)]
    assert list(send.pairs()) == [("4x", False), ("4y", True)]


# -- heartbeat, on a virtual clock ---------------------------------------------------------------


def heartbeat_session() -> ClientSession:
    session = opening()
    session.handshake([handshake_packet(upgrades=(), ping_interval=300, ping_timeout=200)],
                      WEBSOCKET, T0)  # fmt: skip
    return session


def test_a_ping_is_answered_and_moves_the_deadline() -> None:
    session = heartbeat_session()
    assert session.deadline == T0 + 0.5
    events = session.received(Packet(PacketType.PING), T0 + 0.3)
    assert events == [WebSocketSend(("3",)), PingReceived()]
    assert session.deadline == T0 + 0.8


def test_no_ping_within_interval_plus_timeout_is_a_ping_timeout() -> None:
    session = heartbeat_session()
    assert session.timer(T0 + 0.499) == []
    assert not session.heartbeat_expired(T0 + 0.5)
    assert session.heartbeat_expired(T0 + 0.5001)
    assert session.timer(T0 + 0.5) == [TransportClose(), Closed(CloseReason.PING_TIMEOUT)]
    assert session.deadline is None
    assert not session.heartbeat_expired(T0 + 100)  # closed: nothing left to expire


def test_a_suspended_process_sees_the_expiry_before_its_timer() -> None:
    # The driver's clock counts the suspension: the check on emit sees what the timer will do.
    session = heartbeat_session()
    session.received(Packet(PacketType.PING), T0 + 0.2)
    assert not session.heartbeat_expired(T0 + 0.7)
    assert session.heartbeat_expired(T0 + 3600)
    assert session.timer(T0 + 3600)[-1] == Closed(CloseReason.PING_TIMEOUT)


def test_pongs_and_noops_from_the_server_do_not_feed_the_heartbeat() -> None:
    session = heartbeat_session()
    session.received(Packet(PacketType.PONG), T0 + 0.4)
    session.received(Packet(PacketType.NOOP), T0 + 0.4)
    assert session.deadline == T0 + 0.5


def test_the_heartbeat_runs_while_closing() -> None:
    session = closing()
    assert session.deadline == T0 + 20.0  # the close timeout, before the heartbeat's 45 s
    session.received(Packet(PacketType.PING), T0 + 19)  # the pong waits for the POST
    assert session.timer(T0 + 20.0) == [PostClose(b"1"), Closed(CloseReason.FORCED_CLOSE)]


# -- upgrade -------------------------------------------------------------------------------------


def test_upgrade_after_the_paused_get_ends() -> None:
    # socket.ts probe(): 2probe, 3probe, pause (polling.ts pause waits for the GET), 5, flush.
    session = probing()
    assert session.writable  # polling goes on while the probe waits for 3probe
    assert session.probe_message("3probe", T0) == []
    assert not session.writable
    assert session.send("during") == []
    events = session.received(Packet(PacketType.NOOP), T0)  # the server's answer to the GET
    assert events == []
    assert session.poll_ended(T0) == [
        ProbeSend("5"),
        Upgraded(),
        WebSocketSend(("4during",)),
    ]
    assert (session.state, session.transport) == (ClientState.OPEN, WEBSOCKET)
    assert session.send("after") == [WebSocketSend(("4after",))]


def test_upgrade_waits_for_the_post_in_flight_too() -> None:
    session = probing()
    assert session.send("x") == [Post(b"4x")]
    session.probe_message("3probe", T0)
    assert session.poll_ended(T0) == []  # no new GET: paused
    assert session.post_ended(T0) == [ProbeSend("5"), Upgraded()]


def test_a_pong_queued_while_pausing_goes_on_the_websocket() -> None:
    session = pausing()
    assert session.received(Packet(PacketType.PING), T0) == [PingReceived()]
    assert session.poll_ended(T0) == [ProbeSend("5"), Upgraded(), WebSocketSend(("3",))]


@pytest.mark.parametrize("answer", ["3nope", "2probe", "4probe", b"3probe", "", "9"])
def test_a_wrong_probe_answer_stays_on_polling(answer: str | bytes) -> None:
    session = probing()
    [close] = session.probe_message(answer, T0)
    assert isinstance(close, ProbeClose)
    assert session.state is ClientState.OPEN
    assert session.transport is POLLING
    assert session.poll_ended(T0) == [Poll()]


def test_no_probe_answer_within_the_timeout_stays_on_polling() -> None:
    session = probing()
    assert session.deadline == T0 + TIMEOUT
    [close] = session.timer(T0 + TIMEOUT)
    assert close == ProbeClose("no '3probe' within the probe timeout")
    assert session.state is ClientState.OPEN
    assert session.probe_message("3probe", T0 + TIMEOUT + 1) == []  # too late: ignored


def test_a_pause_that_never_drains_switches_after_the_timeout() -> None:
    session = pausing()
    assert session.deadline == T0 + TIMEOUT
    assert session.timer(T0 + TIMEOUT) == [ProbeSend("5"), Upgraded()]
    assert session.transport is WEBSOCKET
    assert session.poll_ended(T0 + TIMEOUT) == []  # the GET it left behind


def test_a_probe_closed_while_pausing_resumes_polling() -> None:
    session = probing()
    session.send("x")  # a POST in flight
    session.probe_message("3probe", T0)
    session.send("y")
    assert session.poll_ended(T0) == []
    assert session.probe_closed(T0) == [Poll()]
    assert session.state is ClientState.OPEN
    assert session.post_ended(T0) == [Post(b"4y")]


def test_a_probe_refused_stays_on_polling() -> None:
    session = probing_connecting()
    assert session.probe_failed(T0) == []
    assert session.state is ClientState.OPEN
    assert session.deadline == T0 + 45.0


# -- close ---------------------------------------------------------------------------------------


def test_close_on_polling_posts_the_close_packet() -> None:
    session = open_polling()
    assert session.close(T0) == [PostClose(b"1"), Closed(CloseReason.FORCED_CLOSE)]
    assert session.send("late") == []


def test_close_sends_the_buffer_first() -> None:
    # socket.ts close(): a write buffer waits for "drain", then the close.
    session = closing()
    assert session.send("dropped") == []  # as the reference: nothing is queued once closing
    session.received(Packet(PacketType.PING), T0)
    assert session.post_ended(T0) == [Post(b"3")]
    assert session.post_ended(T0) == [PostClose(b"1"), Closed(CloseReason.FORCED_CLOSE)]


def test_close_while_probing_closes_the_probe_and_drains() -> None:
    session = probing()
    session.send("x")
    assert session.close(T0) == [ProbeClose("the session is closing")]
    assert session.state is ClientState.CLOSING
    assert session.post_ended(T0) == [PostClose(b"1"), Closed(CloseReason.FORCED_CLOSE)]


def test_close_while_pausing_completes_the_upgrade_then_closes_the_websocket() -> None:
    # socket.ts close(): "upgrading" -> wait for "upgrade", flush on the new transport, close.
    session = pausing()
    session.received(Packet(PacketType.PING), T0)
    assert session.close(T0) == []
    assert session.poll_ended(T0) == [
        ProbeSend("5"),
        Upgraded(),
        WebSocketSend(("3",)),
        TransportClose(),
        Closed(CloseReason.FORCED_CLOSE),
    ]


def test_close_while_pausing_then_the_probe_closes_closes_on_polling() -> None:
    session = pausing()
    session.close(T0)
    assert session.probe_closed(T0) == [PostClose(b"1"), Closed(CloseReason.FORCED_CLOSE)]


def test_a_close_that_does_not_drain_in_time_closes_anyway() -> None:
    session = closing_upgrade()
    assert session.timer(T0 + TIMEOUT) == [
        ProbeClose("the session closed"),
        PostClose(b"1"),
        Closed(CloseReason.FORCED_CLOSE),
    ]


@pytest.mark.parametrize(
    ("feed", "reason", "description"),
    [
        (lambda s: s.transport_error("boom", T0), CloseReason.TRANSPORT_ERROR, "boom"),
        (lambda s: s.transport_closed({"code": 1000}, T0), CloseReason.TRANSPORT_CLOSE,
         {"code": 1000}),
        (lambda s: s.received(Packet(PacketType.CLOSE), T0), CloseReason.TRANSPORT_CLOSE,
         {"description": "transport closed by the server"}),
        (lambda s: s.parse_error("bad", T0), CloseReason.PARSE_ERROR, "bad"),
        (lambda s: s.timer(T0 + 45), CloseReason.PING_TIMEOUT, None),
        (lambda s: s.close(T0), CloseReason.FORCED_CLOSE, None),
    ],
)  # fmt: skip
def test_close_reasons(
    feed: Callable[[ClientSession], list[ClientEvent]], reason: CloseReason, description: object
) -> None:
    session = open_websocket()
    events = feed(session)
    assert events == [TransportClose(), Closed(reason, description)]
    assert str(reason) == reason.value  # the reference's words, as a plain string
    assert session.deadline is None
    assert feed(session) == []  # once closed, nothing more

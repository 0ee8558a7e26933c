"""A server close during the polling-to-WebSocket upgrade, driven by bytes and a virtual clock.

The rule (socket.ts ``close()`` waits for ``drain``; on ``upgrade`` it flushes the write buffer
on the new transport, then closes it when the socket is closing): whatever the server sent
before the close reaches the client before the close, on the transport in use or on the one
that wins the upgrade. The client pauses polling once it has "3probe" (engine.io-client
``probe()``), so a close must never abandon the probe: the WebSocket may be the only way left.

``41`` below is the Socket.IO DISCONNECT packet that ``socket.disconnect()`` writes before the
close; at this layer it is just a message.
"""

from __future__ import annotations

import pytest

from aiosio.protocol.engineio import TEXT_CONTENT_TYPE
from aiosio.protocol.errors import LocalProtocolError
from aiosio.protocol.session import Closed
from aiosio.protocol.session import EngineConfig
from aiosio.protocol.session import EngineSession
from aiosio.protocol.session import PollRejected
from aiosio.protocol.session import PollResponse
from aiosio.protocol.session import ProbeClose
from aiosio.protocol.session import ProbeSend
from aiosio.protocol.session import SessionId
from aiosio.protocol.session import State
from aiosio.protocol.session import TransportKind
from aiosio.protocol.session import Upgraded
from aiosio.protocol.session import UpgradeStarted
from aiosio.protocol.session import WebSocketClose
from aiosio.protocol.session import WebSocketSend

CONFIG = EngineConfig(
    ping_interval=25.0, ping_timeout=20.0, upgrade_timeout=10.0, close_timeout=30.0
)
FORCED = Closed("forced close")


def text(body: str) -> PollResponse:
    return PollResponse(body.encode(), TEXT_CONTENT_TYPE)


def state_of(session: EngineSession) -> State:
    """The state, read through a call so that mypy keeps no earlier narrowing."""
    return session.state


def opened(protocol: int = 4) -> EngineSession:
    """A polling session whose OPEN packet the first GET fetched at t=0."""
    session = EngineSession(SessionId("sid1"), protocol, TransportKind.POLLING, CONFIG, 0.0)
    [response] = session.receive_poll_request(0.0)
    assert isinstance(response, PollResponse)
    return session


def probing(protocol: int = 4) -> EngineSession:
    """A WebSocket with the session's sid is attached at t=1; "2probe" has not come yet."""
    session = opened(protocol)
    assert session.attach_probe(1.0) == []
    return session


def upgrading(protocol: int = 4) -> EngineSession:
    """ "2probe" answered with "3probe" at t=2: the client pauses polling, then sends "5"."""
    session = probing(protocol)
    assert session.receive_probe_message("2probe", 2.0) == [ProbeSend("3probe"), UpgradeStarted()]
    return session


# -- polling -------------------------------------------------------------------------------------


def test_polling_the_buffer_goes_on_the_next_get_then_the_close() -> None:
    session = opened()
    session.send("41")
    assert session.close(3.0) == []
    assert state_of(session) is State.CLOSING
    assert session.receive_poll_request(4.0) == [text("441")]
    assert session.receive_poll_request(5.0) == [text("6\x1e1"), FORCED]


# -- probing: the WebSocket is attached, "2probe" not received yet --------------------------------


def test_probing_the_probe_survives_the_close_and_carries_the_buffer() -> None:
    session = probing()
    session.send("41")
    assert session.close(3.0) == []  # the probe is not closed
    assert state_of(session) is State.CLOSING_UPGRADE
    assert session.deadline == 11.0  # the upgrade timeout, then the close timeout (33.0)
    assert session.receive_probe_message("2probe", 4.0) == [ProbeSend("3probe")]
    assert state_of(session) is State.CLOSING_UPGRADE
    assert session.receive_probe_message("5", 5.0) == [
        Upgraded(),
        WebSocketSend(("441",)),
        WebSocketClose(),
        FORCED,
    ]
    assert session.transport is TransportKind.WEBSOCKET
    assert session.deadline is None


def test_probing_a_client_still_polling_gets_the_buffer_then_the_close() -> None:
    session = probing()
    session.send("41")
    session.close(3.0)
    assert session.receive_poll_request(4.0) == [text("441")]
    assert state_of(session) is State.CLOSING_UPGRADE
    assert session.receive_poll_request(5.0) == [
        text("6\x1e1"),
        ProbeClose("session closed"),
        FORCED,
    ]


def test_probing_upgrade_packet_before_the_probe_ping() -> None:
    session = probing()
    session.send("41")
    session.close(3.0)
    assert session.receive_probe_message("5", 4.0) == [
        Upgraded(),
        WebSocketSend(("441",)),
        WebSocketClose(),
        FORCED,
    ]


def test_probing_with_a_waiting_get_closes_on_it_and_closes_the_probe() -> None:
    # The GET waits, so its buffer is empty and the client has not paused polling.
    session = probing()
    assert session.receive_poll_request(2.0) == []
    assert session.close(3.0) == [text("1"), ProbeClose("session closed"), FORCED]


# -- upgrading: "3probe" sent, the client pauses polling and sends "5" ---------------------------


def test_upgrading_client_paused_the_buffer_and_the_close_go_on_the_websocket() -> None:
    # The race of the bug: the client has paused polling and switched to the WebSocket when
    # the server closes; closing the probe then lost "41" (the client saw "transport close",
    # or nothing until the ping timeout).
    session = upgrading()
    session.send("41")
    session.send(b"\x01\x02")
    assert session.close(3.0) == []
    assert session.send("late") == []  # dropped once closing, as socket.ts sendPacket
    assert session.receive_probe_message("5", 4.0) == [
        Upgraded(),
        WebSocketSend(("441", b"\x01\x02")),
        WebSocketClose(),
        FORCED,
    ]


def test_upgrading_with_nothing_buffered_closes_the_websocket_after_the_upgrade() -> None:
    session = upgrading()
    assert session.close(3.0) == []
    assert session.receive_probe_message("5", 4.0) == [Upgraded(), WebSocketClose(), FORCED]


def test_upgrading_a_get_before_the_pause_takes_the_buffer() -> None:
    session = upgrading()
    session.send("41")
    session.close(3.0)
    assert session.receive_poll_request(4.0) == [text("441")]
    # The client pauses after that GET and completes the upgrade: only the close is left.
    assert session.receive_probe_message("5", 5.0) == [Upgraded(), WebSocketClose(), FORCED]


def test_upgrading_a_second_probe_ping_is_answered() -> None:
    session = upgrading()
    session.send("41")
    session.close(3.0)
    assert session.receive_probe_message("2probe", 4.0) == [ProbeSend("3probe")]
    assert state_of(session) is State.CLOSING_UPGRADE


def test_upgrading_v3_binary_on_the_websocket_keeps_its_type_byte() -> None:
    session = upgrading(3)
    session.send(b"\x01")
    session.close(3.0)
    assert session.receive_probe_message("5", 4.0) == [
        Upgraded(),
        WebSocketSend((b"\x04\x01",)),
        WebSocketClose(),
        FORCED,
    ]


# -- the probe fails while closing: the close goes on polling -------------------------------------


@pytest.mark.parametrize("how", ["probe closed", "bad packet", "upgrade timeout"])
def test_probe_lost_while_closing_falls_back_to_the_polling_close(how: str) -> None:
    session = upgrading()
    session.send("41")
    session.close(3.0)
    if how == "probe closed":
        assert session.probe_closed(4.0) == []
    elif how == "bad packet":
        assert session.receive_probe_message("4hello", 4.0) == [
            ProbeClose("unexpected packet MESSAGE during upgrade")
        ]
    else:
        assert session.deadline == 11.0  # attached at t=1
        assert session.handle_timeout(11.0) == [ProbeClose("client did not complete upgrade")]
    assert state_of(session) is State.CLOSING
    assert session.deadline == 33.0
    assert session.receive_poll_request(13.0) == [text("441")]
    assert session.receive_poll_request(14.0) == [text("6\x1e1"), FORCED]


def test_close_timeout_during_the_upgrade_closes_the_probe() -> None:
    session = upgrading()
    session.send("41")
    session.close(3.0)
    assert session.handle_timeout(11.0) == [ProbeClose("client did not complete upgrade")]
    assert session.handle_timeout(32.999) == []
    assert session.handle_timeout(33.0) == [FORCED]
    assert session.receive_poll_request(34.0) == [PollRejected()]


def test_close_timeout_before_the_upgrade_timeout() -> None:
    config = EngineConfig(upgrade_timeout=10.0, close_timeout=2.0)
    session = EngineSession(SessionId("sid1"), 4, TransportKind.POLLING, config, 0.0)
    session.receive_poll_request(0.0)
    session.attach_probe(1.0)
    session.close(3.0)
    assert session.deadline == 5.0
    assert session.handle_timeout(5.0) == [ProbeClose("session closed"), FORCED]


def test_client_close_packet_while_closing_during_the_upgrade() -> None:
    session = upgrading()
    session.close(3.0)
    assert session.receive_poll_data(b"1", False, 4.0) == [
        ProbeClose("session closed"),
        Closed("transport close"),
    ]


def test_no_second_probe_while_closing() -> None:
    session = upgrading()
    session.close(3.0)
    assert not session.upgrade_possible
    assert not session.is_open
    with pytest.raises(LocalProtocolError):
        session.attach_probe(4.0)
    assert session.close(4.0) == []  # idempotent


def test_discard_while_closing_during_the_upgrade() -> None:
    session = upgrading()
    session.send("41")
    session.close(3.0)
    assert session.discard(4.0) == [ProbeClose("session closed"), FORCED]


# -- upgraded -------------------------------------------------------------------------------------


def test_upgraded_the_messages_are_written_before_the_close() -> None:
    session = upgrading()
    assert session.receive_probe_message("5", 3.0) == [Upgraded()]
    assert session.send("41") == "441"
    assert session.close(4.0) == [WebSocketClose(), FORCED]


# -- server shutdown: what is buffered goes first; otherwise nothing is waited for ---------------
# socket.io-client dispatches the packets of a payload on the next tick but handles a close
# packet at once: the close never shares the payload of the buffer it follows.


def test_shutdown_polling_the_next_get_takes_the_buffer_the_one_after_the_close() -> None:
    session = opened()
    session.send("4bye")
    assert session.shutdown(3.0) == []
    assert state_of(session) is State.CLOSING
    assert session.has_undelivered
    assert session.send("late") == []
    assert session.receive_poll_request(4.0) == [text("44bye")]
    assert not session.has_undelivered
    assert session.receive_poll_request(4.1) == [text("6\x1e1"), FORCED]


def test_shutdown_polling_with_a_waiting_get_closes_on_it() -> None:
    session = opened()
    assert session.receive_poll_request(2.0) == []
    assert session.shutdown(3.0) == [text("1"), FORCED]


def test_shutdown_polling_with_nothing_buffered_closes_at_once() -> None:
    # Nothing to deliver: the reference's close(true) (the client's next GET learns it).
    session = opened()
    assert session.shutdown(3.0) == [FORCED]


def test_shutdown_probing_the_buffer_goes_on_the_websocket_that_wins() -> None:
    session = probing()
    session.send("4bye")
    assert session.shutdown(3.0) == []
    assert state_of(session) is State.CLOSING_UPGRADE
    assert session.receive_probe_message("2probe", 4.0) == [ProbeSend("3probe")]
    assert session.receive_probe_message("5", 5.0) == [
        Upgraded(),
        WebSocketSend(("44bye",)),
        WebSocketClose(),
        FORCED,
    ]


def test_shutdown_upgrading_a_get_before_the_pause_takes_the_buffer() -> None:
    session = upgrading()
    session.send("4bye")
    session.shutdown(3.0)
    assert session.receive_poll_request(4.0) == [text("44bye")]
    assert session.receive_probe_message("5", 4.1) == [Upgraded(), WebSocketClose(), FORCED]


def test_shutdown_upgrading_with_nothing_buffered_closes_the_probe_at_once() -> None:
    session = upgrading()
    assert session.shutdown(3.0) == [ProbeClose("session closed"), FORCED]


@pytest.mark.parametrize("how", ["probe closed", "upgrade timeout"])
def test_shutdown_probe_lost_the_buffer_goes_on_polling(how: str) -> None:
    session = upgrading()
    session.send("4bye")
    session.shutdown(3.0)
    if how == "probe closed":
        assert session.probe_closed(4.0) == []
    else:
        assert session.handle_timeout(11.0) == [ProbeClose("client did not complete upgrade")]
    assert state_of(session) is State.CLOSING
    assert session.receive_poll_request(12.0) == [text("44bye")]
    assert session.receive_poll_request(12.1) == [text("6\x1e1"), FORCED]


def test_shutdown_after_disconnect_keeps_the_pending_close() -> None:
    # disconnect() (close) first, then the server shuts down before the client's next GET.
    session = opened()
    session.send("41")
    session.close(3.0)
    assert session.shutdown(3.5) == []
    assert session.receive_poll_request(4.0) == [text("441")]


def test_shutdown_after_the_buffer_was_taken_closes_at_once() -> None:
    session = opened()
    session.send("41")
    session.close(3.0)
    assert session.receive_poll_request(4.0) == [text("441")]
    assert session.shutdown(4.5) == [FORCED]


def test_shutdown_on_websocket_closes_it_at_once() -> None:
    session = upgrading()
    session.receive_probe_message("5", 3.0)
    assert session.send("4bye") == "44bye"
    assert session.shutdown(4.0) == [WebSocketClose(), FORCED]
    assert session.shutdown(5.0) == []


# -- the namespace connect timeout during the upgrade ---------------------------------------------
# The Socket.IO layer closes a connection that joined no namespace within connect_timeout: an
# engine close() with nothing buffered. The client must get the close (not a dropped probe and a
# paused poll that waits for the ping timeout) whatever the upgrade's state.


def test_connect_timeout_probing_the_close_goes_on_the_next_get() -> None:
    session = probing()
    assert session.close(45.0) == []
    assert session.receive_poll_request(45.1) == [
        text("6\x1e1"),
        ProbeClose("session closed"),
        FORCED,
    ]


def test_connect_timeout_upgrading_client_paused_the_close_goes_on_the_websocket() -> None:
    session = upgrading()
    assert session.close(45.0) == []
    assert session.deadline == 11.0  # the upgrade timeout still runs
    assert session.receive_probe_message("5", 45.1) == [Upgraded(), WebSocketClose(), FORCED]


def test_connect_timeout_upgrading_a_get_before_the_pause_gets_the_close() -> None:
    # In UPGRADING every GET is answered at once (noop, so that the client can pause); a GET
    # sent before the client paused now carries the close, and the probe is closed with it.
    session = upgrading()
    assert session.close(45.0) == []
    assert session.receive_poll_request(45.1) == [
        text("6\x1e1"),
        ProbeClose("session closed"),
        FORCED,
    ]

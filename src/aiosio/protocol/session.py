"""The server side of one Engine.IO session, as a sans-I/O state machine.

The I/O layer feeds it what happened (a long-poll GET arrived, a POST body, a WebSocket message,
a timer fired) with the current time, and acts on the events it returns (answer the waiting GET
with these bytes, write these messages to the WebSocket, close the probe, deliver a message to the
application). It never reads a clock, never touches a socket and never starts a task: timers are
deadlines (:attr:`EngineSession.deadline`) that the I/O layer schedules.

Behaviour follows the reference ``engine.io`` 6.x ``Socket`` and its transports
(``docs/engine.io-protocol/v4-current.md``: "Handshake", "Heartbeat", "Upgrade", "Message").

States and their transitions, all in :meth:`EngineSession._set_state`::

    POLLING ──ws with sid──▶ PROBING ──2probe──▶ UPGRADING ──5──▶ WEBSOCKET
       ▲                        │                   │
       └──── probe failed ◀─────┴───────────────────┘
    POLLING ──close()──▶ CLOSING ──buffer drained, close sent──▶ CLOSED
    (shutdown() is close() when packets are buffered, else an immediate close)
    PROBING / UPGRADING ──close()──▶ CLOSING_UPGRADE ──5: buffer, close on the WebSocket──▶ CLOSED
                                           │ (a GET takes the buffer, the next one the close)
                                           └── probe failed ──▶ CLOSING
    any ──transport lost, ping timeout, parse error──▶ CLOSED

One rule for every close the server asks for (``close()``): what was sent before it reaches the
client before the close, on the transport in use or on the one that wins a pending upgrade (the
reference's ``close()`` waits for ``drain``; its upgrade flushes the write buffer on the new
transport, then closes it when the socket is closing). A close never abandons a probe the client
may already have switched to: the client pauses polling once it has "3probe", so only the
WebSocket can still carry the packets and the close.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import NewType

from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.engineio import PayloadError
from aiosio.protocol.engineio import decode_packet
from aiosio.protocol.engineio import decode_payload
from aiosio.protocol.engineio import encode_packet
from aiosio.protocol.engineio import encode_payload
from aiosio.protocol.errors import LocalProtocolError
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.transport_names import TRANSPORT_NAMES
from aiosio.protocol.transport_names import TransportKind
from aiosio.protocol.transport_names import TransportName

__all__ = [
    "TRANSPORT_NAMES",
    "Closed",
    "EngineConfig",
    "EngineSession",
    "Event",
    "MessageReceived",
    "PollRejected",
    "PollResponse",
    "ProbeClose",
    "ProbeSend",
    "SessionId",
    "State",
    "TransportKind",
    "TransportName",
    "UpgradeStarted",
    "Upgraded",
    "WebSocketClose",
    "WebSocketSend",
    "earliest",
]

SessionId = NewType("SessionId", str)


def earliest(*deadlines: float | None) -> float | None:
    """The earliest of the ``deadlines`` that are set (``None`` when none is): a session's
    next timer, of the several it may have running (the server's here, the client's in
    :mod:`aiosio.protocol.client_session`)."""
    best: float | None = None
    for t in deadlines:
        if t is not None and (best is None or t < best):
            best = t
    return best


class State(enum.Enum):
    POLLING = "polling"  # open on HTTP long-polling
    PROBING = "probing"  # a WebSocket is attached for an upgrade; waiting for "2probe"
    UPGRADING = "upgrading"  # "3probe" answered; waiting for "5" on the WebSocket
    WEBSOCKET = "websocket"  # open on WebSocket or WebTransport (direct, or after the upgrade)
    CLOSING = "closing"  # close() called on polling; the close packet waits for a GET
    # close() called while a WebSocket probe is attached: the buffer and the close go on the
    # next GET, or on the WebSocket if the client completes the upgrade ("5")
    CLOSING_UPGRADE = "closing during upgrade"
    CLOSED = "closed"


_OPEN_POLLING = frozenset({State.POLLING, State.PROBING, State.UPGRADING})
_PROBE_ATTACHED = frozenset({State.PROBING, State.UPGRADING, State.CLOSING_UPGRADE})
_CLOSING = frozenset({State.CLOSING, State.CLOSING_UPGRADE})
# Read for every message sent and received: on Python 3.11 ``State.X`` is a descriptor call.
_WEBSOCKET = State.WEBSOCKET
_TRANSITIONS: dict[State, frozenset[State]] = {
    State.POLLING: frozenset({State.PROBING, State.CLOSING, State.CLOSED}),
    # "5" may arrive before "2probe": the reference upgrades all the same.
    State.PROBING: frozenset(
        {State.POLLING, State.UPGRADING, State.WEBSOCKET, State.CLOSING_UPGRADE, State.CLOSED}
    ),
    State.UPGRADING: frozenset(
        {State.POLLING, State.WEBSOCKET, State.CLOSING_UPGRADE, State.CLOSED}
    ),
    State.WEBSOCKET: frozenset({State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    # The probe fails (back to a plain polling close), or "5" arrives: the session is on the
    # WebSocket for the time it takes to write the buffer and close it.
    State.CLOSING_UPGRADE: frozenset({State.CLOSING, State.WEBSOCKET, State.CLOSED}),
    State.CLOSED: frozenset(),
}


# -- events returned to the I/O layer ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message for the application."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class PollResponse:
    """Answer the waiting long-poll GET with this body (status 200)."""

    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class PollRejected:
    """Answer the GET just received with HTTP 400: another one is already waiting."""


@dataclass(frozen=True, slots=True)
class WebSocketSend:
    """Write these messages, in order, to the session's WebSocket."""

    messages: tuple[str | bytes, ...]


@dataclass(frozen=True, slots=True)
class WebSocketClose:
    """Close the session's WebSocket (normal closure)."""


@dataclass(frozen=True, slots=True)
class ProbeSend:
    """Write this message to the WebSocket being probed for the upgrade."""

    message: str | bytes


@dataclass(frozen=True, slots=True)
class ProbeClose:
    """The upgrade failed: close the probe WebSocket; the session stays on polling."""

    reason: str


@dataclass(frozen=True, slots=True)
class UpgradeStarted:
    """The probe was answered; the client is switching transports."""


@dataclass(frozen=True, slots=True)
class Upgraded:
    """The probe WebSocket is now the session's transport; the polling transport is gone."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over. ``reason`` is one of the reference reasons."""

    reason: str
    description: str | None = None


Event = (
    MessageReceived
    | PollResponse
    | PollRejected
    | WebSocketSend
    | WebSocketClose
    | ProbeSend
    | ProbeClose
    | UpgradeStarted
    | Upgraded
    | Closed
)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Session settings, in seconds and bytes."""

    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    upgrade_timeout: float = 10.0
    max_payload: int = 1_000_000
    upgrades: Sequence[str] = ("websocket",)
    close_timeout: float = 30.0
    max_payload_packets: int = 10_000

    def handshake(self, sid: str, transport: TransportKind) -> str:
        """The OPEN packet's JSON, keys in the reference order."""
        return json.dumps(
            {
                "sid": sid,
                "upgrades": list(self.upgrades) if transport is TransportKind.POLLING else [],
                "pingInterval": round(self.ping_interval * 1000),
                "pingTimeout": round(self.ping_timeout * 1000),
                "maxPayload": self.max_payload,
            },
            separators=(",", ":"),
        )


_CLOSE = Packet(PacketType.CLOSE)
_NOOP = Packet(PacketType.NOOP)
_PONG_PROBE = Packet(PacketType.PONG, "probe")


@dataclass(eq=False, slots=True)
class EngineSession:
    """One Engine.IO session on the server. See the module docstring for the state diagram."""

    sid: SessionId
    protocol: int
    transport: TransportKind
    config: EngineConfig
    now: float
    supports_binary: bool = True
    # The fields below are set in __post_init__, not by defaults: compiled by mypyc (setup.py),
    # an instance does not see the class's default of a field that is not an argument.
    state: State = field(init=False)
    # Packets waiting for a GET (polling) or for the upgrade to complete.
    _buffer: list[Packet] = field(init=False)
    _poll_waiting: bool = field(init=False)
    _buffered_size: int = field(init=False)
    _ping_at: float | None = field(init=False)
    _heartbeat_deadline: float | None = field(init=False)
    _upgrade_deadline: float | None = field(init=False)
    _close_deadline: float | None = field(init=False)
    # The transport of the probe attached for an upgrade (WebSocket or WebTransport).
    _probe_kind: TransportKind = field(init=False)

    def __post_init__(self) -> None:
        polling = self.transport is TransportKind.POLLING
        self.state = State.POLLING if polling else State.WEBSOCKET
        self._buffer = [Packet(PacketType.OPEN, self.config.handshake(self.sid, self.transport))]
        self._poll_waiting = False
        self._buffered_size = 0
        self._ping_at = None
        self._heartbeat_deadline = None
        self._upgrade_deadline = None
        self._close_deadline = None
        self._probe_kind = TransportKind.WEBSOCKET
        if self.protocol == 3:
            # Revision 3: the client pings, the server answers and expects the next ping in time.
            self._heartbeat_deadline = (
                self.now + self.config.ping_interval + self.config.ping_timeout
            )
        else:
            self._ping_at = self.now + self.config.ping_interval

    # -- introspection ----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.state is not State.CLOSED and self.state not in _CLOSING

    @property
    def buffered_size(self) -> int:
        """Approximate bytes of the messages waiting for a GET (or for the upgrade)."""
        return self._buffered_size

    @property
    def poll_waiting(self) -> bool:
        """A long-poll GET is waiting for data."""
        return self._poll_waiting

    @property
    def is_closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def deadline(self) -> float | None:
        """The earliest time at which :meth:`handle_timeout` has something to do."""
        return earliest(
            self._ping_at, self._heartbeat_deadline, self._upgrade_deadline, self._close_deadline
        )

    @property
    def upgrade_possible(self) -> bool:
        """A WebSocket may be attached for an upgrade (the reference's upgraded/upgrading check)."""
        return self.state is State.POLLING

    # -- state ------------------------------------------------------------------------------------

    def _set_state(self, new: State) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise LocalProtocolError(
                f"engine session {self.sid}: no transition from {self.state.value} to {new.value}"
            )
        self.state = new

    # -- outbound ---------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> str | bytes | list[Event]:
        """Queue a message for the client.

        On a WebSocket the result is the one message to write, not an event (the hot path of
        every emit costs no event object); otherwise the events (a waiting GET answered, or
        nothing while the message waits for one). Dropped silently once the session is
        closing, as in the reference (``sendPacket`` ignores packets after ``close()``)."""
        state = self.state
        if state is _WEBSOCKET:
            if isinstance(data, str):
                return "4" + data
            if not self.supports_binary:  # ?b64=1: base64 text, as encode_packet writes it
                return encode_packet(Packet(PacketType.MESSAGE, data), self.protocol, False)
            return data if self.protocol == 4 else b"\x04" + data
        if state is State.CLOSED or state in _CLOSING:
            return []
        return self._send_packet(Packet(PacketType.MESSAGE, data))

    def _send_packet(self, packet: Packet) -> list[Event]:
        if self.state is State.WEBSOCKET:
            return [WebSocketSend((encode_packet(packet, self.protocol, self.supports_binary),))]
        self._buffer.append(packet)
        self._buffered_size += len(packet.data)
        return self._flush_poll()

    def _flush_poll(self) -> list[Event]:
        if not self._poll_waiting or not self._buffer:
            return []
        return [self._answer_poll(self._take_buffer())]

    def _take_buffer(self) -> list[Packet]:
        self._buffered_size = 0
        packets, self._buffer = self._buffer, []
        return packets

    def _answer_poll(self, packets: list[Packet]) -> PollResponse:
        self._poll_waiting = False
        body, content_type = encode_payload(packets, self.protocol, self.supports_binary)
        return PollResponse(body, content_type)

    def initial_messages(self) -> list[Event]:
        """For a session opened directly on WebSocket: the OPEN packet to write first."""
        if self.state is not State.WEBSOCKET:
            raise LocalProtocolError("initial_messages() is for sessions opened on websocket")
        packets = self._take_buffer()
        return [WebSocketSend(tuple(encode_packet(p, self.protocol) for p in packets))]

    # -- polling transport ------------------------------------------------------------------------

    def receive_poll_request(self, now: float) -> list[Event]:
        """A long-poll GET arrived. Either answered at once (a PollResponse in the result) or
        left waiting until data arrives; a second concurrent GET closes the session."""
        self.now = now
        if self.state not in _OPEN_POLLING and self.state not in _CLOSING:
            return [PollRejected()]
        if self._poll_waiting:
            # Reference: "overlap from client" is a transport error; the new GET gets 400.
            return [PollRejected(), *self._terminate("transport error", "overlap from client")]
        self._poll_waiting = True
        if self.state in _CLOSING:
            if self._buffer:
                return [self._answer_poll(self._take_buffer())]
            # The orderly close: an empty send carries the close packet (polling.ts onPollRequest).
            # A probe still attached (CLOSING_UPGRADE) is closed by _terminate.
            events: list[Event] = [self._answer_poll([_NOOP, _CLOSE])]
            return events + self._terminate("forced close", None, close_transport=False)
        if self._buffer:
            return [self._answer_poll(self._take_buffer())]
        if self.state is State.UPGRADING:
            # Force a polling cycle so the client can pause polling and send "5" (socket.ts check).
            return [self._answer_poll([_NOOP])]
        return []

    def poll_aborted(self, now: float) -> list[Event]:
        """The client closed the connection of its waiting GET."""
        self.now = now
        if not self._poll_waiting or self.state is State.CLOSED:
            return []
        self._poll_waiting = False
        return self._terminate("transport error", "poll connection closed prematurely")

    def receive_poll_data(self, body: bytes, binary: bool, now: float) -> list[Event]:
        """A POST body arrived on the polling transport."""
        self.now = now
        if self.state is State.CLOSED or self.state is State.WEBSOCKET:
            return []
        try:
            packets = decode_payload(
                body, self.protocol, binary=binary, max_packets=self.config.max_payload_packets
            )
        except PayloadError as exc:
            events = self._receive_packets(exc.decoded, polling=True)
            if self.is_closed:
                return events
            return events + self._terminate("parse error", str(exc))
        return self._receive_packets(packets, polling=True)

    # -- WebSocket transport ----------------------------------------------------------------------

    def receive_message(
        self, raw: str | bytes, now: float | Callable[[], float]
    ) -> str | bytes | list[Event]:
        """A message arrived on the session's own WebSocket.

        A MESSAGE packet returns its data for the application, not an event (the hot path of
        every message a client sends); any other packet returns the events it causes. ``now``
        may be given as the function that returns it (the I/O layer's clock): it is then
        called only for the packets that need the time (heartbeats), so that a message costs
        no clock read."""
        if self.state is not _WEBSOCKET:
            return []
        if isinstance(raw, str):
            if raw[:1] == "4":
                return raw[1:]
        elif self.protocol == 4:
            return raw
        elif raw[:1] == b"\x04":
            return raw[1:]
        self.now = now if isinstance(now, float | int) else now()
        try:
            packet = decode_packet(raw, self.protocol)
        except RemoteProtocolError as exc:
            return self._terminate("parse error", str(exc))
        return self._receive_packets((packet,))

    def transport_parse_error(self, now: float, reason: str) -> list[Event]:
        """The session's message transport received bytes that are no message: a WebTransport
        frame its decoder refuses. ``parse error``, as the reference's decoder stream, whose
        error packet closes the socket with that reason (engine.io socket.ts ``onPacket``)."""
        self.now = now
        if self.state is not State.WEBSOCKET:
            return []
        return self._terminate("parse error", reason, close_transport=False)

    def websocket_closed(self, now: float, error: str | None = None) -> list[Event]:
        """The session's WebSocket closed (``error`` when it broke rather than closed)."""
        self.now = now
        if self.state is not State.WEBSOCKET:
            return []
        if error is not None:
            return self._terminate("transport error", error, close_transport=False)
        return self._terminate("transport close", None, close_transport=False)

    # -- upgrade ----------------------------------------------------------------------------------

    def attach_probe(
        self, now: float, kind: TransportKind = TransportKind.WEBSOCKET
    ) -> list[Event]:
        """A WebSocket (or a WebTransport stream, ``kind``) carrying this session's sid was
        accepted for an upgrade."""
        self.now = now
        if self.state is not State.POLLING:
            raise LocalProtocolError(f"cannot probe a session in state {self.state.value}")
        if kind is TransportKind.POLLING:
            raise LocalProtocolError("a session cannot upgrade to polling")
        self._probe_kind = kind
        self._set_state(State.PROBING)
        self._upgrade_deadline = now + self.config.upgrade_timeout
        return []

    def receive_probe_message(self, raw: str | bytes, now: float) -> list[Event]:
        """A message arrived on the WebSocket being probed."""
        self.now = now
        if self.state not in _PROBE_ATTACHED:
            return []
        try:
            packet = decode_packet(raw, self.protocol)
        except RemoteProtocolError:
            return self._fail_probe("invalid packet during upgrade")
        if packet.type is PacketType.PING and packet.data == "probe":
            events: list[Event] = [ProbeSend(encode_packet(_PONG_PROBE, self.protocol))]
            if self.state is State.PROBING:
                self._set_state(State.UPGRADING)
                events.append(UpgradeStarted())
            if self._poll_waiting and not self._buffer:
                events.append(self._answer_poll([_NOOP]))
            return events
        if packet.type is PacketType.UPGRADE:
            return self._complete_upgrade()
        return self._fail_probe(f"unexpected packet {packet.type.name} during upgrade")

    def probe_closed(self, now: float) -> list[Event]:
        """The probe WebSocket closed before the upgrade completed."""
        self.now = now
        if self.state not in _PROBE_ATTACHED:
            return []
        self._upgrade_deadline = None
        self._set_state(self._without_probe())
        return []

    def _without_probe(self) -> State:
        """The state once the probe is gone: polling, or a polling close if one is pending."""
        return State.CLOSING if self.state is State.CLOSING_UPGRADE else State.POLLING

    def _fail_probe(self, reason: str) -> list[Event]:
        self._upgrade_deadline = None
        self._set_state(self._without_probe())
        return [ProbeClose(reason)]

    def _complete_upgrade(self) -> list[Event]:
        self._upgrade_deadline = None
        closing = self.state is State.CLOSING_UPGRADE
        events: list[Event] = []
        if self._poll_waiting:
            # The discarded polling transport closes its waiting GET (polling.ts doClose).
            events.append(self._answer_poll([_CLOSE]))
        self._set_state(State.WEBSOCKET)
        self.transport = self._probe_kind
        events.append(Upgraded())
        if self._buffer:
            packets = self._take_buffer()
            events.append(
                WebSocketSend(
                    tuple(encode_packet(p, self.protocol, self.supports_binary) for p in packets)
                )
            )
        if closing:
            # socket.ts, on "upgrade": flush(), then a closing socket closes the new transport.
            return events + self._terminate("forced close", None)
        return events

    # -- packets ----------------------------------------------------------------------------------

    def _receive_packets(self, packets: Sequence[Packet], polling: bool = False) -> list[Event]:
        events: list[Event] = []
        for packet in packets:
            ptype = packet.type
            if ptype is PacketType.CLOSE and polling and self.state is not State.CLOSED:
                # polling.ts onData: a close packet closes the transport, whatever the socket's
                # state (also while CLOSING); a waiting GET gets noop. Over WebSocket the
                # reference ignores it: the WebSocket close follows.
                if self._poll_waiting:
                    events.append(self._answer_poll([_NOOP]))
                events += self._terminate("transport close", None, close_transport=False)
                break
            if not self.is_open:
                break  # "packet received with closed socket"
            if ptype is PacketType.MESSAGE:
                events.append(MessageReceived(packet.data))
            elif ptype is PacketType.PONG:
                if self.protocol == 3:
                    events += self._terminate("transport error", "invalid heartbeat direction")
                else:
                    self._heartbeat_deadline = None
                    self._ping_at = self.now + self.config.ping_interval
            elif ptype is PacketType.PING:
                if self.protocol != 3:
                    events += self._terminate("transport error", "invalid heartbeat direction")
                else:
                    self._heartbeat_deadline = (
                        self.now + self.config.ping_interval + self.config.ping_timeout
                    )
                    events += self._send_packet(Packet(PacketType.PONG, packet.data))
            # OPEN, UPGRADE, NOOP (and CLOSE over WebSocket) from the client are ignored, as in
            # the reference.
        return events

    # -- timers -----------------------------------------------------------------------------------

    def handle_timeout(self, now: float) -> list[Event]:
        """Run whatever deadline has passed."""
        self.now = now
        events: list[Event] = []
        if self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            return self._terminate("forced close", None)
        if self._upgrade_deadline is not None and now >= self._upgrade_deadline:
            events += self._fail_probe("client did not complete upgrade")
        if self._heartbeat_deadline is not None and now >= self._heartbeat_deadline:
            return events + self._terminate("ping timeout", None)
        if self._ping_at is not None and now >= self._ping_at and self.is_open:
            self._ping_at = None
            self._heartbeat_deadline = now + self.config.ping_timeout
            events += self._send_packet(Packet(PacketType.PING))
        return events

    # -- closing ----------------------------------------------------------------------------------

    def close(self, now: float) -> list[Event]:
        """Server-initiated close (``socket.close()``): reason ``forced close``.

        Everything sent before reaches the client first (socket.ts ``close()`` waits for
        ``drain``): on a WebSocket the messages are already written; on polling the buffer
        goes on the next GET and the close on the one after; during an upgrade, on the next GET
        or, if the client completes the upgrade, on the WebSocket, then the WebSocket closes.
        Without a GET within ``close_timeout`` the session ends all the same."""
        self.now = now
        if not self.is_open:
            return []
        if self.state is State.WEBSOCKET:
            return self._terminate("forced close", None)
        if self._poll_waiting and not self._buffer:
            # polling doClose, writable: the close packet now; a probe is closed with the
            # session (socket.ts _maybeUpgrade onClose).
            events: list[Event] = [self._answer_poll([_CLOSE])]
            return events + self._terminate("forced close", None, close_transport=False)
        # The upgrade deadline stays: a probe that fails leaves a polling close (CLOSING).
        self._set_state(State.CLOSING if self.state is State.POLLING else State.CLOSING_UPGRADE)
        self._ping_at = None
        self._heartbeat_deadline = None
        self._close_deadline = now + self.config.close_timeout
        return self._flush_poll()

    def shutdown(self, now: float) -> list[Event]:
        """Server shutdown: close at once, except that packets still waiting for the client
        (no GET waiting for them, or held by an upgrade in progress) are delivered first.

        On a WebSocket everything is written already: the WebSocket closes now. With nothing
        buffered, a waiting GET gets the close packet and the session ends (the reference's
        ``close(true)``). With packets buffered the session closes as :meth:`close` does: the
        next GET takes them and the one after the close (not both at once: socket.io-client
        dispatches packets on the next tick but closes at once, so packets in the payload of
        the close are lost), or a completed upgrade writes them, then closes the WebSocket.
        The I/O layer bounds the wait (``EngineServer``'s ``shutdown_timeout``) and
        discards what is left (:meth:`discard`)."""
        self.now = now
        if self.state is State.CLOSED:
            return []
        if self.state is State.WEBSOCKET or not self._buffer:
            return self._terminate("forced close", None)
        return self.close(now)

    @property
    def has_undelivered(self) -> bool:
        """Packets the client has not been given yet wait in the session (polling, upgrade)."""
        return bool(self._buffer) and self.state is not State.CLOSED

    def discard(self, now: float, reason: str = "forced close") -> list[Event]:
        """Close at once without waiting for the client (server shutdown)."""
        self.now = now
        if self.state is State.CLOSED:
            return []
        return self._terminate(reason, None)

    def _terminate(
        self, reason: str, description: str | None, *, close_transport: bool = True
    ) -> list[Event]:
        """Enter CLOSED; close the transports still open; report :class:`Closed` last."""
        events: list[Event] = []
        if self.state in _PROBE_ATTACHED:
            events.append(ProbeClose("session closed"))
        if close_transport:
            if self.state is State.WEBSOCKET:
                events.append(WebSocketClose())
            elif self._poll_waiting:
                events.append(self._answer_poll([_CLOSE]))
        self._poll_waiting = False
        self._set_state(State.CLOSED)
        self._buffer = []
        self._buffered_size = 0
        self._ping_at = self._heartbeat_deadline = None
        self._upgrade_deadline = self._close_deadline = None
        events.append(Closed(reason, description))
        return events

"""The client side of one Engine.IO session, as a sans-I/O state machine.

The I/O layer (``aiosio.client.engine``) feeds it what happened (the handshake arrived, a packet
was received, a long-poll GET or a POST was answered, the probe WebSocket opened or answered, a
timer fired) with the current time, and acts on the events it returns (send a GET, POST this
body, write these messages to the WebSocket, open a probe, switch to it, close). It never reads a
clock, never touches a socket and never starts a task: timers are deadlines
(:attr:`ClientSession.deadline`) that the I/O layer schedules.

Behaviour follows engine.io-client 6.x (``socket.ts``, ``transports/polling.ts``;
``docs/engine.io-protocol/v4-current.md``: "Handshake", "Heartbeat", "Upgrade"):

- the handshake on the first transport; messages sent before it wait in the buffer;
- the heartbeat: the server pings, the client answers with a pong; no ping within
  ``pingInterval + pingTimeout`` closes the session with ``ping timeout``;
- the upgrade: a WebSocket probe sends ``2probe``; on ``3probe`` polling pauses (no new GET or
  POST; the ones in flight end: the server answers the waiting GET with a noop), then ``5`` goes
  on the probe, which becomes the transport, and the buffer is written to it;
- the write buffer goes out in one POST at a time on polling, split by the server's
  ``maxPayload`` (``_getWritablePackets``), at once on WebSocket;
- ``close()`` sends what is buffered first (on polling, or on the WebSocket that wins an upgrade
  under way), then a close packet on polling, or closes the WebSocket.

States and their transitions, all in :data:`TRANSITIONS`, checked by :func:`check_transition`::

    OPENING ──handshake──▶ OPEN ──(polling, server offers websocket)──▶ PROBING
                            ▲                                            │ 3probe
                            ├──── probe failed, refused or timed out ◀───┤
                            │                                            ▼
                            ├──── probe closed while pausing ◀──────── PAUSING
                            └──── GET and POST in flight ended: 5, upgraded (on websocket) ◀─┘
    OPEN / PROBING ──close(), polling writes pending──▶ CLOSING ──drained: close packet──▶ CLOSED
    PAUSING ──close()──▶ CLOSING_UPGRADE ──upgraded: buffer, then the WebSocket closes──▶ CLOSED
                              └── probe closed ──▶ CLOSING
    any ──close packet, transport error or close, parse error, ping timeout──▶ CLOSED

There is no state between ``5`` and the switch: the reference sends ``5`` and switches in the
same step, so nothing waits there.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.engineio import decode_packet
from aiosio.protocol.engineio import encode_packet
from aiosio.protocol.engineio import encode_payload
from aiosio.protocol.errors import LocalProtocolError
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.session import TransportKind
from aiosio.protocol.session import earliest

# The transports that carry one message at a time (a WebTransport stream carries the same
# messages as a WebSocket, framed): the session behaves the same on either.
_MESSAGE_TRANSPORTS = frozenset({TransportKind.WEBSOCKET, TransportKind.WEBTRANSPORT})

__all__ = [
    "TRANSITIONS",
    "ClientConfig",
    "ClientEvent",
    "ClientSession",
    "ClientState",
    "CloseReason",
    "Closed",
    "MessageReceived",
    "PingReceived",
    "Poll",
    "Post",
    "PostClose",
    "ProbeClose",
    "ProbeSend",
    "StartProbe",
    "TransportClose",
    "TransportKind",
    "Upgraded",
    "WebSocketSend",
    "check_transition",
]


class ClientState(enum.Enum):
    OPENING = "opening"  # the handshake is requested, not yet answered
    OPEN = "open"  # open on its transport; no upgrade under way
    PROBING = "probing"  # open on polling; a WebSocket probe connects or waits for "3probe"
    PAUSING = "pausing"  # "3probe" came: polling pauses until its GET and POST in flight end
    CLOSING = "closing"  # close() on polling: the buffer goes out, then the close packet
    # close() while pausing: the upgrade completes, the buffer goes on the WebSocket, which then
    # closes (the reference waits for "upgrade" before closing, socket.ts close())
    CLOSING_UPGRADE = "closing during upgrade"
    CLOSED = "closed"


class CloseReason(enum.StrEnum):
    """Why a session ended: engine.io-client's reasons, word for word."""

    FORCED_CLOSE = "forced close"  # close() was called
    TRANSPORT_CLOSE = "transport close"  # the server closed (close packet, WebSocket closed)
    TRANSPORT_ERROR = "transport error"  # a request failed, an HTTP error, a WebSocket error
    PARSE_ERROR = "parse error"  # the server sent something that does not decode
    PING_TIMEOUT = "ping timeout"  # no ping within pingInterval + pingTimeout


TRANSITIONS: dict[ClientState, frozenset[ClientState]] = {
    ClientState.OPENING: frozenset({ClientState.OPEN, ClientState.CLOSED}),
    ClientState.OPEN: frozenset({ClientState.PROBING, ClientState.CLOSING, ClientState.CLOSED}),
    ClientState.PROBING: frozenset(
        {ClientState.OPEN, ClientState.PAUSING, ClientState.CLOSING, ClientState.CLOSED}
    ),
    # To OPEN: resumed on polling (the probe closed), or upgraded (now on websocket).
    ClientState.PAUSING: frozenset(
        {ClientState.OPEN, ClientState.CLOSING_UPGRADE, ClientState.CLOSED}
    ),
    ClientState.CLOSING: frozenset({ClientState.CLOSED}),
    ClientState.CLOSING_UPGRADE: frozenset({ClientState.CLOSING, ClientState.CLOSED}),
    ClientState.CLOSED: frozenset(),
}


def check_transition(old: ClientState, new: ClientState) -> None:
    """Raise :class:`LocalProtocolError` unless :data:`TRANSITIONS` allows ``old`` -> ``new``:
    a session asked to take another is a bug of this module, not of the peer."""
    if new not in TRANSITIONS[old]:
        raise LocalProtocolError(
            f"engine.io client session: no transition from {old.value} to {new.value}"
        )


# States in which packets from the server are handled (the reference's "open" or "closing").
_RECEIVING = frozenset(
    {
        ClientState.OPEN,
        ClientState.PROBING,
        ClientState.PAUSING,
        ClientState.CLOSING,
        ClientState.CLOSING_UPGRADE,
    }
)
# States in which the write buffer may go out (not while the upgrade pauses polling).
_FLUSHING = frozenset({ClientState.OPEN, ClientState.PROBING, ClientState.CLOSING})
# States in which send() accepts a message (the reference's "opening" or "open").
_SENDING = frozenset(
    {ClientState.OPENING, ClientState.OPEN, ClientState.PROBING, ClientState.PAUSING}
)
_PAUSED = frozenset({ClientState.PAUSING, ClientState.CLOSING_UPGRADE})
_PROBE_ATTACHED = frozenset({ClientState.PROBING, *_PAUSED})

_CLOSE = Packet(PacketType.CLOSE)
_PONG = Packet(PacketType.PONG)
_PING_PROBE = Packet(PacketType.PING, "probe")
_UPGRADE = Packet(PacketType.UPGRADE)
_SERVER_CLOSED = "transport closed by the server"


# -- events returned to the I/O layer ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message for the application."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class PingReceived:
    """The server pinged (the pong is already queued); the Manager's ``ping`` event."""


@dataclass(frozen=True, slots=True)
class Poll:
    """Send a long-poll GET. Feed its packets to :meth:`ClientSession.received`, then call
    :meth:`ClientSession.poll_ended` (or a failure input)."""


@dataclass(frozen=True, slots=True)
class Post:
    """POST this payload; call :meth:`ClientSession.post_ended` when it is answered with 200."""

    body: bytes


@dataclass(frozen=True, slots=True)
class WebSocketSend:
    """Write these messages, in order, to the session's WebSocket; ``compress`` is each one's
    option (``False``: never through permessage-deflate; every message may be compressed when
    it is empty)."""

    messages: tuple[str | bytes, ...]
    compress: tuple[bool, ...] = ()

    def pairs(self) -> Iterator[tuple[str | bytes, bool]]:
        """The messages with their option: ``for message, compress in event.pairs()``."""
        if not self.compress:
            return ((message, True) for message in self.messages)
        return zip(self.messages, self.compress, strict=True)


@dataclass(frozen=True, slots=True)
class StartProbe:
    """Open a WebSocket (or a WebTransport session: ``transport``) with the session's sid to
    probe the upgrade; then call :meth:`ClientSession.probe_opened`, or
    :meth:`ClientSession.probe_failed` if it fails."""

    transport: TransportKind = TransportKind.WEBSOCKET


@dataclass(frozen=True, slots=True)
class ProbeSend:
    """Write this message to the probe WebSocket."""

    message: str | bytes


@dataclass(frozen=True, slots=True)
class ProbeClose:
    """Close the probe WebSocket (or, still connecting, close it when it opens): the upgrade
    failed or the session closes."""

    reason: str


@dataclass(frozen=True, slots=True)
class Upgraded:
    """The probe WebSocket is the session's transport now; drop the polling connections."""


@dataclass(frozen=True, slots=True)
class PostClose:
    """The orderly end of a polling session: POST this body (the close packet), then close the
    polling connections; the waiting GET stays open until the POST is answered (dropped first,
    the server would close the session for an aborted poll and refuse the close packet)."""

    body: bytes


@dataclass(frozen=True, slots=True)
class TransportClose:
    """Close the transport's connections now, without a close packet."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over; always the last event. ``description`` is what the I/O layer gave
    with the failure (an exception, a mapping), or what the core knows."""

    reason: CloseReason
    description: object = None


ClientEvent = (
    MessageReceived
    | PingReceived
    | Poll
    | Post
    | WebSocketSend
    | StartProbe
    | ProbeSend
    | ProbeClose
    | Upgraded
    | PostClose
    | TransportClose
    | Closed
)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Client settings, in seconds. ``transports`` filters the upgrades the server offers."""

    transports: Sequence[str] = ("polling", "websocket")
    upgrade: bool = True
    probe_timeout: float = 20.0  # from "2probe" sent to "3probe"
    pause_timeout: float = 20.0  # for the GET and POST in flight to end; then the switch anyway
    close_timeout: float = 20.0  # for close() to drain the buffer; then the close anyway


@dataclass(eq=False)
class ClientSession:
    """One Engine.IO session of a client. See the module docstring for the state diagram.

    ``on_transition``, if given, is called with the old and the new state after each transition
    (a test checks the table against the transitions taken; a driver may log them).
    """

    config: ClientConfig = field(default_factory=ClientConfig)
    on_transition: Callable[[ClientState, ClientState], None] | None = field(
        default=None, repr=False
    )
    state: ClientState = field(init=False, default=ClientState.OPENING)
    transport: TransportKind | None = field(init=False, default=None)
    sid: str | None = field(init=False, default=None)
    ping_interval: float = field(init=False, default=25.0)
    ping_timeout: float = field(init=False, default=20.0)
    max_payload: int = field(init=False, default=0)
    upgrades: tuple[str, ...] = field(init=False, default=())
    _buffer: list[Packet] = field(init=False, default_factory=list)
    # The polling transport's two request slots (engine.io-client: polling's "polling" flag and
    # its "writable" flag): a long-poll GET in flight, a POST in flight.
    _polling: bool = field(init=False, default=False)
    _writing: bool = field(init=False, default=False)
    _heartbeat_deadline: float | None = field(init=False, default=None)
    _probe_deadline: float | None = field(init=False, default=None)
    _pause_deadline: float | None = field(init=False, default=None)
    _close_deadline: float | None = field(init=False, default=None)
    # The upgrades still to probe, best first: WebTransport, then WebSocket (engine.io-client
    # favours WebTransport and probes WebSocket when it fails); the first is being probed.
    _probes: list[TransportKind] = field(init=False, default_factory=list)

    # -- introspection ----------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """The earliest time at which :meth:`timer` has something to do."""
        return earliest(
            self._heartbeat_deadline,
            self._probe_deadline,
            self._pause_deadline,
            self._close_deadline,
        )

    @property
    def is_closed(self) -> bool:
        return self.state is ClientState.CLOSED

    @property
    def writable(self) -> bool:
        """A message sent now goes out at once (no upgrade pausing, no POST in flight): what a
        volatile emit needs. On WebSocket the I/O layer also checks its own write buffer."""
        if self.state is not ClientState.OPEN and self.state is not ClientState.PROBING:
            return False
        return self.transport in _MESSAGE_TRANSPORTS or not self._writing

    @property
    def accepting(self) -> bool:
        """:meth:`send` queues a message now (the reference's "opening" or "open"); once the
        session is closing, messages are dropped."""
        return self.state in _SENDING

    @property
    def buffered(self) -> int:
        """Packets waiting to be sent."""
        return len(self._buffer)

    def heartbeat_expired(self, now: float) -> bool:
        """The session outlived its heartbeat while open (a process that was suspended notices
        it here before its timer fires); :meth:`timer` then closes it."""
        if self.state not in (ClientState.OPEN, ClientState.PROBING, ClientState.PAUSING):
            return False
        return self._heartbeat_deadline is not None and now > self._heartbeat_deadline

    # -- state ------------------------------------------------------------------------------------

    def _set_state(self, new: ClientState) -> None:
        old = self.state
        check_transition(old, new)
        self.state = new
        if self.on_transition is not None:
            self.on_transition(old, new)

    def _require_opened(self, name: str) -> None:
        if self.state is ClientState.OPENING:
            raise LocalProtocolError(f"{name}() before the handshake")

    # -- opening ----------------------------------------------------------------------------------

    def handshake(
        self, packets: Sequence[Packet], transport: TransportKind, now: float
    ) -> list[ClientEvent]:
        """The server's first answer on ``transport``: the OPEN packet, then whatever followed
        it in the same payload. Raises :class:`RemoteProtocolError` when the first packet is
        not an Engine.IO 4 handshake (the session stays OPENING; call :meth:`handshake_failed`).
        """
        if self.state is not ClientState.OPENING:
            raise LocalProtocolError(f"handshake() in state {self.state.value}")
        if not packets or packets[0].type is not PacketType.OPEN:
            raise RemoteProtocolError("the first packet is not an Engine.IO OPEN packet")
        first = packets[0].data
        try:
            data = json.loads(first)
            sid = str(data["sid"])
            ping_interval = float(data["pingInterval"]) / 1000
            ping_timeout = float(data["pingTimeout"]) / 1000
            max_payload = int(data.get("maxPayload", 0))
            upgrades = [str(u) for u in data.get("upgrades", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RemoteProtocolError(f"invalid Engine.IO handshake: {str(first)[:100]!r}") from exc
        self.sid = sid
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.upgrades = tuple(u for u in upgrades if u in self.config.transports)
        self.transport = transport
        self._set_state(ClientState.OPEN)
        self._heartbeat_deadline = now + ping_interval + ping_timeout
        events: list[ClientEvent] = []
        for packet in packets[1:]:
            events += self.received(packet, now)
        if self.is_closed:  # a close packet followed the handshake
            return events
        if transport is TransportKind.POLLING:
            self._polling = True
            events.append(Poll())
        events += self._flush()
        if self.config.upgrade and transport is TransportKind.POLLING:
            self._probes = [
                kind
                for kind in (TransportKind.WEBTRANSPORT, TransportKind.WEBSOCKET)
                if kind.value in self.upgrades
            ]
            if self._probes:
                self._set_state(ClientState.PROBING)
                events.append(StartProbe(self._probes[0]))
        return events

    def _next_probe(self) -> list[ClientEvent]:
        """The probe failed: the next upgrade the server offers is probed, if any is left."""
        if self._probes:
            self._probes.pop(0)
        if not self._probes or self.state is not ClientState.OPEN:
            return []
        self._set_state(ClientState.PROBING)
        return [StartProbe(self._probes[0])]

    def handshake_failed(self) -> list[ClientEvent]:
        """The handshake did not come (the I/O layer raises its own error): CLOSED, no event."""
        if self.state is not ClientState.OPENING:
            raise LocalProtocolError(f"handshake_failed() in state {self.state.value}")
        self._set_state(ClientState.CLOSED)
        self._buffer = []
        return []

    # -- sending ----------------------------------------------------------------------------------

    def send(self, data: str | bytes, compress: bool = True) -> list[ClientEvent]:
        """Queue a message (``compress=False``: not through permessage-deflate on WebSocket).
        Dropped once the session is closing, as in the reference."""
        if not self.accepting:
            return []
        return self._queue(Packet(PacketType.MESSAGE, data, compress))

    def _queue(self, packet: Packet) -> list[ClientEvent]:
        self._buffer.append(packet)
        return self._flush()

    def _flush(self) -> list[ClientEvent]:
        if self.state not in _FLUSHING or not self._buffer:
            return []
        if self.transport in _MESSAGE_TRANSPORTS:
            packets, self._buffer = self._buffer, []
            return [_websocket_send(packets)]
        if self._writing:
            return []
        packets = self._writable_packets()
        del self._buffer[: len(packets)]
        self._writing = True
        return [Post(encode_payload(packets, 4)[0])]

    def _writable_packets(self) -> list[Packet]:
        """Split the buffer by the server's maxPayload (engine.io-client _getWritablePackets)."""
        if not self.max_payload or len(self._buffer) <= 1:
            return list(self._buffer)
        size = 1
        for i, packet in enumerate(self._buffer):
            data = packet.data
            if data:
                size += len(data.encode()) if isinstance(data, str) else -(-len(data) * 133 // 100)
            if i > 0 and size > self.max_payload:
                return self._buffer[:i]
            size += 2
        return list(self._buffer)

    # -- receiving --------------------------------------------------------------------------------

    def received(self, packet: Packet, now: float) -> list[ClientEvent]:
        """A packet from the server, on the transport in use (one at a time: the application
        may send in between, and its message then follows what this packet produced)."""
        self._require_opened("received")
        if self.state not in _RECEIVING:
            return []
        ptype = packet.type
        if ptype is PacketType.MESSAGE:
            return [MessageReceived(packet.data)]
        if ptype is PacketType.PING:
            events = self._queue(_PONG)
            events.append(PingReceived())
            self._heartbeat_deadline = now + self.ping_interval + self.ping_timeout
            return events
        if ptype is PacketType.CLOSE:
            return self._terminate(
                CloseReason.TRANSPORT_CLOSE, {"description": _SERVER_CLOSED}, send_close=False
            )
        # NOOP, UPGRADE, OPEN, PONG: nothing to do (the server answers a paused GET with noop).
        return []

    def poll_ended(self, now: float) -> list[ClientEvent]:
        """The long-poll GET in flight was answered and its packets fed to :meth:`received`."""
        if not self._answered("poll_ended", "GET", in_flight=self._polling):
            return []
        self._polling = False
        if self.state in _PAUSED:
            return self._maybe_upgrade()
        if self.transport is TransportKind.POLLING:
            self._polling = True
            return [Poll()]
        return []

    def post_ended(self, now: float) -> list[ClientEvent]:
        """The POST in flight was answered with 200."""
        if not self._answered("post_ended", "POST", in_flight=self._writing):
            return []
        self._writing = False
        if self.state in _PAUSED:
            return self._maybe_upgrade()
        if self.state is ClientState.CLOSING:
            return self._drain_close()
        return self._flush()

    # -- failures reported by the I/O layer ------------------------------------------------------

    def _answered(self, call: str, method: str, *, in_flight: bool) -> bool:
        """Whether the answer to the polling ``method`` request in flight is news for this
        session: not once it is closed, nor for a request the upgrade left behind."""
        self._require_opened(call)
        if self.state is ClientState.CLOSED:
            return False
        if in_flight:
            return True
        if self.transport in _MESSAGE_TRANSPORTS:
            return False
        raise LocalProtocolError(f"{call}() without a {method} in flight")

    def transport_error(self, description: object, now: float) -> list[ClientEvent]:
        """A request failed, was answered with an HTTP error, or the WebSocket broke."""
        return self._fail(CloseReason.TRANSPORT_ERROR, description, "transport_error")

    def transport_closed(self, description: object, now: float) -> list[ClientEvent]:
        """The session's WebSocket was closed by the server."""
        return self._fail(CloseReason.TRANSPORT_CLOSE, description, "transport_closed")

    def parse_error(self, description: object, now: float) -> list[ClientEvent]:
        """What the server sent does not decode (the packets before the fault were fed)."""
        return self._fail(CloseReason.PARSE_ERROR, description, "parse_error")

    def _fail(self, reason: CloseReason, description: object, name: str) -> list[ClientEvent]:
        self._require_opened(name)
        if self.state is ClientState.CLOSED:
            return []
        return self._terminate(reason, description, send_close=False)

    # -- upgrade ----------------------------------------------------------------------------------

    def probe_opened(self, now: float) -> list[ClientEvent]:
        """The probe WebSocket connected: "2probe" goes on it. Closed at once if the session
        closed (or the probe was given up) while it connected."""
        self._require_opened("probe_opened")
        if self.state in _PAUSED or self._probe_deadline is not None:
            raise LocalProtocolError("probe_opened() while a probe is open")
        if self.state is not ClientState.PROBING:
            return [ProbeClose("the session is no longer probing")]
        self._probe_deadline = now + self.config.probe_timeout
        return [ProbeSend(encode_packet(_PING_PROBE, 4))]

    def probe_failed(self, now: float) -> list[ClientEvent]:
        """The probe WebSocket could not connect (refused, unreachable): stay on polling."""
        self._require_opened("probe_failed")
        if self.state is not ClientState.PROBING:
            return []
        self._probe_deadline = None
        self._set_state(ClientState.OPEN)
        return self._next_probe()

    def probe_message(self, raw: str | bytes, now: float) -> list[ClientEvent]:
        """A message on the probe WebSocket: "3probe" pauses polling; anything else fails the
        probe. Messages after "3probe" (none is expected before "5") are ignored."""
        self._require_opened("probe_message")
        if self.state is not ClientState.PROBING or self._probe_deadline is None:
            return []
        self._probe_deadline = None
        try:
            packet = decode_packet(raw, 4)
            answered = packet.type is PacketType.PONG and packet.data == "probe"
        except RemoteProtocolError:
            answered = False
        if not answered:
            self._set_state(ClientState.OPEN)
            return [ProbeClose(f"the probe was answered with {str(raw)[:40]!r}, not '3probe'")]
        self._set_state(ClientState.PAUSING)
        self._pause_deadline = now + self.config.pause_timeout
        return self._maybe_upgrade()

    def probe_closed(self, now: float) -> list[ClientEvent]:
        """The probe WebSocket closed before the upgrade completed: polling goes on (resumed
        if it was paused), or a pending close goes out on polling."""
        self._require_opened("probe_closed")
        if self.state is ClientState.PROBING:
            self._probe_deadline = None
            self._set_state(ClientState.OPEN)
            return self._next_probe()
        if self.state is ClientState.PAUSING:
            self._pause_deadline = None
            self._set_state(ClientState.OPEN)
            events: list[ClientEvent] = []
            if not self._polling:
                self._polling = True
                events.append(Poll())
            return events + self._flush()
        if self.state is ClientState.CLOSING_UPGRADE:
            self._pause_deadline = None
            self._set_state(ClientState.CLOSING)
            return self._drain_close()
        return []

    def _maybe_upgrade(self, force: bool = False) -> list[ClientEvent]:
        """Paused: once no GET and no POST is in flight (or ``force``), switch to the probe."""
        if not force and (self._polling or self._writing):
            return []
        self._pause_deadline = None
        self._polling = self._writing = False
        closing = self.state is ClientState.CLOSING_UPGRADE
        if not closing:
            self._set_state(ClientState.OPEN)
        self.transport = self._probes[0] if self._probes else TransportKind.WEBSOCKET
        self._probes = []
        events: list[ClientEvent] = [ProbeSend(encode_packet(_UPGRADE, 4)), Upgraded()]
        if closing:
            # socket.ts: on "upgrade", flush(), then a closing socket closes the new transport.
            if self._buffer:
                packets, self._buffer = self._buffer, []
                events.append(_websocket_send(packets))
            return events + self._terminate(CloseReason.FORCED_CLOSE, None, send_close=False)
        return events + self._flush()

    # -- timers -----------------------------------------------------------------------------------

    def timer(self, now: float) -> list[ClientEvent]:
        """Run whatever deadline has passed."""
        events: list[ClientEvent] = []
        if self._heartbeat_deadline is not None and now >= self._heartbeat_deadline:
            return self._terminate(CloseReason.PING_TIMEOUT, None, send_close=False)
        if self._close_deadline is not None and now >= self._close_deadline:
            # The buffer did not drain in time: close all the same (a pending upgrade is
            # abandoned, the close packet goes on polling).
            return self._terminate(CloseReason.FORCED_CLOSE, None, send_close=True)
        if self._probe_deadline is not None and now >= self._probe_deadline:
            self._probe_deadline = None
            self._set_state(ClientState.OPEN)
            events.append(ProbeClose("no '3probe' within the probe timeout"))
        if self._pause_deadline is not None and now >= self._pause_deadline:
            events += self._maybe_upgrade(force=True)
        return events

    # -- closing ----------------------------------------------------------------------------------

    def close(self, now: float) -> list[ClientEvent]:
        """Close the session (reason ``forced close``): what is buffered goes out first, on
        polling or on the WebSocket an upgrade under way switches to; for at most
        ``close_timeout``."""
        state = self.state
        if state is ClientState.OPENING:
            self._set_state(ClientState.CLOSED)
            self._buffer = []
            return [Closed(CloseReason.FORCED_CLOSE)]
        if state not in _SENDING:
            return []
        if state is ClientState.PAUSING:
            self._set_state(ClientState.CLOSING_UPGRADE)
            self._close_deadline = now + self.config.close_timeout
            return []
        if self.transport is TransportKind.POLLING and (self._buffer or self._writing):
            events: list[ClientEvent] = []
            if state is ClientState.PROBING:
                self._probe_deadline = None
                events.append(ProbeClose("the session is closing"))
            self._set_state(ClientState.CLOSING)
            self._close_deadline = now + self.config.close_timeout
            return events + self._flush()
        return self._terminate(
            CloseReason.FORCED_CLOSE, None, send_close=self.transport is TransportKind.POLLING
        )

    def _drain_close(self) -> list[ClientEvent]:
        """CLOSING: the next POST of the buffer, or, once all is sent, the close itself."""
        if self._buffer or self._writing:
            return self._flush()
        return self._terminate(CloseReason.FORCED_CLOSE, None, send_close=True)

    def _terminate(
        self, reason: CloseReason, description: object, *, send_close: bool
    ) -> list[ClientEvent]:
        """Enter CLOSED: close the probe and the transport; :class:`Closed` comes last."""
        events: list[ClientEvent] = []
        if self.state in _PROBE_ATTACHED and self.transport is TransportKind.POLLING:
            # (after the switch of a close during the upgrade, the probe is the transport)
            events.append(ProbeClose("the session closed"))
        if send_close and self.transport is TransportKind.POLLING:
            events.append(PostClose(encode_payload([_CLOSE], 4)[0]))
        else:
            events.append(TransportClose())
        self._set_state(ClientState.CLOSED)
        self._buffer = []
        self._polling = self._writing = False
        self._heartbeat_deadline = self._probe_deadline = None
        self._pause_deadline = self._close_deadline = None
        events.append(Closed(reason, description))
        return events


def _websocket_send(packets: list[Packet]) -> WebSocketSend:
    """The packets as WebSocket messages, with their compress option when one says no."""
    messages = tuple(encode_packet(p, 4) for p in packets)
    if all(p.compress for p in packets):
        return WebSocketSend(messages)
    return WebSocketSend(messages, tuple(p.compress for p in packets))

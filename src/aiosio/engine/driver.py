"""The session driver: one Engine.IO session's I/O, around its sans-I/O core.

:class:`EngineSocket` feeds the :class:`~aiosio.protocol.session.EngineSession` what arrives
(polls, POST bodies, WebSocket messages, timer expiries) and carries out the events it returns
(:meth:`EngineSocket.apply`): writes, answers to waiting polls, closes, the application's events.
:class:`_SessionWebSocket` is the glue the HTTP servers call for each WebSocket of a session.

The driver depends on a :class:`SessionHost` (the timer wheel, the clock, the outbound limit, and
being told when a session ends), not on the server that assembles it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from collections.abc import Iterable
from typing import Protocol
from typing import assert_never

from aiosio._events import EventEmitter
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import WebSocketChannel
from aiosio.engine.http import WebSocketHandler
from aiosio.engine.timers import TimerWheel
from aiosio.protocol.prepared import PreparedMessage
from aiosio.protocol.session import TRANSPORT_NAMES
from aiosio.protocol.session import Closed
from aiosio.protocol.session import EngineConfig
from aiosio.protocol.session import EngineSession
from aiosio.protocol.session import Event
from aiosio.protocol.session import MessageReceived
from aiosio.protocol.session import PollRejected
from aiosio.protocol.session import PollResponse
from aiosio.protocol.session import ProbeClose
from aiosio.protocol.session import ProbeSend
from aiosio.protocol.session import State
from aiosio.protocol.session import TransportKind
from aiosio.protocol.session import TransportName
from aiosio.protocol.session import Upgraded
from aiosio.protocol.session import UpgradeStarted
from aiosio.protocol.session import WebSocketClose
from aiosio.protocol.session import WebSocketSend

__all__ = ["EngineSocket", "SessionHost", "TransportName"]

logger = logging.getLogger("aiosio.engine")


class SessionHost(Protocol):
    """What a session driver needs from the server that runs it."""

    @property
    def config(self) -> EngineConfig:
        """The sessions' settings."""

    @property
    def max_outbound_buffer(self) -> int:
        """Bytes queued for a client past which its session is closed."""

    @property
    def timers(self) -> TimerWheel:
        """The wheel every session's deadline is scheduled on."""

    def now(self) -> float:
        """The event loop's clock, the time of every deadline."""

    def forget(self, socket: EngineSocket, reason: str) -> None:
        """``socket``'s session closed for ``reason``."""


class EngineSocket(EventEmitter):
    """One client session. Events: ``message`` (data), ``close`` (reason, description),
    ``upgrading``, ``upgrade``, ``heartbeat``, ``slow_client`` (bytes queued, the limit: the
    session is being closed by ``max_outbound_buffer``, its ``close`` follows).

    Besides its public API, it has the driver's attributes, which the server that assembles it
    and the WebSocket glue read; applications only read them: :attr:`session` (the sans-I/O
    core), :attr:`websocket` and :attr:`probe` (the WebSocket the session runs on, and the one
    probing an upgrade), :attr:`receiver` (set by :meth:`on_message`) and :attr:`timer_bucket`
    (the timer wheel's bookkeeping)."""

    def __init__(self, server: SessionHost, session: EngineSession, request: HttpRequest) -> None:
        super().__init__()
        self.server = server
        self.request = request
        self.session = session
        self.id: str = session.sid
        """The session id (fixed at the handshake, as :attr:`protocol`)."""
        self.protocol: int = session.protocol
        """The Engine.IO protocol revision the client speaks: 4, or 3 (``allow_eio3``)."""
        self.timer_bucket: int | None = None
        self._poll_future: asyncio.Future[PollResponse] | None = None
        # Set when the session's state becomes WEBSOCKET (a direct WebSocket, or Upgraded).
        self.websocket: WebSocketChannel | None = None
        # The broadcast fast path reads only this object: the channel's send_frame while the
        # session is open on a WebSocket that has one (set with websocket, dropped when the
        # session closes), and whether the session speaks Engine.IO 4 (fixed at the handshake).
        self._send_frame: Callable[[bytes, str | bytes], int] | None = None
        self._v4 = session.protocol == 4
        self.probe: WebSocketChannel | None = None
        self.receiver: Callable[[str | bytes], None] | None = None
        self._read_gate: asyncio.Future[None] | None = None  # set while reading is paused
        self._deadline: float | None = None
        self._opened_at = session.now

    # -- public -----------------------------------------------------------------------------------

    @property
    def transport(self) -> TransportName:
        """The transport's name (``"polling"``, ``"websocket"``), which also reads as the
        reference's transport object: ``conn.transport.name``."""
        return TRANSPORT_NAMES[self.session.transport]

    @property
    def ready_state(self) -> str:
        state = self.session.state
        if state is State.CLOSED:
            return "closed"
        if state is State.CLOSING or state is State.CLOSING_UPGRADE:
            return "closing"
        return "open"

    @property
    def upgraded(self) -> bool:
        return self.session.state is State.WEBSOCKET

    @property
    def remote_address(self) -> str | None:
        return self.request.remote_address

    def send(self, data: str | bytes) -> None:
        """Send a message; non-blocking. Ignored once the session is closing."""
        out = self.session.send(data)
        if out.__class__ is list:
            self.apply(out)  # (`.__class__ is`: cheaper than isinstance here)
            self._check_backlog()
            return
        ws = self.websocket  # the session is on this WebSocket: the message to write came back
        if ws is not None:
            # What send returns may overstate the backlog (WebSocketChannel.send):
            # _check_backlog reads the exact figure before acting on it.
            waiting = ws.send(out)  # type: ignore[arg-type]  # not a list: the message
            if waiting > self.server.max_outbound_buffer:
                self._check_backlog()

    def _check_backlog(self) -> None:
        """A client that does not read (no GET for a long time, a stalled WebSocket) must not
        make the server hold unbounded data: past ``max_outbound_buffer`` bytes it is closed."""
        limit = self.server.max_outbound_buffer
        ws = self.websocket
        queued = ws.buffered_amount if ws is not None else self.session.buffered_size
        if queued <= limit:
            return
        logger.warning(
            "closing session %s of %s: %d bytes wait for a client that does not read them "
            "(max_outbound_buffer=%d); it is too slow or stalled",
            self.id,
            self.remote_address or "?",
            queued,
            limit,
        )
        self.emit("slow_client", queued, limit)
        self.apply(self.session.discard(self.server.now(), "transport error"))

    def send_prepared(self, message: PreparedMessage) -> None:
        """Send a message prepared once for many sessions (broadcast): on a WebSocket served
        by the native server, the same frame bytes are written for every recipient."""
        send_frame = self._send_frame
        if send_frame is not None:
            frame = message.frame4 if self._v4 else None
            if frame is None:
                frame = message.frame(self.session.protocol)
            if send_frame(frame, message.data) > self.server.max_outbound_buffer:
                self._check_backlog()
            return
        self.send(message.data)

    def _set_ws(self, channel: WebSocketChannel | None) -> None:
        self.websocket = channel
        self._send_frame = channel.frame_writer() if channel is not None else None
        if channel is not None and self._read_gate is not None:
            channel.pause_reading()

    def pause_reading(self) -> None:
        """Stop taking the client's messages until :meth:`resume_reading` (backpressure from
        the application): a WebSocket stops reading from its connection; over polling, a POST
        waits before its packets are delivered, and so does the client's next one. What the
        client sends meanwhile, pongs included, waits in the network: a session paused for
        longer than ``ping_timeout`` ends with ``ping timeout``. Sending is not affected."""
        if self._read_gate is not None or self.session.state is State.CLOSED:
            return
        self._read_gate = asyncio.get_running_loop().create_future()
        if self.websocket is not None:
            self.websocket.pause_reading()

    @property
    def reading_paused(self) -> bool:
        """:meth:`pause_reading` is in effect."""
        return self._read_gate is not None

    def resume_reading(self) -> None:
        """Take the client's messages again (see :meth:`pause_reading`)."""
        gate, self._read_gate = self._read_gate, None
        if gate is None:
            return
        if not gate.done():
            gate.set_result(None)
        if self.websocket is not None:
            self.websocket.resume_reading()

    @property
    def writable(self) -> bool:
        """The transport can take a packet now (what ``volatile`` packets need): a long-poll
        GET is waiting, or the WebSocket has nothing queued."""
        if self.session.state is State.WEBSOCKET:
            ws = self.websocket
            return ws is not None and ws.writable
        return self.session.poll_waiting

    def close(self) -> None:
        """Close the session (reason ``forced close``) once the buffered packets are sent."""
        self.apply(self.session.close(self.server.now()))

    # -- engine side ------------------------------------------------------------------------------

    def on_timer(self, now: float) -> None:
        self._deadline = None  # the wheel forgot it
        self.apply(self.session.handle_timeout(now))

    def on_message(self, handler: Callable[[str | bytes], None]) -> None:
        """Set the one receiver of this session's messages (the Socket.IO layer's fast path;
        ``on("message", ...)`` handlers are not called then)."""
        self.receiver = handler

    def apply(self, events: Iterable[Event]) -> None:
        """Carry out what the session returned: write, answer the waiting poll, close, and tell
        the application. Every input of :attr:`session` goes through here."""
        # The application hears of the upgrade once the packets the session flushes in the same
        # step are written (before the close, if the session closes with it): an "upgrade"
        # listener that sends and closes must not get its packets written before, or in place
        # of, the buffer the upgrade flushes to the new WebSocket (the reference's single write
        # buffer keeps that order by itself).
        notify: str | None = None
        for event in events:
            if notify is not None and isinstance(event, WebSocketClose | Closed):
                self.emit(notify)
                notify = None
            if isinstance(event, MessageReceived):
                if self.receiver is not None:
                    self.receiver(event.data)
                else:
                    self.emit("message", event.data)
            elif isinstance(event, WebSocketSend):
                ws = self.websocket
                if ws is not None:
                    for message in event.messages:
                        ws.send(message)
            elif isinstance(event, PollResponse):
                future, self._poll_future = self._poll_future, None
                if future is not None and not future.done():
                    future.set_result(event)
            elif isinstance(event, PollRejected):
                pass  # answered by the request handler that received it
            elif isinstance(event, ProbeSend):
                if self.probe is not None:
                    self.probe.send(event.message)
            elif isinstance(event, ProbeClose):
                probe, self.probe = self.probe, None
                if probe is not None:
                    logger.debug("session %s: upgrade abandoned: %s", self.id, event.reason)
                    probe.close()
            elif isinstance(event, UpgradeStarted):
                notify = "upgrading"
            elif isinstance(event, Upgraded):
                self._set_ws(self.probe)
                self.probe = None
                notify = "upgrade"
            elif isinstance(event, WebSocketClose):
                ws = self.websocket
                self._set_ws(None)
                if ws is not None:
                    ws.close()
            elif isinstance(event, Closed):
                self._send_frame = None  # the state is no longer WEBSOCKET
                self.resume_reading()  # a POST held by pause_reading gets its answer
                self.server.forget(self, event.reason)
                self.emit("close", event.reason, event.description)
                # Listeners (the Socket.IO client's bound methods) point back here: drop them
                # so that a closed session is freed by reference counting, without waiting for
                # the garbage collector (a server with many short sessions would grow).
                self._handlers.clear()
                self.receiver = None
            else:
                assert_never(event)
        deadline = self.session.deadline
        if deadline != self._deadline:
            self._deadline = deadline
            self.server.timers.schedule(self, deadline)
        if notify is not None:
            self.emit(notify)

    async def poll(self) -> PollResponse | None:
        """A long-poll GET: the response once the session has something to send (at once if it
        has), ``None`` when the session refuses the GET (one is already waiting)."""
        future: asyncio.Future[PollResponse] = asyncio.get_running_loop().create_future()
        events = self.session.receive_poll_request(self.server.now())
        rejected = any(isinstance(e, PollRejected) for e in events)
        if not rejected:
            self._poll_future = future
        self.apply(events)
        if rejected:
            return None
        try:
            return await future
        except asyncio.CancelledError:
            if self._poll_future is future:
                self._poll_future = None
                self.apply(self.session.poll_aborted(self.server.now()))
            raise

    async def receive_post(self, body: bytes, binary: bool) -> bool:
        """A polling POST's ``body`` (``binary``: sent as ``application/octet-stream``), once
        :meth:`pause_reading` is lifted; ``False`` when the session refuses it (and closed)."""
        gate = self._read_gate
        if gate is not None:
            await asyncio.shield(gate)  # pause_reading: the client waits
        if binary and self.protocol == 4:
            self.apply(self.session.discard(self.server.now(), "transport error"))
            return False
        events = self.session.receive_poll_data(body, binary, self.server.now())
        failed = any(isinstance(e, Closed) and e.reason == "parse error" for e in events)
        self.apply(events)
        return not failed

    def accept_websocket(self, channel: WebSocketChannel) -> WebSocketHandler:
        """The session was opened on the WebSocket ``channel``: send it the handshake."""
        self._set_ws(channel)
        self.apply(self.session.initial_messages())
        return _SessionWebSocket(self, channel)

    def accept_probe(
        self, channel: WebSocketChannel, kind: TransportKind = TransportKind.WEBSOCKET
    ) -> WebSocketHandler:
        """``channel`` (a WebSocket, or a WebTransport stream: ``kind``) probes an upgrade of
        this polling session; closed at once if the session changed while its handshake
        completed."""
        if not self.session.upgrade_possible:
            channel.close()
        else:
            self.probe = channel
            self.apply(self.session.attach_probe(self.server.now(), kind))
        return _SessionWebSocket(self, channel)

    def websocket_parse_error(self, channel: WebSocketChannel, reason: str) -> None:
        """``channel`` (a WebTransport stream) received a frame its decoder refuses: a probe
        is given up, the session's own transport ends it with ``parse error``."""
        if self.probe is channel:
            self.websocket_closed(channel, None, reason)
        elif self.websocket is channel:
            self._set_ws(None)
            self.apply(self.session.transport_parse_error(self.server.now(), reason))

    def websocket_closed(
        self, channel: WebSocketChannel, code: int | None, error: str | None
    ) -> None:
        """``channel`` ended (``code`` from the peer's close frame, ``error`` when it broke):
        the probe, the WebSocket the session runs on, or one it no longer uses."""
        now = self.server.now()
        if self.probe is channel:
            self.probe = None
            self.apply(self.session.probe_closed(now))
            return
        if self.websocket is not channel:
            return
        self._set_ws(None)
        if code == 1006 and error is None and self.session.state is State.WEBSOCKET:
            logger.info(
                "session %s of %s: the WebSocket dropped without a close frame after %.1fs; if "
                "this happens at a regular interval, a proxy's idle timeout (nginx "
                "proxy_read_timeout, HAProxy timeout tunnel) is shorter than ping_interval=%gs",
                self.id,
                self.remote_address or "?",
                now - self._opened_at,
                self.server.config.ping_interval,
            )
        self.apply(self.session.websocket_closed(now, error))


class _SessionWebSocket:
    """Receives the messages of one WebSocket of a session: the one the session runs on, or
    the probe of its upgrade. Which of the two it is, is read from the engine socket, the one
    place that knows (the probe becomes the transport when the upgrade completes); a WebSocket
    that is neither (refused, or detached) is ignored."""

    __slots__ = ("_channel", "_clock", "_socket")

    def __init__(self, socket: EngineSocket, channel: WebSocketChannel) -> None:
        self._socket = socket
        self._channel = channel
        self._clock = asyncio.get_running_loop().time

    def on_message(self, data: str | bytes) -> None:
        socket = self._socket
        if socket.websocket is self._channel:
            # The clock is passed, not read: a message needs no time (only heartbeats do).
            result = socket.session.receive_message(data, self._clock)
            if result.__class__ is list:
                socket.apply(result)  # (`.__class__ is`: cheaper than isinstance here)
                return
            handler = socket.receiver
            if handler is not None:
                handler(result)  # type: ignore[arg-type]  # not a list: the data
            else:
                socket.emit("message", result)
        elif socket.probe is self._channel:
            socket.apply(socket.session.receive_probe_message(data, self._clock()))

    def on_close(self, code: int | None, error: str | None) -> None:
        self._socket.websocket_closed(self._channel, code, error)

    def on_parse_error(self, reason: str) -> None:
        self._socket.websocket_parse_error(self._channel, reason)

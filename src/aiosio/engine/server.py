"""The Engine.IO server: sessions over HTTP long-polling and WebSocket.

Usable on its own, like the ``engine.io`` package in Node: ``EngineServer`` fires ``connection``
with an :class:`EngineSocket`, which fires ``message`` and ``close`` and has ``send``. The HTTP
servers (native or ASGI) call :meth:`EngineServer.handle_request` and
:meth:`EngineServer.handle_websocket`; this module only turns their requests into inputs of the
sans-I/O :class:`~aiosio.protocol.session.EngineSession` and its events into responses.

Request verification follows the reference ``engine.io`` ``Server.verify`` in the same order
(transport, origin characters, session id, handshake method, ``allow_request``, protocol version),
with the same HTTP bodies; every rejection also fires ``connection_error`` and logs one line that
names the cause and the fix.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import logging
import re
import secrets
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, assert_never

from aiosio._events import EventEmitter
from aiosio.engine.ended import EndedSessions
from aiosio.engine.http import (
    HttpRequest,
    HttpResponse,
    WebSocketAccept,
    WebSocketChannel,
    WebSocketHandler,
    asgi_app,
)
from aiosio.engine.timers import TimerWheel
from aiosio.protocol.cors import Cors, is_preflight

# Re-exported for the modules that import it from here (server/socket.py, server/adapter.py).
from aiosio.protocol.prepared import PreparedMessage
from aiosio.protocol.session import (
    Closed,
    EngineConfig,
    EngineSession,
    Event,
    MessageReceived,
    PollRejected,
    PollResponse,
    ProbeClose,
    ProbeSend,
    SessionId,
    State,
    TransportKind,
    Upgraded,
    UpgradeStarted,
    WebSocketClose,
    WebSocketSend,
)

__all__ = [
    "ConnectionRejected",
    "Cookie",
    "EngineServer",
    "EngineSocket",
    "ErrorCode",
    "PreparedMessage",
]

logger = logging.getLogger("aiosio.engine")

TRANSPORTS = ("polling", "websocket")

# Reference error codes and messages (engine.io Server.errors / Server.errorMessages).
ErrorCode = Literal[0, 1, 2, 3, 4, 5]
UNKNOWN_TRANSPORT: ErrorCode = 0
UNKNOWN_SID: ErrorCode = 1
BAD_HANDSHAKE_METHOD: ErrorCode = 2
BAD_REQUEST: ErrorCode = 3
FORBIDDEN: ErrorCode = 4
UNSUPPORTED_PROTOCOL_VERSION: ErrorCode = 5
ERROR_MESSAGES: dict[int, str] = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}

_RECENTLY_CLOSED_MAX = 4096

_PROXY_UPGRADE_HINT = (
    "a proxy in front of the server probably drops them (nginx needs 'proxy_http_version 1.1; "
    'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";\'); the '
    "client stays on polling"
)


def _plain_http(request: HttpRequest, what: str) -> tuple[str, str]:
    """The cause and the fix when a WebSocket request arrived as plain HTTP. An ASGI server
    without a WebSocket library passes the Upgrade header through (the native server never
    does): that is then the cause; without the header, a proxy removed it."""
    if request.headers.get("upgrade", "").lower() == "websocket":
        return (
            f"{what} reached the app as plain HTTP although it carried 'Upgrade: websocket': the "
            "ASGI server was started without a WebSocket library (uvicorn needs websockets or "
            "wsproto)",
            'pip install "aiosio[asgi]" (or pip install websockets) and restart the ASGI server; '
            "until then the client stays on polling",
        )
    return (
        f"{what} arrived as plain HTTP, without the 'Upgrade: websocket' and "
        "'Connection: Upgrade' headers",
        _PROXY_UPGRADE_HINT,
    )


# RFC 7230 field-value characters, as the reference's checkInvalidHeaderChar (tab, 32-126, 128-255).
_INVALID_HEADER_CHAR = re.compile(r"[^\t\x20-\x7e\x80-\xff]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Cookie:
    """The session cookie set on the polling handshake, for cookie-based sticky sessions."""

    name: str = "io"
    path: str | None = "/"
    http_only: bool = True
    same_site: Literal["lax", "strict", "none"] | None = "lax"
    secure: bool = False
    domain: str | None = None
    max_age: int | None = None

    def serialize(self, value: str) -> str:
        parts = [f"{self.name}={value}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.path:
            parts.append(f"Path={self.path}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        if self.same_site:
            parts.append(f"SameSite={self.same_site.capitalize()}")
        return "; ".join(parts)


@dataclass(slots=True)
class ConnectionRejected:
    """The argument of the ``connection_error`` event: a request the server refused.

    ``code`` and ``message`` are what went on the wire; ``context`` carries the reference's
    context fields (``name``, ``sid``, ``transport``, ...); ``cause`` says in words what was wrong
    and ``hint`` what to change.
    """

    request: HttpRequest
    code: int
    message: str
    context: dict[str, Any]
    cause: str
    hint: str

    def __str__(self) -> str:
        return f"code {self.code} {self.message}: {self.cause}; {self.hint}"


class _Rejection(Exception):
    def __init__(
        self, code: ErrorCode, cause: str, hint: str, message: str | None = None, **context: Any
    ) -> None:
        super().__init__(cause)
        self.code = code
        self.cause = cause
        self.hint = hint
        # What the HTTP body says: the reference's errorContext.message, else the code's message.
        self.message = message or ERROR_MESSAGES[code]
        self.context = context
        if message is not None:
            self.context.setdefault("message", message)


AllowRequest = Callable[[HttpRequest], Awaitable[bool | None] | bool | None]


class EngineSocket(EventEmitter):
    """One client session. Events: ``message`` (data), ``close`` (reason, description),
    ``upgrading``, ``upgrade``, ``heartbeat``."""

    def __init__(self, server: EngineServer, session: EngineSession, request: HttpRequest) -> None:
        super().__init__()
        self.server = server
        self.request = request
        self._core = session
        self._timer_bucket: int | None = None
        self._poll_future: asyncio.Future[PollResponse] | None = None
        self._ws: WebSocketChannel | None = None
        # The broadcast fast path reads only this object: the channel's send_frame while the
        # session is open on a WebSocket that has one (set with _ws, dropped when the session
        # closes), and whether the session speaks Engine.IO 4 (fixed at the handshake).
        self._send_frame: Callable[[bytes, str | bytes], int] | None = None
        self._v4 = session.protocol == 4
        self._probe: WebSocketChannel | None = None
        self._on_message: Callable[[str | bytes], None] | None = None
        self._read_gate: asyncio.Future[None] | None = None  # set while reading is paused
        self._deadline: float | None = None
        self._opened_at = session.now

    # -- public -----------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._core.sid

    @property
    def protocol(self) -> int:
        return self._core.protocol

    @property
    def transport(self) -> str:
        return self._core.transport.value

    @property
    def ready_state(self) -> str:
        state = self._core.state
        if state is State.CLOSED:
            return "closed"
        if state is State.CLOSING or state is State.CLOSING_UPGRADE:
            return "closing"
        return "open"

    @property
    def upgraded(self) -> bool:
        return self._core.state is State.WEBSOCKET

    @property
    def remote_address(self) -> str | None:
        return self.request.remote_address

    def send(self, data: str | bytes) -> None:
        """Send a message; non-blocking. Ignored once the session is closing."""
        out = self._core.send(data)
        if out.__class__ is list:
            self._apply(out)  # (`.__class__ is`: cheaper than isinstance here)
            self._check_backlog()
            return
        ws = self._ws  # the session is on this WebSocket: the message to write came back
        if ws is not None:
            ws.send(out)  # type: ignore[arg-type]  # not a list: the message
            if ws.buffered_amount > self.server.max_outbound_buffer:
                self._check_backlog()

    def _check_backlog(self) -> None:
        """A client that does not read (no GET for a long time, a stalled WebSocket) must not
        make the server hold unbounded data: past ``max_outbound_buffer`` bytes it is closed."""
        limit = self.server.max_outbound_buffer
        ws = self._ws
        queued = ws.buffered_amount if ws is not None else self._core.buffered_size
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
        self._apply(self._core.discard(self.server._now(), "transport error"))

    def send_prepared(self, message: PreparedMessage) -> None:
        """Send a message prepared once for many sessions (broadcast): on a WebSocket served
        by the native server, the same frame bytes are written for every recipient."""
        send_frame = self._send_frame
        if send_frame is not None:
            frame = message.frame4 if self._v4 else None
            if frame is None:
                frame = message.frame(self._core.protocol)
            if send_frame(frame, message.data) > self.server.max_outbound_buffer:
                self._check_backlog()
            return
        self.send(message.data)

    def _set_ws(self, channel: WebSocketChannel | None) -> None:
        # Set when the session's state becomes WEBSOCKET (a direct WebSocket, or Upgraded).
        self._ws = channel
        self._send_frame = getattr(channel, "send_frame", None)
        if channel is not None and self._read_gate is not None:
            channel.pause_reading()

    def pause_reading(self) -> None:
        """Stop taking the client's messages until :meth:`resume_reading` (backpressure from
        the application): a WebSocket stops reading from its connection; over polling, a POST
        waits before its packets are delivered, and so does the client's next one. What the
        client sends meanwhile, pongs included, waits in the network: a session paused for
        longer than ``ping_timeout`` ends with ``ping timeout``. Sending is not affected."""
        if self._read_gate is not None or self._core.state is State.CLOSED:
            return
        self._read_gate = asyncio.get_running_loop().create_future()
        if self._ws is not None:
            self._ws.pause_reading()

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
        if self._ws is not None:
            self._ws.resume_reading()

    @property
    def writable(self) -> bool:
        """The transport can take a packet now (what ``volatile`` packets need): a long-poll
        GET is waiting, or the WebSocket has nothing queued."""
        if self._core.state is State.WEBSOCKET:
            ws = self._ws
            if ws is None:
                return False
            writable = getattr(ws, "writable", None)
            return bool(writable) if writable is not None else ws.buffered_amount == 0
        return self._core.poll_waiting

    def close(self) -> None:
        """Close the session (reason ``forced close``) once the buffered packets are sent."""
        self._apply(self._core.close(self.server._now()))

    # -- engine side ------------------------------------------------------------------------------

    def on_timer(self, now: float) -> None:
        self._deadline = None  # the wheel forgot it
        self._apply(self._core.handle_timeout(now))

    def on_message(self, handler: Callable[[str | bytes], None]) -> None:
        """Set the one receiver of this session's messages (the Socket.IO layer's fast path;
        ``on("message", ...)`` handlers are not called then)."""
        self._on_message = handler

    def _apply(self, events: Iterable[Event]) -> None:
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
                if self._on_message is not None:
                    self._on_message(event.data)
                else:
                    self.emit("message", event.data)
            elif isinstance(event, WebSocketSend):
                ws = self._ws
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
                if self._probe is not None:
                    self._probe.send(event.message)
            elif isinstance(event, ProbeClose):
                probe, self._probe = self._probe, None
                if probe is not None:
                    logger.debug("session %s: upgrade abandoned: %s", self.id, event.reason)
                    probe.close()
            elif isinstance(event, UpgradeStarted):
                notify = "upgrading"
            elif isinstance(event, Upgraded):
                self._set_ws(self._probe)
                self._probe = None
                notify = "upgrade"
            elif isinstance(event, WebSocketClose):
                ws = self._ws
                self._set_ws(None)
                if ws is not None:
                    ws.close()
            elif isinstance(event, Closed):
                self._send_frame = None  # the state is no longer WEBSOCKET
                self.resume_reading()  # a POST held by pause_reading gets its answer
                self.server._forget(self, event.reason)
                self.emit("close", event.reason, event.description)
                # Listeners (the Socket.IO client's bound methods) point back here: drop them
                # so that a closed session is freed by reference counting, without waiting for
                # the garbage collector (a server with many short sessions would grow).
                self._handlers.clear()
                self._on_message = None
            else:
                assert_never(event)
        deadline = self._core.deadline
        if deadline != self._deadline:
            self._deadline = deadline
            self.server._timers.schedule(self, deadline)
        if notify is not None:
            self.emit(notify)

    async def _poll(self, request: HttpRequest) -> HttpResponse:
        future: asyncio.Future[PollResponse] = asyncio.get_running_loop().create_future()
        events = self._core.receive_poll_request(self.server._now())
        rejected = any(isinstance(e, PollRejected) for e in events)
        if not rejected:
            self._poll_future = future
        self._apply(events)
        if rejected:
            return HttpResponse(400, [("Content-Type", "text/html")], b"")
        try:
            result = await future
        except asyncio.CancelledError:
            if self._poll_future is future:
                self._poll_future = None
                self._apply(self._core.poll_aborted(self.server._now()))
            raise
        return self.server._poll_response(request, result, self.id)

    def _post(self, request: HttpRequest) -> HttpResponse:
        content_type = request.headers.get("content-type", "")
        binary = content_type == "application/octet-stream"
        if binary and self.protocol == 4:
            self._apply(self._core.discard(self.server._now(), "transport error"))
            return HttpResponse(400, [], b"")
        events = self._core.receive_poll_data(request.body, binary, self.server._now())
        failed = any(isinstance(e, Closed) and e.reason == "parse error" for e in events)
        self._apply(events)
        if failed:
            return HttpResponse(400, [], b"")
        headers = [("Content-Type", "text/html"), ("Content-Length", "2")]
        return HttpResponse(200, self.server._polling_headers(request, headers), b"ok")


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
        if socket._ws is self._channel:
            # The clock is passed, not read: a message needs no time (only heartbeats do).
            result = socket._core.receive_message(data, self._clock)
            if result.__class__ is list:
                socket._apply(result)  # (`.__class__ is`: cheaper than isinstance here)
                return
            handler = socket._on_message
            if handler is not None:
                handler(result)  # type: ignore[arg-type]  # not a list: the data
            else:
                socket.emit("message", result)
        elif socket._probe is self._channel:
            socket._apply(socket._core.receive_probe_message(data, self._clock()))

    def on_close(self, code: int | None, error: str | None) -> None:
        socket = self._socket
        now = socket.server._now()
        if socket._probe is self._channel:
            socket._probe = None
            socket._apply(socket._core.probe_closed(now))
            return
        if socket._ws is not self._channel:
            return
        socket._set_ws(None)
        if code == 1006 and error is None and socket._core.state is State.WEBSOCKET:
            age = now - socket._opened_at
            logger.info(
                "session %s of %s: the WebSocket dropped without a close frame after %.1fs; if "
                "this happens at a regular interval, a proxy's idle timeout (nginx "
                "proxy_read_timeout, HAProxy timeout tunnel) is shorter than ping_interval=%gs",
                socket.id,
                socket.remote_address or "?",
                age,
                socket.server.config.ping_interval,
            )
        socket._apply(socket._core.websocket_closed(now, error))


def _shutting_down() -> HttpResponse:
    """The answer to a new session's request while :meth:`EngineServer.shutdown` drains."""
    return HttpResponse(
        503, [("Content-Type", "text/plain"), ("Retry-After", "1")], b"server shutting down"
    )


class _IgnoredWebSocket:
    """The handler of a WebSocket closed as soon as it opened."""

    def on_message(self, data: str | bytes) -> None:
        pass

    def on_close(self, code: int | None, error: str | None) -> None:
        pass


class EngineServer(EventEmitter):
    """An Engine.IO server. Events: ``connection`` (EngineSocket), ``connection_error``
    (:class:`ConnectionRejected`), ``initial_headers`` and ``headers`` (a mutable list of
    ``(name, value)`` pairs, the request)."""

    def __init__(
        self,
        *,
        path: str = "/engine.io/",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        upgrade_timeout: float = 10.0,
        max_http_buffer_size: int = 1_000_000,
        transports: Sequence[str] = TRANSPORTS,
        allow_upgrades: bool = True,
        allow_eio3: bool = False,
        allow_request: AllowRequest | None = None,
        cookie: bool | str | Cookie | None = None,
        http_compression: bool | int = True,
        per_message_deflate: bool = False,
        cors: Cors | None = None,
        max_payload_packets: int = 10_000,
        max_outbound_buffer: int = 16_000_000,
        shutdown_timeout: float = 5.0,
    ) -> None:
        super().__init__()
        _check_positive("ping_interval", ping_interval)
        _check_positive("shutdown_timeout", shutdown_timeout)
        _check_positive("ping_timeout", ping_timeout)
        _check_positive("upgrade_timeout", upgrade_timeout)
        if not isinstance(max_http_buffer_size, int) or max_http_buffer_size <= 0:
            raise TypeError(
                f"max_http_buffer_size must be a positive int, got {max_http_buffer_size!r}"
            )
        if isinstance(transports, str):
            raise TypeError(
                f"transports must be a sequence of names, got the string {transports!r}"
            )
        unknown = [t for t in transports if t not in TRANSPORTS]
        if unknown or not transports:
            raise ValueError(
                f"transports must be a non-empty subset of {TRANSPORTS}, got {tuple(transports)!r}"
            )
        if cors is not None and not isinstance(cors, Cors):
            raise TypeError(f"cors must be an aiosio.Cors(...), got {type(cors).__name__}")
        self.path = normalize_path(path)
        self.transports = tuple(transports)
        self.allow_upgrades = allow_upgrades
        self.allow_eio3 = allow_eio3
        self.allow_request = allow_request
        self.max_http_buffer_size = max_http_buffer_size
        if not isinstance(max_outbound_buffer, int) or max_outbound_buffer <= 0:
            raise TypeError(
                f"max_outbound_buffer must be a positive int, got {max_outbound_buffer!r}"
            )
        self.max_outbound_buffer = max_outbound_buffer
        self.shutdown_timeout = shutdown_timeout
        self.per_message_deflate = per_message_deflate
        self.cors = cors
        if cookie is True:
            self.cookie: Cookie | None = Cookie()
        elif isinstance(cookie, str):
            self.cookie = Cookie(name=cookie)
        elif isinstance(cookie, Cookie):
            self.cookie = cookie
        elif cookie is None or cookie is False:
            self.cookie = None
        else:
            raise TypeError(
                f"cookie must be True, a cookie name or aiosio.Cookie(...), got {cookie!r}"
            )
        if not isinstance(allow_upgrades, bool) or not isinstance(allow_eio3, bool):
            raise TypeError("allow_upgrades and allow_eio3 must be True or False")
        if http_compression is True:
            self.compression_threshold: int | None = 1024
        elif http_compression is False:
            self.compression_threshold = None
        elif isinstance(http_compression, int) and http_compression >= 0:
            self.compression_threshold = http_compression
        else:
            raise ValueError(
                "http_compression must be True, False or a threshold in bytes (>= 0), got "
                f"{http_compression!r}"
            )
        upgrades = ("websocket",) if allow_upgrades and "websocket" in self.transports else ()
        self.config = EngineConfig(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            upgrade_timeout=upgrade_timeout,
            max_payload=max_http_buffer_size,
            upgrades=upgrades,
            max_payload_packets=max_payload_packets,
        )
        self.clients: dict[str, EngineSocket] = {}
        self._recently_closed = EndedSessions(_RECENTLY_CLOSED_MAX)
        self._cross_origins: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer_wheel: TimerWheel | None = None
        # Set while shutdown() waits for the sessions' last packets to be taken.
        self._drained: asyncio.Future[None] | None = None

    # -- public -----------------------------------------------------------------------------------

    @property
    def clients_count(self) -> int:
        return len(self.clients)

    def close(self) -> None:
        """Close every session at once (reason ``forced close``), dropping what is buffered;
        :meth:`shutdown` delivers it first."""
        now = self._now() if self._loop is not None else 0.0
        for socket in list(self.clients.values()):
            socket._apply(socket._core.discard(now))
        if self._timer_wheel is not None:
            self._timer_wheel.close()

    def generate_id(self, request: HttpRequest) -> str:
        """A new session id: 120 random bits, URL-safe (override to choose ids)."""
        return secrets.token_urlsafe(15)

    def handles(self, path: str) -> bool:
        """True when ``path`` is under this server's path (prefix match, as the reference)."""
        return path.startswith(self.path)

    @property
    def max_body_size(self) -> int:
        return self.max_http_buffer_size

    def asgi(
        self,
        other_app: Any = None,
        *,
        trim_heap_after: int = 1000,
        body_timeout: float = 30.0,
        websocket_close_timeout: float = 5.0,
    ) -> Any:
        """This server as an ASGI application; other paths go to ``other_app`` if given.
        ``trim_heap_after``, ``body_timeout``, ``websocket_close_timeout``: see
        :class:`~aiosio.transports.asgi.AsgiApp`."""
        return asgi_app(
            self,
            other_app,
            trim_heap_after=trim_heap_after,
            body_timeout=body_timeout,
            websocket_close_timeout=websocket_close_timeout,
        )

    async def shutdown(self) -> None:
        """Close every session, the packets already sent to a client reaching it first.

        Called by the HTTP servers when they stop. Sessions on a WebSocket, and those with
        nothing buffered, close at once. A polling session whose packets wait for the client's
        next GET, or are held by an upgrade in progress, closes when the client has taken them
        (the next GET takes them and the one after the close, or the upgrade completes and the
        WebSocket gets them, then its close), for at most ``shutdown_timeout`` seconds; then
        what is left is dropped, and logged. Requests for a new session are refused (503)
        meanwhile."""
        if self.clients:
            loop = asyncio.get_running_loop()
            now = self._now()
            self._drained = loop.create_future()
            try:
                for socket in list(self.clients.values()):
                    socket._apply(socket._core.shutdown(now))
                if self.clients:
                    await asyncio.wait_for(asyncio.shield(self._drained), self.shutdown_timeout)
            except TimeoutError:
                waiting = list(self.clients.values())
                logger.warning(
                    "shutdown: gave up after shutdown_timeout=%gs on %d session(s) whose client "
                    "did not take %d buffered bytes (no long-poll GET came, or the upgrade did "
                    "not complete): those packets are dropped; raise shutdown_timeout to wait "
                    "longer",
                    self.shutdown_timeout,
                    len(waiting),
                    sum(socket._core.buffered_size for socket in waiting),
                )
            finally:
                self._drained = None
        self.close()

    @property
    def shutting_down(self) -> bool:
        """:meth:`shutdown` is waiting for sessions to take their last packets."""
        return self._drained is not None

    def not_found(self, request: HttpRequest) -> HttpResponse:
        """A path outside :attr:`path`: say where the endpoint is (a wrong path is a classic)."""
        hint = ""
        if request.query.get("EIO") or request.query.get("transport"):
            hint = (
                f" This request looks like an Engine.IO/Socket.IO client: the server path is "
                f"{self.path!r}; set the same `path` option on the client."
            )
            logger.warning(
                "request for %s from %s does not match the server path %r: the client's `path` "
                "option differs from the server's",
                _short(request.url),
                request.remote_address or "?",
                self.path,
            )
        body = f"Not Found: nothing is served at {request.path[:200]}.{hint}\n".encode()
        return HttpResponse(404, [("Content-Type", "text/plain; charset=utf-8")], body)

    # -- internals used by EngineSocket -----------------------------------------------------------

    @property
    def _timers(self) -> TimerWheel:
        if self._timer_wheel is None:
            self._loop = asyncio.get_running_loop()
            # Deadlines are rounded up to the bucket size: at most 0.5 % of the shortest timer
            # late (50 ms for the defaults, 1 ms for a 200 ms ping timeout), never early.
            config = self.config
            resolution = min(0.05, config.ping_timeout / 200, config.ping_interval / 200)
            self._timer_wheel = TimerWheel(self._loop, resolution)
        return self._timer_wheel

    def _now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def _forget(self, socket: EngineSocket, reason: str) -> None:
        if self.clients.get(socket.id) is socket:
            del self.clients[socket.id]
        drained = self._drained
        if drained is not None and not self.clients and not drained.done():
            drained.set_result(None)
        self._timers.schedule(socket, None)
        # Remember why recent sessions ended, so a late request for one says so (bounded).
        self._recently_closed.add(socket.id, reason, self._now())

    # -- HTTP -------------------------------------------------------------------------------------

    async def handle_request(self, request: HttpRequest) -> HttpResponse:
        """Answer one HTTP request under :attr:`path` (polling, preflight, or a rejection)."""
        origin = request.headers.get("origin")
        cors_headers: list[tuple[str, str]] = []
        if self.cors is not None:
            try:
                allowed = await self._origin_allowed(origin)
            except Exception as exc:  # noqa: BLE001 - the user's origin callable failed
                return self._reject(request, _cors_failure(exc), websocket=False)
            if is_preflight(request.method, request.headers):
                headers = self.cors.preflight_headers(
                    origin, allowed, request.headers.get("access-control-request-headers")
                )
                headers.append(("Content-Length", "0"))
                return HttpResponse(204, headers, b"")
            if self._refuses_origin(request, origin, allowed):
                assert origin is not None
                return self._reject(
                    request,
                    _Rejection(
                        FORBIDDEN,
                        self.cors.refusal_reason(origin),
                        "change aiosio.Cors(origins=...) on the server if this page should connect",
                        name="ORIGIN_NOT_ALLOWED",
                        origin=origin,
                    ),
                    websocket=False,
                )
            cors_headers = self.cors.response_headers(origin, allowed)
        elif origin is not None:
            self._note_cross_origin(request, origin)
        try:
            socket = await self._verify(request, upgrade=False)
            if socket is None and self._drained is not None:
                response = _shutting_down()
            elif socket is None:
                response = await self._handshake(request)
            elif request.method == "GET":
                response = await socket._poll(request)
            elif request.method == "POST":
                gate = socket._read_gate
                if gate is not None:
                    await asyncio.shield(gate)  # pause_reading: the client waits
                response = socket._post(request)
            else:
                response = HttpResponse(500, [], b"")
        except _Rejection as rejection:
            response = self._reject(request, rejection, websocket=False)
        if cors_headers:
            response.headers[:0] = cors_headers
        return response

    async def handle_websocket(self, request: HttpRequest) -> WebSocketAccept | HttpResponse:
        """Decide on a WebSocket upgrade request: accept it (handshake or upgrade of a polling
        session) or answer it with an HTTP error."""
        origin = request.headers.get("origin")
        if self.cors is not None and origin is not None:
            try:
                allowed = await self._origin_allowed(origin)
            except Exception as exc:  # noqa: BLE001 - the user's origin callable failed
                return self._reject(request, _cors_failure(exc), websocket=True)
            if self._refuses_origin(request, origin, allowed):
                return self._reject(
                    request,
                    _Rejection(
                        FORBIDDEN,
                        self.cors.refusal_reason(origin)
                        + " (WebSocket upgrade refused against cross-site WebSocket hijacking)",
                        "change aiosio.Cors(origins=...) on the server if this page should connect",
                        name="ORIGIN_NOT_ALLOWED",
                        origin=origin,
                    ),
                    websocket=True,
                )
        try:
            socket = await self._verify(request, upgrade=True)
            if socket is None and self._drained is not None:
                return _shutting_down()
            if socket is None:
                return await self._websocket_handshake(request)
        except _Rejection as rejection:
            return self._reject(request, rejection, websocket=True)
        if not socket._core.upgrade_possible:
            return self._refuse_upgrade(request, socket)
        return self._accept_probe(request, socket)

    def _refuse_upgrade(self, request: HttpRequest, socket: EngineSocket) -> WebSocketAccept:
        """A second WebSocket for a session that is upgrading or upgraded: like the reference,
        complete the handshake and close it at once; the session is left alone."""
        state = socket._core.state
        if state is State.WEBSOCKET:
            cause = f"session {socket.id} is already on websocket"
        elif state is State.PROBING or state is State.UPGRADING:
            cause = f"session {socket.id} is already upgrading"
        else:
            # The client probed while the server was closing the session (a normal race): it
            # stays on polling, where the next GET brings what was queued and the close.
            logger.debug(
                "closed the upgrade websocket of session %s from %s: the session is closing; the "
                "client gets the close on polling",
                socket.id,
                request.remote_address or "?",
            )
            cause = ""
        if cause:
            logger.warning(
                "closed a websocket for %s from %s: %s; a client opens one WebSocket per session",
                _short(request.url),
                request.remote_address or "?",
                cause,
            )

        def bind(channel: WebSocketChannel) -> WebSocketHandler:
            channel.close()
            return _IgnoredWebSocket()

        return WebSocketAccept([], bind, False, self.config.max_payload)

    async def _origin_allowed(self, origin: str | None) -> bool:
        assert self.cors is not None
        if self.cors.needs_callback():
            return await self.cors.call_origin(origin)
        return bool(self.cors.match_origin(origin))

    def _note_cross_origin(self, request: HttpRequest, origin: str) -> None:
        """Without CORS configured, a page of another origin cannot read the answers: say so
        once per origin (what the browser reports only in its console)."""
        host = request.headers.get("host")
        if host and origin in (f"http://{host}", f"https://{host}"):
            return
        if origin in self._cross_origins or len(self._cross_origins) >= 100:
            return
        self._cross_origins.add(origin)
        logger.warning(
            "a request from origin %r reached %s, which has no CORS configured: browsers block "
            "the page from reading the answers (long-polling fails); add "
            "cors=aiosio.Cors(origins=[%r]) if this page should connect",
            origin,
            self.path,
            origin,
        )

    def _refuses_origin(self, request: HttpRequest, origin: str | None, allowed: bool) -> bool:
        """An Origin the CORS rule does not allow is refused, except the server's own origin (a
        page served by this very host needs no CORS)."""
        assert self.cors is not None
        if not self.cors.refuses(origin, allowed):
            return False
        host = request.headers.get("host")
        # Behind a TLS-terminating proxy the page is https while this hop is http: accept both.
        return not (host and origin in (f"http://{host}", f"https://{host}"))

    async def _verify(self, request: HttpRequest, *, upgrade: bool) -> EngineSocket | None:
        """The reference's ``verify``: returns the session a request belongs to, ``None`` for a
        handshake, or raises the rejection with its code."""
        query = request.query
        transport = query.get("transport")
        if transport not in self.transports:
            if transport in TRANSPORTS:
                raise _Rejection(
                    UNKNOWN_TRANSPORT,
                    f"transport {transport!r} is disabled on this server "
                    f"(transports={self.transports!r})",
                    f"connect with transports={list(self.transports)!r} on the client, or "
                    "enable it on the server",
                    transport=transport,
                )
            raise _Rejection(
                UNKNOWN_TRANSPORT,
                "the request has no transport query parameter"
                if transport is None
                else f"unknown transport {transport!r}",
                "is this a Socket.IO/Engine.IO client? the URL needs "
                "?EIO=4&transport=polling or transport=websocket",
                transport=transport,
            )
        if upgrade and transport != "websocket":
            raise _Rejection(
                BAD_REQUEST,
                f"a WebSocket upgrade request asked for transport={transport!r}",
                "WebSocket requests must carry transport=websocket",
                name="TRANSPORT_MISMATCH",
            )
        origin = request.headers.get("origin")
        if origin is not None and _INVALID_HEADER_CHAR.search(origin):
            raise _Rejection(
                BAD_REQUEST,
                "the Origin header holds characters not allowed in a header value",
                "fix the client or proxy that builds the Origin header",
                name="INVALID_ORIGIN",
                origin=origin,
            )
        sid = query.get("sid")
        if sid:
            socket = self.clients.get(sid)
            if socket is None:
                ended = self._recently_closed.get(sid)
                if ended is not None:
                    reason, at = ended
                    raise _Rejection(
                        UNKNOWN_SID,
                        f"session {sid} ended {self._now() - at:.1f}s ago on this server "
                        f"({reason})",
                        "the client must open a new session; socket.io clients reconnect by "
                        "themselves",
                        sid=sid,
                        closeReason=reason,
                    )
                raise _Rejection(
                    UNKNOWN_SID,
                    f"session {sid[:64]!r} is not open on this server: it was opened on another "
                    "server or process, or before this server restarted",
                    "with several servers or workers, enable sticky sessions (nginx ip_hash or a "
                    "cookie, or aiosio serve --workers) or connect with transports=['websocket']",
                    sid=sid[:64],
                )
            previous = socket.transport
            if not upgrade and transport == "websocket":
                raise _Rejection(
                    BAD_REQUEST,
                    *_plain_http(request, f"the WebSocket request of session {sid}"),
                    name="TRANSPORT_MISMATCH",
                    transport=transport,
                    previousTransport=previous,
                )
            if not upgrade and previous != transport:
                raise _Rejection(
                    BAD_REQUEST,
                    f"session {sid} runs on {previous}; a {transport} request for it is refused"
                    + (" (the session was upgraded)" if previous == "websocket" else ""),
                    "requests after an upgrade must use the WebSocket; this is a client bug or a "
                    "replayed request",
                    name="TRANSPORT_MISMATCH",
                    transport=transport,
                    previousTransport=previous,
                )
            return socket
        if request.method != "GET":
            raise _Rejection(
                BAD_HANDSHAKE_METHOD,
                f"a session starts with a GET request, got {request.method}",
                "send the handshake as GET ?EIO=4&transport=polling",
                method=request.method,
            )
        if transport == "websocket" and not upgrade:
            raise _Rejection(
                BAD_REQUEST,
                *_plain_http(request, "a transport=websocket request"),
                name="TRANSPORT_HANDSHAKE_ERROR",
            )
        if self.allow_request is not None:
            await self._run_allow_request(request)
        return None

    async def _run_allow_request(self, request: HttpRequest) -> None:
        """The hook refuses with ``aiosio.ConnectionRefused(message)`` (the message goes to the
        client, as the reference's ``callback(message, false)``) or by returning ``False``.
        Any other exception is a bug in the hook: logged, and answered with a bare Forbidden
        so that no internal detail reaches the client."""
        from aiosio.errors import ConnectionRefused

        assert self.allow_request is not None
        try:
            result: object = self.allow_request(request)
            if inspect.isawaitable(result):
                result = await result
        except ConnectionRefused as exc:
            message = exc.message or ERROR_MESSAGES[FORBIDDEN]
            # Reference: connection_error has message "Forbidden" and context {message}; the
            # HTTP body carries the hook's message.
            raise _Rejection(
                FORBIDDEN,
                f"allow_request refused the request: {message}",
                "this is the server's own allow_request hook; check what it requires",
                message=message,
            ) from exc
        except Exception as exc:
            logger.exception("the allow_request hook raised %s", type(exc).__name__)
            raise _Rejection(
                FORBIDDEN,
                f"the allow_request hook raised {type(exc).__name__}: {exc}",
                "fix the hook; refuse on purpose with raise aiosio.ConnectionRefused(message)",
            ) from exc
        if result is False:
            raise _Rejection(
                FORBIDDEN,
                "allow_request returned False",
                "this is the server's own allow_request hook; check what it requires",
            )

    def _protocol_of(self, request: HttpRequest) -> int:
        """The handshake's protocol revision; anything but 4 (or 3 with allow_eio3) is code 5."""
        eio = request.query.get("EIO")
        if eio == "4":
            return 4
        if eio == "3" and self.allow_eio3:
            return 3
        if eio == "3":
            cause = "the client speaks Engine.IO 3 (socket.io-client 2.x or another v2 client)"
            hint = "upgrade the client to socket.io-client 4.x, or set allow_eio3=True"
        else:
            cause = (
                "the handshake has no EIO query parameter"
                if eio is None
                else f"unknown protocol version EIO={eio[:16]!r}"
            )
            hint = "Socket.IO 3.x/4.x clients send EIO=4; socket.io-client 2.x sends EIO=3"
        raise _Rejection(UNSUPPORTED_PROTOCOL_VERSION, cause, hint, protocol=eio)

    def _new_socket(self, request: HttpRequest, transport: TransportKind) -> EngineSocket:
        protocol = self._protocol_of(request)
        sid = SessionId(self.generate_id(request))
        session = EngineSession(
            sid=sid,
            protocol=protocol,
            transport=transport,
            config=self.config,
            now=self._now(),
            supports_binary="b64" not in request.query,
        )
        socket = EngineSocket(self, session, request)
        self.clients[sid] = socket
        return socket

    async def _handshake(self, request: HttpRequest) -> HttpResponse:
        socket = self._new_socket(request, TransportKind.POLLING)
        self.emit("connection", socket)
        return await socket._poll(request)

    async def _websocket_handshake(self, request: HttpRequest) -> WebSocketAccept:
        socket = self._new_socket(request, TransportKind.WEBSOCKET)
        headers: list[tuple[str, str]] = []
        self.emit("initial_headers", headers, request)
        self.emit("headers", headers, request)

        def bind(channel: WebSocketChannel) -> WebSocketHandler:
            socket._set_ws(channel)
            socket._apply(socket._core.initial_messages())
            self.emit("connection", socket)
            return _SessionWebSocket(socket, channel)

        return WebSocketAccept(headers, bind, self.per_message_deflate, self.config.max_payload)

    def _accept_probe(self, request: HttpRequest, socket: EngineSocket) -> WebSocketAccept:
        headers: list[tuple[str, str]] = []
        self.emit("headers", headers, request)

        def bind(channel: WebSocketChannel) -> WebSocketHandler:
            if not socket._core.upgrade_possible:
                channel.close()  # the session changed while the handshake completed
                return _SessionWebSocket(socket, channel)
            socket._probe = channel
            socket._apply(socket._core.attach_probe(self._now()))
            return _SessionWebSocket(socket, channel)

        return WebSocketAccept(headers, bind, self.per_message_deflate, self.config.max_payload)

    # -- responses --------------------------------------------------------------------------------

    def _polling_headers(
        self, request: HttpRequest, headers: list[tuple[str, str]], sid: str | None = None
    ) -> list[tuple[str, str]]:
        """Headers of every polling response (polling.ts ``headers()``); the handshake response
        also gets the session cookie and the ``initial_headers`` hook."""
        ua = request.headers.get("user-agent", "")
        if ";MSIE" in ua or "Trident/" in ua:
            headers.append(("X-XSS-Protection", "0"))
        headers.append(("cache-control", "no-store"))
        if not request.query.get("sid"):
            if self.cookie is not None and sid is not None:
                headers.append(("Set-Cookie", self.cookie.serialize(sid)))
            self.emit("initial_headers", headers, request)
        self.emit("headers", headers, request)
        return headers

    def _poll_response(self, request: HttpRequest, result: PollResponse, sid: str) -> HttpResponse:
        body = result.body
        headers: list[tuple[str, str]] = [("Content-Type", result.content_type)]
        if self.compression_threshold is not None and len(body) >= self.compression_threshold:
            encoding = _pick_encoding(request.headers.get("accept-encoding", ""))
            if encoding == "gzip":
                body = gzip.compress(body, mtime=0)
                headers.append(("Content-Encoding", "gzip"))
            elif encoding == "deflate":
                body = zlib.compress(body)
                headers.append(("Content-Encoding", "deflate"))
        headers.insert(1, ("Content-Length", str(len(body))))
        return HttpResponse(200, self._polling_headers(request, headers, sid), body)

    def _reject(
        self, request: HttpRequest, rejection: _Rejection, *, websocket: bool
    ) -> HttpResponse:
        error = ConnectionRejected(
            request=request,
            code=rejection.code,
            message=ERROR_MESSAGES[rejection.code],
            context=rejection.context,
            cause=rejection.cause,
            hint=rejection.hint,
        )
        address = request.remote_address or "?"
        logger.warning(
            "refused %s %s from %s%s: %s",
            request.method,
            _short(request.url),
            address,
            " (websocket)" if websocket else "",
            error,
        )
        self.emit("connection_error", error)
        if websocket:
            # The reference's abortUpgrade: 400 with the message as an HTML body. A refused
            # Origin (our own check against cross-site WebSocket hijacking) says 403.
            refused_origin = rejection.context.get("name") == "ORIGIN_NOT_ALLOWED"
            return HttpResponse(
                403 if refused_origin else 400,
                [("Connection", "close"), ("Content-type", "text/html")],
                rejection.message.encode(),
            )
        status = 403 if rejection.code == FORBIDDEN else 400
        body = _json_error(rejection.code, rejection.message)
        return HttpResponse(status, [("Content-Type", "application/json")], body)


def _cors_failure(exc: Exception) -> _Rejection:
    logger.error("the cors origins callable raised", exc_info=exc)
    return _Rejection(
        BAD_REQUEST,
        f"the cors origins callable raised {type(exc).__name__}: {exc}",
        "fix the function given to aiosio.Cors(origins=...); it must return True or False",
        name="MIDDLEWARE_FAILURE",
    )


def _json_error(code: int, message: str) -> bytes:
    import orjson

    return orjson.dumps({"code": code, "message": message})


def _short(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[:limit] + "..."


def _pick_encoding(accept: str) -> str | None:
    """``gzip`` or ``deflate`` as the ``negotiator`` package picks from that list: by q-value,
    then exact name before ``*``, then order in the header, then gzip before deflate."""
    specs: list[tuple[str, float, int]] = []
    for order, item in enumerate(accept.split(",")[:32]):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        specs.append((name.strip().lower(), q, order))
    best: tuple[float, int, int, int] | None = None
    choice = None
    for index, encoding in enumerate(("gzip", "deflate")):
        for name, q, order in specs:
            if name not in (encoding, "*") or q <= 0:
                continue
            rank = (q, 1 if name == encoding else 0, -order, -index)
            if best is None or rank > best:
                best, choice = rank, encoding
    return choice


def normalize_path(path: str) -> str:
    """``/socket.io`` and ``socket.io/`` both become ``/socket.io/``, as the reference does."""
    if not isinstance(path, str) or not path:
        raise TypeError(f"path must be a non-empty string such as '/socket.io/', got {path!r}")
    path = "/" + path.strip("/")
    return path + "/" if path != "/" else "/"


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

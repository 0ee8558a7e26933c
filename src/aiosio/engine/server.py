"""The Engine.IO server: sessions over HTTP long-polling and WebSocket.

Usable on its own, like the ``engine.io`` package in Node: ``EngineServer`` fires ``connection``
with an :class:`EngineSocket`, which fires ``message`` and ``close`` and has ``send``. The HTTP
servers (native or ASGI) call :meth:`EngineServer.handle_request` and
:meth:`EngineServer.handle_websocket`.

This module is the assembly: :mod:`~aiosio.engine.options` validates the options,
:mod:`~aiosio.engine.verify` decides on each request (following the reference ``engine.io``
``Server.verify``, with the same HTTP bodies; every rejection also fires ``connection_error`` and
logs one line that names the cause and the fix), :mod:`~aiosio.engine.driver` runs each session,
and :class:`EngineServer` answers the HTTP requests and is the sessions' host (timers, clock).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import secrets
import zlib
from collections.abc import Callable
from typing import Generic
from typing import Never
from typing import TypeVar
from typing import Unpack
from typing import assert_never
from typing import overload

from aiosio._events import EventEmitter
from aiosio._once import OncePer
from aiosio.engine.driver import EngineSocket
from aiosio.engine.ended import EndedSessions
from aiosio.engine.http import AsgiMixin
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.http import WebSocketAccept
from aiosio.engine.http import WebSocketChannel
from aiosio.engine.http import WebSocketHandler
from aiosio.engine.options import TRANSPORTS
from aiosio.engine.options import AllowRequest
from aiosio.engine.options import Cookie
from aiosio.engine.options import EngineKeywords
from aiosio.engine.options import EngineOptions
from aiosio.engine.options import check_keywords
from aiosio.engine.options import normalize_path
from aiosio.engine.timers import TimerWheel
from aiosio.engine.verify import BAD_REQUEST
from aiosio.engine.verify import ERROR_MESSAGES
from aiosio.engine.verify import FORBIDDEN
from aiosio.engine.verify import UNKNOWN_SID
from aiosio.engine.verify import UNKNOWN_TRANSPORT
from aiosio.engine.verify import ConnectionRejected
from aiosio.engine.verify import ErrorCode
from aiosio.engine.verify import Handshake
from aiosio.engine.verify import Rejection
from aiosio.engine.verify import SessionRequest
from aiosio.engine.verify import protocol_of
from aiosio.engine.verify import rejection
from aiosio.engine.verify import run_allow_request
from aiosio.engine.verify import verify
from aiosio.protocol.cors import Cors
from aiosio.protocol.cors import is_preflight

# Re-exported for the modules that import it from here (server/socket.py, server/adapter.py).
from aiosio.protocol.prepared import PreparedMessage
from aiosio.protocol.session import EngineSession
from aiosio.protocol.session import PollResponse
from aiosio.protocol.session import SessionId
from aiosio.protocol.session import State
from aiosio.protocol.session import TransportKind
from aiosio.protocol.webtransport import FrameError
from aiosio.protocol.webtransport import NewSession
from aiosio.protocol.webtransport import UpgradeSession
from aiosio.protocol.webtransport import opening

__all__ = [
    "TRANSPORTS",
    "AllowRequest",
    "ConnectionRejected",
    "Cookie",
    "EngineOptions",
    "EngineServer",
    "EngineSocket",
    "ErrorCode",
    "PreparedMessage",
    "normalize_path",
]

logger = logging.getLogger("aiosio.engine")

_RECENTLY_CLOSED_MAX = 4096

T = TypeVar("T")


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

    def on_parse_error(self, reason: str) -> None:
        pass


class _Option(Generic[T]):
    """An attribute of :class:`EngineServer` read from its options, read-only as they are."""

    __slots__ = ("_name", "_read")

    def __init__(self, read: Callable[[EngineOptions], T]) -> None:
        self._read = read

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, server: None, owner: type) -> _Option[T]: ...
    @overload
    def __get__(self, server: EngineServer, owner: type) -> T: ...
    def __get__(self, server: EngineServer | None, owner: type) -> T | _Option[T]:
        return self if server is None else self._read(server.options)

    def __set__(self, server: EngineServer, value: Never) -> None:
        raise AttributeError(
            f"EngineServer.{self._name} is read-only: the options are fixed at construction"
        )


class EngineServer(EventEmitter, AsgiMixin):
    """An Engine.IO server. Events: ``connection`` (EngineSocket), ``connection_error``
    (:class:`ConnectionRejected`), ``initial_headers`` and ``headers`` (a mutable list of
    ``(name, value)`` pairs, the request)."""

    def __init__(self, **options: Unpack[EngineKeywords]) -> None:
        """The options, their defaults and checks: :class:`~aiosio.engine.options.EngineOptions`
        (an unknown one is a ``TypeError``, as for any keyword)."""
        super().__init__()
        check_keywords(EngineServer.__init__, options, EngineKeywords.__optional_keys__)
        self.options = EngineOptions(**options)
        """The validated options (:class:`~aiosio.engine.options.EngineOptions`)."""
        # Read on every send (the session driver's SessionHost), hence a plain attribute; the
        # options are frozen, so it cannot drift from them.
        self.max_outbound_buffer = self.options.max_outbound_buffer
        self.config = self.options.session_config
        self.clients: dict[str, EngineSocket] = {}
        self._recently_closed = EndedSessions(_RECENTLY_CLOSED_MAX)
        # Origins told they have no CORS configured; a client picks the origin, hence the limit.
        self._cross_origins = OncePer(limit=100)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer_wheel: TimerWheel | None = None
        # Set while shutdown() waits for the sessions' last packets to be taken.
        self._drained: asyncio.Future[None] | None = None

    # -- the options, readable here as before EngineOptions (engine.path, engine.cors, ...) ------

    path = _Option(lambda options: options.path)
    """Where the server answers (normalised: ``/engine.io/``)."""
    transports = _Option(lambda options: tuple(options.transports))
    allow_upgrades = _Option(lambda options: options.allow_upgrades)
    allow_eio3 = _Option(lambda options: options.allow_eio3)
    allow_request = _Option(lambda options: options.allow_request)
    max_http_buffer_size = _Option(lambda options: options.max_http_buffer_size)
    max_body_size = _Option(lambda options: options.max_http_buffer_size)
    """``max_http_buffer_size``, under the name the HTTP servers read."""
    shutdown_timeout = _Option(lambda options: options.shutdown_timeout)
    per_message_deflate = _Option(lambda options: options.per_message_deflate)
    cors = _Option(lambda options: options.cors)
    cookie = _Option(lambda options: options.session_cookie)
    """The session cookie: the ``cookie`` option as a :class:`Cookie`, or ``None``."""
    compression_threshold = _Option(lambda options: options.compression_threshold)

    # -- public -----------------------------------------------------------------------------------

    @property
    def clients_count(self) -> int:
        return len(self.clients)

    def close(self) -> None:
        """Close every session at once (reason ``forced close``), dropping what is buffered;
        :meth:`shutdown` delivers it first."""
        now = self.now() if self._loop is not None else 0.0
        for socket in list(self.clients.values()):
            socket.apply(socket.session.discard(now))
        if self._timer_wheel is not None:
            self._timer_wheel.close()

    def generate_id(self, request: HttpRequest) -> str:
        """A new session id: 120 random bits, URL-safe (override to choose ids)."""
        return secrets.token_urlsafe(15)

    def handles(self, path: str) -> bool:
        """True when ``path`` is under this server's path (prefix match, as the reference)."""
        return path.startswith(self.options.path)

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
            now = self.now()
            timeout = self.options.shutdown_timeout
            self._drained = loop.create_future()
            try:
                for socket in list(self.clients.values()):
                    socket.apply(socket.session.shutdown(now))
                if self.clients:
                    await asyncio.wait_for(asyncio.shield(self._drained), timeout)
            except TimeoutError:
                waiting = list(self.clients.values())
                logger.warning(
                    "shutdown: gave up after shutdown_timeout=%gs on %d session(s) whose client "
                    "did not take %d buffered bytes (no long-poll GET came, or the upgrade did "
                    "not complete): those packets are dropped; raise shutdown_timeout to wait "
                    "longer",
                    timeout,
                    len(waiting),
                    sum(socket.session.buffered_size for socket in waiting),
                )
            finally:
                self._drained = None
        self.close()

    @property
    def shutting_down(self) -> bool:
        """:meth:`shutdown` is waiting for sessions to take their last packets."""
        return self._drained is not None

    # -- the sessions' host (aiosio.engine.driver.SessionHost) -----------------------------------

    @property
    def timers(self) -> TimerWheel:
        """The one timer wheel of every session's deadlines (and of the Socket.IO layer's
        connect timeout); created with the first session, it needs the running loop. Tests
        count its entries (``len``) to see that closed sessions left nothing scheduled."""
        if self._timer_wheel is None:
            self._loop = asyncio.get_running_loop()
            # Deadlines are rounded up to the bucket size: at most 0.5 % of the shortest timer
            # late (50 ms for the defaults, 1 ms for a 200 ms ping timeout), never early.
            config = self.config
            resolution = min(0.05, config.ping_timeout / 200, config.ping_interval / 200)
            self._timer_wheel = TimerWheel(self._loop, resolution)
        return self._timer_wheel

    def _follow_loop(self) -> None:
        """With no session left, a server first used in another event loop (one per test, as
        pytest-asyncio runs them) takes the running one: its clock and timers were that loop's,
        and a closed loop cannot schedule them."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        if self._timer_wheel is not None:
            self._timer_wheel.close()
            self._timer_wheel = None
        self._loop = loop

    def now(self) -> float:
        """The event loop's clock, which every deadline of the sessions is on."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def forget(self, socket: EngineSocket, reason: str) -> None:
        """``socket``'s session closed for ``reason`` (called by the socket itself)."""
        if self.clients.get(socket.id) is socket:
            del self.clients[socket.id]
        drained = self._drained
        if drained is not None and not self.clients and not drained.done():
            drained.set_result(None)
        self.timers.schedule(socket, None)
        # Remember why recent sessions ended, so a late request for one says so (bounded).
        self._recently_closed.add(socket.id, reason, self.now())

    def not_found(self, request: HttpRequest) -> HttpResponse:
        """A path outside :attr:`path`: say where the endpoint is (a wrong path is a classic).
        Under a mount (the ASGI ``root_path``, such as FastAPI's ``app.mount("/ws", ...)``) the
        path a client must use is the mount's followed by the server's: ``/ws/socket.io/``."""
        hint = ""
        if request.query.get("EIO") or request.query.get("transport"):
            full = request.root_path.rstrip("/") + self.path
            root = request.root_path
            mounted = f" (the server is mounted at {root})" if root else ""
            hint = (
                f" This request looks like an Engine.IO/Socket.IO client: the server path is "
                f"{full!r}{mounted}; set path={full!r} on the client (io(url, {{ path: "
                f"{full!r} }}), aiosio.Client(url, path={full!r}))."
            )
            logger.warning(
                "request for %s from %s does not match the server path %r%s: the client's "
                "`path` option differs from the server's; it must be path=%r",
                _short(request.root_path + request.url),
                request.remote_address or "?",
                full,
                mounted,
                full,
            )
        body = f"Not Found: nothing is served at {request.path[:200]}.{hint}\n".encode()
        return HttpResponse(404, [("Content-Type", "text/plain; charset=utf-8")], body)

    # -- HTTP -------------------------------------------------------------------------------------

    async def handle_request(self, request: HttpRequest) -> HttpResponse:
        """Answer one HTTP request under :attr:`path` (polling, preflight, or a rejection)."""
        origin = request.headers.get("origin")
        cors = self.options.cors
        cors_headers: list[tuple[str, str]] = []
        if cors is not None:
            try:
                allowed = await self._origin_allowed(cors, origin)
            except Exception as exc:  # noqa: BLE001 - the user's origin callable failed
                return self._reject(request, _cors_failure(exc), websocket=False)
            if is_preflight(request.method, request.headers):
                headers = cors.preflight_headers(
                    origin, allowed, request.headers.get("access-control-request-headers")
                )
                headers.append(("Content-Length", "0"))
                return HttpResponse(204, headers, b"")
            if self._refuses_origin(cors, request, origin, allowed):
                assert origin is not None
                refused = _origin_refused(cors, origin, "")
                return self._reject(request, refused, websocket=False)
            cors_headers = cors.response_headers(origin, allowed)
        elif origin is not None:
            self._note_cross_origin(request, origin)
        response = await self._answer(request)
        if cors_headers:
            response.headers[:0] = cors_headers
        return response

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        verdict = await self._admit(request, websocket=False)
        if isinstance(verdict, HttpResponse):
            return verdict
        if isinstance(verdict, Handshake):
            socket = self._new_socket(request, TransportKind.POLLING)
            if isinstance(socket, Rejection):
                return self._reject(request, socket, websocket=False)
            self.emit("connection", socket)
            return await self._poll(request, socket)
        if isinstance(verdict, SessionRequest):
            socket = verdict.session
            if request.method == "GET":
                return await self._poll(request, socket)
            if request.method == "POST":
                return await self._post(request, socket)
            return HttpResponse(500, [], b"")
        assert_never(verdict)

    async def handle_websocket(self, request: HttpRequest) -> WebSocketAccept | HttpResponse:
        """Decide on a WebSocket upgrade request: accept it (handshake or upgrade of a polling
        session) or answer it with an HTTP error."""
        if self.options.cors is not None:
            hijacking = " (WebSocket upgrade refused against cross-site WebSocket hijacking)"
            refused = await self._cross_site(request, hijacking)
            if refused is not None:
                return refused
        verdict = await self._admit(request, websocket=True)
        if isinstance(verdict, HttpResponse):
            return verdict
        if isinstance(verdict, Handshake):
            return self._websocket_handshake(request)
        if isinstance(verdict, SessionRequest):
            socket = verdict.session
            if not socket.session.upgrade_possible:
                return self._refuse_upgrade(request, socket)
            return self._accept_probe(request, socket)
        assert_never(verdict)

    # -- WebTransport (the HTTP/3 edge: aiosio.transports.webtransport) ---------------------------

    async def handle_webtransport(self, request: HttpRequest) -> HttpResponse | None:
        """Decide on a WebTransport session request (an HTTP/3 extended CONNECT to
        :attr:`path`): ``None`` to accept it, or the refusal to answer with. The reference
        checks nothing here (it has no request to check); aiosio applies what it applies to a
        WebSocket: the transport enabled, CORS against cross-site hijacking, ``allow_request``."""
        if "webtransport" not in self.options.transports:
            refused = rejection(
                UNKNOWN_TRANSPORT,
                "transport 'webtransport' is disabled on this server "
                f"(transports={self.options.transports!r})",
                "add 'webtransport' to the server's transports, or connect with "
                "transports=['polling', 'websocket']",
                transport="webtransport",
            )
            return self._reject(request, refused, websocket=True)
        if self._drained is not None:
            return _shutting_down()
        if self.options.cors is not None:
            hijacking = " (WebTransport session refused against cross-site hijacking)"
            cross_site = await self._cross_site(request, hijacking)
            if cross_site is not None:
                return cross_site
        if self.options.allow_request is not None:
            denied = await run_allow_request(self.options, request)
            if denied is not None:
                return self._reject(request, denied, websocket=True)
        return None

    def open_webtransport(
        self, request: HttpRequest, first: str | bytes
    ) -> Callable[[WebSocketChannel], WebSocketHandler] | str:
        """The first packet of an accepted WebTransport session's stream arrived: the function
        that binds the stream's channel to a new session (``0``) or to the upgrade of an open
        one (``0{"sid":...}``), as the reference's ``onWebTransportSession``; or, when the
        packet does not allow either, the reason to close the WebTransport session with."""
        try:
            opened = opening(first)
        except FrameError as exc:
            return self._webtransport_refused(
                request,
                rejection(
                    BAD_REQUEST,
                    exc.reason,
                    "a WebTransport client writes the OPEN packet first (engine.io-client 6.5+ "
                    "does); is this a Socket.IO client?",
                    name="TRANSPORT_HANDSHAKE_ERROR",
                    transport="webtransport",
                ),
            )
        if isinstance(opened, NewSession):
            socket = self._new_socket(request, TransportKind.WEBTRANSPORT)
            if isinstance(socket, Rejection):  # pragma: no cover - protocol 4 is not refused
                return self._webtransport_refused(request, socket)
            self.emit("headers", [], request)
            new = socket

            def bind(channel: WebSocketChannel) -> WebSocketHandler:
                handler = new.accept_websocket(channel)
                self.emit("connection", new)
                return handler

            return bind
        if isinstance(opened, UpgradeSession):
            existing = self.clients.get(opened.sid)
            if existing is None:
                ended = self._recently_closed.get(opened.sid)
                why = f" (it ended: {ended[0]})" if ended else ""
                refused = rejection(
                    UNKNOWN_SID,
                    f"upgrade of session {opened.sid[:40]!r}, which is not open on this "
                    f"server{why}",
                    "with several servers, the UDP port needs the same sticky routing as the "
                    "HTTP one (the upgrade must reach the server that holds the session)",
                    sid=opened.sid[:40],
                    transport="webtransport",
                )
                return self._webtransport_refused(request, refused)
            if not existing.session.upgrade_possible:
                refused = rejection(
                    BAD_REQUEST,
                    f"session {existing.id} is already upgrading or upgraded (on "
                    f"{existing.transport})",
                    "a client upgrades a session once",
                    name="TRANSPORT_MISMATCH",
                    transport="webtransport",
                    previousTransport=str(existing.transport),
                )
                return self._webtransport_refused(request, refused)

            def probe(channel: WebSocketChannel) -> WebSocketHandler:
                return existing.accept_probe(channel, TransportKind.WEBTRANSPORT)

            return probe
        assert_never(opened)

    def _webtransport_refused(self, request: HttpRequest, refused: Rejection) -> str:
        """Fire ``connection_error`` and log it as for any refused request; the reason the
        WebTransport session is closed with (its close capsule carries it to the client)."""
        error = _rejected(request, refused)
        logger.warning(
            "closed a WebTransport session from %s: %s", request.remote_address or "?", error
        )
        self.emit("connection_error", error)
        return f"{refused.cause}; {refused.hint}"

    def _refuse_upgrade(self, request: HttpRequest, socket: EngineSocket) -> WebSocketAccept:
        """A second WebSocket for a session that is upgrading or upgraded: like the reference,
        complete the handshake and close it at once; the session is left alone."""
        state = socket.session.state
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

    async def _cross_site(self, request: HttpRequest, hijacking: str) -> HttpResponse | None:
        """The refusal of a WebSocket or WebTransport request from an Origin the CORS rule does
        not allow (cross-site hijacking: a browser lets any page open these), ``hijacking``
        added to its message; ``None`` when it may go on."""
        origin = request.headers.get("origin")
        cors = self.options.cors
        if cors is None or origin is None:
            return None
        try:
            allowed = await self._origin_allowed(cors, origin)
        except Exception as exc:  # noqa: BLE001 - the user's origin callable failed
            return self._reject(request, _cors_failure(exc), websocket=True)
        if self._refuses_origin(cors, request, origin, allowed):
            return self._reject(request, _origin_refused(cors, origin, hijacking), websocket=True)
        return None

    async def _origin_allowed(self, cors: Cors, origin: str | None) -> bool:
        if cors.needs_callback():
            return await cors.call_origin(origin)
        return bool(cors.match_origin(origin))

    def _note_cross_origin(self, request: HttpRequest, origin: str) -> None:
        """Without CORS configured, a page of another origin cannot read the answers: say so
        once per origin (what the browser reports only in its console)."""
        host = request.headers.get("host")
        if host and origin in (f"http://{host}", f"https://{host}"):
            return
        if not self._cross_origins.first(origin):
            return
        logger.warning(
            "a request from origin %r reached %s, which has no CORS configured: browsers block "
            "the page from reading the answers (long-polling fails); add "
            "cors=aiosio.Cors(origins=[%r]) if this page should connect",
            origin,
            self.path,
            origin,
        )

    def _refuses_origin(
        self, cors: Cors, request: HttpRequest, origin: str | None, allowed: bool
    ) -> bool:
        """An Origin the CORS rule does not allow is refused, except the server's own origin (a
        page served by this very host needs no CORS)."""
        if not cors.refuses(origin, allowed):
            return False
        host = request.headers.get("host")
        # Behind a TLS-terminating proxy the page is https while this hop is http: accept both.
        return not (host and origin in (f"http://{host}", f"https://{host}"))

    async def _admit(
        self, request: HttpRequest, *, websocket: bool
    ) -> Handshake | SessionRequest[EngineSocket] | HttpResponse:
        """The verdict on ``request`` (:func:`~aiosio.engine.verify.verify`), with what polling
        and WebSocket requests answer alike answered here: a refusal, and a handshake while the
        server shuts down."""
        verdict = await verify(
            request,
            upgrade=websocket,
            options=self.options,
            sessions=self.clients,
            ended=self._recently_closed,
            now=self.now,
        )
        if isinstance(verdict, Rejection):
            return self._reject(request, verdict, websocket=websocket)
        if isinstance(verdict, Handshake) and self._drained is not None:
            return _shutting_down()
        return verdict

    # -- sessions ---------------------------------------------------------------------------------

    def _new_socket(
        self, request: HttpRequest, transport: TransportKind
    ) -> EngineSocket | Rejection:
        # WebTransport exists in protocol 4 only (the reference's WebTransport socket is 4).
        protocol: int | Rejection = 4
        if transport is not TransportKind.WEBTRANSPORT:
            protocol = protocol_of(request, self.options.allow_eio3)
        if isinstance(protocol, Rejection):
            return protocol
        if not self.clients and self._loop is not None:
            self._follow_loop()
        sid = SessionId(self.generate_id(request))
        session = EngineSession(
            sid=sid,
            protocol=protocol,
            transport=transport,
            config=self.config,
            now=self.now(),
            supports_binary="b64" not in request.query,
        )
        socket = EngineSocket(self, session, request)
        self.clients[sid] = socket
        return socket

    def _websocket_handshake(self, request: HttpRequest) -> WebSocketAccept | HttpResponse:
        socket = self._new_socket(request, TransportKind.WEBSOCKET)
        if isinstance(socket, Rejection):
            return self._reject(request, socket, websocket=True)
        headers: list[tuple[str, str]] = []
        self.emit("initial_headers", headers, request)
        self.emit("headers", headers, request)

        def bind(channel: WebSocketChannel) -> WebSocketHandler:
            handler = socket.accept_websocket(channel)
            self.emit("connection", socket)
            return handler

        return self._accept(headers, bind)

    def _accept_probe(self, request: HttpRequest, socket: EngineSocket) -> WebSocketAccept:
        headers: list[tuple[str, str]] = []
        self.emit("headers", headers, request)
        return self._accept(headers, socket.accept_probe)

    def _accept(
        self,
        headers: list[tuple[str, str]],
        bind: Callable[[WebSocketChannel], WebSocketHandler],
    ) -> WebSocketAccept:
        options = self.options
        return WebSocketAccept(
            headers, bind, options.per_message_deflate, options.max_http_buffer_size
        )

    async def _poll(self, request: HttpRequest, socket: EngineSocket) -> HttpResponse:
        result = await socket.poll()
        if result is None:
            return HttpResponse(400, [("Content-Type", "text/html")], b"")
        return self._poll_response(request, result, socket.id)

    async def _post(self, request: HttpRequest, socket: EngineSocket) -> HttpResponse:
        binary = request.headers.get("content-type", "") == "application/octet-stream"
        if not await socket.receive_post(request.body, binary):
            return HttpResponse(400, [], b"")
        headers = [("Content-Type", "text/html"), ("Content-Length", "2")]
        return HttpResponse(200, self._polling_headers(request, headers), b"ok")

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
            cookie = self.options.session_cookie
            if cookie is not None and sid is not None:
                headers.append(("Set-Cookie", cookie.serialize(sid)))
            self.emit("initial_headers", headers, request)
        self.emit("headers", headers, request)
        return headers

    def _poll_response(self, request: HttpRequest, result: PollResponse, sid: str) -> HttpResponse:
        body = result.body
        headers: list[tuple[str, str]] = [("Content-Type", result.content_type)]
        threshold = self.options.compression_threshold
        if threshold is not None and len(body) >= threshold:
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
        self, request: HttpRequest, rejection: Rejection, *, websocket: bool
    ) -> HttpResponse:
        error = _rejected(request, rejection)
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


def _rejected(request: HttpRequest, rejection: Rejection) -> ConnectionRejected:
    """What ``connection_error`` listeners get for ``request``, refused for ``rejection``."""
    return ConnectionRejected(
        request=request,
        code=rejection.code,
        message=ERROR_MESSAGES[rejection.code],
        context=rejection.context,
        cause=rejection.cause,
        hint=rejection.hint,
    )


def _cors_failure(exc: Exception) -> Rejection:
    logger.error("the cors origins callable raised", exc_info=exc)
    return rejection(
        BAD_REQUEST,
        f"the cors origins callable raised {type(exc).__name__}: {exc}",
        "fix the function given to aiosio.Cors(origins=...); it must return True or False",
        name="MIDDLEWARE_FAILURE",
    )


def _origin_refused(cors: Cors, origin: str, why: str) -> Rejection:
    return rejection(
        FORBIDDEN,
        cors.refusal_reason(origin) + why,
        "change aiosio.Cors(origins=...) on the server if this page should connect",
        name="ORIGIN_NOT_ALLOWED",
        origin=origin,
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

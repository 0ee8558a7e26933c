"""WebTransport over HTTP/3 (aioquic): the I/O edge of the ``webtransport`` transport.

It runs beside the HTTP server, in the same process and event loop, on a UDP port: each QUIC
connection is a :class:`_Http3Connection`; each WebTransport session on it (an extended CONNECT
to the server's path) is a :class:`_Session`, which the engine accepts or refuses
(:meth:`~aiosio.engine.server.EngineServer.handle_webtransport`), then binds to a new Engine.IO
session or to the upgrade of an open one once the first packet of its bidirectional stream
arrives (:meth:`~aiosio.engine.server.EngineServer.open_webtransport`). From there the stream is
a :class:`~aiosio.engine.http.WebSocketChannel` like any WebSocket: the framing is
:mod:`aiosio.protocol.webtransport`, the rest is the engine's.

Like the reference (``engine.io`` 6.5+ with ``@fails-components/webtransport``), the client
speaks draft-ietf-webtrans-http3-02 (what Chromium and Firefox negotiate); the session waits at
most ``upgrade_timeout`` for its stream and first packet, each frame is bounded by
``max_http_buffer_size``, and a session closes with a close capsule that states the reason.

aioquic comes with the ``webtransport`` extra and is imported only when a server starts.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections import deque
from dataclasses import KW_ONLY
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from aiosio._eager import settle
from aiosio._extras import import_extra
from aiosio._quic import HeldFrames
from aiosio._quic import bounded_windows
from aiosio._quic import static_qpack
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import WebSocketHandler
from aiosio.engine.server import EngineServer
from aiosio.protocol.webtransport import MAX_CLOSE_REASON
from aiosio.protocol.webtransport import FrameDecoder
from aiosio.protocol.webtransport import FrameError
from aiosio.protocol.webtransport import decode_close_capsule
from aiosio.protocol.webtransport import encode_close_capsule
from aiosio.protocol.webtransport import encode_frame

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "WebTransport",
    "WebTransportServer",
    "check_webtransport",
    "close_app",
    "serve_webtransport",
]

logger = logging.getLogger("aiosio.server.webtransport")

_FEATURE = "WebTransport (transports=(..., 'webtransport'))"
# Messages a session may receive before the engine has bound it (its first packet is one; a
# client sends its OPEN packet, and ``2probe`` for an upgrade, then waits for the answer). Their
# bytes are bounded too, by max_http_buffer_size.
_MAX_EARLY_MESSAGES = 16
# Header fields of a CONNECT (pseudo-headers included), as the native server's default
# ServerLimits.max_header_count; their bytes are bounded by WebTransport.max_header_size.
_MAX_HEADER_COUNT = 100
# The largest close capsule: its type and length (varints), the code, the longest reason.
_MAX_CAPSULE = 8 + 8 + 4 + MAX_CLOSE_REASON
# HTTP/3 application error codes (RFC 9114 section 8.1) the server closes a connection with.
_H3_NO_ERROR = 0x100
_H3_INTERNAL_ERROR = 0x102
_H3_EXCESSIVE_LOAD = 0x107


@dataclass(frozen=True, slots=True)
class WebTransport:
    """Where and how the server offers WebTransport (HTTP/3 needs TLS: no certificate, no
    WebTransport).

    ``certfile`` and ``keyfile``: PEM files (for a development certificate that browsers take
    by hash, see ``docs/webtransport.md``). ``port``: the UDP port, by default the HTTP
    server's port number (where the reference client looks, unless its
    ``transportOptions.webtransport.port`` says otherwise). ``host``: by default the HTTP
    server's.

    What a peer on UDP can make the server hold, each bounded (``docs/limits.md``):

    - ``max_connections`` (10,000): QUIC connections at once, their handshakes included; past
      it a new connection's first packet is dropped (its client times out and falls back to
      WebSocket or polling) and the server logs it, once until the count falls again.
    - ``handshake_timeout`` (10 s): how long a QUIC connection may go without a WebTransport
      session: to complete its QUIC and TLS handshake and send its CONNECT, or after its last
      session ended; then it is closed (a QUIC ``PING`` does not keep it open).
    - ``max_sessions_per_connection`` (16): WebTransport sessions one QUIC connection may hold
      at once (a browser opens one per ``WebTransport`` object); the next CONNECT is answered
      429.
    - ``receive_window`` (1 MiB, aioquic's initial window): bytes a client may send past what
      the server has read, per stream and per connection (QUIC flow control). aioquic alone
      doubles its windows with the highest offset the peer reached, read or not, and fills the
      gaps with zeros: a dozen one-byte packets, each at the end of the window, made it hold
      2 GB. Here a window grows only as data is read.
    - ``max_header_size`` (16 KiB, as the native server's ``ServerLimits``): bytes of HTTP/3
      frames the server may hold for one connection while they are incomplete (a CONNECT's
      headers, the SETTINGS frame, anything aioquic buffers until a frame is whole); past it
      the QUIC connection is closed with ``H3_EXCESSIVE_LOAD``.

    Each QUIC connection costs the server about 110 KB from its first packet (measured with
    aioquic 1.7, a handshake under way), and a hostile one can add ``receive_window`` of data
    sent out of order: at the defaults, about 1 GB for 10,000 handshakes and at most 11 GB if
    every connection fills its window. Lower ``max_connections`` (or ``receive_window``) to
    what the machine can hold. ``retry=True`` makes each client prove its
    address with a QUIC Retry before the server keeps anything for it (one more round trip
    per connection): a flood of first packets from forged addresses then costs nothing.
    """

    certfile: str | Path
    keyfile: str | Path
    port: int | None = None
    host: str | None = None
    _: KW_ONLY
    max_connections: int = 10_000
    handshake_timeout: float = 10.0
    max_sessions_per_connection: int = 16
    max_header_size: int = 16 * 1024
    receive_window: int = 1024 * 1024
    retry: bool = False

    def __post_init__(self) -> None:
        for name in ("certfile", "keyfile"):
            value = getattr(self, name)
            if not isinstance(value, str | Path) or not str(value):
                raise TypeError(
                    f"WebTransport needs {name}: the PEM file of the TLS certificate and key "
                    "(HTTP/3 always runs over TLS), got " + repr(value)
                )
        if self.port is not None and (
            isinstance(self.port, bool) or not isinstance(self.port, int) or self.port < 0
        ):
            raise TypeError(f"WebTransport port must be a UDP port number, got {self.port!r}")
        for name in (
            "max_connections",
            "max_sessions_per_connection",
            "max_header_size",
            "receive_window",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"WebTransport({name}=...) must be an integer of at least 1, got {value!r}"
                )
        if not isinstance(self.retry, bool):
            raise TypeError(f"WebTransport(retry=...) must be True or False, got {self.retry!r}")
        timeout = self.handshake_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(
                "WebTransport(handshake_timeout=...) must be a positive number of seconds, got "
                f"{timeout!r}"
            )


def check_webtransport(app: Any, config: WebTransport | None) -> EngineServer | None:
    """The engine to serve WebTransport for, or ``None`` when it does not offer it.

    :raises ValueError: the server offers ``webtransport`` but no :class:`WebTransport` was
        given, or one was given to a server that does not offer it."""
    engine = getattr(app, "engine", app)
    offered = isinstance(engine, EngineServer) and "webtransport" in engine.transports
    if offered and config is None:
        raise ValueError(
            "the server's transports include 'webtransport', which runs over HTTP/3 and needs "
            "a TLS certificate: pass webtransport=aiosio.WebTransport(certfile=..., "
            "keyfile=...) to aiosio.run()/serve() (or --certfile and --keyfile to aiosio "
            "serve), or remove 'webtransport' from transports"
        )
    if config is not None and not offered:
        raise ValueError(
            "webtransport=aiosio.WebTransport(...) was given, but the server does not offer "
            "it: add 'webtransport' to its transports, e.g. aiosio.Server(transports=("
            "'polling', 'websocket', 'webtransport'))"
        )
    return engine if offered else None


class WebTransportServer:
    """The listening HTTP/3 endpoint; created by :func:`serve_webtransport`."""

    def __init__(self, engine: EngineServer, config: WebTransport) -> None:
        self.engine = engine
        self.config = config
        self.connections: set[_Http3Connection] = set()
        self._endpoint: Any = None
        self._server: Any = None  # aioquic's QuicServer (the datagram protocol)
        self._refusing = False  # at max_connections: said once until the count falls

    @property
    def port(self) -> int:
        """The UDP port it listens on."""
        sock = self._endpoint.get_extra_info("socket") if self._endpoint is not None else None
        return int(sock.getsockname()[1]) if sock is not None else 0

    async def start(self, host: str, port: int) -> None:
        aioquic_asyncio = import_extra("aioquic.asyncio", extra="webtransport", feature=_FEATURE)
        aioquic_server = import_extra(
            "aioquic.asyncio.server", extra="webtransport", feature=_FEATURE
        )
        h3 = import_extra("aioquic.h3.connection", extra="webtransport", feature=_FEATURE)
        quic_config = import_extra(
            "aioquic.quic.configuration", extra="webtransport", feature=_FEATURE
        )
        configuration = quic_config.QuicConfiguration(
            alpn_protocols=h3.H3_ALPN,
            is_client=False,
            max_datagram_frame_size=65536,
            idle_timeout=self.engine.config.ping_interval + self.engine.config.ping_timeout + 5,
            max_data=self.config.receive_window,
            max_stream_data=self.config.receive_window,
        )
        try:
            configuration.load_cert_chain(self.config.certfile, self.config.keyfile)
        except (OSError, ValueError, ssl_module.SSLError) as exc:
            raise ValueError(
                f"WebTransport cannot load the certificate {str(self.config.certfile)!r} and "
                f"key {str(self.config.keyfile)!r}: {exc}; give PEM files (openssl req -x509 "
                "-newkey ec ..., see docs/webtransport.md)"
            ) from exc
        protocol_class = _connection_class(aioquic_asyncio.QuicConnectionProtocol, h3)
        quic = import_extra("aioquic.quic.connection", extra="webtransport", feature=_FEATURE)
        windows = bounded_windows(quic.QuicConnection)
        if windows is None:  # pragma: no cover - aioquic 1.7 has both methods
            logger.warning(
                "this aioquic has no _write_stream_limits/_write_connection_limits: "
                "receive_window=%d is not enforced, a client can make the server hold what it "
                "sends out of order; use an aioquic that has them (1.7 does)",
                self.config.receive_window,
            )
        server_class = _server_class(aioquic_server.QuicServer)

        def create_protocol(*args: Any, **kwargs: Any) -> Any:
            return protocol_class(self, *args, **kwargs)

        loop = asyncio.get_running_loop()
        # aioquic's serve() without its return value: the datagram transport (for the port).
        try:
            self._endpoint, self._server = await loop.create_datagram_endpoint(
                lambda: server_class(
                    self,
                    configuration=configuration,
                    create_protocol=create_protocol,
                    retry=self.config.retry,
                ),
                local_addr=(host, port),
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"WebTransport cannot listen on udp {host}:{port}: {exc.strerror or exc}; is "
                "another process serving it? Only one process can serve WebTransport on a "
                "port (not several workers, such as uvicorn --workers): run one",
            ) from exc

    def admits(
        self, data: bytes, addr: Any, known: Callable[[bytes], bool], cid_length: int
    ) -> bool:
        """Whether a datagram may reach aioquic: always, unless it would start a new QUIC
        connection while :attr:`WebTransport.max_connections` are open (``known`` says whether
        a connection id belongs to an open connection; ``cid_length``: the server's)."""
        limit = self.config.max_connections
        if len(self.connections) < limit:
            return True
        # Only at the limit: is this a new connection's Initial packet? (aioquic's own test.)
        packet = import_extra("aioquic.quic.packet", extra="webtransport", feature=_FEATURE)
        buffer = import_extra("aioquic.buffer", extra="webtransport", feature=_FEATURE)
        try:
            header = packet.pull_quic_header(buffer.Buffer(data=data), host_cid_length=cid_length)
        except ValueError:
            return True  # aioquic drops it too
        if header.packet_type != packet.QuicPacketType.INITIAL or known(header.destination_cid):
            return True
        if not self._refusing:
            self._refusing = True
            logger.warning(
                "refusing new QUIC connections (the first from %s): %d are open, "
                "max_connections=%d (aiosio.WebTransport(max_connections=...)); their clients "
                "time out and fall back to WebSocket or polling",
                _address(addr),
                len(self.connections),
                limit,
            )
        return False

    def ended(self, connection: _Http3Connection) -> None:
        """``connection`` is terminated: it no longer counts."""
        self.connections.discard(connection)
        if self._refusing and len(self.connections) < self.config.max_connections:
            self._refusing = False
            logger.info(
                "accepting new QUIC connections again (%d open, max_connections=%d)",
                len(self.connections),
                self.config.max_connections,
            )

    async def close(self) -> None:
        """Close every session (the engine closes their Engine.IO sessions) and every QUIC
        connection, those still in their handshake too (each client gets a close), then stop
        listening: the UDP port is free when this returns."""
        for connection in list(self.connections):
            connection.shut()
        self.connections.clear()
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.close()  # the socket closes on the next loop turn
            await asyncio.sleep(0)


async def close_app(app: Any, webtransport: WebTransportServer | None) -> None:
    """A server's shutdown: the app's own (``app.shutdown()``, which closes the WebTransport
    sessions as the others: their last packets, then the close packet), then what is left of
    WebTransport: the QUIC connections, then the UDP endpoint."""
    shutdown = getattr(app, "shutdown", None)
    if shutdown is not None:
        await settle(shutdown())
    if webtransport is not None:
        await webtransport.close()


async def serve_webtransport(
    app: Any,
    config: WebTransport,
    *,
    default_host: str | None = None,
    default_port: int | None = None,
) -> WebTransportServer:
    """Serve the WebTransport sessions of ``app`` (a :class:`~aiosio.Server` or
    :class:`~aiosio.EngineServer` whose transports include ``webtransport``) on UDP, at
    ``config.host`` and ``config.port``, else ``default_host`` (else all addresses) and
    ``default_port``; ``await server.close()`` stops it. ``sio.asgi(webtransport=...)`` and
    ``aiosio.serve(..., webtransport=...)`` call it for you.

    :raises ValueError: ``app`` does not offer ``webtransport``, no port is known, or the
        certificate does not load.
    :raises OSError: the UDP port cannot be bound."""
    engine = check_webtransport(app, config)
    assert engine is not None
    port = config.port if config.port is not None else default_port
    if port is None:
        raise ValueError(
            "serve_webtransport needs a UDP port: give aiosio.WebTransport(port=...) (the "
            "HTTP server's port number, where the reference client looks for it)"
        )
    server = WebTransportServer(engine, config)
    host = config.host or default_host or "0.0.0.0"
    await server.start(host, port)
    logger.info("aiosio WebTransport (HTTP/3) on udp %s:%d", host, server.port)
    return server


def _server_class(base: type) -> type:
    """aioquic's ``QuicServer`` with :attr:`WebTransport.max_connections` applied."""
    cached = _CLASSES.get(base)
    if cached is not None:
        return cached

    class Server(base):  # type: ignore[misc]
        def __init__(self, owner: WebTransportServer, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.owner = owner

        def datagram_received(self, data: bytes, addr: Any) -> None:
            known = self._protocols.__contains__
            length = self._configuration.connection_id_length
            if self.owner.admits(data, addr, known, length):
                super().datagram_received(data, addr)

    _CLASSES[base] = Server
    return Server


def _address(addr: Any) -> str:
    try:
        return f"{addr[0]}:{addr[1]}"
    except (TypeError, IndexError):
        return "?"


def _connection_class(base: type, h3: Any) -> type:
    """The QUIC connection protocol class, built on aioquic's once it is imported."""
    cached = _CLASSES.get(base)
    if cached is not None:
        return cached

    class Connection(_Http3Connection, base):  # type: ignore[misc]
        pass

    Connection.h3_module = h3
    _CLASSES[base] = Connection
    return Connection


_CLASSES: dict[type, type] = {}


class _Http3Connection:
    """One QUIC connection: its HTTP/3 layer and the WebTransport sessions on it."""

    h3_module: Any = None
    _quic: Any

    def __init__(self, server: WebTransportServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server
        self.quic = self._quic
        bounded = bounded_windows(type(self.quic))
        if bounded is not None:
            self.quic.__class__ = bounded
            self.quic.receive_window = server.config.receive_window
        self.http: Any = None
        self.sessions: dict[int, _Session] = {}
        self.streams: dict[int, _Session] = {}  # bidirectional stream -> its session
        self.loop = asyncio.get_running_loop()
        self._transmit_scheduled = False
        # Inside aioquic's datagram_received, which transmits when it has handled the events:
        # what is sent meanwhile (a handler's answer) needs no transmit of its own.
        self._receiving = False
        self.peer: tuple[str, int] | None = None
        self.handshake_done = False
        self.had_session = False
        self.closing = False  # closed by the server (abort, shut) or terminated
        # Bytes aioquic's HTTP/3 layer holds per stream while a frame is incomplete, and their
        # sum (WebTransport.max_header_size bounds it).
        self.h3_held = HeldFrames()
        self.idle_timer: asyncio.TimerHandle | None = None
        server.connections.add(self)
        self._arm_idle_timer()

    # -- from aioquic -----------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._receiving = True
        try:
            super().datagram_received(data, addr)  # type: ignore[misc]
        finally:
            self._receiving = False

    def quic_event_received(self, event: Any) -> None:
        try:
            self._quic_event(event)
        except Exception as exc:  # a fault closes this one connection, never the server
            logger.exception("closing the QUIC connection of %s after an error", self.address)
            self.abort(_H3_INTERNAL_ERROR, f"internal error ({type(exc).__name__})")

    def _quic_event(self, event: Any) -> None:
        events = import_extra("aioquic.quic.events", extra="webtransport", feature=_FEATURE)
        if isinstance(event, events.ProtocolNegotiated):
            h3_class = self.h3_module.H3Connection
            self.http = (static_qpack(h3_class) or h3_class)(self.quic, enable_webtransport=True)
            self.peer = self.quic.get_peer_address()
        elif isinstance(event, events.HandshakeCompleted):
            self.handshake_done = True
        elif isinstance(event, events.ConnectionTerminated):
            reason = event.reason_phrase or f"error code {event.error_code}"
            if not self.closing and event.error_code not in (0, _H3_NO_ERROR):
                # A protocol error aioquic found (data past a flow-control window: "Over stream
                # data limit"), or one the client reported.
                logger.warning(
                    "the QUIC connection of %s closed: %s (error code %#x)",
                    self.address,
                    reason,
                    event.error_code,
                )
            self.closing = True
            self._cancel_idle_timer()
            self.server.ended(self)
            for session in list(self.sessions.values()):
                session.ended(None, f"the QUIC connection closed: {reason}")
            return
        elif isinstance(event, events.StreamReset):
            reset = self.streams.get(event.stream_id) or self.sessions.get(event.stream_id)
            if reset is not None:
                reset.ended(None, f"the client reset the stream (code {event.error_code})")
        elif isinstance(event, events.StopSendingReceived):
            # The client will read nothing more (a page's stream.readable.cancel()): aioquic
            # has reset the stream's sending side, and a write to it would raise.
            stopped = self.streams.get(event.stream_id) or self.sessions.get(event.stream_id)
            if stopped is not None:
                reason = (
                    f"the client stopped reading the stream (STOP_SENDING, code {event.error_code})"
                )
                logger.info("closing the WebTransport session of %s: %s", self.address, reason)
                stopped.close(1, reason, error=reason)
        if self.http is None or self.closing:
            return
        for h3_event in self.http.handle_event(event):
            self._h3_event(h3_event)
            if self.is_closing():  # an event's handler may have closed the connection
                return
        if isinstance(event, events.StreamDataReceived):
            self._count_held(event.stream_id)
        self.schedule_transmit()

    def is_closing(self) -> bool:
        """Closed by the server or terminated (read through a call: handlers change it)."""
        return self.closing

    def _count_held(self, stream_id: int) -> None:
        """Bound what aioquic's HTTP/3 layer buffers for the peer (:class:`HeldFrames`) by
        ``max_header_size``."""
        held = self.h3_held.count(self.http, stream_id)
        limit = self.server.config.max_header_size
        if held > limit:
            reason = (
                f"{held} bytes of incomplete HTTP/3 frames, over "
                f"max_header_size={limit} (aiosio.WebTransport(max_header_size=...))"
            )
            logger.warning("closing the QUIC connection of %s: %s", self.address, reason)
            self.abort(_H3_EXCESSIVE_LOAD, reason)

    @property
    def address(self) -> str:
        """The peer's address, for log lines (``?`` before the first datagram)."""
        peer = self.peer
        if peer is None:
            try:
                peer = self.quic.get_peer_address()
            except (AttributeError, IndexError):
                peer = None
        return _address(peer) if peer is not None else "?"

    # -- a connection without session (WebTransport.handshake_timeout) ---------------------------

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        timeout = self.server.config.handshake_timeout
        self.idle_timer = self.loop.call_later(timeout, self._no_session, timeout)

    def _cancel_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _no_session(self, timeout: float) -> None:
        self.idle_timer = None
        if self.sessions or self.closing:
            return
        if not self.handshake_done:
            what = "did not complete its QUIC handshake"
        elif not self.had_session:
            what = "opened no WebTransport session"
        else:
            what = "had no WebTransport session after its last one ended"
        reason = f"it {what} within handshake_timeout={timeout:g}s"
        log = logger.info if self.had_session else logger.warning
        log("closing the QUIC connection of %s: %s", self.address, reason)
        self.abort(_H3_NO_ERROR, reason)

    def abort(self, code: int, reason: str) -> None:
        """Close the QUIC connection at once (``code``, an HTTP/3 error code, and ``reason``
        go in its CONNECTION_CLOSE); its sessions end with ``reason``."""
        if self.closing:
            return
        self.closing = True
        self._cancel_idle_timer()
        for session in list(self.sessions.values()):
            session.ended(None, f"the QUIC connection was closed: {reason}")
        self.close(error_code=code, reason_phrase=reason[:200])  # type: ignore[attr-defined]

    def _h3_event(self, event: Any) -> None:
        h3_events = import_extra("aioquic.h3.events", extra="webtransport", feature=_FEATURE)
        if isinstance(event, h3_events.HeadersReceived):
            self._headers(event.stream_id, event.headers)
        elif isinstance(event, h3_events.WebTransportStreamDataReceived):
            self._stream_data(event.session_id, event.stream_id, event.data, event.stream_ended)
        elif isinstance(event, h3_events.DataReceived):
            session = self.sessions.get(event.stream_id)
            if session is not None:
                session.connect_data(event.data, event.stream_ended)

    def _headers(self, stream_id: int, raw: list[tuple[bytes, bytes]]) -> None:
        if len(raw) > _MAX_HEADER_COUNT:  # as the native server's ServerLimits.max_header_count
            logger.warning(
                "refused a request of %s: %d headers, more than %d",
                self.address,
                len(raw),
                _MAX_HEADER_COUNT,
            )
            self.respond(stream_id, 431, f"more than {_MAX_HEADER_COUNT} headers\n".encode())
            return
        headers: dict[str, str] = {}
        pseudo: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            if key.startswith(":"):
                pseudo[key] = text
            else:
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
        path, _, query = pseudo.get(":path", "/").partition("?")
        if ":authority" in pseudo:
            headers.setdefault("host", pseudo[":authority"])
        request = HttpRequest(
            method=pseudo.get(":method", "GET"),
            path=path,
            query_string=query,
            headers=headers,
            client=self.peer,
            secure=True,
            http_version="3",
        )
        engine = self.server.engine
        if request.method != "CONNECT" or pseudo.get(":protocol") != "webtransport":
            self.respond(
                stream_id,
                404,
                b"this UDP port serves WebTransport sessions only (HTTP/3 extended CONNECT to "
                + engine.path.encode()
                + b"); HTTP requests go to the server's TCP port\n",
            )
            return
        if not engine.handles(path):
            self.respond(stream_id, 404, engine.not_found(request).body)
            return
        limit = self.server.config.max_sessions_per_connection
        if len(self.sessions) >= limit:
            logger.warning(
                "refused a WebTransport session of %s: %d are open on its QUIC connection, "
                "max_sessions_per_connection=%d",
                self.address,
                len(self.sessions),
                limit,
            )
            self.respond(
                stream_id,
                429,
                f"too many WebTransport sessions on one QUIC connection (over {limit}, "
                "max_sessions_per_connection)\n".encode(),
            )
            return
        session = _Session(self, stream_id, request)
        self.sessions[stream_id] = session
        self.had_session = True
        self._cancel_idle_timer()
        session.start()

    def _stream_data(self, session_id: int, stream_id: int, data: bytes, ended: bool) -> None:
        session = self.streams.get(stream_id)
        if session is None:
            session = self.sessions.get(session_id)
            if session is None or session.stream_id is not None or stream_id & 0x2:
                # A stream of no session, a second stream, or a unidirectional one: the
                # Engine.IO transport uses one bidirectional stream; the others are refused.
                self.quic.stop_stream(stream_id, 0)
                if not stream_id & 0x2:
                    self.quic.reset_stream(stream_id, 0)
                return
            session.stream_id = stream_id
            self.streams[stream_id] = session
        session.received(data, ended)

    # -- to aioquic -------------------------------------------------------------------------------

    def respond(self, stream_id: int, status: int, body: bytes = b"") -> None:
        headers = [(b":status", str(status).encode())]
        if status == 200:
            headers.append((b"sec-webtransport-http3-draft", b"draft02"))
        else:
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
        try:
            self.http.send_headers(stream_id, headers, end_stream=status != 200 and not body)
            if status != 200 and body:
                self.http.send_data(stream_id, body, end_stream=True)
        except Exception:  # noqa: BLE001 - the client reset or stopped the stream meanwhile
            logger.debug("the CONNECT stream of %s was gone before its answer", self.address)
            return
        self.schedule_transmit()

    def schedule_transmit(self) -> None:
        """Send what aioquic has to send at the end of this loop turn (one transmit for the
        messages of a turn, as the native server's write batcher)."""
        if not self._transmit_scheduled and not self._receiving:
            self._transmit_scheduled = True
            self.loop.call_soon(self._transmit)

    def _transmit(self) -> None:
        self._transmit_scheduled = False
        self.transmit()  # type: ignore[attr-defined]  # aioquic's QuicConnectionProtocol

    def forget(self, session: _Session) -> None:
        self.sessions.pop(session.connect_stream, None)
        if session.stream_id is not None:
            self.streams.pop(session.stream_id, None)
        if not self.sessions and not self.closing:
            self._arm_idle_timer()

    def shut(self) -> None:
        """The server stops: each session gets its close capsule, then the connection its
        CONNECTION_CLOSE (those still in their handshake too)."""
        for session in list(self.sessions.values()):
            session.close(1000, "server shutting down")
        self.transmit()  # type: ignore[attr-defined]  # the close capsules, before the QUIC close
        self.closing = True
        self._cancel_idle_timer()
        self.close(_H3_NO_ERROR, "server shutting down")  # type: ignore[attr-defined]


class _Session:
    """One WebTransport session: its CONNECT stream, its bidirectional stream, the engine's
    handler. Also the channel the engine writes to (:class:`~aiosio.engine.http.WebSocketChannel`).
    """

    def __init__(self, connection: _Http3Connection, connect_stream: int, request: HttpRequest):
        self.connection = connection
        self.connect_stream = connect_stream
        self.request = request
        self.stream_id: int | None = None
        engine = connection.server.engine
        self.decoder = FrameDecoder(engine.options.max_http_buffer_size)
        self.handler: WebSocketHandler | None = None
        self.accepted = False
        self.closed = False
        self.early: deque[str | bytes] = deque()  # messages before the engine bound the session
        self.early_bytes = 0
        self.paused: deque[str | bytes] | None = None  # messages held by pause_reading
        self.paused_bytes = 0
        self.written = 0  # bytes given to aioquic on the stream (header included)
        self.parse_error = False  # closed on a frame the decoder refused
        self.capsule = bytearray()  # the start of the CONNECT stream's data (connect_data)
        self.timer: asyncio.TimerHandle | None = None

    # -- the engine's verdict ---------------------------------------------------------------------

    def start(self) -> None:
        task = self.connection.loop.create_task(self._decide())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    async def _decide(self) -> None:
        engine = self.connection.server.engine
        refused = await engine.handle_webtransport(self.request)
        if self.closed:
            return
        if refused is not None:
            self.closed = True
            self.connection.forget(self)
            self.connection.respond(self.connect_stream, refused.status, refused.body)
            return
        self.accepted = True
        self.connection.respond(self.connect_stream, 200)
        timeout = engine.options.upgrade_timeout
        self.timer = self.connection.loop.call_later(timeout, self._timed_out, timeout)
        if self.early:
            self._bind_first()

    def _timed_out(self, timeout: float) -> None:
        self.timer = None
        if self.handler is None and not self.closed:
            state = "opened no stream" if self.stream_id is None else "sent no OPEN packet"
            self.close(
                0,
                f"the WebTransport session {state} within upgrade_timeout={timeout:g}s",
            )

    def _bind_first(self) -> None:
        first = self.early.popleft()
        engine = self.connection.server.engine
        bound = engine.open_webtransport(self.request, first)
        if isinstance(bound, str):
            self.close(1, bound)
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.handler = bound(self)
        while self.early and self.handler is not None and not self.closed:
            self._deliver(self.early.popleft())

    # -- from the client --------------------------------------------------------------------------

    def received(self, data: bytes, ended: bool) -> None:
        if self.closed:
            return
        try:
            messages = self.decoder.feed(data)
        except FrameError as exc:
            self._fail(exc.reason, parse=True)
            return
        for message in messages:
            if self.handler is None:
                self.early_bytes += len(message)
                limit = self.decoder.max_payload
                if len(self.early) >= _MAX_EARLY_MESSAGES or self.early_bytes > limit:
                    self._fail(
                        f"more than {_MAX_EARLY_MESSAGES} packets or {limit} bytes "
                        "(max_http_buffer_size) before the server answered the OPEN packet"
                    )
                    return
                self.early.append(message)
                if self.accepted and len(self.early) == 1:
                    self._bind_first()
            else:
                self._deliver(message)
            if self.is_closed():
                return
        if ended:
            if self.decoder.in_frame:
                self._fail(
                    f"the stream ended in the middle of a frame ({self.decoder.pending} bytes "
                    "of it received)"
                )
            else:
                self.close(0, "the client ended the stream")

    def _deliver(self, message: str | bytes) -> None:
        if self.paused is not None:
            self.paused.append(message)
            self.paused_bytes += len(message)
            limit = self.connection.server.engine.max_outbound_buffer
            if self.paused_bytes > limit:
                self._fail(
                    f"{self.paused_bytes} bytes arrived while the server paused reading "
                    f"(over {limit}, max_outbound_buffer)"
                )
            return
        assert self.handler is not None
        self.handler.on_message(message)

    def _fail(self, reason: str, *, parse: bool = False) -> None:
        """Close the session on the peer's fault; ``parse``: a frame the decoder refused, which
        the engine reports as ``parse error`` (the reference's decoder stream error packet)."""
        logger.warning(
            "closing the WebTransport session of %s: %s",
            self.request.remote_address or "?",
            reason,
        )
        self.parse_error = parse
        self.close(1, reason, error=reason)

    def connect_data(self, data: bytes, ended: bool) -> None:
        """Bytes of the CONNECT stream after the answer: the capsules of draft-02, of which
        only the close matters. A close capsule may come in several DATA frames: its start is
        kept, at most one capsule's worth (a longer one is not a close the client may send)."""
        room = _MAX_CAPSULE - len(self.capsule)
        if room > 0 and data:
            self.capsule += data[:room]
        closed = decode_close_capsule(bytes(self.capsule))
        if closed is not None:
            self.ended(closed[0], None, closed[1])
        elif ended:
            self.ended(0, None)

    def ended(self, code: int | None, error: str | None, reason: str = "") -> None:
        """The client closed the session (``code``), or the connection broke (``error``)."""
        if self.closed:
            return
        self.closed = True
        self.connection.forget(self)
        self._finish(code, error)
        if reason:
            logger.debug("WebTransport session closed by the client: %s", reason)

    def _finish(self, code: int | None, error: str | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        handler, self.handler = self.handler, None
        self.early.clear()
        self.paused = None
        if handler is not None:
            if self.parse_error and error is not None:
                handler.on_parse_error(error)
            else:
                # A WebSocket's close code: 1000 for a clean close.
                handler.on_close(1000 if code == 0 else code, error)

    # -- the channel (aiosio.engine.http.WebSocketChannel) ----------------------------------------

    def send(self, data: str | bytes) -> int:
        if self.closed or self.stream_id is None:
            return 0
        frame = encode_frame(data)
        try:
            self.connection.quic.send_stream_data(self.stream_id, frame)
        except (RuntimeError, ValueError) as exc:  # reset by the client (STOP_SENDING)
            self._fail(f"the stream can no longer be written ({exc})")
            return 0
        self.written += len(frame)
        self.connection.schedule_transmit()
        return self.buffered_amount

    def close(self, code: int = 1000, reason: str = "", *, error: str | None = None) -> None:
        """Close the session with a close capsule stating ``reason`` (the WebSocket code 1000
        is WebTransport's 0)."""
        if self.closed:
            return
        self.closed = True
        connection = self.connection
        connection.forget(self)
        if connection.http is not None:
            try:
                if self.accepted:
                    capsule = encode_close_capsule(0 if code == 1000 else code, reason)
                    connection.http.send_data(self.connect_stream, capsule, end_stream=True)
                    connection.schedule_transmit()
                else:  # refused before the engine decided (bytes it could not take)
                    connection.respond(self.connect_stream, 400, reason.encode() + b"\n")
            except Exception:  # noqa: BLE001 - the stream is already gone: nothing to tell
                logger.debug("the CONNECT stream of a WebTransport session was already closed")
        connection.loop.call_soon(self._finish, 0 if error is None else None, error)

    @property
    def buffered_amount(self) -> int:
        """Bytes given to QUIC for the stream and not yet sent (flow control or congestion
        hold them while the client does not read)."""
        if self.stream_id is None:
            return 0
        # aioquic has no public per-stream count; its sender's next offset is where sending
        # stands (the stream's first bytes are the 2-byte stream header aioquic wrote).
        stream = self.connection.quic._streams.get(self.stream_id)
        if stream is None:
            return 0
        # The client opened the stream: the server's side of it starts with its first frame.
        sent: int = stream.sender.next_offset
        return max(0, self.written - sent)

    @property
    def writable(self) -> bool:
        return self.buffered_amount == 0

    def frame_writer(self) -> Callable[[bytes, str | bytes], int] | None:
        return None  # each message gets its own length header

    def pause_reading(self) -> None:
        if self.paused is None:
            self.paused = deque()
            self.paused_bytes = 0

    def resume_reading(self) -> None:
        held, self.paused = self.paused, None
        self.paused_bytes = 0
        # A handler may pause again (or close) while the held messages are delivered: what is
        # left waits again, in order.
        while held and self.handler is not None and not self.is_closed():
            again = self.held()
            if again is not None:
                again.extendleft(reversed(held))
                return
            self._deliver(held.popleft())

    def held(self) -> deque[str | bytes] | None:
        """The messages held by :meth:`pause_reading`, ``None`` when reading is not paused."""
        return self.paused

    def is_closed(self) -> bool:
        """The session is closed (read through a call: a handler may close it at any time)."""
        return self.closed


_TASKS: set[asyncio.Task[None]] = set()

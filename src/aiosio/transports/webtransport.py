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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosio._extras import import_extra
from aiosio.engine.http import HttpRequest, WebSocketHandler
from aiosio.engine.server import EngineServer
from aiosio.protocol.webtransport import (
    FrameDecoder,
    FrameError,
    decode_close_capsule,
    encode_close_capsule,
    encode_frame,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["WebTransport", "WebTransportServer", "check_webtransport", "serve_webtransport"]

logger = logging.getLogger("aiosio.server.webtransport")

_FEATURE = "WebTransport (transports=(..., 'webtransport'))"
# Sessions one QUIC connection may open (a browser opens one per WebTransport object).
_MAX_SESSIONS_PER_CONNECTION = 16
# Messages a session may receive before the engine has bound it (its first packet is one).
_MAX_EARLY_MESSAGES = 16


@dataclass(frozen=True, slots=True)
class WebTransport:
    """Where and how the server offers WebTransport (HTTP/3 needs TLS: no certificate, no
    WebTransport).

    ``certfile`` and ``keyfile``: PEM files (for a development certificate that browsers take
    by hash, see ``docs/webtransport.md``). ``port``: the UDP port, by default the HTTP
    server's port number (where the reference client looks, unless its
    ``transportOptions.webtransport.port`` says otherwise). ``host``: by default the HTTP
    server's."""

    certfile: str | Path
    keyfile: str | Path
    port: int | None = None
    host: str | None = None

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

        def create_protocol(*args: Any, **kwargs: Any) -> Any:
            return protocol_class(self, *args, **kwargs)

        loop = asyncio.get_running_loop()
        # aioquic's serve() without its return value: the datagram transport (for the port).
        self._endpoint, _ = await loop.create_datagram_endpoint(
            lambda: aioquic_server.QuicServer(
                configuration=configuration, create_protocol=create_protocol
            ),
            local_addr=(host, port),
        )

    async def close(self) -> None:
        """Close every session (the engine closes their Engine.IO sessions), then stop
        listening."""
        for connection in list(self.connections):
            connection.shut()
        await asyncio.sleep(0)
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None


async def serve_webtransport(
    app: Any, config: WebTransport, *, default_host: str | None, default_port: int
) -> WebTransportServer:
    """Serve the WebTransport sessions of ``app`` (a :class:`~aiosio.Server` or
    :class:`~aiosio.EngineServer` whose transports include ``webtransport``) on UDP."""
    engine = check_webtransport(app, config)
    assert engine is not None
    server = WebTransportServer(engine, config)
    host = config.host or default_host or "0.0.0.0"
    port = config.port if config.port is not None else default_port
    await server.start(host, port)
    logger.info("aiosio WebTransport (HTTP/3) on udp %s:%d", host, server.port)
    return server


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
        self.http: Any = None
        self.sessions: dict[int, _Session] = {}
        self.streams: dict[int, _Session] = {}  # bidirectional stream -> its session
        self.loop = asyncio.get_running_loop()
        self._transmit_scheduled = False
        # Inside aioquic's datagram_received, which transmits when it has handled the events:
        # what is sent meanwhile (a handler's answer) needs no transmit of its own.
        self._receiving = False
        self.peer: tuple[str, int] | None = None
        server.connections.add(self)

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
        events = import_extra("aioquic.quic.events", extra="webtransport", feature=_FEATURE)
        if isinstance(event, events.ProtocolNegotiated):
            self.http = self.h3_module.H3Connection(self.quic, enable_webtransport=True)
            self.peer = self.quic.get_peer_address()
        elif isinstance(event, events.ConnectionTerminated):
            self.server.connections.discard(self)
            reason = event.reason_phrase or f"error code {event.error_code}"
            for session in list(self.sessions.values()):
                session.ended(None, f"the QUIC connection closed: {reason}")
            return
        elif isinstance(event, events.StreamReset):
            reset = self.streams.get(event.stream_id) or self.sessions.get(event.stream_id)
            if reset is not None:
                reset.ended(None, f"the client reset the stream (code {event.error_code})")
        if self.http is None:
            return
        for h3_event in self.http.handle_event(event):
            self._h3_event(h3_event)
        self.schedule_transmit()

    def _h3_event(self, event: Any) -> None:
        h3_events = import_extra("aioquic.h3.events", extra="webtransport", feature=_FEATURE)
        if isinstance(event, h3_events.HeadersReceived):
            self._headers(event.stream_id, event.headers)
        elif isinstance(event, h3_events.WebTransportStreamDataReceived):
            self._stream_data(event.session_id, event.stream_id, event.data, event.stream_ended)
        elif isinstance(event, h3_events.DataReceived):
            session = self.sessions.get(event.stream_id)
            if session is not None:
                closed = decode_close_capsule(event.data)
                if closed is not None:
                    session.ended(closed[0], None, closed[1])
                elif event.stream_ended:
                    session.ended(0, None)

    def _headers(self, stream_id: int, raw: list[tuple[bytes, bytes]]) -> None:
        headers: dict[str, str] = {}
        pseudo: dict[str, str] = {}
        for name, value in raw[:100]:
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
        if len(self.sessions) >= _MAX_SESSIONS_PER_CONNECTION:
            self.respond(stream_id, 429, b"too many WebTransport sessions on one connection\n")
            return
        session = _Session(self, stream_id, request)
        self.sessions[stream_id] = session
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
        self.http.send_headers(stream_id, headers, end_stream=status != 200 and not body)
        if status != 200 and body:
            self.http.send_data(stream_id, body, end_stream=True)
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

    def shut(self) -> None:
        for session in list(self.sessions.values()):
            session.close(1000, "server shutting down")
        self.transmit()  # type: ignore[attr-defined]  # the close capsules, before the QUIC close
        self.close()  # type: ignore[attr-defined]  # aioquic's: CONNECTION_CLOSE to the client


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
        self.paused: deque[str | bytes] | None = None  # messages held by pause_reading
        self.paused_bytes = 0
        self.written = 0  # bytes given to aioquic on the stream (header included)
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
            messages = self.decoder.feed(data) if data else []
        except FrameError as exc:
            self._fail(exc.reason)
            return
        for message in messages:
            if self.handler is None:
                if len(self.early) >= _MAX_EARLY_MESSAGES:
                    self._fail(f"more than {_MAX_EARLY_MESSAGES} packets before the handshake")
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

    def _fail(self, reason: str) -> None:
        logger.warning(
            "closing the WebTransport session of %s: %s",
            self.request.remote_address or "?",
            reason,
        )
        self.close(1, reason, error=reason)

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
            # A WebSocket's close code: 1000 for a clean close.
            handler.on_close(1000 if code == 0 else code, error)

    # -- the channel (aiosio.engine.http.WebSocketChannel) ----------------------------------------

    def send(self, data: str | bytes) -> int:
        if self.closed or self.stream_id is None:
            return 0
        frame = encode_frame(data)
        self.written += len(frame)
        self.connection.quic.send_stream_data(self.stream_id, frame)
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

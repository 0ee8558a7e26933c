"""The native server: listening, the connections it holds, a graceful close; :func:`serve` and
:func:`run`.

Connections are :class:`~aiosio.transports.native.http.HttpConnection` objects (plain TCP) or
start as :class:`~aiosio.transports.native.tls.TlsAccept` (TLS); the server is what they share:
the app, the limits, the write batcher of their WebSockets, the log said once per client host.
In ``--workers`` mode (:mod:`aiosio.workers`) the server also serves connections accepted by
the master (:meth:`NativeServer.adopt`) and gives back, through the :class:`Handoff` it was
given, those whose requests belong to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl as ssl_module
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

from aiosio._eager import settle
from aiosio._memory import HeapTrimmer
from aiosio._memory import prime_loop_free_lists
from aiosio.engine.http import HttpApp
from aiosio.transports.native.http import Handoff
from aiosio.transports.native.http import HttpConnection
from aiosio.transports.native.limits import ServerLimits
from aiosio.transports.native.tls import TlsAccept
from aiosio.transports.native.tls import describe_tls_failure
from aiosio.transports.native.websocket import WriteBatcher
from aiosio.transports.webtransport import WebTransport
from aiosio.transports.webtransport import WebTransportServer
from aiosio.transports.webtransport import check_webtransport
from aiosio.transports.webtransport import close_app
from aiosio.transports.webtransport import serve_webtransport

__all__ = ["NativeServer", "run", "serve"]

logger = logging.getLogger("aiosio.server.http")


class NativeServer:
    """A listening native server; created by :func:`serve`."""

    def __init__(
        self,
        app: HttpApp,
        loop: asyncio.AbstractEventLoop,
        limits: ServerLimits,
        *,
        handoff: Handoff | None = None,
    ) -> None:
        self.app = app
        self.loop = loop
        self.limits = limits
        self.connections: set[HttpConnection] = set()
        self.heap = HeapTrimmer(loop, self.connections, limits.trim_heap_after)
        self.batcher = WriteBatcher(loop)  # for the WebSockets of all its connections
        self._server: asyncio.base_events.Server | None = None
        self.handoff = handoff  # --workers mode (aiosio.workers)
        self.handshakes: set[asyncio.Task[None]] = set()  # TLS handshakes under way
        self._logged: set[tuple[str, str]] = set()  # (client host, message) said once
        self.webtransport: WebTransportServer | None = None  # HTTP/3 beside, when offered

    @property
    def sockets(self) -> list[Any]:
        return list(self._server.sockets) if self._server is not None else []

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    async def start(
        self, host: str | None, port: int, ssl: ssl_module.SSLContext | None, backlog: int
    ) -> None:
        prime_loop_free_lists(self.loop)
        startup = getattr(self.app, "startup", None)
        if startup is not None:
            await startup()
        if ssl is None:
            self._server = await self.loop.create_server(
                lambda: HttpConnection(self), host, port, backlog=backlog
            )
        else:
            self._server = await self.loop.create_server(
                lambda: TlsAccept(self, ssl), host, port, backlog=backlog
            )

    async def adopt(self, sock: socket.socket, data: bytes = b"") -> None:
        """Serve a connection accepted elsewhere (the ``--workers`` master hands them over),
        ``data`` the bytes already read from it."""
        sock.setblocking(False)
        _transport, conn = await self.loop.connect_accepted_socket(
            lambda: HttpConnection(self), sock
        )
        if data:
            conn.data_received(data)

    def plain_port_got_tls(self, peer: str) -> None:
        """A TLS ClientHello on a port that serves plain HTTP: https:// against http://."""
        self.log_once(
            peer,
            logging.WARNING,
            "a TLS handshake from %s arrived on this plain HTTP port: the client's URL says "
            "https:// or wss://; use http:// or ws://, or serve TLS here (aiosio serve "
            "--certfile FILE --keyfile FILE, or a TLS-terminating proxy in front)",
        )

    def tls_failed(self, peer: str, exc: BaseException) -> None:
        """Log a failed TLS handshake with its cause and fix."""
        level, message = describe_tls_failure(exc)
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.log_once(peer, level, "TLS handshake with %s failed: " + message, detail)

    def log_once(self, peer: str, level: int, message: str, *args: object) -> None:
        """Log ``message`` (its first %s is the peer) at ``level`` once per client host and
        message, then at DEBUG: a misconfigured client retrying must not flood the log."""
        key = (peer.rpartition(":")[0], message)
        if key in self._logged or len(self._logged) >= 1000:
            level = logging.DEBUG
        else:
            self._logged.add(key)
        logger.log(level, message, peer, *args)

    async def close(self, grace: float = 10.0) -> None:
        """Stop listening, let the app close its sessions, then close the connections: idle ones
        at once, the others when their request completes or ``grace`` seconds pass."""
        if self._server is not None:
            self._server.close()
        webtransport, self.webtransport = self.webtransport, None
        await close_app(self.app, webtransport)
        deadline = self.loop.time() + grace
        while self.connections and self.loop.time() < deadline:
            for conn in list(self.connections):
                conn.close_idle()
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        for task in list(self.handshakes):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def __aenter__(self) -> NativeServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def serve(
    app: HttpApp | Any,
    host: str | None = "127.0.0.1",
    port: int = 3000,
    *,
    ssl: ssl_module.SSLContext | None = None,
    limits: ServerLimits | None = None,
    backlog: int = 1024,
    webtransport: WebTransport | None = None,
) -> NativeServer:
    """Start serving ``app`` (an :class:`~aiosio.EngineServer` or :class:`~aiosio.Server`) and
    return the running server; ``await server.close()`` stops it gracefully.

    ``webtransport``: where to serve WebTransport over HTTP/3 (UDP, TLS), required when the
    app's transports include ``webtransport`` (:class:`~aiosio.WebTransport`)."""
    check_webtransport(app, webtransport)
    http_app = getattr(app, "http_app", app)
    server = NativeServer(http_app, asyncio.get_running_loop(), limits or ServerLimits())
    await server.start(host, port, ssl, backlog)
    if webtransport is not None:
        try:
            server.webtransport = await serve_webtransport(
                app, webtransport, default_host=host, default_port=server.port
            )
        except BaseException:
            await server.close()
            raise
    return server


def run(
    app: HttpApp | Any,
    host: str | None = "127.0.0.1",
    port: int = 3000,
    *,
    ssl: ssl_module.SSLContext | None = None,
    limits: ServerLimits | None = None,
    use_uvloop: bool | None = None,
    on_started: Callable[[NativeServer], Awaitable[None] | None] | None = None,
    webtransport: WebTransport | None = None,
) -> None:
    """Run the native server until SIGINT or SIGTERM, then shut down gracefully.

    uvloop is used when installed (``use_uvloop=False`` to opt out); ``webtransport``: see
    :func:`serve`."""

    from aiosio._debug import configure_default_logging

    async def main() -> None:
        server = await serve(app, host, port, ssl=ssl, limits=limits, webtransport=webtransport)
        scheme = "https" if ssl else "http"
        shown = f"[{host}]" if host and ":" in host else host or "0.0.0.0"
        logger.info("aiosio listening on %s://%s:%d", scheme, shown, server.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if on_started is not None:
            await settle(on_started(server))
        await stop.wait()
        logger.info("shutting down")
        await server.close()

    configure_default_logging()  # "listening" and refused clients show unless logging is set up
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        runner.run(main())


def loop_factory(use_uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop the native server runs on: uvloop's when installed (None: asyncio's
    default). ``use_uvloop=False`` opts out; ``True`` raises ImportError without uvloop. The one
    choice for :func:`run` and for each process of ``aiosio serve --workers``."""
    if use_uvloop is False:
        return None
    try:
        import uvloop
    except ImportError:
        if use_uvloop:
            raise ImportError(  # noqa: B904 - the ImportError above stays its __context__
                'use_uvloop=True needs uvloop, not installed: pip install "aiosio[speed]"'
            )
        return None
    return uvloop.new_event_loop

"""TLS on the native server: the handshake run by the server itself, so that a failure reaches the
log with the peer, the TLS alert and the fix (asyncio's own TLS server drops it without a word).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from typing import Protocol
from typing import cast

from aiosio.transports.native.http import ConnectionServer
from aiosio.transports.native.http import HttpConnection

__all__ = ["TlsAccept", "TlsServer", "describe_tls_failure"]

logger = logging.getLogger("aiosio.server.http")


class TlsServer(ConnectionServer, Protocol):
    """What a TLS accept needs of the server, beyond what its connection needs."""

    @property
    def handshakes(self) -> set[asyncio.Task[None]]:
        """The TLS handshakes under way (cancelled when the server closes)."""

    def tls_failed(self, peer: str, exc: BaseException) -> None:
        """Log a failed TLS handshake (see :func:`describe_tls_failure`)."""


_TRUSTED_CERTIFICATE = (
    "serve a certificate from a CA the clients trust (with the full chain) for the host name in "
    "their URL, or give the clients the CA (Node: the `ca` option or NODE_EXTRA_CA_CERTS; "
    "aiosio: Client(ssl=ssl.create_default_context(cafile=...)); `aiosio doctor --ca FILE` "
    "to check)"
)


def describe_tls_failure(exc: BaseException) -> tuple[int, str]:
    """The log level and the words for a TLS handshake that failed: the cause and the fix."""
    reason = str(getattr(exc, "reason", None) or exc).upper()
    if "ALERT" in reason and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason):
        return logging.WARNING, (
            "the client rejected this server's certificate (%s): it is self-signed, signed by a "
            "CA the client does not trust, expired, or not issued for the host name in the "
            "client's URL; " + _TRUSTED_CERTIFICATE
        )
    if "HTTP_REQUEST" in reason or "HTTPS_PROXY_REQUEST" in reason:
        return logging.WARNING, (
            "a plain HTTP request arrived on this TLS port (%s): the client's URL says http:// or "
            "ws://; use https:// or wss:// (or terminate TLS in a proxy and serve plain HTTP here)"
        )
    if "WRONG_VERSION_NUMBER" in reason:
        return logging.WARNING, (
            "the client does not speak TLS on this TLS port (%s): plain HTTP, HTTP/2 without TLS, "
            "a PROXY protocol header or another protocol; use https:// or wss://, or point "
            "plain-text clients and proxies at a plain port"
        )
    if "CERTIFICATE_VERIFY_FAILED" in reason or "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reason:
        return logging.WARNING, (
            "the client's certificate was refused (%s): this server's SSLContext requires client "
            "certificates (verify_mode); give the client a certificate its CA file trusts"
        )
    if any(
        word in reason
        for word in ("UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW", "PROTOCOL_VERSION", "NO_SHARED")
    ):
        return logging.WARNING, (
            "the client and this server share no TLS version or cipher (%s): update the client "
            "or widen the server's SSLContext (minimum_version, ciphers)"
        )
    if isinstance(exc, TimeoutError) or "TAKING LONGER" in reason:
        return logging.INFO, "the client did not complete the TLS handshake in time (%s)"
    # Node and Python clients that refuse the certificate close without a TLS alert; a TCP
    # health check or a port scan closes the same way. Said once per client host, at INFO.
    return logging.INFO, (
        "the client closed the connection during the TLS handshake (%s): a client that rejected "
        "this server's certificate (Node and Python clients close without a TLS alert), or a "
        "TCP health check; if clients fail to connect, " + _TRUSTED_CERTIFICATE
    )


class TlsAccept(asyncio.Protocol):
    """Accepts a TCP connection and runs the TLS handshake itself with ``loop.start_tls``.

    asyncio's own TLS server drops a failed handshake without a word (an ``SSLError`` is an
    ``OSError``, logged only in the loop's debug mode), and a client that refuses the certificate
    is one of the failures users lose days to. Here the failure reaches the log with the peer, the
    TLS alert and the fix. The same object holds the bytes that arrive before the handshake starts
    (uvloop reads right after ``connection_made``, whatever it paused) and the plaintext that
    arrives between the end of the handshake and the :class:`HttpConnection` taking over.
    """

    __slots__ = (
        "_conn",
        "_context",
        "_early",
        "_eof",
        "_lost",
        "_peer",
        "_pending",
        "_server",
        "_started",
        "_task",
    )

    def __init__(self, server: TlsServer, context: ssl_module.SSLContext) -> None:
        self._server = server
        self._context = context
        self._task: asyncio.Task[None] | None = None
        self._started = False  # start_tls has taken the TCP transport
        self._early = bytearray()  # TLS records read before that: the start of the ClientHello
        self._pending = bytearray()  # plaintext after the handshake, before the takeover
        self._eof = False
        self._lost = False
        self._peer = "?"
        self._conn: HttpConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)
        tcp.pause_reading()  # the stdlib loop honours it; uvloop starts reading regardless
        peer = tcp.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = f"{peer[0]}:{peer[1]}"
        self._task = self._server.loop.create_task(self._handshake(tcp))
        self._server.handshakes.add(self._task)
        self._task.add_done_callback(self._server.handshakes.discard)

    def data_received(self, data: bytes) -> None:
        if self._started:
            self._pending += data
        else:
            self._early += data

    def eof_received(self) -> bool | None:
        self._eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._conn is not None:  # scheduled before the connection took over
            self._conn.connection_lost(exc)

    async def _handshake(self, tcp: asyncio.Transport) -> None:
        server = self._server
        self._started = True
        if self._early:
            # start_tls installs its protocol before its first await; this runs after that and
            # before the protocol starts the handshake, which then reads these bytes first.
            server.loop.call_soon(_feed_tls, tcp, bytes(self._early))
            self._early = bytearray()
        try:
            tls = await server.loop.start_tls(
                tcp,
                self,
                self._context,
                server_side=True,
                ssl_handshake_timeout=server.limits.header_timeout,
            )
        except asyncio.CancelledError:
            tcp.abort()
            raise
        except (OSError, TimeoutError, ValueError) as exc:  # ssl.SSLError is an OSError
            tcp.abort()
            server.tls_failed(self._peer, exc)
            return
        if tls is None or self._lost:
            return
        conn = self._conn = HttpConnection(server)
        tls.set_protocol(conn)
        conn.connection_made(tls)
        try:
            if self._pending:
                conn.data_received(bytes(self._pending))
            if self._eof and conn.transport is not None:
                conn.eof_received()
                tls.close()
        except Exception:
            logger.exception("the first request of %s failed", self._peer)
            tls.abort()


def _feed_tls(tcp: asyncio.Transport, data: bytes) -> None:
    """Hand bytes read before start_tls to the TLS protocol it installed (a BufferedProtocol)."""
    protocol = tcp.get_protocol()
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))  # type: ignore[attr-defined]
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)  # type: ignore[attr-defined]
        view = view[size:]

"""The client's WebTransport transport: one HTTP/3 session over QUIC (aioquic), one
bidirectional stream carrying the Engine.IO messages framed as engine.io-client 6.5+ frames them
(:mod:`aiosio.protocol.webtransport`).

:func:`open_webtransport` connects in the steps a failure is named after: the QUIC handshake on
UDP (no answer: UDP blocked or nothing listening, :attr:`Stage.QUIC`), TLS (the certificate, or
the pinned hash of ``server_certificate_hashes``, :attr:`Stage.TLS`), the extended CONNECT
(refused by HTTP/3 status, :attr:`Stage.WEBTRANSPORT`); then it opens the stream and writes the
OPEN packet (``0``, or ``0{"sid":...}`` for an upgrade). The connection it returns is a
:class:`~aiosio.client.http.ClientWebSocket` to the Engine.IO client: messages in and out, one
close.

aioquic comes with the ``webtransport`` extra, imported when a WebTransport connection opens.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import hashlib
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from aiosio._extras import import_extra
from aiosio._quic import HeldFrames
from aiosio._quic import bounded_windows
from aiosio._quic import static_qpack
from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.http import MAX_HEAD
from aiosio.protocol.webtransport import FrameDecoder
from aiosio.protocol.webtransport import FrameError
from aiosio.protocol.webtransport import decode_close_capsule
from aiosio.protocol.webtransport import encode_close_capsule
from aiosio.protocol.webtransport import encode_frame
from aiosio.protocol.webtransport import encode_open

__all__ = ["WebTransportConnection", "open_webtransport", "parse_certificate_hash"]

logger = logging.getLogger("aiosio.client.webtransport")

_FEATURE = "the client's WebTransport transport (transports=[..., 'webtransport'])"
# The HTTP/3 error code a connection is closed with when its peer makes it hold too much
# (RFC 9114 section 8.1), as the server's edge does.
_H3_EXCESSIVE_LOAD = 0x107


def parse_certificate_hash(value: str | bytes) -> bytes:
    """A SHA-256 certificate hash given as 32 bytes, hex (``openssl x509 -fingerprint
    -sha256``'s, colons allowed) or base64 (what pages give ``serverCertificateHashes``).

    :raises ValueError: it is none of these."""
    if isinstance(value, bytes) and len(value) == 32:
        return value
    text = value.decode() if isinstance(value, bytes) else value
    cleaned = text.replace(":", "").strip()
    try:
        if len(cleaned) == 64:
            return bytes.fromhex(cleaned)
        raw = base64.b64decode(cleaned, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise ValueError(
            f"a certificate hash is the SHA-256 of the certificate (DER), as 64 hex digits or "
            f"44 base64 characters, got {text[:80]!r}; compute it with: openssl x509 -in "
            "cert.pem -outform der | openssl dgst -sha256 -binary | base64"
        )
    return raw


class WebTransportConnection:
    """One WebTransport session and its stream, as the Engine.IO client's
    :class:`~aiosio.client.http.ClientWebSocket`."""

    def __init__(self, protocol: Any, session_id: int, stream_id: int, max_message: int):
        self.protocol = protocol
        self.session_id = session_id
        self.stream_id = stream_id
        self.decoder = FrameDecoder(max_message)
        self.on_message: Callable[[str | bytes], None] = lambda data: None
        self.on_close: Callable[[int | None, str | None], None] = lambda code, error: None
        self.started = False
        self.held: list[str | bytes] = []
        self.closed = False
        self.ended: tuple[int | None, str | None] | None = None
        self.close_reason = ""
        """The reason the server gave when it closed the session (its close capsule)."""
        self.written = 0

    # -- from the network (the protocol's calls) --------------------------------------------------

    def stream_data(self, data: bytes, ended: bool) -> None:
        if self.closed:
            return
        try:
            messages = self.decoder.feed(data)
        except FrameError as exc:
            self.fail(exc.reason)
            return
        for message in messages:
            if self.started:
                self.on_message(message)
            else:
                self.held.append(message)
            if self.is_closed():
                return
        if ended:
            self.peer_closed(0, None)

    def peer_closed(self, code: int | None, error: str | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.ended = (code, error)
        if self.started:
            self.on_close(1000 if code == 0 else code, error)
        self.protocol.shut()

    def is_closed(self) -> bool:
        """Closed (read through a call: a message handler may close it at any time)."""
        return self.closed

    def fail(self, reason: str) -> None:
        logger.warning("closing the WebTransport session: %s", reason)
        self.close(1, reason)
        self.on_close(None, reason)

    def open_stream(self, first: bytes) -> None:
        """Open the session's bidirectional stream and write ``first`` on it (the OPEN packet's
        frame, for a client)."""
        protocol = self.protocol
        self.stream_id = protocol.http.create_webtransport_stream(
            self.session_id, is_unidirectional=False
        )
        # aioquic opened the stream with the WEBTRANSPORT_STREAM type (0x41, 2 bytes) and the
        # session id: the client's side of the stream starts with them.
        protocol.stream_header = 2 + len(_varint_size(self.session_id))
        self.written += len(first)
        protocol.quic.send_stream_data(self.stream_id, first)
        protocol.schedule_transmit()

    # -- ClientWebSocket ------------------------------------------------------------------------

    def start(self) -> None:
        self.started = True
        held, self.held = self.held, []
        for message in held:
            if self.is_closed():
                return
            self.on_message(message)
        if self.ended is not None:
            code, error = self.ended
            self.on_close(1000 if code == 0 else code, error)

    def send(self, data: str | bytes, compress: bool = True) -> None:
        # ``compress``: WebTransport has no per-message compression (nor has the reference's).
        if self.closed or self.stream_id < 0:
            return
        frame = encode_frame(data)
        self.written += len(frame)
        self.protocol.quic.send_stream_data(self.stream_id, frame)
        self.protocol.schedule_transmit()

    @property
    def buffered_amount(self) -> int:
        # aioquic has no public count of a stream's unsent bytes (see the server's edge).
        if self.stream_id < 0:
            return 0
        stream = self.protocol.quic._streams.get(self.stream_id)
        if stream is None:
            return 0
        # The client's side of the stream starts with aioquic's 2 varints: type and session.
        sent: int = stream.sender.next_offset - self.protocol.stream_header
        return max(0, self.written - sent)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        http = self.protocol.http
        try:
            capsule = encode_close_capsule(0 if code == 1000 else code, reason)
            http.send_data(self.session_id, capsule, end_stream=True)
        except Exception:  # noqa: BLE001 - the session's stream is already gone
            logger.debug("the WebTransport session was already closed")
        self.protocol.schedule_transmit()
        asyncio.get_running_loop().call_later(0.05, self.protocol.shut)

    async def wait_closed(self, timeout: float = 2.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.protocol.wait_closed()
        except TimeoutError:
            pass


def _protocol_class(base: type, h3: Any, h3_events: Any, quic_events: Any) -> type:
    cached = _CLASSES.get(base)
    if cached is not None:
        return cached

    class Http3Client(base):  # type: ignore[misc]
        """aioquic's connection protocol, with HTTP/3 and one WebTransport session."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.quic = self._quic
            # No QPACK dynamic table: a server cannot inflate its headers (aiosio._quic).
            h3_class = static_qpack(h3.H3Connection) or h3.H3Connection
            self.http = h3_class(self.quic, enable_webtransport=True)
            self.answer: asyncio.Future[tuple[int, bytes]] = (
                asyncio.get_running_loop().create_future()
            )
            self.session_id: int | None = None
            self.connection: WebTransportConnection | None = None
            self.body = b""
            self.status = 0
            self.stream_header = 0
            self.transmit_scheduled = False
            self.terminated: str | None = None
            self.datagram: asyncio.DatagramTransport | None = None
            self.tls_failed = False
            # Inside aioquic's datagram_received, which transmits when the events are handled.
            self.receiving = False
            # Bytes aioquic's HTTP/3 layer holds per stream while a frame is incomplete, and
            # their sum (bounded by MAX_HEAD), and why the connection was closed past it.
            self.h3_held = HeldFrames()
            self.overloaded: str | None = None

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.receiving = True
            try:
                super().datagram_received(data, addr)
            finally:
                self.receiving = False

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, quic_events.ConnectionTerminated):
                self.terminated = event.reason_phrase or f"QUIC error {event.error_code}"
                # 0x100-0x1ff: a TLS alert (RFC 9001 section 4.8), such as a bad certificate.
                self.tls_failed = 0x100 <= event.error_code <= 0x1FF
                if self.session_id is not None and not self.answer.done():
                    self.answer.set_exception(ConnectionError(self.terminated))
                datagram, self.datagram = self.datagram, None
                if datagram is not None:
                    # The UDP socket goes with the connection (aioquic's connect() does it).
                    asyncio.get_running_loop().call_soon(datagram.close)
                if self.connection is not None:
                    self.connection.peer_closed(
                        None, f"the QUIC connection closed: {self.terminated}"
                    )
            connection = self.connection
            if (
                isinstance(event, quic_events.StreamDataReceived)
                and connection is not None
                and event.stream_id == connection.stream_id
            ):
                # The stream this client opened: aioquic's HTTP/3 layer would parse the
                # server's bytes on it as HTTP/3 frames (it marks only the peer's streams as
                # WebTransport ones), so they go to the connection directly.
                connection.stream_data(event.data, event.end_stream)
                self.schedule_transmit()
                return
            for h3_event in self.http.handle_event(event):
                self.h3_event(h3_event)
            if isinstance(event, quic_events.StreamDataReceived) and self.overloaded is None:
                self.count_held(event.stream_id)
            self.schedule_transmit()

        def count_held(self, stream_id: int) -> None:
            """Bound what aioquic's HTTP/3 layer buffers for the server: it keeps a HEADERS or
            SETTINGS frame until it is whole, however large it says it is, so a server that
            announces a huge one and trickles it would make the client hold it all (as on the
            server's edge, which bounds it by WebTransport.max_header_size). Past MAX_HEAD
            bytes, the connection closes."""
            held = self.h3_held.count(self.http, stream_id)
            if held > MAX_HEAD:
                self.overload(
                    f"the server sent {held} bytes of incomplete HTTP/3 frames, "
                    f"over the {MAX_HEAD} the client holds"
                )

        def overload(self, reason: str) -> None:
            """Close the QUIC connection for what the server made it hold (``reason``): the
            session request fails with it, or the open session ends with it."""
            logger.warning("closing the WebTransport connection: %s", reason)
            self.overloaded = self.terminated = reason
            self.quic.close(error_code=_H3_EXCESSIVE_LOAD, reason_phrase=reason)
            self.schedule_transmit()
            if self.session_id is not None and not self.answer.done():
                self.answer.set_exception(ConnectionError(reason))
            if self.connection is not None:
                self.connection.peer_closed(None, reason)

        def h3_event(self, event: Any) -> None:
            if isinstance(event, h3_events.HeadersReceived) and event.stream_id == self.session_id:
                status = dict(event.headers).get(b":status", b"0")
                self.status = int(status) if status.isdigit() else 0
                if self.status != 200 and not event.stream_ended:
                    return  # the body follows
                if not self.answer.done():
                    self.answer.set_result((self.status, b""))
            elif isinstance(event, h3_events.DataReceived) and event.stream_id == self.session_id:
                if self.status != 200:
                    self.body = (self.body + event.data)[:2000]
                    if event.stream_ended and not self.answer.done():
                        self.answer.set_result((self.status, self.body))
                    return
                connection = self.connection
                if connection is not None:
                    closed = decode_close_capsule(event.data)
                    if closed is not None:
                        connection.close_reason = closed[1]
                        connection.peer_closed(closed[0], None)
                        if closed[1]:
                            logger.info("the server closed the WebTransport session: %s", closed[1])
                    elif event.stream_ended:
                        connection.peer_closed(0, None)
            elif isinstance(event, h3_events.WebTransportStreamDataReceived):
                connection = self.connection
                if connection is not None and event.stream_id == connection.stream_id:
                    connection.stream_data(event.data, event.stream_ended)

        def shut(self) -> None:
            """Close the QUIC connection (its CONNECTION_CLOSE goes out now) and its UDP
            socket: nothing is awaited from a connection this client is done with."""
            self.close()
            datagram, self.datagram = self.datagram, None
            if datagram is not None:
                asyncio.get_running_loop().call_soon(datagram.close)

        def schedule_transmit(self) -> None:
            if not self.transmit_scheduled and not self.receiving:
                self.transmit_scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)

        def flush(self) -> None:
            self.transmit_scheduled = False
            self.transmit()

    _CLASSES[base] = Http3Client
    return Http3Client


_CLASSES: dict[type, type] = {}


async def open_webtransport(
    host: str,
    port: int,
    target: str,
    headers: dict[str, str],
    *,
    sid: str | None,
    timeout: float,
    max_message: int,
    certificate_hashes: Sequence[bytes] = (),
    verify: bool = True,
    url: str,
    open_stream: bool = True,
) -> WebTransportConnection:
    """Open a WebTransport session to ``https://host:port`` + ``target`` and its stream, and
    write the OPEN packet (with ``sid`` for an upgrade). With ``open_stream=False`` the
    session only: :meth:`WebTransportConnection.open_stream` opens the stream later (the
    doctor and the tests write their own first bytes).

    :raises ConnectError: at :attr:`Stage.QUIC` (no QUIC answer on UDP), :attr:`Stage.TLS`,
        :attr:`Stage.WEBTRANSPORT` (the CONNECT refused) or :attr:`Stage.RESOLVE`."""
    kinds = "webtransport"
    aioquic_asyncio = import_extra("aioquic.asyncio", extra=kinds, feature=_FEATURE)
    h3 = import_extra("aioquic.h3.connection", extra=kinds, feature=_FEATURE)
    h3_events = import_extra("aioquic.h3.events", extra=kinds, feature=_FEATURE)
    quic_events = import_extra("aioquic.quic.events", extra=kinds, feature=_FEATURE)
    quic_config = import_extra("aioquic.quic.configuration", extra=kinds, feature=_FEATURE)
    quic_connection = import_extra("aioquic.quic.connection", extra=kinds, feature=_FEATURE)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConnectError(
            Stage.RESOLVE,
            f"cannot resolve {host!r}: {exc}",
            hint="check the host name in the URL",
            description="webtransport error",
            url=url,
        ) from exc
    family, _, _, _, address = infos[0]
    configuration = quic_config.QuicConfiguration(
        alpn_protocols=h3.H3_ALPN,
        is_client=True,
        max_datagram_frame_size=65536,
        server_name=host,
    )
    if certificate_hashes or not verify:
        # A pinned certificate is checked by its hash below, as browsers check
        # serverCertificateHashes (dates included), not against the CAs.
        configuration.verify_mode = ssl_module.CERT_NONE
    protocol_class = _protocol_class(
        aioquic_asyncio.QuicConnectionProtocol, h3, h3_events, quic_events
    )
    # A server must not make the client hold what it sends out of order (aiosio._quic).
    bounded = bounded_windows(quic_connection.QuicConnection)
    connection = (bounded or quic_connection.QuicConnection)(configuration=configuration)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: protocol_class(connection),
        local_addr=("0.0.0.0", 0) if family == socket.AF_INET else ("::", 0),
    )
    protocol.datagram = transport
    try:
        await _handshake(protocol, address, host, port, url=url, timeout=timeout)
        if certificate_hashes:
            _check_pinned(protocol, certificate_hashes, host, port, url)
        session_id = await _request_session(protocol, target, headers, host, port, url, timeout)
    except BaseException:
        protocol.shut()
        raise
    conn = WebTransportConnection(protocol, session_id, -1, max_message)
    protocol.connection = conn
    if open_stream:
        conn.open_stream(encode_open(sid))
    return conn


async def _handshake(
    protocol: Any, address: Any, host: str, port: int, *, url: str, timeout: float
) -> None:
    """The QUIC and TLS handshake with the server at ``address``."""
    protocol.connect(address)
    # Half the connect timeout, as for a WebSocket's handshake: "no answer on UDP" is named
    # before the attempt as a whole times out (and try_all_transports has time to go on).
    quic_timeout = timeout / 2
    try:
        async with asyncio.timeout(quic_timeout):
            await protocol.wait_connected()
    except TimeoutError:
        raise ConnectError(
            Stage.QUIC,
            f"no QUIC answer from udp {host}:{port} within {quic_timeout:g}s",
            hint="UDP to this port is blocked (a firewall or a network that allows only TCP), "
            "or the server does not serve WebTransport there (aiosio.WebTransport(port=...) "
            "on the server); include 'websocket' or 'polling' in transports (with "
            "try_all_transports=True) to fall back",
            description="webtransport error",
            url=url,
        ) from None
    except ConnectionError as exc:
        message = protocol.terminated or str(exc) or "the connection closed"
        stage = Stage.TLS if protocol.tls_failed else Stage.QUIC
        raise ConnectError(
            stage,
            f"the QUIC handshake with udp {host}:{port} failed: {message}",
            hint="the server's certificate is not trusted: for a development certificate, pin "
            "it with server_certificate_hashes=[...] (its SHA-256), or pass ssl=False"
            if stage is Stage.TLS
            else "the server closed the QUIC connection during the handshake",
            description="webtransport error",
            url=url,
        ) from exc


async def _request_session(
    protocol: Any,
    target: str,
    headers: dict[str, str],
    host: str,
    port: int,
    url: str,
    timeout: float,
) -> int:
    """The HTTP/3 extended CONNECT of the WebTransport session; its stream id once accepted."""
    session_id: int = protocol.quic.get_next_available_stream_id()
    protocol.session_id = session_id
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = [
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", authority.encode()),
        (b":path", target.encode()),
        (b":protocol", b"webtransport"),
        (b"sec-webtransport-http3-draft02", b"1"),
    ]
    for name, value in headers.items():
        if name.lower() not in ("host", "connection", "upgrade"):
            request.append((name.lower().encode(), value.encode()))
    protocol.http.send_headers(session_id, request)
    protocol.schedule_transmit()
    try:
        async with asyncio.timeout(timeout):
            status, body = await protocol.answer
    except TimeoutError:
        raise ConnectError(
            Stage.TIMEOUT,
            f"the WebTransport session request got no answer within {timeout:g}s",
            hint="the server accepted QUIC but does not answer HTTP/3 requests",
            description="webtransport error",
            url=url,
        ) from None
    except ConnectionError as exc:
        if protocol.overloaded is not None:
            raise ConnectError(
                Stage.WEBTRANSPORT,
                f"the WebTransport session request was given up: {protocol.overloaded}",
                hint="the server (or a proxy before it) does not answer as an HTTP/3 server "
                "does: no answer's headers are that large",
                description="webtransport error",
                url=url,
            ) from exc
        raise ConnectError(
            Stage.WEBTRANSPORT,
            f"the QUIC connection closed before the WebTransport session opened: {exc}",
            hint="the server does not support WebTransport over HTTP/3 (draft 02)",
            description="webtransport error",
            url=url,
        ) from exc
    if status != 200:
        text = body.decode("utf-8", "replace").strip()[:200]
        raise ConnectError(
            Stage.WEBTRANSPORT,
            f"the WebTransport session was refused with HTTP/3 {status}"
            + (f": {text}" if text else ""),
            hint="the server refused the session: check the path, the server's transports "
            "(it must offer 'webtransport'), CORS and allow_request",
            status=status,
            body=body,
            description="webtransport error",
            url=url,
        )
    return session_id


def _varint_size(value: int) -> bytes:
    # The bytes of a QUIC varint of ``value`` (only their count is used).
    for limit, size in ((0x40, 1), (0x4000, 2), (0x40000000, 4)):
        if value < limit:
            return bytes(size)
    return bytes(8)


def _check_pinned(protocol: Any, hashes: Sequence[bytes], host: str, port: int, url: str) -> None:
    serialization = import_extra(
        "cryptography.hazmat.primitives.serialization", extra="webtransport", feature=_FEATURE
    )
    # aioquic keeps the peer's certificate on its TLS context only (no public accessor).
    certificate = protocol.quic.tls._peer_certificate
    der = certificate.public_bytes(serialization.Encoding.DER)
    now = datetime.datetime.now(datetime.UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        protocol.shut()
        raise ConnectError(
            Stage.TLS,
            f"the pinned certificate of udp {host}:{port} is valid from "
            f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}, not now",
            hint="make a new development certificate (at most 14 days, docs/webtransport.md) "
            "and pin its hash",
            description="webtransport error",
            url=url,
        )
    digest = hashlib.sha256(der).digest()
    if digest not in hashes:
        protocol.shut()
        raise ConnectError(
            Stage.TLS,
            f"the certificate of udp {host}:{port} has SHA-256 "
            f"{base64.b64encode(digest).decode()}, which is not among the "
            f"{len(hashes)} pinned by server_certificate_hashes",
            hint="the server's certificate changed (a development certificate lasts at most 14 "
            "days): pin the new hash (openssl x509 -in cert.pem -outform der | openssl dgst "
            "-sha256 -binary | base64)",
            description="webtransport error",
            url=url,
        )

"""The native server's connections: HTTP/1.1 on asyncio protocol objects, then maybe a WebSocket.

One :class:`HttpConnection` (an ``asyncio.Protocol``) per TCP connection, no task per connection:
bytes go into ``httptools``' parser; a complete request becomes one short task that asks the app
for a response (a long-poll GET waits there). A WebSocket upgrade hands the same connection to a
:class:`~aiosio.transports.native.websocket.NativeWebSocket` on the sans-I/O codec of
:mod:`aiosio.protocol.websocket`; incoming messages are handed to the engine synchronously from
``data_received``.

Limits, each an option of :func:`~aiosio.transports.native.server.serve`: header count and size
(431), a deadline for the request head and one for its body (408), request bodies over the app's
``max_body_size`` (413, before buffering), an idle keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from typing import Protocol
from typing import cast

import httptools

from aiosio._memory import HeapTrimmer
from aiosio.engine.http import HttpApp
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.http import WebSocketAccept
from aiosio.protocol import websocket as ws
from aiosio.transports.native.limits import ServerLimits
from aiosio.transports.native.websocket import NativeWebSocket
from aiosio.transports.native.websocket import PlainWebSocket
from aiosio.transports.native.websocket import WriteBatcher

__all__ = ["ConnectionServer", "Handoff", "HttpConnection"]

logger = logging.getLogger("aiosio.server.http")

_REASONS = {s.value: s.phrase for s in HTTPStatus}


class Handoff(Protocol):
    """The ``--workers`` hand-off (:mod:`aiosio.workers`): which requests belong to another
    worker's sessions, and how their connection goes back to the master to be routed again."""

    def foreign_url(self, url: bytes) -> bool:
        """True when the request for ``url`` belongs to another worker."""

    def give_back(self, fd: int, data: bytes) -> None:
        """Hand the connection (a duplicate of its descriptor) and ``data``, the bytes of the
        request read from it, to the master."""


class ConnectionServer(Protocol):
    """What a connection needs of the server that accepted it (a ``NativeServer``)."""

    @property
    def app(self) -> HttpApp: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def limits(self) -> ServerLimits: ...

    @property
    def connections(self) -> set[HttpConnection]:
        """The open connections: a connection adds itself when made, removes itself when lost."""

    @property
    def heap(self) -> HeapTrimmer: ...

    @property
    def batcher(self) -> WriteBatcher:
        """Writes what the connections' WebSockets queued in a turn of the loop."""

    @property
    def handoff(self) -> Handoff | None:
        """Set in ``--workers`` mode."""

    def plain_port_got_tls(self, peer: str) -> None: ...

    def log_once(self, peer: str, level: int, message: str, *args: object) -> None:
        """Log ``message`` about ``peer`` once per client host."""


def _encode_response(response: HttpResponse, keep_alive: bool, head_only: bool = False) -> bytes:
    status = response.status
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    has_length = has_connection = False
    for name, value in response.headers:
        lowered = name.lower()
        if lowered == "content-length":
            has_length = True
        elif lowered == "connection":
            has_connection = True
        lines.append(f"{name}: {value}")
    if not has_length and not head_only:
        # A response to HEAD states no length unless the app gave the one GET would have
        # (RFC 9110 8.6): the length of this response's body would be wrong for a handshake
        # refused because of its method (the reference's Node server sends none either).
        lines.append(f"Content-Length: {len(response.body)}")
    if not keep_alive and not has_connection:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    # A response to HEAD has no content (RFC 9110 9.3.2), only the length it would have.
    return head if head_only else head + response.body


class _NoParser:
    """The parser of a closed connection: bytes that still arrive are dropped."""

    def feed_data(self, data: bytes) -> None:
        return None


_NO_PARSER = _NoParser()

# Why a connection is not read from (HttpConnection._paused); it is read again when none holds.
_PAUSED_BY_WRITES = 1  # the client does not read its responses, or its pongs (pause_writing)
_PAUSED_BY_QUEUE = 2  # max_pipelined_requests requests wait for their turn
_PAUSED_BY_APP = 4  # the engine's backpressure (handlers running): pause_reading

# Input is parsed in slices of this size, so that parsing stops soon after the pipeline is full
# (a 256 KiB read of minimal requests holds thousands of them).
_SLICE = 4096


class HttpConnection(asyncio.Protocol):
    """One TCP connection: HTTP/1.1 requests in order, then maybe a WebSocket."""

    def __init__(self, server: ConnectionServer) -> None:
        self.server = server
        self.app = server.app
        self.limits = server.limits
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.peer: str = "?"
        self._client: tuple[str, int] | None = None
        self._secure = False
        self._parser: Any = httptools.HttpRequestParser(self)
        self._timer: asyncio.TimerHandle | None = None  # head deadline or keep-alive idle
        self._body_timer: asyncio.TimerHandle | None = None  # the body being read: its deadline
        # the request being parsed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        # One buffer, not a list of the pieces: a chunked body of 2-byte chunks cost 21 times its
        # size in bytes objects (HARDENING 8: the bound is on memory, not only on the bytes).
        self._body = bytearray()
        self._body_size = 0
        self._refused = False
        # requests parsed and waiting for their turn; the one running
        # (request, keep-alive); a refusal (the response) waits its turn here too, as the last
        self._queue: list[tuple[HttpRequest | HttpResponse, bool]] = []
        self._queued_bytes = 0  # the bodies of the requests in _queue
        self._task: asyncio.Task[None] | None = None
        # backpressure: why the transport is not read from (_PAUSED_BY_*), the client's
        # responses are not consumed (pause_writing), input read but not parsed yet
        self._paused = 0
        self._writing_paused = False
        self._stall_timer: asyncio.TimerHandle | None = None  # send_timeout while paused
        self._stall_waiting = 0  # what waited for the client when the deadline was set
        self._held = b""
        self._upgrade: HttpRequest | None = None
        self._upgrade_buffer = bytearray()
        self._websocket: NativeWebSocket | None = None
        # --workers: the raw bytes of a request until it is known to belong to this process
        self._in_message = False
        self._raw: bytearray | None = None

    # asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client = (str(peer[0]), int(peer[1]))
            self.peer = f"{peer[0]}:{peer[1]}"
        self._secure = transport.get_extra_info("sslcontext") is not None
        self.server.connections.add(self)
        self.server.heap.opened()
        self._arm(self.limits.header_timeout, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.server.heap.closed()
        self.transport = None
        self._disarm()
        self._disarm_body()
        self._disarm_stall()
        websocket, self._websocket = self._websocket, None
        if websocket is not None:
            websocket.connection_lost()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._queue.clear()
        self._held = b""
        # The parser calls back into this object: without this cycle a closed connection is
        # freed at once by reference counting, not at the garbage collector's next full pass.
        self._parser = _NO_PARSER

    def data_received(self, data: bytes) -> None:
        websocket = self._websocket
        if websocket is not None:
            if websocket.receive(data):
                self._websocket_answered()
            return
        if self._refused:
            return  # refused: nothing more is read; the refusal waits its turn or is sent
        if self._upgrade is not None:
            self._hold_for_upgrade(data)
            return
        if self.server.handoff is not None:
            if not self._in_message:
                self._raw = bytearray(data)
            elif self._raw is not None:
                self._raw += data
                if len(self._raw) > 64 * 1024:
                    self._raw = None  # too big to hand over: answered here
        if self._held:  # read before the pause took effect
            self._held += data
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Parse ``data``; when the pipeline fills up, keep the rest and stop reading."""
        start, end = 0, len(data)
        while start < end:
            if self._pipeline_full():
                self._held = data[start:]
                self._pause(_PAUSED_BY_QUEUE)
                return
            piece = data[start : start + _SLICE] if start or end > _SLICE else data
            start += len(piece)
            try:
                self._parser.feed_data(piece)
            except httptools.HttpParserUpgrade as upgrade:
                offset = upgrade.args[0] if upgrade.args else len(piece)
                self._hold_for_upgrade(piece[offset:] + data[start:])
                return
            except httptools.HttpParserError as exc:
                if self._refused:
                    return
                if data[:1] == b"\x16" and not self._secure:  # a TLS record: a ClientHello
                    # Answered like Node does (a 400 in plain text): TLS clients then report
                    # "wrong version number", the recognised sign of https:// against http://.
                    self.server.plain_port_got_tls(self.peer)
                    self._refuse(400, "this port serves plain HTTP, not TLS", log=False)
                    return
                self._refuse(400, f"malformed HTTP request: {exc}")
                return
            if self._refused or self._upgrade is not None or self._websocket is not None:
                return  # what follows is not read, or goes to the upgrade

    def _hold_for_upgrade(self, data: bytes) -> None:
        """Keep bytes that follow an upgrade request (frames sent right behind it) while the
        engine decides on it; past max_http_buffer_size and 64 KiB, drop the connection instead
        (HARDENING 8), whether they came in the read of the request or after it."""
        self._upgrade_buffer += data
        if len(self._upgrade_buffer) > self.app.max_body_size + 64 * 1024:
            self.abort()

    def _pipeline_full(self) -> bool:
        queue = self._queue
        return bool(queue) and (
            len(queue) >= self.limits.max_pipelined_requests
            or self._queued_bytes >= self.app.max_body_size
        )

    # backpressure -------------------------------------------------------------------------------

    def pause_reading(self) -> None:
        """The application's backpressure on the WebSocket (its channel's ``pause_reading``):
        no more is read from the connection until :meth:`resume_reading`."""
        self._pause(_PAUSED_BY_APP)

    def resume_reading(self) -> None:
        self._resume(_PAUSED_BY_APP)

    def _websocket_answered(self) -> None:
        """The WebSocket wrote answers to the peer's own frames (pongs)."""
        if self._writing_paused:
            # Answers the peer does not read: read no more of its frames until it does (a ping
            # flood grew the buffer without bound). What the application sends is bounded by
            # the engine instead (max_outbound_buffer): a client slow to take broadcasts is
            # still read.
            self._pause(_PAUSED_BY_WRITES)

    def _pause(self, reason: int) -> None:
        """Stop reading from the connection for ``reason`` (one of ``_PAUSED_BY_*``)."""
        transport = self.transport
        if not self._paused and transport is not None and not transport.is_closing():
            transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        """``reason`` no longer holds; read again if no other does."""
        if not self._paused & reason:
            return
        self._paused &= ~reason
        transport = self.transport
        if not self._paused and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def pause_writing(self) -> None:
        # asyncio.Protocol: the transport's write buffer is over its high-water mark. The client
        # does not read what it asked for: read nothing more from it (the next request, the next
        # ping) until it does, and answer no queued request meanwhile.
        self._writing_paused = True
        if self._websocket is None:
            self._pause(_PAUSED_BY_WRITES)  # a WebSocket pauses only for its control replies
        self._watch_stall()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._disarm_stall()
        self._resume(_PAUSED_BY_WRITES)
        self._next()

    def _watch_stall(self) -> None:
        transport = self.transport
        if transport is None or self._websocket is not None:
            return
        self._disarm_stall()
        self._stall_waiting = transport.get_write_buffer_size()
        self._stall_timer = self.loop.call_later(self.limits.send_timeout, self._stalled)

    def _disarm_stall(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        """``send_timeout`` passed with responses waiting for the client: if it read some, it
        is slow and gets another period; if it read none, it is dropped with what waits."""
        self._stall_timer = None
        transport = self.transport
        if transport is None or not self._writing_paused or self._websocket is not None:
            return
        waiting = transport.get_write_buffer_size()
        if waiting < self._stall_waiting:
            self._watch_stall()
            return
        self.server.log_once(
            self.peer,
            logging.WARNING,
            "client %s read none of the %d bytes of responses waiting for it in "
            "send_timeout=%ss; connection dropped (a client that stopped reading; for clients "
            "that pause longer, raise ServerLimits(send_timeout=...))",
            waiting,
            self.limits.send_timeout,
        )
        transport.abort()

    @property
    def reading(self) -> bool:
        """The server reads from this connection (False while backpressure holds it)."""
        return self.transport is not None and not self._paused

    @property
    def queued_requests(self) -> int:
        """Requests read and waiting for their turn (pipelined behind the one answered)."""
        return len(self._queue)

    @property
    def buffered_bytes(self) -> int:
        """What the server holds for this connection: the queued requests' bodies, the body
        being read, input not parsed yet, and output the client has not read yet."""
        held = self._queued_bytes + self._body_size + len(self._held) + len(self._upgrade_buffer)
        websocket = self._websocket
        if websocket is not None:
            return held + websocket.buffered_amount
        transport = self.transport
        return held + (transport.get_write_buffer_size() if transport is not None else 0)

    def eof_received(self) -> bool | None:
        return None

    # httptools callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._body = bytearray()
        self._body_size = 0
        if self._timer is None:
            self._arm(self.limits.header_timeout, self._head_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.limits.max_header_size:
            self._refuse(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        self._headers.append((name, value))
        if len(self._headers) > self.limits.max_header_count:
            self._refuse(431, f"more than max_header_count={self.limits.max_header_count} headers")
        elif self._head_size > self.limits.max_header_size:
            self._refuse(431, f"request head over max_header_size={self.limits.max_header_size}")

    def on_headers_complete(self) -> None:
        self._disarm()
        if self._refused:
            return
        if self._raw is not None:
            raw, self._raw = self._raw, None
            handoff = self.server.handoff
            if handoff is not None and handoff.foreign_url(self._url):
                self._hand_back(handoff, bytes(raw))
                return
        length = self._content_length()
        if length is not None and length > self.app.max_body_size:
            self._refuse(
                413,
                f"request body of {length} bytes exceeds max_http_buffer_size="
                f"{self.app.max_body_size}",
            )
        elif self.transport is not None and any(
            name.lower() == b"expect" and value.lower() == b"100-continue"
            for name, value in self._headers
        ):
            # RFC 9110 10.1.1: curl waits a second for this before sending a body over 1 KiB.
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not self._refused and (length or self._chunked()):
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timeout)

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_size += len(body)
        if self._body_size > self.app.max_body_size:
            self._refuse(
                413,
                f"request body over max_http_buffer_size={self.app.max_body_size}",
            )
            return
        self._body += body

    def on_message_complete(self) -> None:
        self._in_message = False
        self._disarm_body()
        if self._refused:
            return
        request = self._build_request()
        if self._parser.should_upgrade():
            self._upgrade = request
        # Read keep-alive now: the parser forgets the message's flags once it is complete.
        self._queue.append((request, self._parser.should_keep_alive()))
        self._queued_bytes += len(request.body)
        self._body = bytearray()
        self._body_size = 0
        self._next()

    # request handling ---------------------------------------------------------------------------

    def _content_length(self) -> int | None:
        for name, value in self._headers:
            if name.lower() == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def _chunked(self) -> bool:
        return any(name.lower() == b"transfer-encoding" for name, _ in self._headers)

    def _build_request(self) -> HttpRequest:
        url = httptools.parse_url(self._url)
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name in headers:
                headers[name] = headers[name] + ("; " if name == "cookie" else ", ") + value
            else:
                headers[name] = value
        return HttpRequest(
            method=self._parser.get_method().decode("ascii", "replace"),
            path=(url.path or b"/").decode("latin-1"),
            query_string=(url.query or b"").decode("latin-1"),
            headers=headers,
            body=bytes(self._body),
            client=self._client,
            secure=self._secure,
            http_version=self._parser.get_http_version(),
        )

    def _next(self) -> None:
        if self._task is not None or not self._queue or self.transport is None:
            return
        if self._writing_paused:
            return  # resume_writing calls again
        request, keep_alive = self._queue.pop(0)
        if isinstance(request, HttpResponse):  # a refusal, after the responses before it
            self.transport.write(_encode_response(request, keep_alive=False))
            self.transport.close()
            return
        self._queued_bytes -= len(request.body)
        self._task = self.loop.create_task(self._handle(request, keep_alive))
        if self._paused & _PAUSED_BY_QUEUE and not self._pipeline_full():
            held, self._held = self._held, b""
            self._feed(held)
            if not self._held:
                self._resume(_PAUSED_BY_QUEUE)

    async def _handle(self, request: HttpRequest, keep_alive: bool) -> None:
        try:
            if request is self._upgrade:
                await self._handle_upgrade(request, keep_alive)
                return
            if not self.app.handles(request.path):
                response = self.app.not_found(request)
            else:
                response = await self.app.handle_request(request)
        except asyncio.CancelledError:
            return
        except Exception:
            logger.exception("error while answering %s %s", request.method, request.url)
            response = HttpResponse(500, [("Content-Type", "text/plain")], b"Internal Server Error")
        finally:
            self._task = None
        self._write_response(response, keep_alive, request.method == "HEAD")
        self._next()

    def _write_response(
        self, response: HttpResponse, keep_alive: bool, head_only: bool = False
    ) -> None:
        transport = self.transport
        if transport is None:
            return
        # A refusal still queued is written after this response; it closes the connection.
        keep_alive = keep_alive and not (self._refused and not self._queue)
        data = _encode_response(response, keep_alive, head_only)
        if self._writing_paused:
            self._stall_waiting += len(data)  # written now: not a sign the client read nothing
        transport.write(data)
        if not keep_alive:
            transport.close()
        elif not self._queue and self._task is None:
            self._arm(self.limits.keep_alive_timeout, self._idle_timeout)

    async def _handle_upgrade(self, request: HttpRequest, keep_alive: bool) -> None:
        transport = self.transport
        assert transport is not None
        try:
            accept_key = ws.check_client_handshake(request.method, request.headers)
        except ws.HandshakeError as exc:
            self._upgrade = None
            logger.info("refused websocket handshake from %s: %s", self.peer, exc)
            response = HttpResponse(
                exc.status,
                [*exc.headers, ("Content-Type", "text/plain")],
                f"{exc.reason}\n".encode(),
            )
            self._refused = True
            self._write_response(response, keep_alive)
            return
        if not self.app.handles(request.path):
            decision: WebSocketAccept | HttpResponse = self.app.not_found(request)
        else:
            try:
                decision = await self.app.handle_websocket(request)
            except Exception:
                logger.exception("error while deciding on a websocket upgrade")
                decision = HttpResponse(500, [], b"")
        if self.transport is None:
            return
        if isinstance(decision, HttpResponse):
            self._upgrade = None
            self._refused = True
            self._write_response(decision, keep_alive)
            return
        extension, params = ws.negotiate_deflate(
            request.headers.get("sec-websocket-extensions"), decision.per_message_deflate
        )
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key}",
        ]
        if extension:
            lines.append(f"Sec-WebSocket-Extensions: {extension}")
        lines.extend(f"{name}: {value}" for name, value in decision.headers)
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        codec = ws.WebSocketProtocol(
            ws.Side.SERVER, max_message_size=decision.max_message_size, deflate=params
        )
        kind = NativeWebSocket if params is not None else PlainWebSocket
        channel = kind(
            self, transport, codec, self.server.batcher, self.limits.websocket_close_timeout
        )
        self._websocket = channel
        self._upgrade = None
        early, self._upgrade_buffer = bytes(self._upgrade_buffer), bytearray()
        if channel.start(decision.bind(channel), early):
            self._websocket_answered()

    def _hand_back(self, handoff: Handoff, raw: bytes) -> None:
        """A kept-alive connection whose request belongs to another worker's session: give the
        connection back to the master (which routes it again) instead of answering."""
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if transport is None or sock is None:
            return
        self._refused = True  # ignore the rest of what the parser has
        transport.pause_reading()
        duplicate = os.dup(sock.fileno())
        try:
            handoff.give_back(duplicate, raw)
        finally:
            os.close(duplicate)
        transport.abort()

    # refusals and timers ------------------------------------------------------------------------

    def _refuse(self, status: int, reason: str, *, log: bool = True) -> None:
        """Answer with ``status`` and close: the connection is not read any further. Behind
        requests still to answer (pipelined, a long-poll), the refusal waits its turn: written
        now, it would be read as the answer to the first of them."""
        if self._refused:
            return
        self._refused = True
        self._disarm_body()
        self._disarm()
        if log:
            logger.info("refused request from %s with %d: %s", self.peer, status, reason)
        transport = self.transport
        if transport is None:
            return
        response = HttpResponse(status, [("Content-Type", "text/plain")], f"{reason}\n".encode())
        if self._task is not None or self._queue:
            self._queue.append((response, False))
            return
        transport.write(_encode_response(response, keep_alive=False))
        transport.close()

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timeout(self) -> None:
        """The body being read did not arrive within ``body_timeout``: a stalled or slow client
        would hold this connection and the body read so far. Answered with 408 and closed."""
        self._body_timer = None
        if not self._in_message or self._refused or self.transport is None:
            return
        limit = self.limits.body_timeout
        length = self._content_length()
        received = (
            f"{self._body_size} of {length} announced bytes"
            if length is not None
            else f"{self._body_size} bytes of a chunked body"
        )
        self.server.log_once(
            self.peer,
            logging.WARNING,
            "request body from %s not complete within body_timeout=%ss: %s arrived; the client "
            "stalled, or its link is too slow for the body (raise ServerLimits(body_timeout=...) "
            "for slow links); connection closed",
            limit,
            received,
        )
        self._refuse(408, f"request body not complete within {limit}s: {received}", log=False)

    def _head_timeout(self) -> None:
        self._timer = None
        if self._websocket is not None or self._refused:
            return
        limit = self.limits.header_timeout
        if (self._task is None and not self._queue) or self._in_message:
            # Behind a request still answered (a long-poll), the head being trickled is cut
            # all the same: nothing more is read, and the 408 follows the answers before it.
            self._refuse(408, f"request head not received within {limit}s")

    def _idle_timeout(self) -> None:
        self._timer = None
        idle = self._task is None and not self._queue and self._websocket is None
        if idle and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_idle(self) -> bool:
        """Close the connection if no request is in flight; True if it was closed."""
        if self._task is None and not self._queue and self._websocket is None:
            if self.transport is not None:
                self.transport.close()
            return True
        return False

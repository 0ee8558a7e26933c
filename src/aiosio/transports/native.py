"""The native server: HTTP/1.1 and WebSocket on asyncio protocol objects.

One :class:`HttpConnection` (an ``asyncio.Protocol``) per TCP connection, no task per connection:
bytes go into ``httptools``' parser; a complete request becomes one short task that asks the app
for a response (a long-poll GET waits there). A WebSocket upgrade switches the same protocol
object to the sans-I/O codec of :mod:`aiosio.protocol.websocket`; incoming messages are handed to
the engine synchronously from ``data_received``.

Limits, each an option of :func:`serve`: header count and size (431), a deadline for the request
head and one for its body (408), request bodies over the app's ``max_body_size`` (413, before
buffering), an idle keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import httptools

from aiosio._memory import HeapTrimmer, prime_loop_free_lists
from aiosio.engine.http import HttpApp, HttpRequest, HttpResponse, WebSocketAccept, WebSocketHandler
from aiosio.protocol import websocket as ws

__all__ = ["HttpConnection", "NativeServer", "ServerLimits", "run", "serve"]

logger = logging.getLogger("aiosio.server.http")

_REASONS = {s.value: s.phrase for s in HTTPStatus}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """Bounds on what one client may make the server hold."""

    max_header_count: int = 100
    max_header_size: int = 16 * 1024  # request line and headers, like Node's default
    header_timeout: float = 10.0  # seconds to send the request head
    # Seconds to send a request body once its head has arrived (Content-Length or chunked): a
    # body that stops arriving is answered with 408 and its connection closed. At the default
    # and the default max_http_buffer_size (1 MB), a client must send 34 KB/s.
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0  # idle keep-alive connections are closed after this
    # Requests read from one connection and waiting for their turn (HTTP/1.1 pipelining): at
    # this many, or when their bodies reach the app's max_http_buffer_size, the connection is
    # not read from until the request being answered is done. The server also stops reading
    # from a connection while the client does not read its responses (the transport's write
    # buffer is over its high-water mark), and from a WebSocket while it does not read the
    # pongs to its pings.
    max_pipelined_requests: int = 16
    # Seconds an HTTP connection may go with its responses over the write buffer's high-water
    # mark and none of them read (a client that stopped reading, or reads nothing on purpose):
    # it is then dropped. A slow client that reads is not (the deadline restarts as it reads).
    # WebSockets are bounded by the engine instead (max_outbound_buffer, the heartbeat).
    send_timeout: float = 30.0
    websocket_close_timeout: float = 5.0  # wait for the peer's close frame before dropping
    # Once this many connections have closed since the most there were, the C heap's free
    # memory is given back to the operating system when the closes stop (0: never; glibc only).
    trim_heap_after: int = 1000

    def __post_init__(self) -> None:
        count = self.max_pipelined_requests
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(
                f"ServerLimits(max_pipelined_requests=...) must be an integer of at least 1, "
                f"got {count!r}"
            )
        for name in ("header_timeout", "body_timeout", "keep_alive_timeout", "send_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ValueError(
                    f"ServerLimits({name}=...) must be a positive number of seconds, got {value!r}"
                )


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


_SENDING: list[_NativeWebSocket] = []


class _NoParser:
    """The parser of a closed connection: bytes that still arrive are dropped."""

    def feed_data(self, data: bytes) -> None:
        return None


_NO_PARSER = _NoParser()

# Why a connection is not read from (HttpConnection._paused); it is read again when none holds.
_PAUSED_BY_WRITES = 1  # the client does not read its responses, or its pongs (pause_writing)
_PAUSED_BY_QUEUE = 2  # max_pipelined_requests requests wait for their turn
_PAUSED_BY_APP = 4  # the engine's backpressure (handlers running): WebSocket.pause_reading

# Input is parsed in slices of this size, so that parsing stops soon after the pipeline is full
# (a 256 KiB read of minimal requests holds thousands of them).
_SLICE = 4096


def _sent() -> None:
    """End of a turn of the loop: write what each WebSocket queued in it, in one write (one
    system call) per connection, and make them writable again."""
    channels = list(_SENDING)
    _SENDING.clear()
    for channel in channels:  # _flush, inlined: once per connection and turn
        channel._sending = False
        out = channel._out
        if out:
            if channel._open:
                transport = channel._transport
                transport.write(out[0] if len(out) == 1 else b"".join(out))
                channel._backlog = transport.get_write_buffer_size()
            channel._out = []
            channel._out_size = 0


class _NativeWebSocket:
    """A WebSocket on an :class:`HttpConnection`; the channel the engine writes to."""

    __slots__ = (
        "_backlog",
        "_closing_timer",
        "_conn",
        "_handler",
        "_open",
        "_out",
        "_out_size",
        "_plain",
        "_sending",
        "_transport",
        "codec",
    )

    def __init__(self, conn: HttpConnection, codec: ws.WebSocketProtocol, plain: bool) -> None:
        self._conn = conn
        self.codec = codec
        self._handler: WebSocketHandler | None = None
        self._plain = plain  # no extension: frames can be written directly
        self._closing_timer: asyncio.TimerHandle | None = None
        self._sending = False  # a write happened in this turn of the loop
        self._out: list[bytes] = []  # frames queued in this turn, written at its end
        self._out_size = 0
        # What sending reads instead of the connection and the codec (each one more object, and
        # on the broadcast hot path, with thousands of recipients, one more cache miss per
        # recipient): frames may be sent (the connection is up and the codec open; cleared where
        # either changes: close, receive, connection_lost), the transport, and the transport's
        # buffer after the last write (an upper bound: it only drains until the next write; the
        # exact figure is read before acting on it).
        self._open = conn.transport is not None and codec.state is ws.State.OPEN
        self._backlog = 0
        self._transport = cast(asyncio.Transport, conn.transport)  # written to while _open

    # channel ------------------------------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        # Frames are written at the end of the loop's turn, together: several messages to one
        # client in the same turn (a burst of acks, successive broadcasts) cost one system call.
        # Like the reference's ws transport, the channel is not writable until then (what
        # volatile packets check). One callback per turn for all connections.
        self._out.append(frame)
        self._out_size += len(frame)
        if not self._sending:
            self._sending = True
            if not _SENDING:
                self._conn.loop.call_soon(_sent)
            _SENDING.append(self)

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        transport = self._conn.transport
        if transport is not None:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            self._backlog = transport.get_write_buffer_size()
        self._out = []
        self._out_size = 0

    @property
    def writable(self) -> bool:
        transport = self._conn.transport
        return (
            transport is not None and not self._sending and transport.get_write_buffer_size() == 0
        )

    def send(self, data: str | bytes) -> None:
        if not self._open:
            return
        if self._plain:
            if isinstance(data, str):
                self._queue(ws.encode_frame(ws.Opcode.TEXT, data.encode("utf-8")))
            else:
                self._queue(ws.encode_frame(ws.Opcode.BINARY, data))
            return
        if isinstance(data, str):
            self.codec.send_text(data)
        else:
            self.codec.send_binary(data)
        self._queue(self.codec.data_to_send())

    def send_frame(self, frame: bytes, data: str | bytes) -> int:
        """Write a frame built once for many connections; ``data`` is the message it carries,
        sent through the codec instead when an extension (deflate) is active. Returns the bytes
        waiting for the peer, or more (:attr:`buffered_amount` is exact). The broadcast hot path:
        one call per recipient, :meth:`_queue` inlined, no object but this one and its queue
        read."""
        if not self._open:
            return 0
        if not self._plain:
            self.send(data)
            return self.buffered_amount
        self._out.append(frame)
        size = self._out_size = self._out_size + len(frame)
        if not self._sending:
            self._sending = True
            if not _SENDING:
                self._conn.loop.call_soon(_sent)
            _SENDING.append(self)
        return size + self._backlog

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._open:
            return
        transport = self._transport
        self._flush()
        self.codec.send_close(code, reason)
        self._open = False
        transport.write(self.codec.data_to_send())
        loop = asyncio.get_running_loop()
        self._closing_timer = loop.call_later(
            self._conn.limits.websocket_close_timeout, self._conn.abort
        )

    @property
    def buffered_amount(self) -> int:
        transport = self._conn.transport
        return self._out_size + (transport.get_write_buffer_size() if transport is not None else 0)

    def pause_reading(self) -> None:
        """The engine's backpressure: the connection is not read from (the frames of the chunk
        being read are still delivered) until :meth:`resume_reading`."""
        self._conn._pause(_PAUSED_BY_APP)

    def resume_reading(self) -> None:
        self._conn._resume(_PAUSED_BY_APP)

    # from the connection ------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        events = self.codec.receive_data(data)
        if self.codec.state is not ws.State.OPEN:
            self._open = False
        handler = self._handler
        for event in events:
            if isinstance(event, ws.TextMessage | ws.BinaryMessage):
                if handler is not None:
                    handler.on_message(event.data)
            elif isinstance(event, ws.CloseReceived):
                self._finish(event.code, None)
            elif isinstance(event, ws.ProtocolViolation):
                logger.info("websocket from %s closed: %s", self._conn.peer, event.reason)
                self._finish(int(event.code), event.reason)
            # PingReceived is answered by the codec; PongReceived needs nothing.
        transport = self._conn.transport
        if transport is not None:
            pending = self.codec.data_to_send()
            if pending:
                self._flush()  # keep the order of what was queued before
                transport.write(pending)
                conn = self._conn
                if conn._writing_paused:
                    # Replies to the peer's own frames (pongs) it does not read: read no more
                    # of its frames until it does (a ping flood grew the buffer without bound).
                    # What the application sends is bounded by the engine instead
                    # (max_outbound_buffer): a client slow to take broadcasts is still read.
                    conn._pause(_PAUSED_BY_WRITES)
            if self.codec.close_expected:
                self._flush()
                transport.close()

    def _finish(self, code: int | None, error: str | None) -> None:
        handler, self._handler = self._handler, None
        if self._closing_timer is not None:
            self._closing_timer.cancel()
            self._closing_timer = None
        if handler is not None:
            handler.on_close(code, error)

    def connection_lost(self) -> None:
        self._open = False
        self.codec.receive_eof()
        self._finish(1006, None)


class HttpConnection(asyncio.Protocol):
    """One TCP connection: HTTP/1.1 requests in order, then maybe a WebSocket."""

    def __init__(self, server: NativeServer) -> None:
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
        self._websocket: _NativeWebSocket | None = None
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
        if self._websocket is not None:
            self._websocket.receive(data)
            return
        if self._refused:
            return  # refused: nothing more is read; the refusal waits its turn or is sent
        if self._upgrade is not None:
            self._upgrade_buffer += data  # the engine is deciding on the upgrade
            if len(self._upgrade_buffer) > self.app.max_body_size + 64 * 1024:
                self.abort()
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
                self._upgrade_buffer += piece[offset:] + data[start:]
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

    def _pipeline_full(self) -> bool:
        queue = self._queue
        return bool(queue) and (
            len(queue) >= self.limits.max_pipelined_requests
            or self._queued_bytes >= self.app.max_body_size
        )

    # backpressure -------------------------------------------------------------------------------

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
        self.server._log_once(
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
        channel = _NativeWebSocket(self, codec, plain=params is None)
        self._websocket = channel
        self._upgrade = None
        channel._handler = decision.bind(channel)
        pending, self._upgrade_buffer = bytes(self._upgrade_buffer), bytearray()
        if pending:
            channel.receive(pending)

    def _hand_back(self, handoff: Any, raw: bytes) -> None:
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
        self.server._log_once(
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


_TRUSTED_CERTIFICATE = (
    "serve a certificate from a CA the clients trust (with the full chain) for the host name in "
    "their URL, or give the clients the CA (Node: the `ca` option or NODE_EXTRA_CA_CERTS; "
    "aiosio: Client(ssl=ssl.create_default_context(cafile=...)); `aiosio doctor --ca FILE` "
    "to check)"
)


def _tls_failure(exc: BaseException) -> tuple[int, str]:
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


class _TlsAccept(asyncio.Protocol):
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

    def __init__(self, server: NativeServer, context: ssl_module.SSLContext) -> None:
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
            server.loop.call_soon(_feed, tcp, bytes(self._early))
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


def _feed(tcp: asyncio.Transport, data: bytes) -> None:
    """Hand bytes read before start_tls to the TLS protocol it installed (a BufferedProtocol)."""
    protocol = tcp.get_protocol()
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))  # type: ignore[attr-defined]
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)  # type: ignore[attr-defined]
        view = view[size:]


class NativeServer:
    """A listening native server; created by :func:`serve`."""

    def __init__(self, app: HttpApp, loop: asyncio.AbstractEventLoop, limits: ServerLimits) -> None:
        self.app = app
        self.loop = loop
        self.limits = limits
        self.connections: set[HttpConnection] = set()
        self.heap = HeapTrimmer(loop, self.connections, limits.trim_heap_after)
        self._server: asyncio.base_events.Server | None = None
        self.handoff: Any = None  # set in --workers mode (aiosio.workers)
        self.handshakes: set[asyncio.Task[None]] = set()  # TLS handshakes under way
        self._logged: set[tuple[str, str]] = set()  # (client host, message) said once

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
                lambda: _TlsAccept(self, ssl), host, port, backlog=backlog
            )

    def plain_port_got_tls(self, peer: str) -> None:
        """A TLS ClientHello on a port that serves plain HTTP: https:// against http://."""
        self._log_once(
            peer,
            logging.WARNING,
            "a TLS handshake from %s arrived on this plain HTTP port: the client's URL says "
            "https:// or wss://; use http:// or ws://, or serve TLS here (aiosio serve "
            "--certfile FILE --keyfile FILE, or a TLS-terminating proxy in front)",
        )

    def tls_failed(self, peer: str, exc: BaseException) -> None:
        """Log a failed TLS handshake with its cause and fix."""
        level, message = _tls_failure(exc)
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._log_once(peer, level, "TLS handshake with %s failed: " + message, detail)

    def _log_once(self, peer: str, level: int, message: str, *args: object) -> None:
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
        shutdown = getattr(self.app, "shutdown", None)
        if shutdown is not None:
            result = shutdown()
            if asyncio.iscoroutine(result):
                await result
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
) -> NativeServer:
    """Start serving ``app`` (an :class:`~aiosio.EngineServer` or :class:`~aiosio.Server`) and
    return the running server; ``await server.close()`` stops it gracefully."""
    http_app = getattr(app, "http_app", app)
    server = NativeServer(http_app, asyncio.get_running_loop(), limits or ServerLimits())
    await server.start(host, port, ssl, backlog)
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
) -> None:
    """Run the native server until SIGINT or SIGTERM, then shut down gracefully.

    uvloop is used when installed (``use_uvloop=False`` to opt out)."""

    from aiosio._debug import configure_default_logging

    async def main() -> None:
        server = await serve(app, host, port, ssl=ssl, limits=limits)
        scheme = "https" if ssl else "http"
        shown = f"[{host}]" if host and ":" in host else host or "0.0.0.0"
        logger.info("aiosio listening on %s://%s:%d", scheme, shown, server.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if on_started is not None:
            result = on_started(server)
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
        logger.info("shutting down")
        await server.close()

    configure_default_logging()  # "listening" and refused clients show unless logging is set up
    factory = None
    if use_uvloop is not False:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            if use_uvloop:
                raise ImportError(  # noqa: B904 - the ImportError above stays its __context__
                    'use_uvloop=True needs uvloop, not installed: pip install "aiosio[speed]"'
                )
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())

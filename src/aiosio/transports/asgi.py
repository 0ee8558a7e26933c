"""The ASGI application: serve the engine from uvicorn, Hypercorn or any ASGI server, alone or in
front of another ASGI app (FastAPI, Starlette), mounted at the root or under a sub-path.

The scope is read as the ASGI specification writes it (no WSGI environ in between). Under a mount,
``root_path`` is the mount point and ``path`` the full path; the engine sees the path relative to
the mount, so ``path="/socket.io/"`` keeps working behind ``app.mount("/rt", sio.asgi())``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections import deque
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import MutableMapping
from typing import Any

from aiosio._memory import HeapTrimmer
from aiosio._memory import prime_loop_free_lists
from aiosio.engine.http import HttpApp
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.http import register_asgi
from aiosio.protocol.text import js_text
from aiosio.transports.webtransport import WebTransport
from aiosio.transports.webtransport import WebTransportServer
from aiosio.transports.webtransport import check_webtransport
from aiosio.transports.webtransport import close_app
from aiosio.transports.webtransport import serve_webtransport

__all__ = ["AsgiApp", "AsgiWebSocket"]

logger = logging.getLogger("aiosio.server.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _resend_as_javascript(send: Send, message: Message, error: UnicodeEncodeError) -> None:
    """A text the ASGI server could not encode (a lone surrogate): sent as a JavaScript peer
    would write it (:func:`~aiosio.protocol.text.js_text`). Called only on the refusal, so that
    every other message costs one ``await send(...)``, nothing more."""
    text = message.get("text")
    if text is None:
        raise error
    message["text"] = js_text(text)
    await send(message)


def _request_from_scope(scope: Scope, body: bytes = b"") -> HttpRequest:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            headers[name] += ("; " if name == "cookie" else ", ") + value
        else:
            headers[name] = value
    root_path: str = scope.get("root_path", "") or ""
    path: str = scope.get("path", "/") or "/"
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :] or "/"
    client = scope.get("client")
    return HttpRequest(
        method=scope.get("method", "GET"),
        path=path,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=body,
        client=(str(client[0]), int(client[1])) if client else None,
        secure=scope.get("scheme") in ("https", "wss"),
        root_path=root_path,
        http_version=scope.get("http_version", "1.1"),
    )


async def _send_response(send: Send, response: HttpResponse, head: bool = False) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    # To HEAD: no body, and no length but the one the app gave (RFC 9110 8.6), as natively.
    if not head and not any(k.lower() == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


class AsgiWebSocket:
    """The channel of an ASGI WebSocket. ``send`` queues; what a received message causes (an
    acknowledgement, an answer) is sent by the receive loop itself right after it, with no task
    switch; what is sent from elsewhere (heartbeats, broadcasts) starts a writer task that ends
    when the queue is empty, so that an idle connection has no task of its own beside the one
    the ASGI server runs the application in (two per connection held 5000 idle WebSockets at
    10,004 tasks).

    A close is sent after what is queued. A peer that has not taken it ``close_timeout``
    seconds later (a client that stopped reading: the ASGI server's ``send`` waits for its
    transport to drain) is given up on, as the native server aborts it after
    ``websocket_close_timeout``: what is queued is dropped, the writer ends, the connection is
    aborted where the ASGI server lets the application reach it (:func:`_abort`), and the ASGI
    call returns, so that nothing of it outlives the give-up (uvicorn held 16 MB of queued
    messages and the connection until the peer went)."""

    __slots__ = (
        "_abandon_timer",
        "_buffered",
        "_busy",
        "_close_timeout",
        "_closed",
        "_pending",
        "_send",
        "abandoned",
        "paused",
        "receiver",
        "receiving",
        "writer",
    )

    def __init__(self, send: Send, close_timeout: float) -> None:
        self._send = send
        self._close_timeout = close_timeout
        self._pending: deque[Message] = deque()
        self._buffered = 0
        self._closed = False
        self._busy = False  # a send is in progress (the receive loop's or the writer's)
        self.receiving = False  # the receive loop is handling a message: it drains after it
        self.paused: asyncio.Future[None] | None = None  # pause_reading: receive() waits
        self.writer: asyncio.Task[None] | None = None  # runs while a queue waits for it
        self.receiver = asyncio.current_task()  # the ASGI call's task: the receive loop
        self._abandon_timer: asyncio.TimerHandle | None = None
        self.abandoned = False  # given up on after close_timeout: the receive loop returns

    def send(self, data: str | bytes) -> int:
        if self._closed:
            return 0
        buffered = self._buffered = self._buffered + len(data)
        if isinstance(data, str):
            self._pending.append({"type": "websocket.send", "text": data})
        else:
            self._pending.append({"type": "websocket.send", "bytes": data})
        self._write_soon()
        return buffered

    def _write_soon(self) -> None:
        # The receive loop drains after the message it handles; a send in progress goes on
        # with what was queued behind it; else a writer task sends it.
        if not self.receiving and not self._busy and self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.append({"type": "websocket.close", "code": code, "reason": reason})
        self._write_soon()
        self.resume_reading()  # the receive loop goes on to see the disconnect
        if not self.abandoned:
            loop = asyncio.get_running_loop()
            self._abandon_timer = loop.call_later(self._close_timeout, self._abandon)

    @property
    def buffered_amount(self) -> int:
        return self._buffered

    @property
    def writable(self) -> bool:
        return self._buffered == 0

    def frame_writer(self) -> Callable[[bytes, str | bytes], int] | None:
        """None: the ASGI server frames each message itself."""
        return None

    def pause_reading(self) -> None:
        """The engine's backpressure: the receive loop stops calling ``receive()`` (uvicorn
        then stops reading from the socket) until :meth:`resume_reading`."""
        if self.paused is None and not self._closed:
            self.paused = asyncio.get_running_loop().create_future()

    def resume_reading(self) -> None:
        paused, self.paused = self.paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    def take_reply(self) -> Message | None:
        """The one message queued while the receive loop handled a message (the usual answer,
        an ack), for the loop to send itself without :meth:`drain`'s coroutine; marked busy like
        :meth:`drain`, so that no writer task sends a later one first, until
        :meth:`reply_sent`. None when the queue holds another number of messages or is being
        sent already."""
        pending = self._pending
        if len(pending) != 1 or self._busy or self.writer is not None:
            return None
        self._busy = True
        return pending.popleft()

    def reply_sent(self, reply: Message) -> None:
        """The ``reply`` of :meth:`take_reply` is sent, or its send failed."""
        self._busy = False
        self._buffered -= _size(reply)

    @property
    def left_to_drain(self) -> bool:
        """Messages wait and no writer task is sending them: the receive loop drains."""
        return bool(self._pending) and self.writer is None

    async def drain(self) -> None:
        """Send what is queued, in order (one drainer at a time)."""
        if self._busy:
            return
        self._busy = True
        try:
            while self._pending:
                message = self._pending.popleft()
                try:
                    try:
                        await self._send(message)
                    except UnicodeEncodeError as refused:
                        await _resend_as_javascript(self._send, message, refused)
                finally:
                    self._buffered -= _size(message)
        finally:
            self._busy = False

    async def _write(self) -> None:
        try:
            await self.drain()
        except Exception:  # noqa: BLE001 - the connection is gone; the receive loop reports it
            self._drop()
        finally:
            self.writer = None

    def _drop(self) -> int:
        """Forget what is queued (the peer will not get it); returns its size in bytes."""
        dropped = self._buffered
        self._closed = True
        self._pending.clear()
        self._buffered = 0
        return dropped

    def _abandon(self) -> None:
        """The close was not taken within close_timeout: give the connection up."""
        self._abandon_timer = None
        self.abandoned = True
        dropped = self._drop()
        logger.info(
            "a WebSocket closed %gs ago has not taken its close (the client stopped reading): "
            "dropped the %d bytes queued for it and ended it",
            self._close_timeout,
            dropped,
        )
        writer = self.writer
        if writer is not None:
            writer.cancel()  # it waits in the ASGI server's send for a drain that will not come
        if not _abort(self._send) and self.receiver is not None:
            self.receiver.cancel()  # the receive loop returns (see AsgiApp._websocket)

    def disconnected(self) -> None:
        """The connection is gone (``websocket.disconnect``, or the ASGI server raised): what is
        queued cannot reach the peer and no close is sent, so that the end of a connection the
        client closed creates no writer task and no give-up timer. A wave of 5000 disconnects
        made 5000 of each, and the free lists of the event loop kept some of them, scattered over
        the memory the connections had used, with the 1 MiB arenas they sit in."""
        self._drop()

    def finished(self) -> None:
        """The receive loop ended (the connection is gone): no give-up to come."""
        timer, self._abandon_timer = self._abandon_timer, None
        if timer is not None:
            timer.cancel()


def _abort(send: Send) -> bool:
    """Abort the connection behind an ASGI ``send``, if the server lets us reach it.

    ASGI has no message for "drop this connection now": ``websocket.close`` is queued behind
    what the peer does not read, and a transport's ``close()`` waits for its buffer to drain,
    so a client that stopped reading would hold the connection and its buffer until it goes.
    uvicorn's ``send`` is a method of its protocol object, whose ``transport`` is the asyncio
    transport of the connection (all three of its WebSocket implementations): aborting that
    frees the connection at once, and uvicorn then delivers ``websocket.disconnect``. Under
    another ASGI server nothing is reached and the app's part is freed all the same."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    # duck-typed: uvloop's transports are not asyncio.BaseTransport instances
    if not callable(abort) or not callable(getattr(transport, "get_write_buffer_size", None)):
        return False
    abort()
    return True


class AsgiApp:
    """An ASGI 3 application serving ``app`` and, for every other path, ``other_app``.

    Once ``trim_heap_after`` WebSockets have closed since the most there were open, the memory
    they held is given back to the operating system when the closes stop, as the native server
    does (:class:`aiosio._memory.HeapTrimmer`; 0: never).

    ``body_timeout`` (seconds, 30 as the native server's ``ServerLimits.body_timeout``): a request
    body not complete within it is answered with 408 and the connection closed; a client that
    announces a body and stops sending it would otherwise hold the request and what it sent.

    ``websocket_close_timeout`` (seconds, 5 as the native server's): a WebSocket the engine
    closed whose client has not taken the close (and what was queued before it) within it is
    given up on: what is queued for it is dropped, the connection aborted under uvicorn, and
    the ASGI call returns.

    ``webtransport``: serve WebTransport (HTTP/3 on UDP) beside the ASGI server, in its process
    and event loop, from the lifespan startup to the lifespan shutdown (after the sessions are
    closed, as the native server does), when the app's transports include ``webtransport``. Its
    ``port`` is required: the ASGI app does not know the ASGI server's port (give the same
    number as ``uvicorn --port`` for the reference client to find it). The ASGI server must run
    the lifespan protocol (uvicorn does by default), and ``other_app``'s too if it owns it."""

    def __init__(
        self,
        app: HttpApp,
        other_app: ASGIApp | None = None,
        *,
        trim_heap_after: int = 1000,
        body_timeout: float = 30.0,
        websocket_close_timeout: float = 5.0,
        webtransport: WebTransport | None = None,
    ) -> None:
        if not body_timeout > 0:
            raise ValueError(
                f"body_timeout must be a number of seconds above 0, got {body_timeout!r}: "
                "give the longest a client may take to send a request body, e.g. 30"
            )
        if not websocket_close_timeout > 0:
            raise ValueError(
                "websocket_close_timeout must be a number of seconds above 0, got "
                f"{websocket_close_timeout!r}: give how long a closed WebSocket's client may take "
                "to read what was queued for it and the close, e.g. 5"
            )
        if webtransport is not None:
            check_webtransport(app, webtransport)
            if webtransport.port is None:
                raise ValueError(
                    "under an ASGI server, aiosio.WebTransport(port=...) must name the UDP port "
                    "(the ASGI app does not know the server's port): give the number of "
                    "uvicorn's --port, where the reference client looks for it"
                )
        self.app = app
        self.other_app = other_app
        self.webtransport = webtransport
        self.webtransport_server: WebTransportServer | None = None
        """The running WebTransport endpoint (lifespan startup to shutdown), else None."""
        self.trim_heap_after = trim_heap_after
        self.body_timeout = body_timeout
        self.websocket_close_timeout = websocket_close_timeout
        self._closing: asyncio.Task[None] | None = None
        self._signals: dict[int, Any] = {}
        self._websockets: set[AsgiWebSocket] = set()
        self._heap: HeapTrimmer | None = None  # made with the first WebSocket (it needs the loop)

    @property
    def open_websockets(self) -> int:
        """The WebSockets this app serves now (their ASGI calls have not returned)."""
        return len(self._websockets)

    @property
    def heap(self) -> HeapTrimmer | None:
        """What gives the memory of closed WebSockets back (its ``trims`` counts the times), as
        ``NativeServer.heap``; made with the first WebSocket, None before."""
        return self._heap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        request = _request_from_scope(scope)
        if kind not in ("http", "websocket") or not self.app.handles(request.path):
            if self.other_app is not None:
                await self.other_app(scope, receive, send)
            elif kind == "http":
                await _send_response(send, self.app.not_found(request), request.method == "HEAD")
            elif kind == "websocket":
                await receive()
                await send({"type": "websocket.close", "code": 1008, "reason": "not found"})
            return
        if kind == "http":
            await self._http(scope, request, receive, send)
        else:
            await self._websocket(scope, request, receive, send)

    def _watch_signals(self) -> None:
        """Close the sessions as soon as the ASGI server is told to stop (SIGTERM, SIGINT).

        uvicorn sends the lifespan shutdown only after its connections have ended, so a waiting
        long-poll would be answered by the next ping (up to ping_interval) or cut at
        --timeout-graceful-shutdown with no response. The handler the ASGI server installed is
        kept and called first; ours then closes every session, as the native server does: each
        waiting poll is answered with a close packet, each WebSocket sent its close."""
        if threading.current_thread() is not threading.main_thread() or self._signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous) or previous is signal.default_int_handler:
                continue  # no ASGI server's handler to chain: it did not plan a graceful stop

            def handler(number: int, frame: Any, previous: Any = previous) -> None:
                previous(number, frame)
                loop.call_soon_threadsafe(self._start_shutdown)

            self._signals[sig] = previous
            signal.signal(sig, handler)

    def _restore_signals(self) -> None:
        signals, self._signals = self._signals, {}
        if threading.current_thread() is threading.main_thread():
            for sig, previous in signals.items():
                signal.signal(sig, previous)

    def _start_shutdown(self) -> asyncio.Task[None]:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close_app())
        return self._closing

    async def _close_app(self) -> None:
        webtransport, self.webtransport_server = self.webtransport_server, None
        await close_app(self.app, webtransport)

    async def _start_webtransport(self) -> None:
        if self.webtransport is not None and self.webtransport_server is None:
            self.webtransport_server = await serve_webtransport(
                self.app, self.webtransport, default_host=None, default_port=None
            )

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._watch_signals()
        if self.other_app is not None:
            # The other app owns the lifespan protocol; start WebTransport at its startup, and
            # shut our sessions down when it ends.
            async def receive_startup() -> Message:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self._start_webtransport()
                return message

            try:
                await self.other_app(scope, receive_startup, send)
            finally:
                await self._shutdown()
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                prime_loop_free_lists(asyncio.get_running_loop())
                startup = getattr(self.app, "startup", None)
                if startup is not None:
                    await startup()
                try:
                    await self._start_webtransport()
                except (OSError, ValueError) as exc:  # the port taken, the certificate
                    self._restore_signals()
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _shutdown(self) -> None:
        self._restore_signals()
        await self._start_shutdown()

    async def _http(self, scope: Scope, request: HttpRequest, receive: Receive, send: Send) -> None:
        limit = self.app.max_body_size
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_response(send, _too_large(limit))
            return
        chunks: list[bytes] = []
        size = 0
        more = request.method not in ("GET", "HEAD", "OPTIONS")
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        while more:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await _send_response(send, self._body_late(request, size, declared))
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_response(send, _too_large(limit))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        request.body = b"".join(chunks)
        handler = asyncio.ensure_future(self.app.handle_request(request))
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not handler.done():
                handler.cancel()  # the client went away while its long-poll waited
                with contextlib.suppress(asyncio.CancelledError):
                    await handler
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if handler.cancelled():
            return
        response = handler.result()
        await _send_response(send, response, request.method == "HEAD")

    def _body_late(self, request: HttpRequest, size: int, declared: str) -> HttpResponse:
        received = (
            f"{size} of {declared} announced bytes"
            if declared.isdigit()
            else f"{size} bytes of a chunked body"
        )
        peer = request.client[0] if request.client else "an unknown client"
        logger.warning(
            "request body from %s not complete within body_timeout=%ss: %s arrived; the client "
            "stalled, or its link is too slow for the body (raise sio.asgi(body_timeout=...) for "
            "slow links); answered 408 and closed",
            peer,
            self.body_timeout,
            received,
        )
        body = f"request body not complete within {self.body_timeout}s: {received}\n".encode()
        return HttpResponse(408, [("Content-Type", "text/plain"), ("Connection", "close")], body)

    async def _websocket(
        self, scope: Scope, request: HttpRequest, receive: Receive, send: Send
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        decision = await self.app.handle_websocket(request)
        if isinstance(decision, HttpResponse):
            if "websocket.http.response" in scope.get("extensions", {}) or {}:
                headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in decision.headers]
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": decision.status,
                        "headers": headers,
                    }
                )
                await send({"type": "websocket.http.response.body", "body": decision.body})
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in decision.headers]
        await send({"type": "websocket.accept", "headers": headers})
        channel = AsgiWebSocket(send, self.websocket_close_timeout)
        heap = self._heap
        if heap is None:
            loop = asyncio.get_running_loop()
            heap = self._heap = HeapTrimmer(loop, self._websockets, self.trim_heap_after)
        self._websockets.add(channel)
        heap.opened()
        handler = decision.bind(channel)
        limit = decision.max_message_size
        quarter = limit // 4  # a text of fewer characters is under the limit in UTF-8 too
        code: int | None = None
        error: str | None = None
        try:
            while True:
                if channel.paused is not None:
                    await channel.paused
                message = await receive()
                if message["type"] == "websocket.receive":
                    data = message.get("text")
                    if data is None:
                        data = message.get("bytes") or b""
                    if len(data) > quarter and (size := _byte_size(data)) > limit:
                        error = f"message of {size} bytes exceeds max_http_buffer_size={limit}"
                        code = 1009
                        channel.close(1009, "message too big")
                        break
                    channel.receiving = True
                    try:
                        handler.on_message(data)
                    finally:
                        channel.receiving = False
                    reply = channel.take_reply()
                    if reply is not None:
                        try:
                            try:
                                await send(reply)
                            except UnicodeEncodeError as refused:
                                await _resend_as_javascript(send, reply, refused)
                        finally:
                            channel.reply_sent(reply)
                    if channel.left_to_drain:  # several, or queued meanwhile
                        await channel.drain()
                elif message["type"] == "websocket.disconnect":
                    code = message.get("code", 1005)
                    channel.disconnected()
                    break
        except asyncio.CancelledError:
            # Our own cancel of a connection given up on (AsgiWebSocket._abandon) ends the
            # call normally; any other is the ASGI server's and goes on.
            receiver = channel.receiver
            if not channel.abandoned or receiver is None or receiver.uncancel():
                raise
            error = "given up on: the client did not take its close"
        except Exception as exc:  # noqa: BLE001 - whatever the ASGI server raised, the socket is gone
            error = f"{type(exc).__name__}: {exc}"
            channel.disconnected()
        finally:
            self._websockets.discard(channel)
            heap.closed()
            handler.on_close(code, error)
            channel.close()
            channel.finished()
            writer = channel.writer
            if writer is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(writer, self.websocket_close_timeout)


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _size(message: Message) -> int:
    """The payload size of a queued ``websocket.send`` (what ``buffered_amount`` counts)."""
    return len(message.get("text") or message.get("bytes") or b"")


def _byte_size(data: str | bytes) -> int:
    """A message's size on the wire: UTF-8 bytes for text, as the reference's ws maxPayload."""
    if isinstance(data, bytes):
        return len(data)
    return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))


def _too_large(limit: int) -> HttpResponse:
    logger.info("refused a request body over max_http_buffer_size=%d", limit)
    return HttpResponse(413, [("Content-Type", "text/plain")], b"Payload Too Large\n")


register_asgi(AsgiApp)  # what sio.asgi() and engine.asgi() build

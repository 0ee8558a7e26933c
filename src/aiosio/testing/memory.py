"""A WebSocket in memory between the client's Engine.IO driver and a server's channel interface.

:class:`ServerOpener` is the client's :class:`~aiosio.client.http.WebSocketOpener`: instead of a
TCP connection and an HTTP upgrade, it hands the upgrade request to the server as its HTTP
servers do (:meth:`~aiosio.engine.http.HttpApp.handle_websocket`, an
:class:`~aiosio.engine.http.HttpRequest`), and connects the two ends of a :class:`MemoryPipe`:
the client's end is a :class:`~aiosio.client.http.ClientWebSocket`, the server's a
:class:`~aiosio.engine.http.WebSocketChannel`. Everything above the WebSocket is the production
code on both sides: the Engine.IO sessions, the Socket.IO encoders and decoders, the server's
middlewares and handlers, the client's sockets.

What a WebSocket does that the code above it can see, the pipe does the same way (RFC 6455):

- a message goes out in order and arrives at a later turn of the event loop, never within the
  sender's call (no re-entrance a network could not produce); what one turn sends arrives in one
  later turn, as the native server's write batcher sends it;
- the closing handshake: a close frame arrives after the messages sent before it, the receiver
  answers it with the same code and ends there; the initiator ends when the answer arrives; a
  side that sent its close sends nothing more (section 5.5.1, 7.1.2);
- a message larger than the receiver's limit closes the connection with 1009 (the server's
  ``max_http_buffer_size``, the client's ``max_http_buffer_size``), as the codec does;
- the server's backpressure (``pause_reading``) holds the client's messages, close included,
  until ``resume_reading``.

What it does not do: it never fills up (``buffered_amount`` is 0, so a volatile packet is never
dropped for a slow link, and no slow-consumer limit is reached), and it has no frames,
compression or pings at the WebSocket level (Engine.IO's own pings go through as messages).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import secrets
from base64 import b64encode
from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.http import ClientWebSocket
from aiosio.client.http import HttpResult
from aiosio.engine.http import HttpApp
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.http import WebSocketAccept
from aiosio.engine.http import WebSocketHandler

__all__ = ["ClientEnd", "MemoryPipe", "ServerEnd", "ServerOpener"]

logger = logging.getLogger("aiosio.testing")

MESSAGE_TOO_BIG = 1009
ABNORMAL_CLOSURE = 1006


@dataclass(frozen=True, slots=True)
class _Close:
    """A close frame in the queue (``lost``: the connection dropped instead, no frame)."""

    code: int
    lost: bool = False


class _End(abc.ABC):
    """One side of the pipe: what the peer sent waits in ``_inbox`` until this side takes it,
    in one callback per turn of the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_message_size: int) -> None:
        self._loop = loop
        self._limit = max_message_size
        self._quarter = max_message_size // 4  # fewer characters: under the limit in UTF-8 too
        self.peer: _End | None = None
        self._inbox: deque[str | bytes | _Close] = deque()
        self._scheduled = False
        self._paused = False
        self._close_sent = False
        self.closed = False  # the connection ended for this side (its on_close was called)

    # what the subclass says ----------------------------------------------------------------

    def _ready(self) -> bool:
        """Messages may be delivered (the receiver is in place)."""
        return True

    @abc.abstractmethod
    def _deliver(self, data: str | bytes) -> None:
        """Hand one message to this side's receiver."""

    @abc.abstractmethod
    def _ended(self, code: int | None, error: str | None) -> None:
        """Tell this side's receiver the connection ended (``code`` of the close, or
        ``error`` when it dropped)."""

    # the pipe --------------------------------------------------------------------------------

    def _take_from_peer(self, item: str | bytes | _Close) -> None:
        """The peer sent ``item``: it arrives at a later turn of the loop."""
        if self.closed:
            return
        self._inbox.append(item)
        self._wake()

    def _wake(self) -> None:
        if not self._scheduled and self._inbox and not self._paused and self._ready():
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        inbox = self._inbox
        while inbox and not self._paused and not self.closed:
            item = inbox.popleft()
            if isinstance(item, _Close):
                self._close_received(item)
                continue
            if len(item) > self._quarter:
                size = len(item.encode()) if isinstance(item, str) else len(item)
                if size > self._limit:
                    self._fail(
                        MESSAGE_TOO_BIG,
                        f"message of {size} bytes exceeds max_message_size={self._limit}",
                    )
                    continue
            self._deliver(item)

    def _send_message(self, data: str | bytes) -> None:
        if self._close_sent or self.closed or self.peer is None:
            return
        self.peer._take_from_peer(data)

    def _send_close(self, code: int) -> None:
        if self._close_sent or self.closed or self.peer is None:
            return
        self._close_sent = True
        self.peer._take_from_peer(_Close(code))

    def _close_received(self, close: _Close) -> None:
        if close.lost:
            self._finish(ABNORMAL_CLOSURE, None)
            return
        self._send_close(close.code)  # the answer (unless this side's close is out already)
        self._finish(close.code, None)

    def _fail(self, code: int, reason: str) -> None:
        """This side refuses what the peer sent: a close with ``code``, and the end."""
        self._send_close(code)
        self._finish(code, reason)

    def abort(self) -> None:
        """Drop the connection: no closing handshake; the peer sees 1006 after what it has."""
        if self.closed:
            return
        if self.peer is not None:
            self.peer._take_from_peer(_Close(ABNORMAL_CLOSURE, lost=True))
        self._finish(ABNORMAL_CLOSURE, None)

    def _finish(self, code: int | None, error: str | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._close_sent = True
        self._inbox.clear()
        self._ended(code, error)

    @property
    def buffered_amount(self) -> int:
        return 0


class ClientEnd(_End):
    """The client's end: a :class:`~aiosio.client.http.ClientWebSocket`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_message_size: int) -> None:
        super().__init__(loop, max_message_size)
        self.on_message: Callable[[str | bytes], None] = lambda data: None
        self.on_close: Callable[[int | None, str | None], None] = lambda code, error: None
        self._started = False
        self._done: asyncio.Future[None] = loop.create_future()

    def _ready(self) -> bool:
        return self._started

    def _deliver(self, data: str | bytes) -> None:
        self.on_message(data)

    def _ended(self, code: int | None, error: str | None) -> None:
        if not self._done.done():
            self._done.set_result(None)
        self.on_close(code, error)

    def start(self) -> None:
        self._started = True
        self._wake()

    def send(self, data: str | bytes, compress: bool = True) -> None:
        self._send_message(data)  # in memory: nothing to compress

    def close(self, code: int = 1000) -> None:
        self._send_close(code)

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Wait for the closing handshake; the connection is dropped after ``timeout``."""
        if not self.closed:
            try:
                await asyncio.wait_for(asyncio.shield(self._done), timeout)
            except TimeoutError:
                self.abort()


class ServerEnd(_End):
    """The server's end: a :class:`~aiosio.engine.http.WebSocketChannel` that delivers to the
    engine's :class:`~aiosio.engine.http.WebSocketHandler`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_message_size: int) -> None:
        super().__init__(loop, max_message_size)
        self._handler: WebSocketHandler | None = None

    def attach(self, handler: WebSocketHandler) -> None:
        """The engine's handler (what ``WebSocketAccept.bind`` returned) receives from now on."""
        self._handler = handler
        self._wake()

    def _ready(self) -> bool:
        return self._handler is not None

    def _deliver(self, data: str | bytes) -> None:
        if self._handler is not None:
            self._handler.on_message(data)

    def _ended(self, code: int | None, error: str | None) -> None:
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.on_close(code, error)

    # WebSocketChannel

    def send(self, data: str | bytes) -> int:
        self._send_message(data)
        return 0  # it never fills up (buffered_amount)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._send_close(code)

    @property
    def writable(self) -> bool:
        return not self._close_sent

    def frame_writer(self) -> Callable[[bytes, str | bytes], int] | None:
        """None: the engine sends a broadcast to each channel with :meth:`send`."""
        return None

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        self._wake()


class MemoryPipe:
    """Two connected ends: ``client`` and ``server``; each takes messages up to its limit."""

    def __init__(self, *, client_max_message_size: int, server_max_message_size: int) -> None:
        loop = asyncio.get_running_loop()
        self.client = ClientEnd(loop, client_max_message_size)
        self.server = ServerEnd(loop, server_max_message_size)
        self.client.peer = self.server
        self.server.peer = self.client


class ServerOpener:
    """The client's WebSocket opener that reaches ``app`` (an :class:`aiosio.Server`, or any
    :class:`~aiosio.engine.http.HttpApp`) in memory: the upgrade request is decided by the app
    as its HTTP servers have it decided, and an accepted one is bound to a :class:`MemoryPipe`.

    ``client_address`` is the peer address the server sees (``socket.handshake.address``)."""

    def __init__(self, app: HttpApp, *, client_address: tuple[str, int] = ("127.0.0.1", 0)):
        self.app = app
        self.client_address = client_address
        self.pipes: list[MemoryPipe] = []  # every pipe opened, in order (for tests of tests)

    async def __call__(
        self, target: str, headers: Mapping[str, str], *, max_message_size: int, url: str
    ) -> tuple[ClientWebSocket | None, HttpResult]:
        path, _, query = target.partition("?")
        fields = {name.lower(): value for name, value in headers.items()}
        fields.setdefault("host", urlsplit(url).netloc or "testserver")
        fields["upgrade"] = "websocket"
        fields["connection"] = "Upgrade"
        fields["sec-websocket-key"] = b64encode(secrets.token_bytes(16)).decode()
        fields["sec-websocket-version"] = "13"
        request = HttpRequest("GET", path, query, fields, client=self.client_address)
        app = self.app
        decision: WebSocketAccept | HttpResponse
        if not app.handles(path):
            decision = app.not_found(request)
        else:
            try:
                decision = await app.handle_websocket(request)
            except Exception:
                # What the native server answers (and logs) when the application raised.
                logger.exception("error while deciding on a websocket upgrade")
                decision = HttpResponse(500, [], b"")
        if isinstance(decision, HttpResponse):
            return None, HttpResult(decision.status, list(decision.headers), decision.body)
        pipe = MemoryPipe(
            client_max_message_size=max_message_size,
            server_max_message_size=decision.max_message_size,
        )
        self.pipes.append(pipe)
        try:
            handler = decision.bind(pipe.server)
        except RuntimeError as exc:
            if "closed" not in str(exc):
                raise
            # The server takes the running loop for its timers only when no session is left:
            # one of a loop that has since closed is still open.
            raise ConnectError(
                Stage.WEBSOCKET,
                f"the server cannot start a session in this event loop ({exc}): it still has "
                "sessions of another event loop, which is closed",
                hint="close every client at the end of its test (the aiosio_client fixture and "
                "connect() do), or create the Server in each test (a fixture)",
                description=exc,
                url=url,
            ) from exc
        pipe.server.attach(handler)
        answer = [("Upgrade", "websocket"), ("Connection", "Upgrade"), *decision.headers]
        return pipe.client, HttpResult(101, answer, b"")

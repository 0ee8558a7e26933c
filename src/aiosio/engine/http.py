"""The seam between the Engine.IO server and the HTTP servers that carry it.

Both the native server (:mod:`aiosio.transports.native`) and the ASGI application
(:mod:`aiosio.transports.asgi`) turn what arrives into an :class:`HttpRequest`, hand it to the
engine, and write back the :class:`HttpResponse` or run the WebSocket it accepted through a
:class:`WebSocketChannel`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol
from urllib.parse import parse_qsl

__all__ = [
    "AsgiFactory",
    "AsgiMixin",
    "HttpApp",
    "HttpRequest",
    "HttpResponse",
    "WebSocketAccept",
    "WebSocketChannel",
    "WebSocketHandler",
    "asgi_app",
    "register_asgi",
]


@dataclass(slots=True, eq=False)
class HttpRequest:
    """What the engine needs to know of one HTTP request. Header names are lowercase; repeated
    headers are joined with ``", "`` as Node.js does for most of them."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes = b""
    client: tuple[str, int] | None = None
    secure: bool = False
    root_path: str = ""
    http_version: str = "1.1"
    _query: dict[str, str] | None = field(default=None, repr=False)

    @property
    def query(self) -> dict[str, str]:
        """The query parameters; for a repeated name the last value wins, as with the
        reference's ``Object.fromEntries(url.searchParams)``."""
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query

    @property
    def url(self) -> str:
        return f"{self.path}?{self.query_string}" if self.query_string else self.path

    @property
    def remote_address(self) -> str | None:
        return self.client[0] if self.client else None


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class WebSocketChannel(Protocol):
    """The sending half of an accepted WebSocket, provided by the HTTP server."""

    def send(self, data: str | bytes) -> int:
        """Queue one message; never blocks. Returns the bytes waiting for the peer, or more (an
        upper bound, cheap to know: what the engine compares with ``max_outbound_buffer`` on
        every send; :attr:`buffered_amount` is exact)."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (or drop the connection if it cannot be done)."""

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for the peer and not yet written to the socket."""

    @property
    def writable(self) -> bool:
        """A message sent now is not queued behind others (what ``volatile`` packets need)."""

    def frame_writer(self) -> Callable[[bytes, str | bytes], int] | None:
        """The function that writes a frame built once for many connections (a broadcast) as
        it is, ``write(frame, data)``, and returns the bytes now waiting for the peer; or
        ``None`` when this channel must encode each message itself (an extension such as
        permessage-deflate, or an HTTP server that frames messages itself): the engine then
        sends it ``data`` with :meth:`send`."""

    def pause_reading(self) -> None:
        """Stop delivering the peer's messages (and reading them from the network) until
        :meth:`resume_reading`: backpressure from the application."""

    def resume_reading(self) -> None:
        """Deliver the peer's messages again."""


class WebSocketHandler(Protocol):
    """The receiving half, provided by the engine for each accepted WebSocket."""

    def on_message(self, data: str | bytes) -> None: ...

    def on_close(self, code: int | None, error: str | None) -> None:
        """The connection ended: ``code`` from the peer's close frame, ``error`` when it broke."""

    def on_parse_error(self, reason: str) -> None:
        """The connection ended on bytes that are no message (a WebTransport frame refused by
        its decoder): the session closes with ``parse error``, not a transport error."""


@dataclass(slots=True)
class WebSocketAccept:
    """The engine accepts a WebSocket: the server completes the handshake with ``headers``
    added to the 101 response, then calls ``bind`` with its channel to get the handler."""

    headers: list[tuple[str, str]]
    bind: Callable[[WebSocketChannel], WebSocketHandler]
    per_message_deflate: bool = False
    max_message_size: int = 1_000_000


class HttpApp(Protocol):
    """What the HTTP servers serve: the Engine.IO server, or the Socket.IO server around it."""

    @property
    def max_body_size(self) -> int:
        """Request bodies larger than this are refused with 413 before being buffered."""

    def handles(self, path: str) -> bool:
        """True for the paths this app answers; other paths get a 404 that names the right one."""

    async def handle_request(self, request: HttpRequest) -> HttpResponse: ...

    async def handle_websocket(self, request: HttpRequest) -> WebSocketAccept | HttpResponse: ...

    def not_found(self, request: HttpRequest) -> HttpResponse:
        """The answer for a path this app does not serve."""


# -- the ASGI application of an HttpApp -----------------------------------------------------------

AsgiFactory = Callable[..., Any]
"""``factory(app, other_app, **options)``: an ASGI application serving ``app``."""

_asgi_factory: list[AsgiFactory] = []


def register_asgi(factory: AsgiFactory) -> None:
    """Set what ``sio.asgi()`` and ``engine.asgi()`` build: the ASGI transport registers its
    ``AsgiApp`` when it is imported (``import aiosio`` imports it), so that the servers, which
    sit below the transports, need not import it."""
    _asgi_factory[:] = [factory]


def asgi_app(app: HttpApp, other_app: Any, **options: Any) -> Any:
    """``app`` as an ASGI application (see :func:`register_asgi`)."""
    if not _asgi_factory:  # cannot happen once the aiosio package is imported
        raise RuntimeError("no ASGI transport registered: import aiosio.transports.asgi")
    return _asgi_factory[0](app, other_app, **options)


class AsgiMixin:
    """``asgi()``, written once for the servers that are an :class:`HttpApp` (the Engine.IO
    server and the Socket.IO server around it)."""

    def asgi(
        self: HttpApp,
        other_app: Any = None,
        *,
        trim_heap_after: int = 1000,
        body_timeout: float = 30.0,
        websocket_close_timeout: float = 5.0,
        webtransport: Any = None,
    ) -> Any:
        """This server as an ASGI application; other paths go to ``other_app`` if given.
        ``trim_heap_after``, ``body_timeout``, ``websocket_close_timeout``, ``webtransport``
        (an :class:`aiosio.WebTransport` with its ``port``): see
        :class:`~aiosio.transports.asgi.AsgiApp`."""
        return asgi_app(
            self,
            other_app,
            trim_heap_after=trim_heap_after,
            body_timeout=body_timeout,
            websocket_close_timeout=websocket_close_timeout,
            webtransport=webtransport,
        )

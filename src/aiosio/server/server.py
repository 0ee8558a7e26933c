"""The Socket.IO server (``index.ts``): namespaces over an Engine.IO server."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from typing import Final
from typing import TypeVar
from typing import Unpack
from typing import overload

from aiosio._eager import settle
from aiosio._events import forward_on
from aiosio.engine.http import AsgiMixin
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.http import WebSocketAccept
from aiosio.engine.options import EngineKeywords
from aiosio.engine.options import check_keywords
from aiosio.engine.server import EngineServer
from aiosio.engine.server import EngineSocket
from aiosio.protocol.parser import Parser
from aiosio.protocol.parsers import resolve_parser
from aiosio.protocol.reasons import DisconnectReason
from aiosio.protocol.socketio import Limits
from aiosio.server.adapter import Adapter
from aiosio.server.adapter import InMemoryAdapter
from aiosio.server.adapter import NamespaceView
from aiosio.server.adapter import Recovery
from aiosio.server.adapter import RecoveryAdapter
from aiosio.server.broadcast import Broadcasting
from aiosio.server.broadcast import BroadcastOperator
from aiosio.server.client import Client
from aiosio.server.client_files import ClientFiles
from aiosio.server.interfaces import PacketListener
from aiosio.server.namespace import DynamicNamespace
from aiosio.server.namespace import Namespace
from aiosio.server.namespace import NamespaceMatcher

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["AdapterFactory", "HttpHandler", "PacketListener", "Recovery", "Server"]

logger = logging.getLogger("aiosio.server")

AdapterFactory = Callable[[NamespaceView], Adapter]
HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class Server(AsgiMixin, Broadcasting):
    """A Socket.IO server. Serve it with ``aiosio.run(sio)`` (native) or ``sio.asgi()``.

    What one connection may create is bounded, and nothing it created outlives it: when the
    connection closes, every socket it opened, in every namespace, is disconnected and removed.

    - One socket per namespace per connection: a CONNECT packet for a namespace the connection
      is connected to, or is being connected to (its middlewares still running), closes the
      connection as a protocol error (``forced server close``), as the reference does for a
      connected namespace.
    - ``max_namespaces_per_connection`` (100): namespaces one connection may be connected or
      connecting to at once; beyond it the CONNECT is refused with ``connect_error`` ("too many
      namespaces on one connection ...") and a warning names the option, once per connection.
    - ``cleanup_empty_child_namespaces`` (False, as the reference): a child namespace of a
      dynamic namespace (``sio.of(regex)`` or a callable) is removed, and its adapter closed,
      when its last socket leaves. Turn it on when clients choose the names: otherwise each name
      a client connects to stays on the server. Handlers attached to one child (rather than to
      the parent) go with it.
    - ``max_handlers_per_connection`` (100): handlers (event handlers, per-packet middlewares,
      ``on_any`` listeners) that one connection's packets have started and that are still
      running, suspended in an ``await``. At the bound the server stops reading from that
      client, as backpressure, until one ends: over a WebSocket the transport stops reading,
      over polling the next POST waits; what was already read waits in order and nothing is
      dropped. Pings and acknowledgements wait behind them too, so a connection held at the
      bound for longer than ``ping_timeout`` ends with ``ping timeout``.
    - When a connection closes, the events it sent that no handler has started yet are
      dropped; handlers already running are not cancelled, they run to their end (as the
      reference: a handler may be storing what the client sent). ``socket.connected`` says
      whether the client is still there; ``emit_with_ack`` raises :class:`Disconnected`.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 45.0,
        connection_state_recovery: Recovery | None = None,
        adapter: AdapterFactory | None = None,
        limits: Limits | None = None,
        proxy_header: str | None = None,
        max_namespaces_per_connection: int = 100,
        cleanup_empty_child_namespaces: bool = False,
        max_handlers_per_connection: int = 100,
        parser: str | Parser = "json",
        **engine: Unpack[EngineKeywords],
    ) -> None:
        """The Socket.IO options are named here; ``engine`` takes every option of the Engine.IO
        server (:class:`~aiosio.engine.options.EngineOptions`, validated there), with ``path``
        defaulting to ``/socket.io/``."""
        check_keywords(Server.__init__, engine, EngineKeywords.__optional_keys__)
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive seconds, got {connect_timeout!r}")
        if max_namespaces_per_connection < 1:
            raise ValueError(
                "max_namespaces_per_connection must be at least 1 (the main namespace), got "
                f"{max_namespaces_per_connection!r}"
            )
        if max_handlers_per_connection < 1:
            raise ValueError(
                "max_handlers_per_connection must be at least 1, got "
                f"{max_handlers_per_connection!r}"
            )
        if connection_state_recovery is not None and not isinstance(
            connection_state_recovery, Recovery
        ):
            raise TypeError(
                "connection_state_recovery must be aiosio.Recovery(...), got "
                f"{type(connection_state_recovery).__name__}"
            )
        engine.setdefault("path", "/socket.io/")
        self.engine = EngineServer(**engine)
        # What the HTTP servers read of an app, from the engine's options (frozen).
        self.path: Final[str] = self.engine.path
        self.max_body_size: Final[int] = self.engine.max_body_size
        self.connect_timeout = connect_timeout
        self.max_namespaces_per_connection = max_namespaces_per_connection
        self.cleanup_empty_child_namespaces = cleanup_empty_child_namespaces
        self.max_handlers_per_connection = max_handlers_per_connection
        self.connection_state_recovery = connection_state_recovery
        self.limits = limits or Limits()
        # The packet format of every connection: "json" (socket.io-parser), "msgpack"
        # (socket.io-msgpack-parser) or a Parser (docs/parsers.md).
        self.parser: Parser = resolve_parser(parser)
        self.proxy_header = proxy_header
        self._adapter_factory = adapter
        self._nsps: dict[str, Namespace] = {}
        self._dynamic: list[DynamicNamespace] = []
        self._namespace_listeners: list[Callable[[Namespace], None]] = []
        self._startup_listeners: list[Callable[[], None]] = []
        self._packet_listeners: tuple[PacketListener, ...] = ()
        self._mounts: dict[str, HttpHandler] = {}
        self._client_files: ClientFiles | None = ClientFiles()
        self.sockets: Namespace = self.of("/")
        self.engine.on("connection", self._on_engine_connection)

    # -- namespaces -----------------------------------------------------------------------------

    @overload
    def of(self, name: str) -> Namespace: ...
    @overload
    def of(self, name: re.Pattern[str] | NamespaceMatcher) -> DynamicNamespace: ...
    def of(self, name: str | re.Pattern[str] | NamespaceMatcher) -> Namespace | DynamicNamespace:
        """The namespace ``name`` (created if needed), or a dynamic namespace family for a
        compiled regex or a callable ``(name, auth) -> bool``."""
        if isinstance(name, str):
            if not name.startswith("/"):
                name = "/" + name
            nsp = self._nsps.get(name)
            if nsp is None:
                for family in self._dynamic:
                    if isinstance(family.matcher, re.Pattern) and family.matcher.search(name):
                        nsp = family.create_child(name)
                        break
                else:
                    nsp = Namespace(self, name)
                self._nsps[name] = nsp
                self._namespace_created(nsp)
            return nsp
        family = DynamicNamespace(self, name)
        self._dynamic.append(family)
        return family

    @property
    def namespaces(self) -> Mapping[str, Namespace]:
        """The namespaces of this server by name, read-only: those declared with :meth:`of` and
        the children dynamic namespaces created (until they are removed when empty, with
        ``cleanup_empty_child_namespaces``)."""
        return MappingProxyType(self._nsps)

    @property
    def dynamic_namespaces(self) -> tuple[DynamicNamespace, ...]:
        """The dynamic namespace families declared with :meth:`of` (a regex or a callable), in
        the order they are tried; their children are in :attr:`namespaces`."""
        return tuple(self._dynamic)

    async def find_namespace(self, name: str, auth: dict[str, Any]) -> Namespace | None:
        """The namespace a client asks for: an existing one, or a child of the first dynamic
        namespace whose matcher accepts ``name`` (and ``auth``), or ``None``."""
        existing = self._nsps.get(name)
        if existing is not None:
            return existing
        for family in self._dynamic:
            try:
                allowed = await family.matches(name, auth)
            except Exception:
                logger.exception("dynamic namespace matcher raised for %r", name)
                continue
            if allowed:
                existing = self._nsps.get(name)
                if existing is not None:
                    return existing
                child = family.create_child(name)
                self._nsps[name] = child
                self._namespace_created(child)
                return child
        return None

    def on_new_namespace(
        self, listener: Callable[[Namespace], None]
    ) -> Callable[[Namespace], None]:
        """Call ``listener(namespace)`` for each namespace created from now on: by :meth:`of`,
        or as the child of a dynamic namespace (Node: ``io.on("new_namespace")``). For tools that
        watch every namespace, such as :func:`aiosio.admin.instrument`; usable as a decorator."""
        self._namespace_listeners.append(listener)
        return listener

    def _namespace_created(self, nsp: Namespace) -> None:
        for listener in tuple(self._namespace_listeners):
            try:
                listener(nsp)
            except Exception:
                logger.exception("new namespace listener %r raised for %s", listener, nsp.name)

    def namespace_removed(self, nsp: NamespaceView) -> None:
        """An empty child namespace is removed (``cleanup_empty_child_namespaces``)."""
        if self._nsps.get(nsp.name) is nsp:
            del self._nsps[nsp.name]

    # -- adapters -------------------------------------------------------------------------------

    @property
    def adapter_factory(self) -> AdapterFactory | None:
        """The ``adapter`` option: what makes each namespace's adapter (``None``: in-memory)."""
        return self._adapter_factory

    def set_adapter(self, factory: AdapterFactory) -> None:
        """Use ``factory`` (such as a :class:`~aiosio.adapters.RedisAdapter`) for the adapter of
        every namespace, those that exist included: for a launcher that decides on the cluster
        after the application built its server (``aiosio serve --workers``). Call it before the
        server serves: sockets already connected stay in their old adapter's rooms."""
        self._adapter_factory = factory
        for nsp in self._nsps.values():
            replaced = nsp.adapter
            nsp.adapter = factory(nsp)
            nsp.adapter.take_listeners(replaced)

    def make_adapter(self, nsp: NamespaceView) -> Adapter:
        """The adapter of a new namespace."""
        if self._adapter_factory is not None:
            return self._adapter_factory(nsp)
        recovery = self.connection_state_recovery
        if recovery is not None:
            return RecoveryAdapter(nsp, recovery.max_disconnection_duration)
        return InMemoryAdapter(nsp)

    # -- the main namespace's API ---------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Handlers of the main namespace ``/`` (see :meth:`Namespace.on`); ``new_namespace``
        is the server's own event (:meth:`on_new_namespace`), as in Node."""
        if event == "new_namespace":
            if handler is None:
                return self.on_new_namespace  # type: ignore[return-value]
            self.on_new_namespace(handler)
            return handler
        return forward_on(self.sockets.on, event, handler)

    @overload
    def on_server_side(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on_server_side(self, event: str, handler: F) -> F: ...
    def on_server_side(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Handlers of the main namespace's server-side events, what other servers send with
        ``server_side_emit`` (see :meth:`Namespace.on_server_side`)."""
        return forward_on(self.sockets.on_server_side, event, handler)

    def event(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        return self.sockets.event(handler)

    def use(self, middleware: Any) -> Any:
        """Connection middleware of the main namespace."""
        return self.sockets.use(middleware)

    # The broadcast API (emit, to, volatile, ...) is Broadcasting's, over this operator.

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self.sockets.adapter)

    def server_side_emit(self, event: str, *args: Any) -> None:
        self.sockets.server_side_emit(event, *args)

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list[Any]:
        return await self.sockets.server_side_emit_with_ack(event, *args, timeout=timeout)

    # -- monitoring -----------------------------------------------------------------------------

    def add_packet_listener(self, listener: PacketListener) -> None:
        """Tell ``listener`` of every Engine.IO message that the connections opened from now on
        receive and send (Socket.IO packets and their binary attachments, as the reference's
        ``packet`` and ``packetCreate`` events): for counters such as the Admin UI's. While no
        listener is added, the connections pay nothing for it."""
        self._packet_listeners = (*self._packet_listeners, listener)

    @property
    def packet_listeners(self) -> tuple[PacketListener, ...]:
        """What :meth:`add_packet_listener` added (a new connection keeps the value of its
        start)."""
        return self._packet_listeners

    # -- lifecycle ------------------------------------------------------------------------------

    def _on_engine_connection(self, conn: EngineSocket) -> None:
        Client(self, conn)

    def on_startup(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` when the server starts (in :meth:`startup`, the event loop
        running, the cluster adapter connected or given up on): for tools set up before there
        is a loop that must act without waiting for a connection, such as the statistics of
        :func:`aiosio.admin.instrument`; usable as a decorator."""
        self._startup_listeners.append(listener)
        return listener

    async def startup(self) -> None:
        """Called by the HTTP servers when they start (the ASGI app: at its lifespan startup):
        a cluster adapter connects now, then the :meth:`on_startup` listeners run."""
        ready = getattr(self._adapter_factory, "ready", None)
        if ready is not None and not await ready():
            logger.error(
                "the adapter is not connected (%s); this server runs alone until it is",
                getattr(getattr(self._adapter_factory, "health", None), "last_error", None),
            )
        for listener in tuple(self._startup_listeners):
            try:
                listener()
            except Exception:
                logger.exception("startup listener %r raised", listener)

    async def close(self) -> None:
        """Disconnect every socket (``server shutting down``) and close every session at once,
        dropping what waits to be sent (:meth:`shutdown` delivers it first)."""
        await self._close(drain=False)

    async def shutdown(self) -> None:
        """Called by the HTTP servers when they stop: as :meth:`close`, but the sessions close
        as :meth:`EngineServer.shutdown <aiosio.engine.server.EngineServer.shutdown>` closes
        them: what was already sent to a client (a polling client's next GET, an upgrade in
        progress) reaches it first, for at most ``shutdown_timeout`` seconds, and new sessions
        are refused (503) meanwhile."""
        await self._close(drain=True)

    async def _close(self, *, drain: bool) -> None:
        for nsp in list(self._nsps.values()):
            for socket in list(nsp.sockets.values()):
                socket.handle_close(DisconnectReason.SERVER_SHUTTING_DOWN)
        # Empty child namespaces removed meanwhile (cleanup_empty_child_namespaces) closed
        # their adapter as they went.
        for nsp in list(self._nsps.values()):
            await settle(nsp.adapter.close())
        if drain:
            await self.engine.shutdown()
        else:
            self.engine.close()
        closer = getattr(self._adapter_factory, "close", None)
        if closer is not None:
            await settle(closer())

    # -- HTTP app (what the native server and the ASGI app serve) -------------------------------

    def mount(self, prefix: str, handler: HttpHandler) -> None:
        """Answer the HTTP requests whose path starts with ``prefix`` with ``handler(request)``,
        on the native server and in the ASGI app alike (``request.path`` is relative to the ASGI
        ``root_path``, which ``request.root_path`` holds). For small HTTP endpoints that belong
        with the Socket.IO server, such as the Admin UI's files
        (:func:`aiosio.admin.instrument` with ``ui_path``); WebSocket requests under ``prefix``
        get a 404. ``prefix`` starts with ``/`` and may not overlap the Socket.IO path."""
        if not prefix.startswith("/"):
            raise ValueError(f"a mount prefix starts with '/', got {prefix!r}")
        if prefix.startswith(self.path) or self.path.startswith(prefix):
            raise ValueError(
                f"the mount prefix {prefix!r} overlaps the Socket.IO path {self.path!r}"
            )
        if prefix in self._mounts:
            raise ValueError(f"something is already mounted at {prefix!r}")
        self._mounts[prefix] = handler

    def _mounted(self, path: str) -> HttpHandler | None:
        for prefix, handler in self._mounts.items():
            if path.startswith(prefix):
                return handler
        return None

    def handles(self, path: str) -> bool:
        return self.engine.handles(path) or (bool(self._mounts) and self._mounted(path) is not None)

    def serve_client(self, enabled: bool = True, *, directory: str | Path | None = None) -> None:
        """Serve the browser client's bundles under the server's path
        (``<script src="/socket.io/socket.io.min.js">``), as Node's server does by default: on
        unless turned off here. They come from the npm package ``socket.io-client``, installed
        by ``npm install socket.io-client@4`` in the working directory (or a parent), or from
        ``directory`` (its ``dist`` folder or the package's folder); see
        :mod:`aiosio.server.client_files`."""
        self._client_files = ClientFiles(directory) if enabled else None

    async def handle_request(self, request: HttpRequest) -> HttpResponse:
        if self._mounts:
            handler = self._mounted(request.path)
            if handler is not None:
                return await handler(request)
        files = self._client_files
        if files is not None and request.method in ("GET", "HEAD"):
            name = files.name_in(request.path, self.engine.path)
            if name is not None:
                return await files.handle(request, name, self.engine.cors)
        return await self.engine.handle_request(request)

    async def handle_websocket(self, request: HttpRequest) -> WebSocketAccept | HttpResponse:
        if self._mounts and self._mounted(request.path) is not None:
            return self.engine.not_found(request)
        return await self.engine.handle_websocket(request)

    def not_found(self, request: HttpRequest) -> HttpResponse:
        return self.engine.not_found(request)

"""Namespaces: static (``sio.of("/admin")``) and dynamic (``sio.of(re.compile(...))`` or a
callable), each with its handlers, connection middlewares, sockets and adapter
(``namespace.ts``, ``parent-namespace.ts``)."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import TypeVar
from typing import overload

from aiosio._eager import Callback
from aiosio._eager import call_async
from aiosio._eager import invoke
from aiosio._eager import run_eager
from aiosio._once import OncePer
from aiosio.errors import ConnectionRefused
from aiosio.protocol.parser import Parser
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.server.adapter import Adapter
from aiosio.server.adapter import LocalSocket
from aiosio.server.adapter import Recovery
from aiosio.server.adapter import SocketId
from aiosio.server.adapter import new_pid
from aiosio.server.broadcast import Broadcasting
from aiosio.server.broadcast import BroadcastOperator
from aiosio.server.handlers import Handlers
from aiosio.server.interfaces import NamespaceOwner
from aiosio.server.interfaces import SocketHost
from aiosio.server.socket import Socket
from aiosio.typed import InvalidPayloads

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["DynamicNamespace", "Namespace", "NamespaceMatcher"]

logger = logging.getLogger("aiosio.server")

Handler = Callable[..., Any]
Middleware = Callable[[Socket], Awaitable[None] | None]
NamespaceMatcher = Callable[[str, dict[str, Any]], bool | Awaitable[bool]]

# Children of one dynamic namespace past which, if they stay when empty, a warning says so once.
MANY_CHILDREN = 1000

# Names server_side_emit may not send: the reference's reserved names for server-side events.
SERVER_SIDE_RESERVED = frozenset(
    {"connect", "connection", "new_namespace", "disconnect", "disconnecting"}
)


class _Registration:
    """Registering handlers and connection middlewares, shared by namespaces and dynamic
    namespace families (whose children get a copy)."""

    handlers: Handlers

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register the handler of ``event`` (one per event): ``connection`` / ``connect``
        (socket), ``disconnecting`` / ``disconnect`` (socket, reason, description), or a client
        event (socket, *args). Events another server sends with ``server_side_emit`` have
        their own registration: :meth:`on_server_side`."""

        def register(fn: F) -> F:
            self.handlers.add(event, fn)
            return fn

        return register if handler is None else register(handler)

    @overload
    def on_server_side(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on_server_side(self, event: str, handler: F) -> F: ...
    def on_server_side(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register the handler of a server-side event: what another server of the cluster
        (aiosio or Node, through a cluster adapter) sends with ``server_side_emit(event,
        *args)`` (Node: ``io.serverSideEmit``). It is called as ``handler(*args)``, sync or
        async; when the sender waits for acknowledgements (``server_side_emit_with_ack``) the
        value it returns is this server's reply. One handler per event.

        Client events and server-side events are kept apart, as Node keeps ``socket.on`` and
        ``io.on``: a client event ``"x"`` never reaches this handler, and ``server_side_emit
        ("x")`` never reaches ``@sio.on("x")``, so a cluster may use one name for both. (A
        server-side event with no handler here still reaches an ``@sio.on`` handler of the same
        name, with a deprecation warning logged once: register it here instead.)"""

        def register(fn: F) -> F:
            self.handlers.add_server_side(event, fn)
            return fn

        return register if handler is None else register(handler)

    @property
    def invalid_payloads(self) -> InvalidPayloads:
        """The payloads typed handlers refused (:mod:`aiosio.typed`): ``counts`` per event name,
        and ``answer``, the function that builds what answers the acknowledgement."""
        return self.handlers.payloads

    def event(self, handler: Handler) -> Handler:
        """Register ``handler`` for the event named like the function."""
        return self.on(handler.__name__, handler)

    def add_connection_listener(self, listener: Callable[[Socket], Any]) -> Callable[[Socket], Any]:
        """Call ``listener(socket)``, sync or async, for each socket accepted, before the
        ``connection`` handler (Node: ``nsp.prependListener("connection", fn)``). Unlike
        :meth:`on`, any number may be added: for tools that watch the sockets of a namespace
        whatever its application does, such as :func:`aiosio.admin.instrument`."""
        self.handlers.add_connection_listener(listener)
        return listener

    def use(self, middleware: Middleware) -> Middleware:
        """Connection middleware ``fn(socket)``, sync or async, run in registration order before
        the socket is accepted; raise :class:`aiosio.ConnectionRefused` to refuse it."""
        self.handlers.add_middleware(middleware)
        return middleware


class Namespace(_Registration, Broadcasting):
    """A namespace. ``@nsp.on("connection")`` receives each socket once it is accepted;
    ``@nsp.on("event")`` handles an event from any of its sockets (socket first, then the
    arguments; the return value answers the acknowledgement)."""

    def __init__(
        self,
        server: NamespaceOwner,
        name: str,
        *,
        handlers: Handlers | None = None,
        parent: DynamicNamespace | None = None,
    ) -> None:
        self.server = server
        self.name = name
        if handlers is None:
            handlers = Handlers()
            handlers.payloads.where = f"namespace {name}"
        self.handlers = handlers
        self.sockets: dict[SocketId, Socket] = {}
        # Recovered sockets whose middlewares are running: in their rooms, holding what a
        # broadcast brings them until they are accepted (the adapter reads it: pending).
        self._pending: dict[SocketId, Socket] = {}
        self._ack_counter = 0
        self._connecting = 0  # CONNECTs being handled (middlewares running)
        # The dynamic namespace that created this one, when it removes its empty children.
        self._removed_when_empty = parent
        # Event names warned of as server-side events run by a client-event handler.
        self._warned_server_side = OncePer()
        # Event names a client asked an ack for with no handler (bounded: the client names them).
        self._warned_unhandled = OncePer(limit=100)
        self.adapter: Adapter = server.make_adapter(self)

    def __repr__(self) -> str:
        return f"<aiosio.Namespace {self.name!r} sockets={len(self.sockets)}>"

    @property
    def recovery(self) -> Recovery | None:
        """Connection state recovery, when the server has it on."""
        return self.server.connection_state_recovery

    @property
    def recovery_enabled(self) -> bool:
        return self.server.connection_state_recovery is not None

    # -- broadcasting -----------------------------------------------------------------------------

    # The broadcast API (emit, to, volatile, ...) is Broadcasting's, over this operator.

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self.adapter)

    def server_side_emit(self, event: str, *args: Any) -> None:
        """Send an event to the other servers of the cluster: their :meth:`on_server_side`
        handlers (Node: ``io.on``) receive ``*args``."""
        _check_server_side_event(event)
        self.adapter.server_side_emit([event, *args])

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list[Any]:
        """Like :meth:`server_side_emit`, and gather one reply per other server."""
        _check_server_side_event(event)
        return await self.adapter.server_side_emit_with_ack([event, *args], timeout)

    # -- what the adapter sees (NamespaceView) ----------------------------------------------------

    @property
    def parser(self) -> Parser:
        return self.server.parser

    @property
    def pending(self) -> Mapping[SocketId, Socket]:
        """The recovered sockets whose connection middlewares are running (see
        :class:`~aiosio.server.adapter.PendingSocket`)."""
        return self._pending

    def next_ack_id(self) -> int:
        ack_id = self._ack_counter
        self._ack_counter += 1
        return ack_id

    def receive_server_side_emit(
        self, args: list[Any], reply: Callable[[list[Any]], None] | None
    ) -> None:
        """An event another server sent with ``server_side_emit``: to its
        :meth:`on_server_side` handler, called with the arguments; what it returns answers
        ``reply``."""
        name = str(args[0])
        handler = self.handlers.server_side.get(name)
        if handler is None:
            handler = self.handlers.events.get(name)
            if handler is None:
                return
            self._warn_server_side_on(name)

        invoke(handler, args[1:], (name, reply), _answer_server_side, _server_side_failed)

    def _warn_server_side_on(self, name: str) -> None:
        if not self._warned_server_side.first(name):
            return
        logger.warning(
            "deprecated: the server-side event %r (server_side_emit from another server) ran "
            "the handler registered with on(%r) on namespace %s, which is for client events; "
            "register it with on_server_side(%r) instead (it is then no longer called for "
            "server-side events)",
            name,
            name,
            self.name,
            name,
        )

    # -- connecting (what a connection sees: ConnectableNamespace) --------------------------------

    async def add_client(self, client: SocketHost, auth: dict[str, Any]) -> None:
        """A client asked to connect: restore or create its socket, run the middlewares, accept
        or refuse (namespace.ts ``_add``)."""
        self._connecting += 1
        try:
            await self._connect_socket(client, auth)
        finally:
            self._connecting -= 1
            self._remove_if_empty()

    async def _connect_socket(self, client: SocketHost, auth: dict[str, Any]) -> None:
        socket = await self._create_socket(client, auth)
        if socket.recovered:
            self._pending[socket.id] = socket  # in its rooms already (Socket.__init__)
        try:
            recovery = self.server.connection_state_recovery
            if not (recovery is not None and recovery.skip_middlewares and socket.recovered):
                try:
                    for middleware in self.handlers.middlewares:
                        await call_async(middleware, socket)
                except Exception as exc:  # noqa: BLE001 - any middleware error refuses it
                    socket.discard()
                    if client.conn.ready_state == "open":
                        self._refuse(client, socket, exc)
                    return
            if client.conn.ready_state != "open":
                socket.discard()
                return
            if self._pending.get(socket.id) is socket:
                del self._pending[socket.id]
            self.sockets[socket.id] = socket
            socket.accept()
        finally:
            socket.discard()  # cancelled while its middlewares ran: in no room (else a no-op)

    async def _create_socket(self, client: SocketHost, auth: dict[str, Any]) -> Socket:
        conn = client.conn
        if conn.protocol == 3:
            sid = SocketId(conn.id if self.name == "/" else f"{self.name}#{conn.id}")
        else:
            sid = SocketId(new_pid())
        pid = auth.get("pid")
        offset = auth.get("offset")
        recovering = self.recovery_enabled
        if recovering and isinstance(pid, str) and isinstance(offset, str):
            session = await self.adapter.restore_session(pid, offset)
            if session is not None:
                return Socket(self, client, auth, sid=session.sid, restored=session)
        return Socket(self, client, auth, sid=sid, pid=new_pid() if recovering else None)

    def _refuse(self, client: SocketHost, socket: Socket, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefused):
            message, data = exc.message, exc.data
        else:
            message, data = str(exc), None
            logger.warning(
                "middleware of namespace %s raised %s: refusing the connection; raise "
                "aiosio.ConnectionRefused(message, data=...) to refuse on purpose",
                self.name,
                type(exc).__name__,
                exc_info=exc,
            )
        logger.warning(
            "namespace %s refused %s from %s: %s",
            self.name,
            socket.id,
            socket.handshake.address or "?",
            message,
        )
        payload: Any
        if client.conn.protocol == 3:
            payload = data if data is not None else message
        else:
            payload = {"message": message} if data is None else {"message": message, "data": data}
        client.write(Packet(PacketType.CONNECT_ERROR, self.name, payload))

    # -- what a socket sees (NamespaceHost) -------------------------------------------------------

    def remove(self, socket: LocalSocket) -> None:
        """``socket`` left the namespace."""
        if self.sockets.get(socket.id) is socket:
            del self.sockets[socket.id]
        elif self._pending.get(socket.id) is socket:
            del self._pending[socket.id]
        self._remove_if_empty()

    def unhandled_ack(self, event: str) -> None:
        """A client asked for an acknowledgement of ``event`` and no handler takes it: its
        ``emitWithAck`` waits for an answer that cannot come (until its own timeout, if it set
        one). Said once per event name (at most 100 names per namespace), at WARNING."""
        if self._warned_unhandled.first(event):
            logger.warning(
                "a client of namespace %s asked for an acknowledgement of event %r, which no "
                "handler takes: it waits for an answer that will not come. Register one with "
                "%son(%r) (or check the namespace and the event name the client uses); said once "
                "per event",
                self.name,
                event,
                "sio." if self.name == "/" else f"sio.of({self.name!r}).",
                event,
            )

    def _remove_if_empty(self) -> None:
        """With ``cleanup_empty_child_namespaces``, a child namespace goes when its last socket
        has left and no connection to it is in progress (parent-namespace.ts ``createChild``)."""
        parent = self._removed_when_empty
        if parent is None or self.sockets or self._connecting:
            return
        self._removed_when_empty = None
        parent._remove_child(self)


class DynamicNamespace(_Registration):
    """A family of namespaces created on first connection (``sio.of(regex)`` or a callable).
    Children get the handlers and middlewares registered here (those registered before the
    child was created, as the reference)."""

    def __init__(self, server: NamespaceOwner, matcher: re.Pattern[str] | NamespaceMatcher) -> None:
        self.server = server
        self.matcher = matcher
        self.handlers = Handlers()
        self.handlers.payloads.where = f"dynamic namespace {_describe(matcher)}"
        self.children: dict[str, Namespace] = {}
        self._matcher = None if isinstance(matcher, re.Pattern) else Callback(matcher)

    async def matches(self, name: str, auth: dict[str, Any]) -> bool:
        if isinstance(self.matcher, re.Pattern):
            return self.matcher.search(name) is not None
        assert self._matcher is not None
        return bool(await call_async(self._matcher, name, auth))

    def create_child(self, name: str) -> Namespace:
        cleanup = self.server.cleanup_empty_child_namespaces
        child = Namespace(
            self.server, name, handlers=self.handlers.copy(), parent=self if cleanup else None
        )
        self.children[name] = child
        if len(self.children) == MANY_CHILDREN and not cleanup:
            logger.warning(
                "the dynamic namespace %s has %d child namespaces, and they stay when empty: "
                "each name a client connects to is kept; set "
                "Server(cleanup_empty_child_namespaces=True) if clients choose the names",
                _describe(self.matcher),
                MANY_CHILDREN,
            )
        return child

    def _remove_child(self, child: Namespace) -> None:
        logger.debug("removing the empty child namespace %s", child.name)
        if self.children.get(child.name) is child:
            del self.children[child.name]
        self.server.namespace_removed(child)
        result = child.adapter.close()
        if inspect.iscoroutine(result):
            run_eager(
                result,
                _ignore,
                lambda exc: logger.error(
                    "closing the adapter of the empty namespace %s failed", child.name, exc_info=exc
                ),
            )

    def emit(self, event: str, *args: Any) -> None:
        for child in list(self.children.values()):
            child.emit(event, *args)


def _ignore(_value: Any) -> None:
    return None


def _answer_server_side(event: tuple[str, Callable[[list[Any]], None] | None], value: Any) -> None:
    reply = event[1]
    if reply is not None:
        reply([value])


def _server_side_failed(
    event: tuple[str, Callable[[list[Any]], None] | None], exc: BaseException
) -> None:
    logger.error("server-side handler of %r raised", event[0], exc_info=exc)


def _describe(matcher: re.Pattern[str] | NamespaceMatcher) -> str:
    if isinstance(matcher, re.Pattern):
        return f"re.compile({matcher.pattern!r})"
    return getattr(matcher, "__qualname__", repr(matcher))


def _check_server_side_event(event: str) -> None:
    if event in SERVER_SIDE_RESERVED:
        raise ValueError(f"{event!r} is a reserved event name")

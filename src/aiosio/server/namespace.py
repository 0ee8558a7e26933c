"""Namespaces: static (``sio.of("/admin")``) and dynamic (``sio.of(re.compile(...))`` or a
callable), each with its handlers, connection middlewares, sockets and adapter
(``namespace.ts``, ``parent-namespace.ts``)."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aiosio.errors import ConnectionRefused
from aiosio.protocol.socketio import Packet, PacketType
from aiosio.server.adapter import (
    Adapter,
    BroadcastFlags,
    PersistedSession,
    SocketId,
    new_pid,
)
from aiosio.server.broadcast import BroadcastOperator
from aiosio.server.socket import Socket

if TYPE_CHECKING:
    from aiosio.server.client import Client
    from aiosio.server.server import Server

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Namespace", "NamespaceMatcher"]

logger = logging.getLogger("aiosio.server")

Handler = Callable[..., Any]
Middleware = Callable[[Socket], Awaitable[None] | None]
NamespaceMatcher = Callable[[str, dict[str, Any]], bool | Awaitable[bool]]

# Children of one dynamic namespace past which, if they stay when empty, a warning says so once.
MANY_CHILDREN = 1000

LIFECYCLE = frozenset({"connect", "connection", "disconnecting", "disconnect"})

RECOVERABLE = frozenset(
    {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }
)


class _Registry:
    """Handlers and connection middlewares, shared by namespaces and dynamic namespace
    families. Lifecycle handlers are kept apart from event handlers: a client event named
    "connection" must never run the connection handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lifecycle: dict[str, Handler] = {}
        self._middlewares: list[Middleware] = []

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register the handler of ``event`` (one per event): ``connection`` / ``connect``
        (socket), ``disconnecting`` / ``disconnect`` (socket, reason, description), or a client
        event (socket, *args)."""

        def register(fn: F) -> F:
            if event in LIFECYCLE:
                self._lifecycle["connection" if event == "connect" else event] = fn
            else:
                self._handlers[event] = fn
            return fn

        return register if handler is None else register(handler)

    def event(self, handler: Handler) -> Handler:
        """Register ``handler`` for the event named like the function."""
        return self.on(handler.__name__, handler)

    def use(self, middleware: Middleware) -> Middleware:
        """Connection middleware ``fn(socket)``, sync or async, run in registration order before
        the socket is accepted; raise :class:`aiosio.ConnectionRefused` to refuse it."""
        self._middlewares.append(middleware)
        return middleware


class Namespace(_Registry):
    """A namespace. ``@nsp.on("connection")`` receives each socket once it is accepted;
    ``@nsp.on("event")`` handles an event from any of its sockets (socket first, then the
    arguments; the return value answers the acknowledgement)."""

    def __init__(self, server: Server, name: str) -> None:
        self.server = server
        self.name = name
        super().__init__()
        self.sockets: dict[SocketId, Socket] = {}
        self._ack_counter = 0
        self._connecting = 0  # CONNECTs being handled (middlewares running)
        # The dynamic namespace that created this one, when it removes its empty children.
        self._removed_when_empty: DynamicNamespace | None = None
        self.adapter: Adapter = server._make_adapter(self)

    def __repr__(self) -> str:
        return f"<aiosio.Namespace {self.name!r} sockets={len(self.sockets)}>"

    @property
    def recovery_enabled(self) -> bool:
        return self.server.connection_state_recovery is not None

    # -- registration ---------------------------------------------------------------------------

    # -- broadcasting -----------------------------------------------------------------------------

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self.adapter)

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every socket of the namespace."""
        self._operator().emit(event, *args)

    def send(self, *args: Any) -> None:
        self.emit("message", *args)

    def to(self, *rooms: Any) -> BroadcastOperator:
        return self._operator().to(*rooms)

    in_ = to

    def except_(self, *rooms: Any) -> BroadcastOperator:
        return self._operator().except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        return self._operator().volatile

    @property
    def local(self) -> BroadcastOperator:
        return self._operator().local

    def compress(self, value: bool) -> BroadcastOperator:
        return self._operator().compress(value)

    def timeout(self, seconds: float) -> BroadcastOperator:
        return self._operator().timeout(seconds)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Broadcast with acknowledgements; see :meth:`BroadcastOperator.emit_with_ack`."""
        return await self._operator().emit_with_ack(event, *args)

    async def fetch_sockets(self) -> list[Any]:
        return await self._operator().fetch_sockets()

    def sockets_join(self, *rooms: str) -> None:
        self._operator().sockets_join(*rooms)

    def sockets_leave(self, *rooms: str) -> None:
        self._operator().sockets_leave(*rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        self._operator().disconnect_sockets(close)

    def server_side_emit(self, event: str, *args: Any) -> None:
        """Send an event to the other servers of the cluster (their ``on(event)`` handlers)."""
        _check_server_side_event(event)
        self.adapter.server_side_emit([event, *args])

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list[Any]:
        """Like :meth:`server_side_emit`, and gather one reply per other server."""
        _check_server_side_event(event)
        return await self.adapter.server_side_emit_with_ack([event, *args], timeout)

    # -- adapter view ---------------------------------------------------------------------------

    def _next_ack_id(self) -> int:
        ack_id = self._ack_counter
        self._ack_counter += 1
        return ack_id

    def _on_server_side_emit(
        self, args: list[Any], reply: Callable[[list[Any]], None] | None
    ) -> None:
        handler = self._handlers.get(str(args[0]))
        if handler is None:
            return
        try:
            result = handler(*args[1:])
        except Exception:
            logger.exception("server-side handler of %r raised", args[0])
            return
        if inspect.iscoroutine(result):
            from aiosio._eager import run_eager

            run_eager(
                result,
                lambda value: reply([value]) if reply else None,
                lambda exc: logger.error("server-side handler raised", exc_info=exc),
            )
        elif reply is not None:
            reply([result])

    # -- connecting -----------------------------------------------------------------------------

    async def _add(self, client: Client, auth: dict[str, Any]) -> None:
        """A client asked to connect: restore or create its socket, run the middlewares, accept
        or refuse (namespace.ts ``_add``)."""
        self._connecting += 1
        try:
            await self._connect_socket(client, auth)
        finally:
            self._connecting -= 1
            self._remove_if_empty()

    async def _connect_socket(self, client: Client, auth: dict[str, Any]) -> None:
        socket = self._create_socket(client, auth)
        recovery = self.server.connection_state_recovery
        if not (recovery is not None and recovery.skip_middlewares and socket.recovered):
            try:
                for middleware in self._middlewares:
                    result = middleware(socket)
                    if inspect.isawaitable(result):
                        await result
            except Exception as exc:  # noqa: BLE001 - any middleware error refuses the socket
                if client.conn.ready_state != "open":
                    socket._cleanup()
                    return
                socket._cleanup()
                self._refuse(client, socket, exc)
                return
        if client.conn.ready_state != "open":
            socket._cleanup()
            return
        self._do_connect(client, socket)

    def _create_socket(self, client: Client, auth: dict[str, Any]) -> Socket:
        if client.conn.protocol == 3:
            sid = SocketId(client.conn.id if self.name == "/" else f"{self.name}#{client.conn.id}")
        else:
            sid = SocketId(new_pid())
        pid = auth.get("pid")
        offset = auth.get("offset")
        if self.recovery_enabled and isinstance(pid, str) and isinstance(offset, str):
            session = self.adapter.restore_session(pid, offset)
            if session is not None:
                return self._restored_socket(client, auth, session)
        return Socket(
            self,
            client,
            auth,
            sid=sid,
            pid=new_pid() if self.recovery_enabled else None,
        )

    def _restored_socket(
        self, client: Client, auth: dict[str, Any], session: PersistedSession
    ) -> Socket:
        socket = Socket(self, client, auth, sid=session.sid, pid=session.pid)
        socket.recovered = True
        socket.data = session.data
        # Rooms are joined once the socket is accepted (a socket joins no room before every
        # middleware accepted it), in _do_connect.
        socket._restored_rooms = [room for room in session.rooms if room != socket.id]
        # The reference writes the missed packets before the CONNECT packet.
        for data in session.missed_packets:
            socket._write(Packet(PacketType.EVENT, self.name, data), BroadcastFlags())
        return socket

    def _refuse(self, client: Client, socket: Socket, exc: Exception) -> None:
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

    def _do_connect(self, client: Client, socket: Socket) -> None:
        self.sockets[socket.id] = socket
        if socket._restored_rooms:
            self.adapter.add_all(socket.id, socket._restored_rooms)
        socket._on_connect()
        client.accepted(socket)
        handler = self._lifecycle.get("connection")
        if handler is not None:
            socket._call_safely(handler, (socket,))

    def _on_socket_closing(self, socket: Socket, reason: str, description: Any) -> None:
        if self.recovery_enabled and reason in RECOVERABLE and socket.pid is not None:
            self.adapter.persist_session(
                PersistedSession(
                    sid=socket.id,
                    pid=socket.pid,
                    rooms=sorted(socket.rooms),
                    data=socket.data,
                )
            )

    def _remove(self, socket: Socket) -> None:
        if self.sockets.get(socket.id) is socket:
            del self.sockets[socket.id]
        self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        """With ``cleanup_empty_child_namespaces``, a child namespace goes when its last socket
        has left and no connection to it is in progress (parent-namespace.ts ``createChild``)."""
        parent = self._removed_when_empty
        if parent is None or self.sockets or self._connecting:
            return
        self._removed_when_empty = None
        parent._remove_child(self)


class DynamicNamespace(_Registry):
    """A family of namespaces created on first connection (``sio.of(regex)`` or a callable).
    Children get the handlers and middlewares registered here (those registered before the
    child was created, as the reference)."""

    def __init__(self, server: Server, matcher: re.Pattern[str] | NamespaceMatcher) -> None:
        self.server = server
        self.matcher = matcher
        super().__init__()
        self.children: dict[str, Namespace] = {}

    async def matches(self, name: str, auth: dict[str, Any]) -> bool:
        if isinstance(self.matcher, re.Pattern):
            return self.matcher.search(name) is not None
        result = self.matcher(name, auth)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    def create_child(self, name: str) -> Namespace:
        child = Namespace(self.server, name)
        child._handlers = dict(self._handlers)
        child._lifecycle = dict(self._lifecycle)
        child._middlewares = list(self._middlewares)
        if self.server.cleanup_empty_child_namespaces:
            child._removed_when_empty = self
        self.children[name] = child
        if len(self.children) == MANY_CHILDREN and not self.server.cleanup_empty_child_namespaces:
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
        self.server._forget_namespace(child)
        result = child.adapter.close()
        if inspect.iscoroutine(result):
            from aiosio._eager import run_eager

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


def _describe(matcher: re.Pattern[str] | NamespaceMatcher) -> str:
    if isinstance(matcher, re.Pattern):
        return f"re.compile({matcher.pattern!r})"
    return getattr(matcher, "__qualname__", repr(matcher))


def _check_server_side_event(event: str) -> None:
    if event in ("connect", "connection", "new_namespace", "disconnect", "disconnecting"):
        raise ValueError(f"{event!r} is a reserved event name")

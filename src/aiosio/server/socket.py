"""The server-side Socket: one client's connection to one namespace (``socket.ts``)."""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

from aiosio._acks import wait_ack
from aiosio._eager import Callback
from aiosio._eager import ignore
from aiosio._eager import invoke
from aiosio._encodable import ENCODE_ERRORS
from aiosio._encodable import raise_encoding_error
from aiosio._encodable import return_value_error
from aiosio._events import HandlerRegistry
from aiosio.engine.http import HttpRequest
from aiosio.engine.server import EngineSocket
from aiosio.engine.server import PreparedMessage
from aiosio.errors import Disconnected
from aiosio.protocol.reasons import RECOVERABLE
from aiosio.protocol.reasons import DisconnectReason
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import check_event_name
from aiosio.server.adapter import BroadcastFlags
from aiosio.server.adapter import BroadcastOptions
from aiosio.server.adapter import PersistedSession
from aiosio.server.adapter import Room
from aiosio.server.adapter import SocketId
from aiosio.server.broadcast import BroadcastOperator
from aiosio.server.broadcast import Targeting
from aiosio.server.interfaces import NamespaceHost
from aiosio.server.interfaces import SocketHost
from aiosio.typed import InvalidPayloads

__all__ = ["Handshake", "Socket", "SocketState"]

C = TypeVar("C")
logger = logging.getLogger("aiosio.server")

Handler = Callable[..., Any]


@dataclass(slots=True)
class Handshake:
    """What the client presented when it connected (``socket.handshake`` in the reference)."""

    headers: dict[str, str]
    time: str
    address: str | None
    xdomain: bool
    secure: bool
    issued: int
    url: str
    query: dict[str, str]
    auth: dict[str, Any] = field(default_factory=dict)


def _js_date(now: float) -> str:
    # JavaScript's `new Date() + ""` in UTC, e.g. "Mon Jan 15 2024 12:34:56 GMT+0000 (...)".
    tm = time.gmtime(now)
    return time.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", tm)


class SocketState(enum.Enum):
    """Where a socket is in its life; every transition is in :class:`Socket`.

    ::

        CONNECTING --accept()--> CONNECTED --handle_close()--> DISCONNECTING --> DISCONNECTED
            |                                                   (its ``disconnecting``
            +--discard() (refused by a middleware, or the       handlers run here)
               connection closed meanwhile)-------------------------------------^
    """

    CONNECTING = "connecting"  # created; the namespace's middlewares are running
    CONNECTED = "connected"  # accepted: receives events, is in its rooms
    DISCONNECTING = "disconnecting"  # leaving: still in its rooms, no more events
    DISCONNECTED = "disconnected"  # gone: in no room, joins nothing


_CONNECTED = SocketState.CONNECTED  # read on every packet: Python 3.11 enum access is a call
_NO_FLAGS = BroadcastFlags()
# A packet held for a recovered socket until it is accepted: one it missed (encoded when it
# is written), or a broadcast prepared for every recipient.
_Held = tuple[Packet, Sequence[PreparedMessage] | None, BroadcastFlags]
_EVENT = PacketType.EVENT
# What the socket itself emits to its own handlers (never validated as a client's payload).
_OWN_EVENTS = frozenset({"disconnecting", "disconnect", "error"})


class Socket(HandlerRegistry, Targeting):
    """A client connected to a namespace.

    Events received from the client go to the namespace's handlers (``@sio.on("chat")``,
    called with this socket then the arguments) and to this socket's own handlers
    (``socket.on("chat", fn)`` or ``@socket.on("chat")``, called with the arguments only; ``off``
    removes them). The value a handler returns answers the client's acknowledgement.

    The methods under "the server's side" are called by the connection, the namespace and the
    adapter (they implement :class:`~aiosio.server.interfaces.HostedSocket` and
    :class:`~aiosio.server.adapter.LocalSocket`); applications do not need them.
    """

    def __init__(
        self,
        nsp: NamespaceHost,
        client: SocketHost,
        auth: dict[str, Any],
        *,
        sid: SocketId,
        pid: str | None = None,
        restored: PersistedSession | None = None,
    ) -> None:
        self.nsp = nsp
        self.client = client
        self._conn = client.conn  # what a broadcast writes to, without the Client in between
        # Whether packet listeners watch the connection (fixed when it opened), read by each
        # broadcast without the Client in between, like _conn.
        self._watched = bool(client.packet_listeners)
        self.id = sid
        self.pid = pid
        self.state = SocketState.CONNECTING
        self.recovered = restored is not None
        self.data: dict[str, Any] = {}
        self.handshake = _build_handshake(client.conn, auth, client.proxy_header)
        self._handlers: dict[str, list[Callback]] = {}
        self._any: list[Callback] = []
        self._any_outgoing: list[Callback] = []
        self._middlewares: list[Callback] = []
        self._acks: dict[int, Callable[[list[Any]], None]] = {}
        self._ack_failures: dict[int, Callable[[BaseException], None]] = {}
        self._flags = BroadcastFlags()
        # What reaches a recovered socket before it is accepted (see :meth:`hold`); None once
        # it is accepted or gone, and for a new socket, which nothing reaches before that.
        self._held: list[_Held] | None = None
        self._held_size = 0
        if restored is not None:
            self.pid = restored.pid
            self.data = restored.data
            # As the reference (socket.ts constructor), a recovered socket is back in its rooms
            # at once, before the middlewares run: a broadcast made while they run reaches it
            # (its restore returned what came before). What reaches it is held, after the
            # packets it missed, and written before the CONNECT packet when it is accepted
            # (the reference writes them as they come; the client buffers them until CONNECT);
            # a refusal drops them, and the socket leaves the rooms (discard).
            self._held = [
                (Packet(PacketType.EVENT, nsp.name, data), None, _NO_FLAGS)
                for data in restored.missed_packets
            ]
            nsp.adapter.add_all(sid, [sid, *restored.rooms])

    def __repr__(self) -> str:
        return f"<aiosio.Socket {self.id} nsp={self.nsp.name!r} connected={self.connected}>"

    # -- properties -------------------------------------------------------------------------------

    @property
    def conn(self) -> EngineSocket:
        """The Engine.IO session under this socket (transport name, upgrade events)."""
        return self._conn

    @property
    def connected(self) -> bool:
        """True from its acceptance until it left, its ``disconnecting`` handlers included (as
        the reference)."""
        state = self.state
        return state is _CONNECTED or state is SocketState.DISCONNECTING

    @property
    def disconnected(self) -> bool:
        return not self.connected

    @property
    def request(self) -> HttpRequest:
        """The HTTP request that opened the connection (Node: ``socket.request``): headers,
        query, client address, ``secure``."""
        return self.client.conn.request

    @property
    def rooms(self) -> set[Room]:
        """The rooms this socket is in, its own id included."""
        return self.nsp.adapter.socket_rooms(self.id)

    @property
    def pending_acks(self) -> int:
        """How many acknowledgements this socket still waits for from its client (answered,
        timed out or failed by the disconnection, an ack is forgotten): for tests and
        monitoring, a number that grows without bound is a leak."""
        return len(self._acks.keys() | self._ack_failures.keys())

    # -- handlers ---------------------------------------------------------------------------------

    def _payload_checks(self, event: str) -> InvalidPayloads | None:
        """A handler of a client event (``socket.on("chat")``) is validated as the namespace's
        are (:mod:`aiosio.typed`); the socket's own events are not."""
        return None if event in _OWN_EVENTS else self.nsp.handlers.payloads

    def on_any(self, handler: Handler) -> Handler:
        """``handler(event, *args)`` for every event received (before ``use`` middleware)."""
        self._any.append(Callback(handler))
        return handler

    def off_any(self, handler: Handler | None = None) -> None:
        self._any = [] if handler is None else _without(self._any, handler)

    def on_any_outgoing(self, handler: Handler) -> Handler:
        """``handler(event, *args)`` for every event sent to this client (emits and broadcasts)."""
        self._any_outgoing.append(Callback(handler))
        return handler

    def off_any_outgoing(self, handler: Handler | None = None) -> None:
        self._any_outgoing = [] if handler is None else _without(self._any_outgoing, handler)

    def prepend_any(self, handler: Handler) -> Handler:
        """:meth:`on_any`, called before the catch-all listeners already added."""
        self._any.insert(0, Callback(handler))
        return handler

    def prepend_any_outgoing(self, handler: Handler) -> Handler:
        """:meth:`on_any_outgoing`, called before those already added."""
        self._any_outgoing.insert(0, Callback(handler))
        return handler

    def listeners_any(self) -> list[Handler]:
        """The catch-all listeners of incoming events, in calling order."""
        return [callback.fn for callback in self._any]

    def listeners_any_outgoing(self) -> list[Handler]:
        """The catch-all listeners of outgoing events, in calling order."""
        return [callback.fn for callback in self._any_outgoing]

    def use(self, middleware: Handler) -> Handler:
        """Per-packet middleware ``fn(event, args)``: raise to drop the packet (the exception is
        passed to this socket's ``error`` handlers); may be async."""
        self._middlewares.append(Callback(middleware))
        return middleware

    # -- emitting ---------------------------------------------------------------------------------

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to this client; non-blocking."""
        check_event_name(event)
        flags, self._flags = self._flags, BroadcastFlags()
        packet = Packet(PacketType.EVENT, self.nsp.name, [event, *args])
        try:
            if self.nsp.recovery is not None:
                # With recovery, events go through the adapter so they get an offset.
                self.nsp.adapter.broadcast(
                    packet, BroadcastOptions(rooms=frozenset({self.id}), flags=flags)
                )
                return
            self._notify_outgoing(packet.data)
            self._write(packet, flags)
        except ENCODE_ERRORS as exc:
            raise_encoding_error(f"socket.emit({event!r})", args, exc)

    def send(self, *args: Any) -> None:
        """``emit("message", *args)``."""
        self.emit("message", *args)

    def emit_with_ack(self, event: str, *args: Any) -> Awaitable[Any]:
        """Send an event and wait for the client's acknowledgement; returns its first argument
        (``None`` when it sent none). With ``socket.timeout(s)``, raises :class:`AckTimeout`
        after ``s`` seconds; raises :class:`Disconnected` if the connection ends first.

        The event is sent at the call, with the flags set for it (``timeout``, ``volatile``),
        as ``socket.timeout(s).emitWithAck()`` does: a second call made before the first is
        awaited has its own flags and goes out after it."""
        return _first(self.emit_with_ack_all(event, *args))

    def emit_with_ack_all(self, event: str, *args: Any) -> Awaitable[list[Any]]:
        """Like :meth:`emit_with_ack` but returns every argument of the acknowledgement."""
        check_event_name(event)
        flags, self._flags = self._flags, BroadcastFlags()
        ack_id = self.nsp.next_ack_id()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

        def resolve(args: list[Any]) -> None:
            if not future.done():
                future.set_result(args)

        def fail(exc: BaseException) -> None:
            if not future.done():
                future.set_exception(exc)

        timer = self.nsp.handlers.ack_timer
        self._acks[ack_id] = resolve if timer is None else timer(resolve)
        self._ack_failures[ack_id] = fail
        packet = Packet(PacketType.EVENT, self.nsp.name, [event, *args], ack_id)
        try:
            self._notify_outgoing(packet.data)
            self._write(packet, flags)
        except ENCODE_ERRORS as exc:
            self._drop_ack(ack_id)
            raise_encoding_error(f"socket.emit_with_ack({event!r})", args, exc)
        except BaseException:
            self._drop_ack(ack_id)
            raise
        return self._ack_of(future, ack_id, event, flags.timeout)

    async def _ack_of(
        self, future: asyncio.Future[list[Any]], ack_id: int, event: str, timeout: float | None
    ) -> list[Any]:
        try:
            return await wait_ack(
                future, timeout, "socket %s did not acknowledge %r", self.id, event
            )
        finally:
            self._drop_ack(ack_id)

    def _drop_ack(self, ack_id: int) -> None:
        self._acks.pop(ack_id, None)
        self._ack_failures.pop(ack_id, None)

    def _write(self, packet: Packet, flags: BroadcastFlags) -> None:
        self.client.write(packet, volatile=flags.volatile)

    def _notify_outgoing(self, data: list[Any]) -> None:
        for handler in tuple(self._any_outgoing):
            self._call_safely(handler, data)

    # flags (one-shot, like the reference) --------------------------------------------------------

    def timeout(self, seconds: float) -> Socket:
        """The next ``emit_with_ack`` fails with :class:`AckTimeout` after ``seconds``."""
        self._flags = _replace(self._flags, timeout=seconds)
        return self

    @property
    def volatile(self) -> Socket:
        """The next emit is dropped if the transport cannot take it now."""
        self._flags = _replace(self._flags, volatile=True)
        return self

    def compress(self, value: bool) -> Socket:
        self._flags = _replace(self._flags, compress=value)
        return self

    # broadcasting from this socket ---------------------------------------------------------------

    # to, in_, except_ and local are Targeting's, over this operator: this socket left out.

    def _operator(self) -> BroadcastOperator:
        flags, self._flags = self._flags, BroadcastFlags()
        return BroadcastOperator(self.nsp.adapter, except_rooms=frozenset({self.id}), flags=flags)

    @property
    def broadcast(self) -> BroadcastOperator:
        """Everyone in the namespace but this socket."""
        return self._operator()

    # -- rooms ------------------------------------------------------------------------------------

    def join(self, *rooms: Room) -> None:
        """Join rooms. Another socket's id is not a room one may join."""
        if self.state is SocketState.DISCONNECTED:
            return
        adapter = self.nsp.adapter
        for room in rooms:
            if room != self.id and adapter.is_socket_id(room):
                raise ValueError(f"room {room!r} is the id of another socket")
        adapter.add_all(self.id, rooms)

    def leave(self, room: Room) -> None:
        if room == self.id:
            return  # a socket always stays in its own room while connected
        self.nsp.adapter.delete(self.id, room)

    # -- disconnecting ----------------------------------------------------------------------------

    def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace (``server namespace disconnect``); with ``close``,
        close the whole connection and every namespace on it."""
        if self.state is not _CONNECTED:
            return
        if close:
            self.client.disconnect_all()
            return
        self._write(Packet(PacketType.DISCONNECT, self.nsp.name), BroadcastFlags())
        self.handle_close(DisconnectReason.SERVER_NAMESPACE_DISCONNECT)

    # -- the server's side: the namespace ---------------------------------------------------------

    def accept(self) -> None:
        """Every middleware accepted the socket (CONNECTING -> CONNECTED): it joins its rooms,
        the client gets the CONNECT packet, the connection routes packets to it, and the
        namespace's ``connection`` handler runs."""
        if self.state is not SocketState.CONNECTING:
            return
        self.state = _CONNECTED
        self.join(self.id)
        held, self._held = self._held, None
        if held:
            self._held_size = 0
            for packet, messages, flags in held:
                if messages is None:
                    self._write(packet, flags)
                else:
                    self.deliver(packet, messages, flags)
        data: dict[str, Any] | None
        if self._conn.protocol == 3:
            data = None
        elif self.pid is not None:
            data = {"sid": self.id, "pid": self.pid}
        else:
            data = {"sid": self.id}
        self._write(Packet(PacketType.CONNECT, self.nsp.name, data), BroadcastFlags())
        self.client.accepted(self)
        handlers = self.nsp.handlers
        for listener in handlers.connection_listeners:
            self._call_safely(listener, (self,))
        handler = handlers.lifecycle.get("connection")
        if handler is not None:
            self._call_safely(handler, (self,))

    def discard(self) -> None:
        """The socket was refused, or its connection closed while it was being connected
        (CONNECTING -> DISCONNECTED): it leaves whatever a middleware made it join."""
        if self.state is SocketState.CONNECTING:
            self._held = None
            self._cleanup()

    # -- the server's side: the adapter -----------------------------------------------------------

    def deliver(
        self, packet: Packet, messages: Sequence[PreparedMessage], flags: BroadcastFlags
    ) -> None:
        """Write a broadcast prepared once for every recipient. Straight to the engine socket:
        with thousands of recipients each object read is a cache miss."""
        if self._any_outgoing:
            self._notify_outgoing(packet.data)
        conn = self._conn
        if flags.volatile and not conn.writable:
            return
        for message in messages:
            conn.send_prepared(message)
        if self._watched:
            self.client.sent([message.data for message in messages])

    def hold(
        self, packet: Packet, messages: Sequence[PreparedMessage], flags: BroadcastFlags
    ) -> None:
        """A broadcast that reaches this recovered socket while its middlewares run: kept, in
        order, for :meth:`accept` to deliver before the CONNECT packet (dropped if it is
        refused). Bounded as what waits for a client that does not read: past
        ``max_outbound_buffer`` bytes the connection is closed."""
        held = self._held
        if held is None:
            return
        if self._conn.ready_state != "open":
            held.clear()  # the connection is gone: the socket is discarded once they end
            self._held_size = 0
            return
        self._held_size += sum(len(message.data) for message in messages)
        limit = self._conn.server.max_outbound_buffer
        if self._held_size > limit:
            logger.warning(
                "closing session %s of %s: %d bytes of broadcasts wait for socket %s of "
                "namespace %s, recovered, whose middlewares have not accepted it yet "
                "(max_outbound_buffer=%d)",
                self._conn.id,
                self._conn.remote_address or "?",
                self._held_size,
                self.id,
                self.nsp.name,
                limit,
            )
            held.clear()
            self._held_size = 0
            self._conn.close()
            return
        held.append((packet, messages, flags))

    def expect_ack(self, ack_id: int, callback: Callable[[list[Any]], None]) -> None:
        timer = self.nsp.handlers.ack_timer
        self._acks[ack_id] = callback if timer is None else timer(callback)

    def forget_ack(self, ack_id: int) -> None:
        self._acks.pop(ack_id, None)

    # -- the server's side: the connection --------------------------------------------------------

    def handle_packet(self, packet: Packet) -> None:
        """A packet from the client for this namespace."""
        ptype = packet.type
        if ptype is _EVENT:
            args: list[Any] = packet.data
            if self._any:
                for handler in tuple(self._any):
                    self._call_safely(handler, args)
            if self._middlewares:
                self._run_middlewares(args[0], args[1:], packet.id, 0)
            else:
                self._dispatch(args, packet.id)
        elif ptype is PacketType.ACK:
            if packet.id is not None:
                callback = self._acks.pop(packet.id, None)
                self._ack_failures.pop(packet.id, None)
                if callback is not None:
                    callback(packet.data)
        elif ptype is PacketType.DISCONNECT:
            self.handle_close(DisconnectReason.CLIENT_NAMESPACE_DISCONNECT)

    def handle_close(self, reason: str, description: Any = None) -> None:
        """The socket leaves its namespace (CONNECTED -> DISCONNECTING -> DISCONNECTED):
        ``disconnecting`` (rooms still there), then ``disconnect``; pending acknowledgements
        fail with :class:`Disconnected`."""
        if self.state is not _CONNECTED:
            return
        self.state = SocketState.DISCONNECTING
        self._emit_local("disconnecting", reason, description)
        recovery = self.nsp.recovery
        if recovery is not None and reason in RECOVERABLE and self.pid is not None:
            self.nsp.adapter.persist_session(
                PersistedSession(
                    sid=self.id, pid=self.pid, rooms=sorted(self.rooms), data=self.data
                )
            )
        self._cleanup()
        self.client.remove(self)
        self._acks = {}
        failures, self._ack_failures = self._ack_failures, {}
        for fail in failures.values():
            fail(Disconnected(f"socket {self.id} disconnected ({reason}) before acknowledging"))
        self._emit_local("disconnect", reason, description)

    def _cleanup(self) -> None:
        self.state = SocketState.DISCONNECTED
        self.nsp.adapter.delete_all(self.id)
        self.nsp.remove(self)

    # -- running handlers -------------------------------------------------------------------------

    def _run_middlewares(self, event: Any, args: list[Any], ack_id: int | None, i: int) -> None:
        """Per-packet middlewares in order; each may be async: the next runs when it ends."""
        middlewares = self._middlewares
        while i < len(middlewares):
            middleware = middlewares[i]
            i += 1
            if middleware.is_async:
                resume = functools.partial(self._resume_middlewares, event, args, ack_id, i)
                self._run(middleware, (event, args), None, resume, self._middleware_failed)
                return
            try:
                middleware.fn(event, args)
            except Exception as exc:  # noqa: BLE001 - a middleware refuses by raising
                self._emit_error(exc)
                return
        self._dispatch([event, *args], ack_id)

    def _resume_middlewares(
        self, event: Any, args: list[Any], ack_id: int | None, i: int, _context: None, _result: Any
    ) -> None:
        self._run_middlewares(event, args, ack_id, i)

    def _middleware_failed(self, _context: None, exc: BaseException) -> None:
        self._emit_error(exc)

    def _emit_error(self, exc: BaseException) -> None:
        handlers = self._handlers.get("error")
        if not handlers:
            logger.info("socket %s: packet refused by middleware: %s", self.id, exc)
            return
        for handler in tuple(handlers):
            self._call_safely(handler, [exc])

    def _dispatch(self, data: list[Any], ack_id: int | None) -> None:
        """Run the namespace's handler of the event (socket, *args) and this socket's own
        handlers (*args); the first value returned answers the client's acknowledgement.

        ``data`` is the event's array, its name then its arguments, which this takes over: the
        namespace handler's arguments are that list with the socket in the name's place (no
        copy per event; a handler is called with ``*args``, so it never holds the list)."""
        if self.state is not _CONNECTED:
            return
        event = data[0]
        name = event if type(event) is str else str(event)
        handler = self.nsp.handlers.events.get(name)
        own = self._handlers.get(name) if self._handlers else None
        if own is None:  # the hot path: the namespace's handler alone
            if handler is None:
                if ack_id is not None and not self._any:
                    self.nsp.unhandled_ack(name)  # the client waits for an answer that cannot come
                return
            data[0] = self
            if ack_id is None:
                self._run(handler, data, (name, None), ignore, self._handler_failed)
            else:
                self._run(handler, data, (name, ack_id), self._ack, self._handler_failed)
            return
        args = data[1:]
        answered = False

        def answer(_event: tuple[str, int | None], value: Any) -> None:
            # Several handlers may return: the first answers the acknowledgement, once.
            nonlocal answered
            if ack_id is None or answered:
                return
            answered = True
            self._ack((name, ack_id), value)

        if handler is not None:
            self._run(handler, (self, *args), (name, ack_id), answer, self._handler_failed)
        for callback in tuple(own):
            self._run(callback, args, (name, ack_id), answer, self._handler_failed)

    def _handler_failed(self, event: tuple[str, int | None], exc: BaseException) -> None:
        logger.error("handler of event %r on %s raised", event[0], self.nsp.name, exc_info=exc)

    def _ack(self, event: tuple[str, int], value: Any) -> None:
        """Answer the client's acknowledgement (``event``: the event's name and ack id) with
        the return value of its handler (dropped when the session is closing).

        A value that cannot be encoded is the handler's error: logged once, with the event and
        what failed, and the acknowledgement is not answered, as when a handler raises (the
        protocol has no error answer to an ack; the client's ack times out)."""
        name, ack_id = event
        if value is None:
            ack_args: list[Any] = []
        elif type(value) is tuple:
            ack_args = list(value)  # several values answer with several arguments
        else:
            ack_args = [value]
        try:
            self.client.write_ack(self.nsp.name, ack_id, ack_args)
        except ENCODE_ERRORS as exc:
            what = f"handler of event {name!r} on {self.nsp.name}"
            error = return_value_error(what, value, ack_args, exc)
            logger.error(  # noqa: TRY400 - the message says it all; a traceback shows our encoder
                "%s; its acknowledgement %d is not answered (the client's ack times out)",
                error,
                ack_id,
            )

    def _call_safely(self, handler: Callback, args: Sequence[Any]) -> None:
        """A listener (lifecycle, ``on_any``, ``error``): what it returns is dropped."""
        self._run(handler, args, handler, ignore, self._listener_failed)

    def _listener_failed(self, handler: Callback, exc: BaseException) -> None:
        logger.error("listener %r of socket %s raised", handler, self.id, exc_info=exc)

    def _run(
        self,
        handler: Callback,
        args: Sequence[Any],
        context: C,
        on_result: Callable[[C, Any], None],
        on_error: Callable[[C, BaseException], None],
    ) -> None:
        """Run a user callback (see :func:`~aiosio._eager.invoke`); while its coroutine runs
        on it counts against the connection's ``max_handlers_per_connection``."""
        task = invoke(handler, args, context, on_result, on_error)
        if task is not None:
            self.client.handler_started(task)

    def _emit_local(self, event: str, *args: Any) -> None:
        handler = self.nsp.handlers.lifecycle.get(event)
        if handler is not None:
            self._call_safely(handler, (self, *args))
        for own in tuple(self._handlers.get(event, ())):
            self._call_safely(own, args)


def _without(callbacks: list[Callback], fn: Handler) -> list[Callback]:
    return [callback for callback in callbacks if callback.fn != fn]


def _replace(flags: BroadcastFlags, **changes: Any) -> BroadcastFlags:
    from dataclasses import replace

    return replace(flags, **changes)


def _build_handshake(
    conn: EngineSocket, auth: dict[str, Any], proxy_header: str | None
) -> Handshake:
    request = conn.request
    headers = dict(request.headers)
    address = request.remote_address
    if proxy_header:
        forwarded = headers.get(proxy_header.lower())
        if forwarded:
            # X-Forwarded-For: client, proxy1, proxy2 -> the client is the first entry.
            address = forwarded.split(",")[0].strip()
    now = time.time()
    return Handshake(
        headers=headers,
        time=_js_date(now),
        address=address,
        xdomain="origin" in headers,
        secure=request.secure,
        issued=int(now * 1000),
        url=request.url,
        query=dict(request.query),
        auth=auth,
    )


async def _first(replies: Awaitable[list[Any]]) -> Any:
    """The first argument of an acknowledgement (``None`` when it has none)."""
    args = await replies
    return args[0] if args else None

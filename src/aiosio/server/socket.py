"""The server-side Socket: one client's connection to one namespace (``socket.ts``)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aiosio._eager import run_eager
from aiosio._encodable import ENCODE_ERRORS, args_paths, encoding_error, raise_encoding_error
from aiosio.engine.server import EngineSocket, PreparedMessage
from aiosio.errors import AckTimeout, Disconnected
from aiosio.protocol.socketio import RESERVED_EVENTS, Packet, PacketType
from aiosio.server.adapter import BroadcastFlags, BroadcastOptions, Room, SocketId

if TYPE_CHECKING:
    from aiosio.server.broadcast import BroadcastOperator
    from aiosio.server.client import Client
    from aiosio.server.namespace import Namespace

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Handshake", "Socket"]

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


class Socket:
    """A client connected to a namespace.

    Events received from the client go to the namespace's handlers (``@sio.on("chat")``,
    called with this socket then the arguments) and to this socket's own handlers
    (``socket.on("chat", fn)``, called with the arguments only). The value a handler returns
    answers the client's acknowledgement.
    """

    def __init__(
        self,
        nsp: Namespace,
        client: Client,
        auth: dict[str, Any],
        *,
        sid: SocketId,
        pid: str | None = None,
    ) -> None:
        self.nsp = nsp
        self.client = client
        self._conn = client.conn  # what a broadcast writes to, without the Client in between
        self.id = sid
        self.pid = pid
        self.connected = False
        self.recovered = False
        self.data: dict[str, Any] = {}
        self.handshake = _build_handshake(client.conn, auth, client.server.proxy_header)
        self._handlers: dict[str, list[Handler]] = {}
        self._any: list[Handler] = []
        self._any_outgoing: list[Handler] = []
        self._middlewares: list[Handler] = []
        self._acks: dict[int, Callable[[list[Any]], None]] = {}
        self._ack_failures: dict[int, Callable[[BaseException], None]] = {}
        self._flags = BroadcastFlags()
        self._cleaned = False
        self._restored_rooms: list[Room] = []

    def __repr__(self) -> str:
        return f"<aiosio.Socket {self.id} nsp={self.nsp.name!r} connected={self.connected}>"

    # -- properties -------------------------------------------------------------------------------

    @property
    def conn(self) -> EngineSocket:
        """The Engine.IO session under this socket (transport name, upgrade events)."""
        return self._conn

    @property
    def disconnected(self) -> bool:
        return not self.connected

    @property
    def rooms(self) -> set[Room]:
        """The rooms this socket is in, its own id included."""
        return self.nsp.adapter.socket_rooms(self.id)

    # -- handlers ---------------------------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register a handler for one event of this socket (called with the arguments only)."""

        def register(fn: F) -> F:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        return register if handler is None else register(handler)

    def off(self, event: str, handler: Handler | None = None) -> None:
        if handler is None:
            self._handlers.pop(event, None)
        elif handler in self._handlers.get(event, ()):
            self._handlers[event].remove(handler)

    def on_any(self, handler: Handler) -> Handler:
        """``handler(event, *args)`` for every event received (before ``use`` middleware)."""
        self._any.append(handler)
        return handler

    def off_any(self, handler: Handler | None = None) -> None:
        self._any = [] if handler is None else [h for h in self._any if h is not handler]

    def on_any_outgoing(self, handler: Handler) -> Handler:
        """``handler(event, *args)`` for every event sent to this client (emits and broadcasts)."""
        self._any_outgoing.append(handler)
        return handler

    def off_any_outgoing(self, handler: Handler | None = None) -> None:
        self._any_outgoing = (
            [] if handler is None else [h for h in self._any_outgoing if h is not handler]
        )

    def use(self, middleware: Handler) -> Handler:
        """Per-packet middleware ``fn(event, args)``: raise to drop the packet (the exception is
        passed to this socket's ``error`` handlers); may be async."""
        self._middlewares.append(middleware)
        return middleware

    # -- emitting ---------------------------------------------------------------------------------

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to this client; non-blocking."""
        _check_event_name(event)
        flags, self._flags = self._flags, BroadcastFlags()
        packet = Packet(PacketType.EVENT, self.nsp.name, [event, *args])
        try:
            if self.nsp.recovery_enabled:
                # With recovery, events go through the adapter so they get an offset.
                self.nsp.adapter.broadcast(
                    packet, BroadcastOptions(rooms=frozenset({self.id}), flags=flags)
                )
                return
            self._notify_outgoing(packet.data)
            self._write(packet, flags)
        except ENCODE_ERRORS as exc:
            raise_encoding_error(f"socket.emit({event!r})", args_paths(args), exc)

    def send(self, *args: Any) -> None:
        """``emit("message", *args)``."""
        self.emit("message", *args)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        """Send an event and wait for the client's acknowledgement; returns its first argument
        (``None`` when it sent none). With ``socket.timeout(s)``, raises :class:`AckTimeout`
        after ``s`` seconds; raises :class:`Disconnected` if the connection ends first."""
        replies = await self.emit_with_ack_all(event, *args)
        return replies[0] if replies else None

    async def emit_with_ack_all(self, event: str, *args: Any) -> list[Any]:
        """Like :meth:`emit_with_ack` but returns every argument of the acknowledgement."""
        _check_event_name(event)
        flags, self._flags = self._flags, BroadcastFlags()
        ack_id = self.nsp._next_ack_id()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

        def resolve(args: list[Any]) -> None:
            if not future.done():
                future.set_result(args)

        def fail(exc: BaseException) -> None:
            if not future.done():
                future.set_exception(exc)

        self._acks[ack_id] = resolve
        self._ack_failures[ack_id] = fail
        packet = Packet(PacketType.EVENT, self.nsp.name, [event, *args], ack_id)
        try:
            self._notify_outgoing(packet.data)
            try:
                self._write(packet, flags)
            except ENCODE_ERRORS as exc:
                raise_encoding_error(f"socket.emit_with_ack({event!r})", args_paths(args), exc)
            if flags.timeout is None:
                return await future
            return await asyncio.wait_for(future, flags.timeout)
        except TimeoutError:
            raise AckTimeout(
                f"socket {self.id} did not acknowledge {event!r} within {flags.timeout}s"
            ) from None
        finally:
            self._acks.pop(ack_id, None)
            self._ack_failures.pop(ack_id, None)

    def _write(self, packet: Packet, flags: BroadcastFlags) -> None:
        self.client.write(packet, volatile=flags.volatile)

    def _deliver(
        self, packet: Packet, messages: Sequence[PreparedMessage], flags: BroadcastFlags
    ) -> None:
        """Adapter entry point: write a broadcast prepared once for every recipient. Straight to
        the engine socket: with thousands of recipients each object read is a cache miss."""
        if self._any_outgoing:
            self._notify_outgoing(packet.data)
        conn = self._conn
        if flags.volatile and not conn.writable:
            return
        for message in messages:
            conn.send_prepared(message)

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

    def _operator(self) -> BroadcastOperator:
        from aiosio.server.broadcast import BroadcastOperator

        flags, self._flags = self._flags, BroadcastFlags()
        return BroadcastOperator(self.nsp.adapter, except_rooms=frozenset({self.id}), flags=flags)

    @property
    def broadcast(self) -> BroadcastOperator:
        """Everyone in the namespace but this socket."""
        return self._operator()

    def to(self, *rooms: Room) -> BroadcastOperator:
        """Members of ``rooms``, this socket excluded."""
        return self._operator().to(*rooms)

    in_ = to

    def except_(self, *rooms: Room) -> BroadcastOperator:
        return self._operator().except_(*rooms)

    @property
    def local(self) -> BroadcastOperator:
        return self._operator().local

    # -- rooms ------------------------------------------------------------------------------------

    def join(self, *rooms: Room) -> None:
        """Join rooms. Another socket's id is not a room one may join."""
        if self._cleaned:
            return
        adapter = self.nsp.adapter
        for room in rooms:
            if room != self.id and adapter.is_socket_id(room):
                raise ValueError(f"room {room!r} is the id of another socket")
        self.nsp.adapter.add_all(self.id, rooms)

    def leave(self, room: Room) -> None:
        if room == self.id:
            return  # a socket always stays in its own room while connected
        self.nsp.adapter.delete(self.id, room)

    # -- disconnecting ----------------------------------------------------------------------------

    def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace (``server namespace disconnect``); with ``close``,
        close the whole connection and every namespace on it."""
        if not self.connected:
            return
        if close:
            self.client.disconnect_all()
            return
        self._write(Packet(PacketType.DISCONNECT, self.nsp.name), BroadcastFlags())
        self._on_close("server namespace disconnect", None)

    # -- from the client ---------------------------------------------------------------------------

    def _on_connect(self) -> None:
        self.connected = True
        self.join(self.id)
        data: dict[str, Any] | None
        if self._conn.protocol == 3:
            data = None
        elif self.pid is not None:
            data = {"sid": self.id, "pid": self.pid}
        else:
            data = {"sid": self.id}
        self._write(Packet(PacketType.CONNECT, self.nsp.name, data), BroadcastFlags())

    def _on_packet(self, packet: Packet) -> None:
        ptype = packet.type
        if ptype is PacketType.EVENT:
            self._on_event(packet)
        elif ptype is PacketType.ACK:
            if packet.id is not None:
                callback = self._acks.pop(packet.id, None)
                self._ack_failures.pop(packet.id, None)
                if callback is not None:
                    callback(packet.data)
        elif ptype is PacketType.DISCONNECT:
            self._on_close("client namespace disconnect", None)

    def _on_event(self, packet: Packet) -> None:
        args: list[Any] = packet.data
        event = args[0]
        if self._any:
            for handler in tuple(self._any):
                self._call_safely(handler, args)
        if not self._middlewares:
            self._dispatch(event, args[1:], packet.id)
            return
        self._run_middlewares(event, args[1:], packet.id, 0)

    def _run_middlewares(self, event: Any, args: list[Any], ack_id: int | None, i: int) -> None:
        while i < len(self._middlewares):
            middleware = self._middlewares[i]
            i += 1
            try:
                result = middleware(event, args)
            except Exception as exc:  # noqa: BLE001 - a middleware refuses by raising
                self._emit_error(exc)
                return
            if inspect.iscoroutine(result):
                resume = functools.partial(self._resume_middlewares, event, args, ack_id, i)
                self._run(result, resume, self._emit_error)
                return
        self._dispatch(event, args, ack_id)

    def _resume_middlewares(
        self, event: Any, args: list[Any], ack_id: int | None, i: int, _result: Any
    ) -> None:
        self._run_middlewares(event, args, ack_id, i)

    def _emit_error(self, exc: BaseException) -> None:
        handlers = self._handlers.get("error")
        if not handlers:
            logger.info("socket %s: packet refused by middleware: %s", self.id, exc)
            return
        for handler in tuple(handlers):
            self._call_safely(handler, [exc])

    def _dispatch(self, event: Any, args: list[Any], ack_id: int | None) -> None:
        if not self.connected:
            return
        name = event if type(event) is str else str(event)
        handler = self.nsp._handlers.get(name)
        if handler is not None and name not in self._handlers:
            # The hot path: one namespace handler, no per-socket handler.
            try:
                result = handler(self, *args)
            except Exception:
                logger.exception("handler of event %r on %s raised", name, self.nsp.name)
                return
            if ack_id is None:
                if isinstance(result, CoroutineType):
                    self._run(result, _ignore, self._handler_failed(name))
                return
            if isinstance(result, CoroutineType):
                self._run(
                    result, functools.partial(self._ack, name, ack_id), self._handler_failed(name)
                )
            else:
                self._ack(name, ack_id, result)
            return
        self._dispatch_all(name, args, ack_id)

    def _handler_failed(self, name: str) -> Callable[[BaseException], None]:
        def failed(exc: BaseException) -> None:
            logger.error("handler of event %r on %s raised", name, self.nsp.name, exc_info=exc)

        return failed

    def _ack(self, name: str, ack_id: int, value: Any) -> None:
        """Answer the client's acknowledgement ``ack_id`` with the return value of the handler
        of ``name`` (dropped when the session is closing: ``write_ack`` checks).

        A value that cannot be encoded is the handler's error: logged once, with the event and
        what failed, and the acknowledgement is not answered, as when a handler raises (the
        protocol has no error answer to an ack; the client's ack times out)."""
        if value is None:
            ack_args: list[Any] = []
        elif type(value) is tuple:
            ack_args = list(value)  # several values answer with several arguments
        else:
            ack_args = [value]
        try:
            self.client.write_ack(self.nsp.name, ack_id, ack_args)
        except ENCODE_ERRORS as exc:
            if type(value) is tuple:
                paths = [(f"return value[{i}]", item) for i, item in enumerate(value)]
            else:
                paths = [("return value", value)]
            error = encoding_error(f"handler of event {name!r} on {self.nsp.name}", paths, exc)
            logger.error(  # noqa: TRY400 - the message says it all; a traceback shows our encoder
                "%s; its acknowledgement %d is not answered (the client's ack times out)",
                error,
                ack_id,
            )

    def _dispatch_all(self, name: str, args: list[Any], ack_id: int | None) -> None:
        answered = False

        def answer(value: Any) -> None:
            # Several handlers may return: the first answers the acknowledgement, once.
            nonlocal answered
            if ack_id is None or answered:
                return
            answered = True
            self._ack(name, ack_id, value)

        failed = self._handler_failed(name)

        handled = False
        handler = self.nsp._handlers.get(name)
        if handler is not None:
            handled = True
            self._invoke(handler, (self, *args), answer, failed)
        for own in tuple(self._handlers.get(name, ())):
            handled = True
            self._invoke(own, tuple(args), answer, failed)
        if not handled and ack_id is not None:
            logger.debug("no handler for event %r with ack on %s", name, self.nsp.name)

    def _invoke(
        self,
        handler: Handler,
        args: tuple[Any, ...],
        answer: Callable[[Any], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        try:
            result = handler(*args)
        except Exception as exc:  # noqa: BLE001 - the user's handler; logged by `failed`
            failed(exc)
            return
        if inspect.iscoroutine(result):
            self._run(result, answer, failed)
        else:
            answer(result)

    def _call_safely(self, handler: Handler, args: Sequence[Any]) -> None:
        try:
            result = handler(*args)
        except Exception:
            logger.exception("listener %r of socket %s raised", handler, self.id)
            return
        if inspect.iscoroutine(result):
            self._run(
                result,
                _ignore,
                lambda exc: logger.error(
                    "listener %r of socket %s raised", handler, self.id, exc_info=exc
                ),
            )

    def _run(
        self,
        coro: Coroutine[Any, Any, Any],
        on_result: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Run a handler's coroutine; until it ends it counts against the connection's
        ``max_handlers_per_connection``."""
        task = run_eager(coro, on_result, on_error)
        if task is not None:
            self.client.handler_started(task)

    def _expect_ack(self, ack_id: int, callback: Callable[[list[Any]], None]) -> None:
        self._acks[ack_id] = callback

    def _forget_ack(self, ack_id: int) -> None:
        self._acks.pop(ack_id, None)

    def _on_close(self, reason: str, description: Any) -> None:
        """The socket leaves its namespace: ``disconnecting`` (rooms still there), then
        ``disconnect``; pending acknowledgements fail with :class:`Disconnected`."""
        if not self.connected:
            return
        self._emit_local("disconnecting", reason, description)
        self.nsp._on_socket_closing(self, reason, description)
        self._cleanup()
        self.client.remove(self)
        self.connected = False
        self._acks = {}
        failures, self._ack_failures = self._ack_failures, {}
        for fail in failures.values():
            fail(Disconnected(f"socket {self.id} disconnected ({reason}) before acknowledging"))
        self._emit_local("disconnect", reason, description)

    def _cleanup(self) -> None:
        self.nsp.adapter.delete_all(self.id)
        self.nsp._remove(self)
        self._cleaned = True

    def _emit_local(self, event: str, *args: Any) -> None:
        handler = self.nsp._lifecycle.get(event)
        if handler is not None:
            self._call_safely(handler, (self, *args))
        for own in tuple(self._handlers.get(event, ())):
            self._call_safely(own, args)


def _ignore(_value: Any) -> None:
    return None


def _check_event_name(event: Any) -> None:
    if not isinstance(event, str):
        raise TypeError(f"event name must be a string, got {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


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

"""``aiosio.Client``: a connection to one namespace of a Socket.IO server (socket.io-client's
``Socket``), over a :class:`~aiosio.client.manager.Manager` shared with the other namespaces of
the same server unless ``force_new``/``multiplex=False``. The socket knows its manager only as a
:class:`~aiosio.client.host.ManagerHost`, and implements
:class:`~aiosio.client.host.NamespaceSocket` for it.

Events: ``connect``, ``connect_error`` (:class:`aiosio.ConnectError`), ``disconnect`` (reason,
description) and the server's events (handlers get the arguments; a return value answers the
server's acknowledgement). ``client.io`` is the manager, for ``reconnect_attempt``,
``reconnect_error``, ``reconnect_failed`` and ``reconnect``.

The reference's ``connected`` and ``active`` are one :class:`SocketState`, its transitions in
:data:`TRANSITIONS`::

    DISCONNECTED ──connect()──▶ CONNECTING ──CONNECT answered──▶ CONNECTED
                                   ▲   │                            │
                                   │   └─refused, disconnect()─▶ DISCONNECTED
                                   └────── connection lost ─────────┤
    DISCONNECTED ◀── disconnect event ── DISCONNECTING ◀── disconnect(), server's DISCONNECT
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import ssl as ssl_module
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import TypeVar
from typing import overload
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from aiosio._acks import wait_ack
from aiosio._eager import run_eager
from aiosio._encodable import ENCODE_ERRORS
from aiosio._encodable import check_encodable
from aiosio._encodable import raise_encoding_error
from aiosio._encodable import return_value_error
from aiosio._options import compression_threshold
from aiosio.client.errors import PARSER_HINT
from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.host import ManagerHost
from aiosio.client.host import ManagerOptions
from aiosio.client.http import WebSocketOpener
from aiosio.client.http import new_trace
from aiosio.client.multiplex import manager_for
from aiosio.client.proxy import Proxy
from aiosio.client.proxy import ProxyOption
from aiosio.client.webtransport import parse_certificate_hash
from aiosio.errors import AckTimeout
from aiosio.errors import Disconnected
from aiosio.protocol.errors import LocalProtocolError
from aiosio.protocol.parser import Parser
from aiosio.protocol.parsers import PARSER_MISMATCH
from aiosio.protocol.parsers import resolve_parser
from aiosio.protocol.socketio import RESERVED_EVENTS
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.typed import InvalidPayloads
from aiosio.typed import validated

__all__ = ["TRANSITIONS", "Auth", "Client", "SocketState"]

logger = logging.getLogger("aiosio.client.socket")

F = TypeVar("F", bound=Callable[..., Any])
Auth = Mapping[str, Any] | Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]] | None


class SocketState(enum.Enum):
    # Not active: new, or disconnected for good (disconnect(), the server's DISCONNECT, a
    # refused CONNECT); packets for the namespace are ignored.
    DISCONNECTED = "disconnected"
    # Active, not connected: waiting for the connection or the CONNECT answer, reconnecting.
    CONNECTING = "connecting"
    CONNECTED = "connected"
    # Left for good while connected: the manager is told, the disconnect event comes next.
    DISCONNECTING = "disconnecting"


TRANSITIONS: dict[SocketState, frozenset[SocketState]] = {
    SocketState.DISCONNECTED: frozenset({SocketState.CONNECTING, SocketState.DISCONNECTED}),
    SocketState.CONNECTING: frozenset(
        {SocketState.CONNECTED, SocketState.CONNECTING, SocketState.DISCONNECTED}
    ),
    # CONNECTED again: a second CONNECT answer (the reference emits "connect" again).
    SocketState.CONNECTED: frozenset(
        {SocketState.CONNECTED, SocketState.CONNECTING, SocketState.DISCONNECTING}
    ),
    SocketState.DISCONNECTING: frozenset({SocketState.DISCONNECTED}),
}
_ACTIVE = frozenset({SocketState.CONNECTING, SocketState.CONNECTED})
_CONNECTED = frozenset({SocketState.CONNECTED, SocketState.DISCONNECTING})


@dataclass(slots=True)
class _Queued:
    """A packet of the ``retries`` queue: one in flight at a time, in order."""

    args: list[Any]
    future: asyncio.Future[list[Any]] | None
    compress: bool = True
    tries: int = 0
    pending: bool = False


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a handler's signature takes of the arguments that may end with a recovery offset:
    its required positional parameters, and whether it has ``*args``."""

    required: int
    rest: bool

    def takes(self, count: int) -> tuple[bool, bool]:
        """Of ``count`` arguments whose last is a string: whether the handler gets that last
        one, and whether it gets it as a required parameter (which says it is data)."""
        data = count <= self.required
        return data or self.rest, data


_UNREAD = _Shape(0, rest=False)  # a signature inspect cannot read: the string is the offset


def _shape_of(handler: Callable[..., Any]) -> _Shape:
    """The :class:`_Shape` of ``handler`` (a typed handler's wrapper exposes the signature of
    the function it wraps, which is what it passes the arguments on to)."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):  # a builtin or a C callable with no signature to read
        return _UNREAD
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = sum(1 for p in parameters if p.kind in positional and p.default is p.empty)
    rest = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    return _Shape(required, rest)


class Client:
    """A Socket.IO client for one namespace (the URL's path; ``/`` by default)."""

    def __init__(
        self,
        url: str,
        *,
        auth: Auth = None,
        path: str = "/socket.io/",
        query: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        transports: Sequence[str] = ("polling", "websocket"),
        upgrade: bool = True,
        timeout: float | None = 20.0,
        ssl: ssl_module.SSLContext | bool | None = None,
        reconnection: bool = True,
        reconnection_attempts: int | None = None,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        retries: int = 0,
        ack_timeout: float | None = None,
        force_new: bool = False,
        multiplex: bool = True,
        limits: Limits | None = None,
        max_http_buffer_size: int = 100_000_000,
        proxy: ProxyOption = None,
        parser: str | Parser = "json",
        websocket_opener: WebSocketOpener | None = None,
        try_all_transports: bool = False,
        remember_upgrade: bool = False,
        auto_connect: bool = False,
        server_certificate_hashes: Sequence[str | bytes] = (),
        webtransport_port: int | None = None,
        per_message_deflate: bool | int = True,
    ) -> None:
        """``websocket_opener``: how the WebSocket transport connects (see
        :class:`~aiosio.client.http.WebSocketOpener`); ``None``, the default, over TCP.
        :mod:`aiosio.testing` gives one that reaches a :class:`aiosio.Server` in memory; a
        client with one shares its connection with no other client.

        ``try_all_transports`` (Node: ``tryAllTransports``): when the handshake on the first
        transport fails, try the next ones (a WebSocket-only server refuses polling).
        ``remember_upgrade`` (Node: ``rememberUpgrade``): once a WebSocket worked with this
        server, the next connections of this client's Manager start with it.

        ``auto_connect`` (Node: ``autoConnect``, on by default there): start connecting at
        once, as ``connect(wait=False)``; it needs a running event loop (create the client in a
        coroutine). Off by default: ``await client.connect()`` says when the connection is
        made, or raises why it is not.

        WebTransport (``"webtransport"`` in ``transports``, the ``webtransport`` extra): it
        runs over HTTP/3 on UDP, to the URL's port unless ``webtransport_port`` says otherwise,
        always with TLS. ``server_certificate_hashes`` (the browser's
        ``serverCertificateHashes``): SHA-256 hashes (base64 or hex) of the certificates to
        accept instead of verifying the chain, for development certificates; ``ssl=False``
        verifies nothing.

        ``per_message_deflate`` (Node: ``perMessageDeflate``, ``{threshold: 1024}`` by
        default): the WebSocket offers permessage-deflate, and when the server accepts it the
        messages of at least 1024 bytes (or the number given) are sent compressed, unless
        emitted with ``client.compress(False)``; ``False``: not offered."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"url must start with http://, https://, ws:// or wss://, got {url!r}")
        if isinstance(transports, str):
            raise TypeError(f"transports must be a sequence of names, got {transports!r}")
        if isinstance(server_certificate_hashes, str | bytes):
            raise TypeError(
                "server_certificate_hashes must be a list of hashes, got "
                f"{server_certificate_hashes!r}"
            )
        hashes = tuple(parse_certificate_hash(h) for h in server_certificate_hashes)
        if isinstance(proxy, str):
            Proxy.from_url(proxy)  # a wrong proxy URL fails here, not at the first attempt
        elif proxy is not None and proxy is not False:
            raise TypeError(
                f"proxy must be a proxy URL such as 'http://proxy:3128', False (no proxy) or "
                f"None (HTTP_PROXY/HTTPS_PROXY/NO_PROXY), got {proxy!r}"
            )
        compress_threshold = compression_threshold("per_message_deflate", per_message_deflate)
        secure = scheme in ("https", "wss")
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        self.namespace = parts.path.rstrip("/") or "/" if parts.path not in ("", "/") else "/"
        merged_query = dict(query or {})
        merged_query.update(dict(parse_qsl(parts.query)))
        context: ssl_module.SSLContext | None
        if ssl is False:
            context = ssl_module.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl_module.CERT_NONE
        elif isinstance(ssl, ssl_module.SSLContext):
            context = ssl
        else:
            context = None
        if not path.startswith("/"):
            path = "/" + path
        if not path.endswith("/"):
            path += "/"
        trace_logger = logging.getLogger("aiosio.client.trace")
        options = ManagerOptions(
            path=path,
            query=merged_query,
            extra_headers=dict(extra_headers or {}),
            transports=tuple(transports),
            upgrade=upgrade,
            timeout=timeout,
            reconnection=reconnection,
            reconnection_attempts=reconnection_attempts,
            reconnection_delay=reconnection_delay,
            reconnection_delay_max=reconnection_delay_max,
            randomization_factor=randomization_factor,
            limits=limits or Limits(),
            parser=resolve_parser(parser),
            max_http_buffer_size=max_http_buffer_size,
            trace=new_trace(trace_logger) if trace_logger.isEnabledFor(logging.DEBUG) else None,
            proxy=proxy,
            websocket_opener=websocket_opener,
            try_all_transports=try_all_transports,
            remember_upgrade=remember_upgrade,
            webtransport_port=webtransport_port,
            certificate_hashes=hashes,
            compress_threshold=compress_threshold,
        )
        self.io: ManagerHost = manager_for(
            scheme=scheme,
            host=host,
            port=port,
            namespace=self.namespace,
            options=options,
            ssl=context,
            share=multiplex and not force_new and websocket_opener is None,
        )
        self.io.attach(self.namespace, self)
        self.auth = auth
        self.parser = options.parser
        self.retries = retries
        self.ack_timeout = ack_timeout
        self.id: str | None = None
        self.state = SocketState.DISCONNECTED
        self.recovered = False
        self._pid: str | None = None
        self._last_offset: str | None = None
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._any: list[Callable[..., Any]] = []
        # What each handler's signature takes of a trailing string that may be a recovery
        # offset (see _dispatch), read once at registration: id -> (handler, shape).
        self._shapes: dict[int, tuple[Callable[..., Any], _Shape]] = {}
        self._any_outgoing: list[Callable[..., Any]] = []
        # Packets emitted before the connection, with their compress flag.
        self._send_buffer: list[tuple[Packet, bool]] = []
        self._receive_buffer: list[Packet] = []
        self._ack_counter = 0
        self._acks: dict[int, Callable[[list[Any] | BaseException], None]] = {}
        self._queue: list[_Queued] = []
        self._volatile = False
        self._compress = True
        self._timeout: float | None = None
        self._waiters: list[asyncio.Future[None]] = []
        if auto_connect:
            self._auto_connect()
        # What typed handlers refused (aiosio.typed): counts per event, the ack's answer.
        self.invalid_payloads = InvalidPayloads(f"client {self.namespace}", logger)

    def _auto_connect(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "aiosio.Client(auto_connect=True) needs a running event loop: create the client "
                "inside a coroutine, or leave auto_connect off and await client.connect()"
            ) from None
        run_eager(self.connect(wait=False), _ignore, self._auto_connect_failed)

    def _auto_connect_failed(self, exc: BaseException) -> None:
        logger.error("auto_connect of %r failed", self, exc_info=exc)

    def __repr__(self) -> str:
        return f"<aiosio.Client {self.io.uri}{self.namespace} connected={self.connected}>"

    # -- state ----------------------------------------------------------------------------------

    def _set_state(self, new: SocketState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise LocalProtocolError(
                f"client socket {self.namespace}: no transition from {self.state.value} "
                f"to {new.value}"
            )
        self.state = new

    @property
    def connected(self) -> bool:
        """Connected to the namespace (the server answered the CONNECT)."""
        return self.state in _CONNECTED

    @property
    def disconnected(self) -> bool:
        """Not connected to the namespace (Node: ``socket.disconnected``)."""
        return not self.connected

    @property
    def active(self) -> bool:
        """``connect()`` was called and the socket did not disconnect for good: it reconnects
        when the connection is lost."""
        return self.state in _ACTIVE

    @property
    def pending_acks(self) -> int:
        """How many acknowledgements this socket still waits for from the server (one is
        forgotten once answered or timed out, and at a disconnection unless its packet is still
        buffered to be sent): for tests and monitoring, a number that grows without bound is a
        leak."""
        return len(self._acks)

    # -- handlers -------------------------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register a handler: ``connect``, ``connect_error``, ``disconnect`` or a server
        event (its return value answers the server's acknowledgement). A server event's
        handler annotated with payload models gets validated arguments (:mod:`aiosio.typed`).

        :raises ImportError: the handler is annotated with a dataclass or a TypedDict and
            pydantic (the ``typed`` extra) is not installed.
        """

        def register(fn: F) -> F:
            registered = (
                fn if event in RESERVED_EVENTS else validated(fn, event, 0, self.invalid_payloads)
            )
            self._handlers.setdefault(event, []).append(registered)
            self._remember(registered)
            return fn

        return register if handler is None else register(handler)

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        if handler is None:
            self._handlers.pop(event, None)
        elif handler in self._handlers.get(event, ()):
            self._handlers[event].remove(handler)
        self._forget()

    def on_any(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        self._any.append(handler)
        self._remember(handler)
        return handler

    def on_any_outgoing(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        self._any_outgoing.append(handler)
        return handler

    def prepend_any(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """:meth:`on_any`, called before the catch-all listeners already added."""
        self._any.insert(0, handler)
        self._remember(handler)
        return handler

    def prepend_any_outgoing(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """:meth:`on_any_outgoing`, called before those already added."""
        self._any_outgoing.insert(0, handler)
        return handler

    def off_any(self, handler: Callable[..., Any] | None = None) -> None:
        """Remove ``handler`` from the catch-all listeners (all of them without one)."""
        self._any = [] if handler is None else [h for h in self._any if h != handler]
        self._forget()

    def off_any_outgoing(self, handler: Callable[..., Any] | None = None) -> None:
        """Remove ``handler`` from the outgoing catch-all listeners (all without one)."""
        self._any_outgoing = (
            [] if handler is None else [h for h in self._any_outgoing if h != handler]
        )

    def listeners_any(self) -> list[Callable[..., Any]]:
        """The catch-all listeners of incoming events, in calling order."""
        return list(self._any)

    def listeners_any_outgoing(self) -> list[Callable[..., Any]]:
        """The catch-all listeners of outgoing events, in calling order."""
        return list(self._any_outgoing)

    def _remember(self, handler: Callable[..., Any]) -> None:
        self._shapes[id(handler)] = (handler, _shape_of(handler))

    def _forget(self) -> None:
        """Drop the shapes of the handlers no longer registered."""
        kept = {id(h) for handlers in self._handlers.values() for h in handlers}
        kept.update(id(h) for h in self._any)
        self._shapes = {key: entry for key, entry in self._shapes.items() if key in kept}

    def _shape(self, handler: Callable[..., Any]) -> _Shape:
        entry = self._shapes.get(id(handler))
        return entry[1] if entry is not None and entry[0] is handler else _shape_of(handler)

    def _emit_local(self, event: str, *args: Any) -> None:
        for handler in tuple(self._handlers.get(event, ())):
            self._call(handler, args, None)

    def _call(
        self,
        handler: Callable[..., Any],
        args: Sequence[Any],
        answer: Callable[[Any], None] | None,
    ) -> None:
        def failed(exc: BaseException) -> None:
            logger.error("handler %r raised", handler, exc_info=exc)

        try:
            result = handler(*args)
        except Exception as exc:  # noqa: BLE001 - the user's handler; logged, never fatal
            failed(exc)
            return
        if inspect.iscoroutine(result):
            run_eager(result, answer or _ignore, failed)
        elif answer is not None:
            answer(result)

    # -- connecting -----------------------------------------------------------------------------

    async def connect(self, *, wait: bool = True) -> None:
        """Connect (and keep reconnecting as configured). With ``wait``, return once connected,
        or raise the :class:`ConnectError` of the first failed attempt (reconnection then goes
        on in the background unless ``disconnect()`` is called)."""
        if self.connected:
            return
        self._set_state(SocketState.CONNECTING)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if wait:
            self._waiters.append(waiter)
        if not self.io.reconnecting:
            self.io.open()
        if self.io.is_open:
            self.manager_opened()
        if wait:
            await waiter

    def _settle(self, error: ConnectError | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    # -- the manager's calls (NamespaceSocket) ---------------------------------------------------

    def manager_opened(self) -> None:
        """The Manager's call: the connection is open, send the CONNECT (not for applications)."""
        logger.debug("transport is open - connecting")
        auth = self.auth
        if callable(auth):
            try:
                result = auth()
            except Exception as exc:  # noqa: BLE001 - the user's auth callable
                self._auth_failed(exc)
                return
            if inspect.isawaitable(result):
                run_eager(_await(result), self._send_connect, self._auth_failed)
                return
            self._send_connect(result)
        else:
            self._send_connect(auth)

    def _auth_failed(self, exc: BaseException) -> None:
        error = ConnectError(
            Stage.NAMESPACE,
            f"the auth callable raised {type(exc).__name__}: {exc}",
            hint="fix the function given as auth=",
            description=exc,
        )
        self._emit_local("connect_error", error)
        self._settle(error)

    def _send_connect(self, auth: Mapping[str, Any] | None) -> None:
        data: dict[str, Any] | None = dict(auth) if auth else None
        if self._pid is not None:
            data = {"pid": self._pid, "offset": self._last_offset, **(data or {})}
            if data["offset"] is None:
                del data["offset"]
        self.io.write(Packet(PacketType.CONNECT, self.namespace, data))

    def manager_error(self, error: ConnectError) -> None:
        """The Manager's call: the connection failed before the CONNECT was answered."""
        if not self.connected:
            self._emit_local("connect_error", error)
            self._settle(error)

    def manager_packet(self, packet: Packet) -> None:
        """The Manager's call: a packet for this namespace."""
        if self.state is SocketState.DISCONNECTED:
            return  # the reference's socket unsubscribed from its manager (destroy())
        ptype = packet.type
        if ptype is PacketType.CONNECT:
            data = packet.data
            if isinstance(data, dict) and isinstance(data.get("sid"), str):
                pid = data.get("pid")
                self._on_connect(data["sid"], pid if isinstance(pid, str) else None)
            else:
                error = ConnectError(
                    Stage.PROTOCOL,
                    "the server speaks socket.io 2.x (its CONNECT has no sid)",
                    hint="a v2 server needs a 2.x client; upgrade the server to socket.io 4.x",
                )
                self._emit_local("connect_error", error)
                self._settle(error)
        elif ptype is PacketType.EVENT:
            self._on_event(packet)
        elif ptype is PacketType.ACK:
            callback = self._acks.pop(packet.id, None) if packet.id is not None else None
            if callback is not None:
                callback(packet.data)
        elif ptype is PacketType.DISCONNECT:
            self._leave()
            self._disconnected("io server disconnect", None, SocketState.DISCONNECTED)
        elif ptype is PacketType.CONNECT_ERROR:
            self._leave()
            if self.state is SocketState.DISCONNECTING:  # a CONNECT_ERROR while connected
                self._disconnected("io server disconnect", None, SocketState.DISCONNECTED)
            data = packet.data
            message = data.get("message", "") if isinstance(data, dict) else str(data)
            extra = data.get("data") if isinstance(data, dict) else None
            if message == "Invalid namespace":
                hint = (
                    "the server has no such namespace: check the URL's path (the namespace) "
                    "and sio.of(...) on the server"
                )
            elif message.startswith(PARSER_MISMATCH):
                hint = PARSER_HINT
            else:
                hint = "refused by the server's middleware; check the auth you send"
            error = ConnectError(Stage.NAMESPACE, message, hint=hint, data=extra)
            self._emit_local("connect_error", error)
            self._settle(error)

    def _on_connect(self, sid: str, pid: str | None) -> None:
        logger.debug("socket connected with id %s", sid)
        self.id = sid
        self.recovered = pid is not None and pid == self._pid
        self._pid = pid
        self._set_state(SocketState.CONNECTED)
        received, self._receive_buffer = self._receive_buffer, []
        for packet in received:
            self._dispatch(packet)
        sent, self._send_buffer = self._send_buffer, []
        for packet, compress in sent:
            self._notify_outgoing(packet.data)
            self.io.write(packet, compress)
        self._drain_queue(force=True)
        self._emit_local("connect")
        self._settle(None)

    def _on_event(self, packet: Packet) -> None:
        if self.connected:
            self._dispatch(packet)
        else:
            self._receive_buffer.append(packet)

    def _dispatch(self, packet: Packet) -> None:
        args: list[Any] = list(packet.data)
        event = args[0]
        name = event if isinstance(event, str) else str(event)
        # Connection state recovery: the server appends the event's offset to the arguments of
        # an event without an ack, except a volatile one, and the two look the same here. A
        # trailing string goes to the handlers whose signature asks for it (a required
        # positional parameter, or *args, which gets everything as socket.io-client's handlers
        # do) and is kept from the others; it is the offset to send back on reconnection unless
        # a handler took it into a required parameter (then it is a volatile event's argument).
        offset = (
            self._pid is not None
            and packet.id is None  # events with an ack carry no offset
            and len(args) > 1
            and isinstance(args[-1], str)
        )
        taken = False
        for handler in tuple(self._any):
            if offset:
                takes, data = self._shape(handler).takes(len(args))
                taken = taken or data
                self._call(handler, args if takes else args[:-1], None)
            else:
                self._call(handler, args, None)
        answered = False
        ack_id = packet.id

        def answer(value: Any) -> None:
            nonlocal answered
            if ack_id is None or answered:
                return
            answered = True
            if value is None:
                ack_args: list[Any] = []
            elif isinstance(value, tuple):
                ack_args = list(value)
            else:
                ack_args = [value]
            try:
                self.io.write(Packet(PacketType.ACK, self.namespace, ack_args, ack_id))
            except ENCODE_ERRORS as exc:
                # The handler's error, as on the server: logged, the ack not answered.
                what = f"handler of event {name!r} on {self.namespace}"
                error = return_value_error(what, value, ack_args, exc)
                logger.error(  # noqa: TRY400 - the message says it all
                    "%s; its acknowledgement %d is not answered", error, ack_id
                )

        payload = args[1:]
        for handler in tuple(self._handlers.get(name, ())):
            if offset:
                takes, data = self._shape(handler).takes(len(payload))
                taken = taken or data
                self._call(handler, payload if takes else payload[:-1], answer)
            else:
                self._call(handler, payload, answer)
        if offset and not taken:
            self._last_offset = args[-1]

    # -- emitting -------------------------------------------------------------------------------

    @property
    def volatile(self) -> Client:
        """The next emit is dropped instead of buffered when it cannot be sent now."""
        self._volatile = True
        return self

    def compress(self, value: bool) -> Client:
        """The next emit's compress flag (Node: ``socket.compress(false).emit(...)``):
        ``False`` sends its WebSocket message uncompressed even when permessage-deflate is on
        (``per_message_deflate``); ``True``, the default, lets messages of at least the
        threshold be compressed. Long-polling ignores it."""
        self._compress = value
        return self

    def timeout(self, seconds: float) -> Client:
        """The next ``emit_with_ack`` raises :class:`AckTimeout` after ``seconds``."""
        self._timeout = seconds
        return self

    def emit(self, event: str, *args: Any) -> None:
        """Send an event; buffered while disconnected (unless ``volatile``)."""
        _check(event)
        volatile, self._volatile = self._volatile, False
        compress, self._compress = self._compress, True
        try:
            if self.retries and not volatile:
                check_encodable(f"emit({event!r})", args)  # kept to be sent later
                self._enqueue([event, *args], None, compress)
                return
            packet = Packet(PacketType.EVENT, self.namespace, [event, *args])
            self._send(packet, volatile, compress)
        except ENCODE_ERRORS as exc:
            raise_encoding_error(f"emit({event!r})", args, exc)

    def send(self, *args: Any) -> None:
        self.emit("message", *args)

    def _send(self, packet: Packet, volatile: bool, compress: bool) -> None:
        writable = self.io.writable
        connected = self.connected and self.io.can_send()
        if connected and (writable or not volatile):
            self._notify_outgoing(packet.data)
            self.io.write(packet, compress)
            return
        # Dropped or kept for later, it is encoded now all the same: a value that cannot be
        # encoded raises at the emit, not when the buffer is sent.
        self.parser.encode(packet)
        if volatile and not writable:
            logger.debug("discard packet as the transport is not currently writable")
        else:
            self._send_buffer.append((packet, compress))

    def _notify_outgoing(self, data: list[Any]) -> None:
        for handler in tuple(self._any_outgoing):
            self._call(handler, data, None)

    def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Awaitable[Any]:
        """Send an event and return the first argument of the server's acknowledgement.

        Raises :class:`AckTimeout` after ``timeout`` seconds (or ``client.timeout(s)``, or the
        ``ack_timeout`` option), :class:`Disconnected` if the connection drops first. The
        event is sent (or buffered) at the call, with the flags set for it: a second call made
        before the first is awaited has its own and goes out after it.
        """
        return _first(self.emit_with_ack_all(event, *args, timeout=timeout))

    def emit_with_ack_all(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> Awaitable[list[Any]]:
        """Like :meth:`emit_with_ack`, returning every argument of the acknowledgement."""
        _check(event)
        limit = timeout if timeout is not None else self._timeout
        self._timeout = None
        if limit is None:
            limit = self.ack_timeout
        volatile, self._volatile = self._volatile, False
        compress, self._compress = self._compress, True
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.retries and not volatile:
            check_encodable(f"emit_with_ack({event!r})", args)  # sent later
            self._enqueue([event, *args], future, compress)
            return future
        ack_id = self._register(future)
        packet = Packet(PacketType.EVENT, self.namespace, [event, *args], ack_id)
        try:
            self._send(packet, volatile, compress)
        except ENCODE_ERRORS as exc:
            self._acks.pop(ack_id, None)
            raise_encoding_error(f"emit_with_ack({event!r})", args, exc)
        return self._ack_of(future, ack_id, event, limit)

    async def _ack_of(
        self, future: asyncio.Future[list[Any]], ack_id: int, event: str, limit: float | None
    ) -> list[Any]:
        try:
            return await wait_ack(future, limit, "%r was not acknowledged", event)
        except AckTimeout:
            self._acks.pop(ack_id, None)
            self._send_buffer = [sent for sent in self._send_buffer if sent[0].id != ack_id]
            raise

    def _register(self, future: asyncio.Future[list[Any]]) -> int:
        ack_id = self._ack_counter
        self._ack_counter += 1

        def settle(value: list[Any] | BaseException) -> None:
            if future.done():
                return
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)

        self._acks[ack_id] = settle
        return ack_id

    # retries: at-least-once delivery, one packet in flight, in order ----------------------------

    def _enqueue(
        self, args: list[Any], future: asyncio.Future[list[Any]] | None, compress: bool
    ) -> None:
        self._queue.append(_Queued(args, future, compress))
        self._drain_queue()

    def _drain_queue(self, force: bool = False) -> None:
        if not self.connected or not self._queue:
            return
        head = self._queue[0]
        if head.pending and not force:
            return
        head.pending = True
        head.tries += 1
        attempt: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        ack_id = self._register(attempt)
        self._send(
            Packet(PacketType.EVENT, self.namespace, head.args, ack_id), False, head.compress
        )
        limit = self.ack_timeout
        handle = (
            asyncio.get_running_loop().call_later(limit, self._retry_timeout, head, ack_id)
            if limit is not None
            else None
        )

        def done(result: asyncio.Future[list[Any]]) -> None:
            if handle is not None:
                handle.cancel()
            if not self._queue or self._queue[0] is not head:
                return
            error = result.exception()
            if error is not None:
                if head.tries > self.retries:
                    self._queue.pop(0)
                    if head.future is not None and not head.future.done():
                        head.future.set_exception(error)
                head.pending = False
                self._drain_queue()
                return
            self._queue.pop(0)
            if head.future is not None and not head.future.done():
                head.future.set_result(result.result())
            head.pending = False
            self._drain_queue()

        attempt.add_done_callback(done)

    def _retry_timeout(self, head: _Queued, ack_id: int) -> None:
        callback = self._acks.pop(ack_id, None)
        if callback is not None:
            callback(
                AckTimeout(f"{head.args[0]!r} was not acknowledged within {self.ack_timeout}s")
            )

    # -- disconnecting --------------------------------------------------------------------------

    def manager_closed(self, reason: str, description: Any) -> None:
        """The Manager's call: the connection closed; the socket reconnects with it."""
        self._disconnected(reason, description, SocketState.CONNECTING)

    def _disconnected(self, reason: str, description: Any, state: SocketState) -> None:
        was_connected = self.connected
        self._set_state(state)
        self.id = None
        if was_connected or self.active:
            logger.debug("close (%s)", reason)
            self._emit_local("disconnect", reason, description)
        acks, self._acks = self._acks, {}
        unsent = {p.id for p, _ in self._send_buffer if p.id is not None}
        for ack_id, callback in acks.items():
            if ack_id in unsent:
                self._acks[ack_id] = callback  # sent on reconnection
            else:
                callback(Disconnected(f"disconnected ({reason}) before the acknowledgement"))

    def _leave(self) -> None:
        """Disconnected for good: no longer active; the manager closes when no socket is."""
        self._set_state(SocketState.DISCONNECTING if self.connected else SocketState.DISCONNECTED)
        self.io.release(self)

    async def disconnect(self) -> None:
        """Disconnect (reason ``io client disconnect``); no reconnection follows."""
        if self.state is SocketState.DISCONNECTING:  # from a handler of this disconnection
            return
        was_connected = self.connected
        if was_connected:
            logger.debug("performing disconnect (%s)", self.namespace)
            self.io.write(Packet(PacketType.DISCONNECT, self.namespace))
            self._set_state(SocketState.DISCONNECTING)
        else:
            self._set_state(SocketState.DISCONNECTED)
        self._settle(ConnectError(Stage.TRANSPORT, "disconnect() was called"))
        self.io.release(self)
        if was_connected:
            self._disconnected("io client disconnect", None, SocketState.DISCONNECTED)
        await self.io.wait_closed()

    close = disconnect


def _check(event: str) -> None:
    if not isinstance(event, str):
        raise TypeError(f"event name must be a string, got {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


def _ignore(_value: Any) -> None:
    return None


async def _await(value: Awaitable[Mapping[str, Any]]) -> Mapping[str, Any]:
    return await value


async def _first(replies: Awaitable[list[Any]]) -> Any:
    """The first argument of an acknowledgement (``None`` when it has none)."""
    args = await replies
    return args[0] if args else None

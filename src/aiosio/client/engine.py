"""The Engine.IO client's I/O: the driver of a sans-I/O ``ClientSession``.

The rules (handshake, heartbeat, the "2probe" / "3probe" / pause / "5" upgrade, the write buffer,
close) live in the sans-I/O core, ``protocol/client_session.py``; this module feeds it what the
network says and does what it returns: long-poll GETs and POSTs on two kept-alive HTTP
connections, the WebSocket and its probe, one timer for the core's deadline. Follows
engine.io-client 6.x (``socket.ts``).

The core's clock includes the time the machine was suspended (``CLOCK_BOOTTIME`` where there is
one, else the wall clock): a laptop that slept, a process that was stopped, notices at its next
emit that its session has expired, before the event loop's timer (which does not count the
suspension) fires.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl as ssl_module
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import assert_never
from urllib.parse import quote

from aiosio._events import EventEmitter
from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.errors import UpgradeError
from aiosio.client.errors import hint_for_http
from aiosio.client.http import ClientWebSocket
from aiosio.client.http import CookieJar
from aiosio.client.http import Endpoint
from aiosio.client.http import HttpConnection
from aiosio.client.http import HttpResult
from aiosio.client.http import Trace
from aiosio.client.http import WebSocketConnection
from aiosio.client.http import WebSocketOpener
from aiosio.client.proxy import Proxy
from aiosio.client.webtransport import open_webtransport
from aiosio.protocol.client_session import ClientConfig
from aiosio.protocol.client_session import ClientEvent
from aiosio.protocol.client_session import ClientSession
from aiosio.protocol.client_session import ClientState
from aiosio.protocol.client_session import Closed
from aiosio.protocol.client_session import CloseReason
from aiosio.protocol.client_session import MessageReceived
from aiosio.protocol.client_session import PingReceived
from aiosio.protocol.client_session import Poll
from aiosio.protocol.client_session import Post
from aiosio.protocol.client_session import PostClose
from aiosio.protocol.client_session import ProbeClose
from aiosio.protocol.client_session import ProbeSend
from aiosio.protocol.client_session import StartProbe
from aiosio.protocol.client_session import TransportClose
from aiosio.protocol.client_session import TransportKind
from aiosio.protocol.client_session import Upgraded
from aiosio.protocol.client_session import WebSocketSend
from aiosio.protocol.engineio import BINARY_CONTENT_TYPE
from aiosio.protocol.engineio import Packet
from aiosio.protocol.engineio import PacketType
from aiosio.protocol.engineio import PayloadError
from aiosio.protocol.engineio import decode_packet
from aiosio.protocol.engineio import decode_payload
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.session import TRANSPORT_NAMES
from aiosio.protocol.session import TransportName

__all__ = ["ClientState", "EngineClient", "EngineOptions"]

logger = logging.getLogger("aiosio.client.engine")

# How long a closing client waits for the server to take its close packet over polling.
_CLOSE_POST_TIMEOUT = 5.0


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def _clock() -> float:
    """Seconds, counting the time the machine was suspended (see the module docstring)."""
    if _BOOTTIME is None:  # pragma: no cover - not Linux: the wall clock counts it too
        return time.time()
    return time.clock_gettime(_BOOTTIME)


@dataclass(slots=True, kw_only=True)
class EngineOptions:
    host: str
    port: int
    secure: bool
    path: str = "/socket.io/"
    query: dict[str, str] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)
    transports: Sequence[str] = ("polling", "websocket")
    upgrade: bool = True
    ssl: ssl_module.SSLContext | None = None
    request_timeout: float = 20.0
    max_payload: int = 100_000_000
    trace: Trace | None = None
    proxy: Proxy | None = None
    # None: a WebSocket over TCP (WebSocketConnection.connect); aiosio.testing's is in memory.
    websocket_opener: WebSocketOpener | None = None
    # On a failed handshake, try the next transport of ``transports`` (Node: tryAllTransports).
    try_all_transports: bool = False
    # WebTransport: the UDP port (None: ``port``), the pinned SHA-256 of a development
    # certificate (serverCertificateHashes), verification of the certificate otherwise.
    webtransport_port: int | None = None
    certificate_hashes: tuple[bytes, ...] = ()
    verify: bool = True
    # permessage-deflate offered on WebSocket, messages of at least this many bytes compressed
    # (Node: perMessageDeflate: {threshold: 1024}); None: not offered.
    compress_threshold: int | None = 1024

    @property
    def endpoint(self) -> Endpoint:
        """Where and how the transports connect."""
        return Endpoint(
            self.host,
            self.port,
            self.secure,
            self.ssl,
            self.request_timeout,
            self.trace,
            self.proxy,
        )

    @property
    def origin(self) -> str:
        scheme = "https" if self.secure else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return f"{scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def _timestamp() -> str:
    # The reference's cache-busting ``t`` parameter: 8 lowercase base-36 characters.
    now = int(time.time() * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while now:
        now, rem = divmod(now, 36)
        out = digits[rem] + out
    return out[3:] + "".join(secrets.choice(digits) for _ in range(3))


def _query_string(query: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(str(k), safe='-_.!~*()')}={quote(str(v), safe='-_.!~*()')}"
        for k, v in query.items()
    )


_NO_TRANSPORT = TransportName("")
_READY_STATES = {
    ClientState.OPENING: "opening",
    ClientState.OPEN: "open",
    ClientState.PROBING: "open",
    ClientState.PAUSING: "open",
    ClientState.CLOSING: "closing",
    ClientState.CLOSING_UPGRADE: "closing",
    ClientState.CLOSED: "closed",
}
_PONG = Packet(PacketType.PONG)


class EngineClient(EventEmitter):
    """One Engine.IO session (``client.io.engine``). Callbacks for its Manager:
    ``on_message(data)``, ``on_close(reason, description)``, ``on_upgrade(transport_name)``,
    ``on_ping()``.

    Events, engine.io-client's, for applications (debugging, as the reference's docs show):
    ``packet`` (each :class:`~aiosio.protocol.engineio.Packet` received), ``packetCreate``
    (each packet the client queues: messages with their ``compress`` option, pongs),
    ``upgrade`` (the new transport, ``.name``), ``upgradeError``
    (:class:`~aiosio.client.errors.UpgradeError`: the session stays on polling), ``drain``
    (everything queued was written), ``close`` (reason, description). With no handler, an
    event costs one test of an empty dict.

    ``state`` is the core's :class:`ClientState` (``PAUSING`` while the upgrade pauses polling),
    ``ready_state`` the reference's ``readyState``; ``transport`` the transport in use, a
    ``str`` with ``.name`` as the reference's transport object (``""`` before the handshake).
    Once closed it stays readable on ``client.io.engine`` until the next attempt."""

    _logger = logging.getLogger("aiosio.client.engine")

    def __init__(self, options: EngineOptions) -> None:
        super().__init__()
        self.options = options
        self.session = self._new_session()
        self.jar = CookieJar()
        self.on_message: Callable[[str | bytes], None] = lambda data: None
        self.on_close: Callable[[str, Any], None] = lambda reason, description: None
        self.on_upgrade: Callable[[str], None] = lambda name: None
        self.on_ping: Callable[[], None] = lambda: None
        self._get_conn: HttpConnection | None = None
        self._post_conn: HttpConnection | None = None
        self._ws: ClientWebSocket | None = None
        self._probe_conn: ClientWebSocket | None = None
        self._probe_kind = TransportKind.WEBSOCKET
        self._poll_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._expiring: asyncio.Handle | None = None
        self._closing_ws: list[ClientWebSocket] = []
        self._upgrade_failed = False  # upgradeError was emitted for the current probe

    def _new_session(self) -> ClientSession:
        options = self.options
        timeout = options.request_timeout
        return ClientSession(
            ClientConfig(
                transports=tuple(options.transports),
                upgrade=options.upgrade,
                probe_timeout=timeout,
                pause_timeout=timeout,
                close_timeout=timeout,
            )
        )

    # -- what the core knows --------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self.session.state

    @property
    def ready_state(self) -> str:
        """engine.io-client's ``readyState``: ``"opening"`` until the handshake, ``"open"`` (an
        upgrade under way included), ``"closing"`` while the buffer goes out before the close
        packet, ``"closed"`` (a closed session stays readable on ``client.io.engine``)."""
        return _READY_STATES[self.session.state]

    @property
    def transport(self) -> TransportName:
        transport = self.session.transport
        return _NO_TRANSPORT if transport is None else TRANSPORT_NAMES[transport]

    @property
    def id(self) -> str | None:
        """The session id; ``None`` before the handshake and once closed."""
        return None if self.session.is_closed else self.session.sid

    @property
    def ping_interval(self) -> float:
        return self.session.ping_interval

    @property
    def ping_timeout(self) -> float:
        return self.session.ping_timeout

    @property
    def max_payload(self) -> int:
        return self.session.max_payload

    @property
    def upgrades(self) -> list[str]:
        return list(self.session.upgrades)

    # -- URLs -----------------------------------------------------------------------------------

    def _target(self, transport: str) -> str:
        query: dict[str, str] = dict(self.options.query)
        query["EIO"] = "4"
        query["transport"] = transport
        if transport == "polling":
            query["t"] = _timestamp()
        if self.session.sid is not None:
            query["sid"] = self.session.sid
        return f"{self.options.path}?{_query_string(query)}"

    def url(self, transport: str) -> str:
        origin = self.options.origin
        if transport == "websocket":
            origin = origin.replace("http", "ws", 1)
        elif transport == "webtransport":
            o = self.options
            host = f"[{o.host}]" if ":" in o.host else o.host
            origin = f"https://{host}:{o.webtransport_port or o.port}"
        return origin + self._target(transport)

    def _target_from(self, url: str) -> str:
        return url[len(self.options.origin) :]

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "*/*", "User-Agent": "aiosio"}
        headers.update(self.options.extra_headers)
        cookie = self.jar.header()
        if cookie:
            headers["Cookie"] = cookie
        if extra:
            headers.update(extra)
        return headers

    def _http(self) -> HttpConnection:
        o = self.options
        return HttpConnection(o.endpoint, max_body=o.max_payload)

    # -- opening --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the session on the first transport; raises :class:`ConnectError`."""
        transports = [
            t for t in self.options.transports if t in ("polling", "websocket", "webtransport")
        ]
        if not transports:
            raise ConnectError(
                Stage.PROTOCOL,
                f"no usable transport in {list(self.options.transports)!r}",
                hint="transports must include 'polling', 'websocket' or 'webtransport'",
            )
        tried = transports if self.options.try_all_transports else transports[:1]
        for index, transport in enumerate(tried):
            try:
                if transport == "websocket":
                    await self._open_websocket()
                elif transport == "webtransport":
                    await self._open_websocket(TransportKind.WEBTRANSPORT)
                else:
                    await self._open_polling()
            except ConnectError as error:
                self._open_failed()
                if index == len(tried) - 1:
                    raise
                # try_all_transports: a server or a proxy that refuses one transport may take
                # the next (a WebSocket-only server answers polling "Transport unknown").
                logger.info(
                    "%s failed (%s); trying %s (try_all_transports)",
                    transport,
                    error.message,
                    tried[index + 1],
                )
                self.session = self._new_session()
                continue
            except BaseException:
                self._open_failed()
                raise
            return

    def _open_failed(self) -> None:
        if self.session.state is ClientState.OPENING:
            self.session.handshake_failed()
        self._close_connections()

    async def _open_polling(self) -> None:
        self._get_conn = self._http()
        self._post_conn = self._http()
        url = self.url("polling")
        result = await self._get_conn.request(
            "GET", self._target_from(url), self._headers(), url=url
        )
        self.jar.update(result.headers)
        self._handshake(self._handshake_packets(result, url), TransportKind.POLLING, url)

    def _handshake_packets(self, result: HttpResult, url: str) -> list[Packet]:
        content_type = result.header("content-type") or ""
        if result.status != 200:
            message, hint = hint_for_http(
                result.status, result.body, content_type, self.options.path
            )
            raise _refused(Stage.HTTP, message, hint, result, "xhr poll error", url)
        try:
            packets = decode_payload(
                result.body, 4, binary=content_type.startswith(BINARY_CONTENT_TYPE)
            )
        except PayloadError:
            packets = []
        if not packets or packets[0].type is not PacketType.OPEN:
            message, hint = hint_for_http(200, result.body, content_type, self.options.path)
            if result.body.startswith(b"96:0{") or result.body[:4].isdigit():
                message = "the server answered with an Engine.IO 3 handshake (socket.io 2.x)"
                hint = (
                    "the server is socket.io 2.x: upgrade it to 4.x, or use a 2.x client; this "
                    "client speaks socket.io 3.x/4.x (EIO=4)"
                )
            raise ConnectError(
                Stage.PROTOCOL, message, hint=hint, status=200, body=result.body, url=url
            )
        return packets

    async def _open_websocket(self, kind: TransportKind = TransportKind.WEBSOCKET) -> None:
        """Open the session on a WebSocket, or on a WebTransport stream (``kind``): both carry
        the same messages, the first of which is the server's handshake."""
        url = self.url(kind.value)
        o = self.options
        conn: ClientWebSocket
        if kind is TransportKind.WEBTRANSPORT:
            conn = await self._connect_webtransport(url)
        else:
            opened, result = await self._connect_websocket(url)
            if opened is None:
                raise self._websocket_refused(result, url)
            conn = opened
        first: asyncio.Future[str | bytes] = asyncio.get_running_loop().create_future()

        def before_open(data: str | bytes) -> None:
            if not first.done():
                first.set_result(data)

        def closed_early(code: int | None, error: str | None) -> None:
            if not first.done():
                first.set_exception(
                    ConnectError(
                        Stage.PROTOCOL,
                        f"the WebSocket closed before the Engine.IO handshake (code {code})",
                        hint="a plain WebSocket server, or a server that refused the session",
                        url=url,
                    )
                )

        conn.on_message = before_open
        conn.on_close = closed_early
        conn.start()
        try:
            # Half the connect timeout: a plain WebSocket server that says nothing is named as
            # such before the connection attempt as a whole times out.
            async with asyncio.timeout(o.request_timeout / 2):
                raw = await first
        except BaseException as exc:
            conn.close()
            self._closing_ws.append(conn)
            if not isinstance(exc, TimeoutError):
                raise
            raise ConnectError(
                Stage.PROTOCOL,
                "the WebSocket opened but no Engine.IO handshake came",
                hint="this looks like a plain WebSocket server, not Socket.IO: the Socket.IO "
                "client cannot talk to it",
                url=url,
            ) from None
        try:
            packet = decode_packet(raw, 4)
        except RemoteProtocolError:
            packet = Packet(PacketType.NOOP)
        if packet.type is not PacketType.OPEN:
            conn.close()
            raise ConnectError(
                Stage.PROTOCOL,
                f"the first WebSocket message is not an Engine.IO handshake: {str(raw)[:60]!r}",
                hint="this is a plain WebSocket server (or another protocol), not Socket.IO",
                url=url,
            )
        self._ws = conn
        conn.on_message = self._on_ws_message
        conn.on_close = self._on_ws_close
        self._handshake([packet], kind, url)

    async def _connect_webtransport(self, url: str) -> ClientWebSocket:
        """A WebTransport session with its stream, the OPEN packet written (with the sid when
        it upgrades this session); raises :class:`ConnectError` naming the failed step."""
        o = self.options
        return await open_webtransport(
            o.host,
            o.webtransport_port or o.port,
            self._target("webtransport"),
            {"User-Agent": "aiosio", **o.extra_headers},
            sid=self.session.sid,
            timeout=o.request_timeout,
            max_message=o.max_payload,
            certificate_hashes=o.certificate_hashes,
            verify=o.verify,
            url=url,
        )

    async def _connect_websocket(self, url: str) -> tuple[ClientWebSocket | None, HttpResult]:
        o = self.options
        if o.websocket_opener is not None:
            return await o.websocket_opener(
                self._target("websocket"),
                self._headers(),
                max_message_size=o.max_payload,
                url=url,
            )
        return await WebSocketConnection.connect(
            o.endpoint,
            self._target("websocket"),
            self._headers(),
            max_message_size=o.max_payload,
            url=url,
            compress_threshold=o.compress_threshold,
        )

    def _websocket_refused(self, result: HttpResult, url: str) -> ConnectError:
        message, hint = hint_for_http(
            result.status, result.body, result.header("content-type") or "", self.options.path
        )
        if result.status == 200 and result.body.startswith(b"0{"):
            hint = (
                "the server answered the upgrade as plain HTTP: a proxy drops the Upgrade and "
                "Connection headers"
            )
        elif result.status == 400 and result.body and not result.body.startswith(b"{"):
            message = f"HTTP 400 {result.body.decode('utf-8', 'replace')[:120]}"
        message = f"the WebSocket handshake was answered with {message}"
        return _refused(Stage.WEBSOCKET, message, hint, result, "websocket error", url)

    def _handshake(self, packets: Sequence[Packet], transport: TransportKind, url: str) -> None:
        if self.session.state is not ClientState.OPENING:
            # close() came while the handshake was on its way (the Manager gave up).
            raise ConnectError(Stage.PROTOCOL, "the session was closed while opening", url=url)
        if self._handlers:
            for packet in packets:
                self.emit("packet", packet)
        try:
            events = self.session.handshake(packets, transport, _clock())
        except RemoteProtocolError as exc:
            raise ConnectError(
                Stage.PROTOCOL, str(exc), hint="the server is not an Engine.IO 4 server", url=url
            ) from exc
        self._apply(events)

    # -- the core's events ----------------------------------------------------------------------

    def _apply(self, events: list[ClientEvent]) -> None:
        for event in events:
            if isinstance(event, MessageReceived):
                self.on_message(event.data)
            elif isinstance(event, PingReceived):
                if self._handlers:
                    self.emit("packetCreate", _PONG)
                self.on_ping()
            elif isinstance(event, Poll):
                self._poll_task = self._spawn(self._poll())
            elif isinstance(event, Post):
                self._spawn(self._post(event.body))
            elif isinstance(event, WebSocketSend):
                ws = self._ws
                if ws is not None:
                    for message, compress in event.pairs():
                        ws.send(message, compress)
                    if self._handlers:
                        # The reference's "fake drain" of its WebSocket, at the next turn.
                        asyncio.get_running_loop().call_soon(self._drained)
            elif isinstance(event, StartProbe):
                self._spawn(self._probe(event.transport))
            elif isinstance(event, ProbeSend):
                if self._probe_conn is not None:
                    self._probe_conn.send(event.message)
            elif isinstance(event, ProbeClose):
                self._close_probe(event.reason)
            elif isinstance(event, Upgraded):
                self._upgraded()
            elif isinstance(event, PostClose):
                self._post_close(event.body)
            elif isinstance(event, TransportClose):
                self._close_connections()
            elif isinstance(event, Closed):
                self._closed(event)
            else:
                assert_never(event)
        self._schedule()

    def _schedule(self) -> None:
        """One event-loop timer, at the core's earliest deadline."""
        deadline = self.session.deadline
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(deadline - _clock(), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # run early by ping_expired()
        self._timer = self._timer_at = None
        if self._expiring is not None:
            self._expiring.cancel()
            self._expiring = None
        self._apply(self.session.timer(_clock()))

    def ping_expired(self) -> bool:
        """True when the session has outlived its heartbeat by the core's clock: the process was
        suspended (a laptop that slept) and the event loop's timer has not fired yet. The session
        closes with ``ping timeout`` at the loop's next turn."""
        if not self.session.heartbeat_expired(_clock()):
            return False
        if self._expiring is None:
            logger.info("throttled timer detected (the process was suspended): closing")
            self._expiring = asyncio.get_running_loop().call_soon(self._on_timer)
        return True

    # -- receiving ------------------------------------------------------------------------------

    def _on_ws_message(self, raw: str | bytes) -> None:
        try:
            packet = decode_packet(raw, 4)
        except RemoteProtocolError as exc:
            self._apply(self.session.parse_error(exc, _clock()))
            return
        self._received(packet)

    def _received(self, packet: Packet) -> None:
        if self._handlers and not self.session.is_closed:
            self.emit("packet", packet)
        self._apply(self.session.received(packet, _clock()))

    def _on_ws_close(self, code: int | None, error: str | None) -> None:
        if error is not None:
            self._apply(self.session.transport_error(error, _clock()))
        else:
            description = {"description": "websocket connection closed", "code": code}
            self._apply(self.session.transport_closed(description, _clock()))

    async def _poll(self) -> None:
        """One long-poll GET; the core asks for the next one (``Poll``) unless paused."""
        session = self.session
        result = await self._polling_request(self._get_conn, "GET", self._headers())
        if result is None or session.transport is not TransportKind.POLLING or session.is_closed:
            return
        if result.status != 200:
            self._apply(session.transport_error(_poll_error("xhr poll error", result), _clock()))
            return
        content_type = result.header("content-type") or ""
        try:
            packets = decode_payload(
                result.body, 4, binary=content_type.startswith(BINARY_CONTENT_TYPE)
            )
        except PayloadError as exc:
            for packet in exc.decoded:
                self._received(packet)
            self._apply(session.parse_error(exc, _clock()))
            return
        for packet in packets:
            # One at a time: what a handler sends in between follows what the packet produced.
            self._received(packet)
        self._apply(session.poll_ended(_clock()))

    async def _polling_request(
        self, conn: HttpConnection | None, method: str, headers: dict[str, str], body: bytes = b""
    ) -> HttpResult | None:
        """One request of the polling transport and its answer (its cookies kept); None without
        a connection or when it failed, which is a transport error while polling."""
        if conn is None:
            return None
        url = self.url("polling")
        try:
            result = await conn.request(method, self._target_from(url), headers, body, url=url)
        except ConnectError as exc:
            if self.session.transport is TransportKind.POLLING:
                self._apply(self.session.transport_error(exc, _clock()))
            return None
        self.jar.update(result.headers)
        return result

    # -- sending --------------------------------------------------------------------------------

    def send(self, data: str | bytes, compress: bool = True) -> None:
        """Queue a message; dropped once the session is closing (as the reference).
        ``compress=False``: its WebSocket message is not compressed (polling ignores it)."""
        if self._handlers and self.session.accepting:
            self.emit("packetCreate", Packet(PacketType.MESSAGE, data, compress))
        self._apply(self.session.send(data, compress))

    @property
    def writable(self) -> bool:
        if not self.session.writable:
            return False
        if self.session.transport in (TransportKind.WEBSOCKET, TransportKind.WEBTRANSPORT):
            return self._ws is not None and self._ws.buffered_amount == 0
        return True

    async def _post(self, body: bytes) -> None:
        session = self.session
        headers = self._headers({"Content-Type": "text/plain;charset=UTF-8"})
        result = await self._polling_request(self._post_conn, "POST", headers, body)
        if result is None:
            return
        if result.status != 200:
            if session.transport is TransportKind.POLLING:
                error = _poll_error("xhr post error", result)
                self._apply(session.transport_error(error, _clock()))
            return
        self._apply(session.post_ended(_clock()))
        if self._handlers:
            self._drained()

    def _drained(self) -> None:
        """Everything queued was written (the reference's ``drain``): nothing buffered, no
        POST in flight."""
        if self.session.buffered == 0 and self.session.writable:
            self.emit("drain")

    # -- upgrade --------------------------------------------------------------------------------

    async def _probe(self, kind: TransportKind = TransportKind.WEBSOCKET) -> None:
        url = self.url(kind.value)
        self._probe_kind = kind
        self._upgrade_failed = False
        try:
            if kind is TransportKind.WEBTRANSPORT:
                conn: ClientWebSocket | None = await self._connect_webtransport(url)
                result = None
            else:
                conn, result = await self._connect_websocket(url)
        except ConnectError as exc:
            logger.info("%s upgrade failed, staying on polling: %s", kind.value, exc)
            self._upgrade_error(f"probe error: {exc.message}", exc)
            self._apply(self.session.probe_failed(_clock()))
            return
        if conn is None:
            assert result is not None
            refused = self._websocket_refused(result, url)
            logger.info(
                "websocket upgrade refused with HTTP %d, staying on polling: %s",
                result.status,
                refused,
            )
            self._upgrade_error(f"probe error: {refused.message}", refused)
            self._apply(self.session.probe_failed(_clock()))
            return
        self._probe_conn = conn

        def on_probe(raw: str | bytes) -> None:
            if conn is self._probe_conn:
                self._apply(self.session.probe_message(raw, _clock()))

        def on_probe_close(code: int | None, error: str | None) -> None:
            if conn is self._probe_conn:
                self._probe_conn = None
                self._closing_ws.append(conn)
                if self.session.state in (ClientState.PROBING, ClientState.PAUSING):
                    logger.info("websocket probe closed (code %s), staying on polling", code)
                    self._upgrade_error("probe error: transport closed", error)
                self._apply(self.session.probe_closed(_clock()))

        conn.on_message = on_probe
        conn.on_close = on_probe_close
        conn.start()
        self._apply(self.session.probe_opened(_clock()))

    def _close_probe(self, reason: str) -> None:
        if self.session.state is ClientState.OPEN:
            logger.info("websocket probe failed, staying on polling: %s", reason)
            self._upgrade_error(f"probe error: {reason}")
        elif self._probe_conn is not None:
            self._upgrade_error("probe error: socket closed")
        conn, self._probe_conn = self._probe_conn, None
        if conn is not None:
            conn.close()
            self._closing_ws.append(conn)

    def _upgraded(self) -> None:
        conn, self._probe_conn = self._probe_conn, None
        if conn is None:  # pragma: no cover - the core upgrades only to an open probe
            return
        self._ws = conn
        conn.on_message = self._on_ws_message
        conn.on_close = self._on_ws_close
        self._close_polling()
        self.on_upgrade(self._probe_kind.value)
        if self._handlers:
            self.emit("upgrade", TRANSPORT_NAMES[self._probe_kind])

    def _upgrade_error(self, message: str, description: Any = None) -> None:
        # One report per probe: a probe given up while it connected (the probe timeout) is
        # closed again once it opens, and that says nothing new.
        if self._handlers and not self._upgrade_failed:
            self._upgrade_failed = True
            transport = self._probe_kind.value
            self.emit(
                "upgradeError", UpgradeError(message, transport=transport, description=description)
            )

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the session: buffered packets are flushed first (reason ``forced close``)."""
        self._apply(self.session.close(_clock()))

    def _post_close(self, body: bytes) -> None:
        """The polling transport tells the server with a close packet. The waiting GET stays
        open until the server has it (as the reference client does): dropping it first makes
        the server close the session for an aborted poll ("transport error") and then refuse
        the close packet of a session it no longer knows."""
        conn, self._post_conn = self._post_conn, None
        if conn is None:
            return
        waiting = (self._get_conn, self._poll_task)
        self._get_conn = self._poll_task = None
        url = self.url("polling")
        self._spawn(
            _post_and_close(conn, self._target_from(url), self._headers(), body, url, waiting)
        )

    def _closed(self, event: Closed) -> None:
        if self._expiring is not None:
            self._expiring.cancel()
            self._expiring = None
        self._close_connections()
        reason = event.reason
        if reason is CloseReason.PING_TIMEOUT:
            logger.info(
                "no ping from the server for %.1fs (ping_interval + ping_timeout): closing",
                self.ping_interval + self.ping_timeout,
            )
        if reason is not CloseReason.FORCED_CLOSE:
            logger.info("engine.io session closed: %s %s", reason, event.description or "")
        self.on_close(reason.value, event.description)
        if self._handlers:
            self.emit("close", reason.value, event.description)

    def _close_polling(self) -> None:
        poll = self._poll_task
        if poll is not None and not poll.done() and poll is not asyncio.current_task():
            poll.cancel()
        self._poll_task = None
        for conn in (self._get_conn, self._post_conn):
            if conn is not None:
                conn.close()
        self._get_conn = self._post_conn = None

    def _close_connections(self) -> None:
        self._close_polling()
        for ws in (self._ws, self._probe_conn):
            if ws is not None:
                ws.close()
                self._closing_ws.append(ws)
        self._ws = self._probe_conn = None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_closed(self) -> None:
        """Wait for the background requests of a closed session (the close packet) and its
        WebSockets' closing handshakes to finish (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.request_timeout
        while loop.time() < deadline:
            tasks = [t for t in self._tasks if not t.done() and t is not asyncio.current_task()]
            if not tasks:
                break
            await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0))
        closing, self._closing_ws = self._closing_ws, []
        for conn in closing:
            await conn.wait_closed(max(deadline - loop.time(), 0.1))


def _poll_error(kind: str, result: HttpResult) -> ConnectError:
    message, hint = hint_for_http(
        result.status, result.body, result.header("content-type") or "", "/"
    )
    return _refused(Stage.TRANSPORT, f"{kind}: {message}", hint, result, kind)


def _refused(
    stage: Stage,
    message: str,
    hint: str,
    result: HttpResult,
    description: str,
    url: str | None = None,
) -> ConnectError:
    """The error of an HTTP answer that refused a request: it carries the status and body."""
    return ConnectError(
        stage,
        message,
        hint=hint,
        status=result.status,
        body=result.body,
        description=description,
        url=url,
    )


async def _post_and_close(
    conn: HttpConnection,
    target: str,
    headers: dict[str, str],
    body: bytes,
    url: str,
    waiting: tuple[HttpConnection | None, asyncio.Task[None] | None] = (None, None),
) -> None:
    """POST the close packet, then close its connection and the waiting poll's."""
    try:
        async with asyncio.timeout(_CLOSE_POST_TIMEOUT):
            await conn.request("POST", target, headers, body, url=url)
    except (ConnectError, TimeoutError):
        pass  # the session is over either way
    finally:
        conn.close()
        get_conn, poll = waiting
        if poll is not None and not poll.done():
            poll.cancel()
        if get_conn is not None:
            get_conn.close()

"""The Engine.IO client: one session over long-polling and/or WebSocket, with the upgrade.

Follows engine.io-client 6.x (``socket.ts``): the handshake on the first transport of
``transports``; probes of the upgrades the server offers ("2probe" / "3probe", pause polling, "5");
a heartbeat watchdog of ping_interval + ping_timeout that also checks the wall clock (a process
that was suspended, a laptop that slept, notices at once that its session has expired); a write
buffer flushed one POST at a time on polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl as ssl_module
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiosio.client.errors import ConnectError, Stage, hint_for_http
from aiosio.client.http import CookieJar, HttpConnection, HttpResult, Trace, WebSocketConnection
from aiosio.protocol.engineio import (
    BINARY_CONTENT_TYPE,
    Packet,
    PacketType,
    PayloadError,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)
from aiosio.protocol.errors import RemoteProtocolError

__all__ = ["EngineClient", "EngineOptions"]

logger = logging.getLogger("aiosio.client.engine")

# How long a closing client waits for the server to take its close packet over polling.
_CLOSE_POST_TIMEOUT = 5.0


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


class EngineClient:
    """One Engine.IO session. Callbacks: ``on_message(data)``, ``on_close(reason, description)``,
    ``on_upgrade(transport_name)``, ``on_ping()``."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.state = "closed"  # opening, open, closing, closed
        self.transport = ""
        self.id: str | None = None
        self.ping_interval = 25.0
        self.ping_timeout = 20.0
        self.max_payload = 0
        self.upgrades: list[str] = []
        self.jar = CookieJar()
        self.on_message: Callable[[str | bytes], None] = lambda data: None
        self.on_close: Callable[[str, Any], None] = lambda reason, description: None
        self.on_upgrade: Callable[[str], None] = lambda name: None
        self.on_ping: Callable[[], None] = lambda: None
        self._buffer: list[Packet] = []
        self._writing = False  # a POST is in flight
        self._upgrading = False
        self._paused = False
        self._get_conn: HttpConnection | None = None
        self._post_conn: HttpConnection | None = None
        self._ws: WebSocketConnection | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._ping_deadline_wall = float("inf")
        self._poll_task: asyncio.Task[None] | None = None
        self._post_done: asyncio.Event = asyncio.Event()
        self._post_done.set()
        self._closing_ws: list[WebSocketConnection] = []
        self._upgrade_settled = asyncio.Event()
        self._upgrade_settled.set()

    # -- URLs -----------------------------------------------------------------------------------

    def _target(self, transport: str) -> str:
        query: dict[str, str] = dict(self.options.query)
        query["EIO"] = "4"
        query["transport"] = transport
        if transport == "polling":
            query["t"] = _timestamp()
        if self.id is not None:
            query["sid"] = self.id
        return f"{self.options.path}?{_query_string(query)}"

    def url(self, transport: str) -> str:
        origin = self.options.origin
        if transport == "websocket":
            origin = origin.replace("http", "ws", 1)
        return origin + self._target(transport)

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
        return HttpConnection(
            o.host,
            o.port,
            secure=o.secure,
            ssl_context=o.ssl,
            timeout=o.request_timeout,
            max_body=o.max_payload,
            trace=o.trace,
        )

    # -- opening --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the session on the first transport; raises :class:`ConnectError`."""
        transports = [t for t in self.options.transports if t in ("polling", "websocket")]
        if not transports:
            raise ConnectError(
                Stage.PROTOCOL,
                f"no usable transport in {list(self.options.transports)!r}",
                hint="transports must include 'polling' and/or 'websocket'",
            )
        self.state = "opening"
        try:
            if transports[0] == "websocket":
                await self._open_websocket()
            else:
                await self._open_polling()
        except BaseException:
            self.state = "closed"
            self._close_connections()
            raise

    async def _open_polling(self) -> None:
        self._get_conn = self._http()
        self._post_conn = self._http()
        url = self.url("polling")
        result = await self._get_conn.request(
            "GET", self._target_from(url), self._headers(), url=url
        )
        self.jar.update(result.headers)
        packets = self._handshake_packets(result, url)
        self.transport = "polling"
        self._on_handshake(packets[0], url)
        self._on_packets(packets[1:])
        self._poll_task = self._spawn(self._poll_loop())
        self._after_open()

    def _target_from(self, url: str) -> str:
        return url[len(self.options.origin) :]

    def _handshake_packets(self, result: HttpResult, url: str) -> list[Packet]:
        content_type = result.header("content-type") or ""
        if result.status != 200:
            message, hint = hint_for_http(
                result.status, result.body, content_type, self.options.path
            )
            raise ConnectError(
                Stage.HTTP,
                message,
                hint=hint,
                status=result.status,
                body=result.body,
                description="xhr poll error",
                url=url,
            )
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

    async def _open_websocket(self) -> None:
        url = self.url("websocket")
        o = self.options
        conn, result = await self._connect_websocket(url)
        if conn is None:
            raise self._websocket_refused(result, url)
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
        self.transport = "websocket"
        self._on_handshake(packet, url)
        self._after_open()

    async def _connect_websocket(self, url: str) -> tuple[WebSocketConnection | None, HttpResult]:
        o = self.options
        return await WebSocketConnection.connect(
            o.host,
            o.port,
            self._target("websocket"),
            self._headers(),
            secure=o.secure,
            ssl_context=o.ssl,
            timeout=o.request_timeout,
            max_message_size=o.max_payload,
            url=url,
            trace=o.trace,
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
        return ConnectError(
            Stage.WEBSOCKET,
            f"the WebSocket handshake was answered with {message}",
            hint=hint,
            status=result.status,
            body=result.body,
            description="websocket error",
            url=url,
        )

    def _on_handshake(self, packet: Packet, url: str) -> None:
        try:
            data = json.loads(packet.data)
            sid = str(data["sid"])
            self.ping_interval = float(data["pingInterval"]) / 1000
            self.ping_timeout = float(data["pingTimeout"]) / 1000
            self.max_payload = int(data.get("maxPayload", 0))
            upgrades = [str(u) for u in data.get("upgrades", [])]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectError(
                Stage.PROTOCOL,
                f"invalid Engine.IO handshake: {str(packet.data)[:100]!r}",
                hint="the server is not an Engine.IO 4 server",
                url=url,
            ) from exc
        self.id = sid
        self.upgrades = [u for u in upgrades if u in self.options.transports]
        self.state = "open"
        self._reset_watchdog()

    def _after_open(self) -> None:
        self._flush()
        if self.options.upgrade and self.transport == "polling" and "websocket" in self.upgrades:
            self._spawn(self._probe())

    # -- heartbeat ------------------------------------------------------------------------------

    def _reset_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        delay = self.ping_interval + self.ping_timeout
        self._ping_deadline_wall = time.time() + delay
        self._watchdog = asyncio.get_running_loop().call_later(delay, self._ping_timeout)

    def _ping_timeout(self) -> None:
        self._watchdog = None
        logger.info(
            "no ping from the server for %.1fs (ping_interval + ping_timeout): closing",
            self.ping_interval + self.ping_timeout,
        )
        self._close("ping timeout", None)

    def ping_expired(self) -> bool:
        """True when the session has outlived its heartbeat by the wall clock: the process was
        suspended (a laptop that slept) and the monotonic timers have not fired yet."""
        if self.state != "open":
            return False
        if time.time() > self._ping_deadline_wall:
            logger.info("throttled timer detected (the process was suspended): closing")
            asyncio.get_running_loop().call_soon(self._close, "ping timeout", None)
            self._ping_deadline_wall = float("inf")
            return True
        return False

    # -- receiving ------------------------------------------------------------------------------

    def _on_packets(self, packets: Sequence[Packet]) -> None:
        for packet in packets:
            if self.state not in ("open", "closing"):
                return
            ptype = packet.type
            if ptype is PacketType.MESSAGE:
                self.on_message(packet.data)
            elif ptype is PacketType.PING:
                self._send_packet(Packet(PacketType.PONG))
                self.on_ping()
                self._reset_watchdog()
            elif ptype is PacketType.CLOSE:
                self._close("transport close", {"description": "transport closed by the server"})
                return
            # NOOP, UPGRADE, OPEN, PONG: nothing to do.

    def _on_ws_message(self, raw: str | bytes) -> None:
        try:
            packet = decode_packet(raw, 4)
        except RemoteProtocolError as exc:
            self._close("parse error", exc)
            return
        self._on_packets((packet,))

    def _on_ws_close(self, code: int | None, error: str | None) -> None:
        if error is not None:
            self._close("transport error", error)
        else:
            self._close(
                "transport close",
                {"description": "websocket connection closed", "code": code},
            )

    async def _poll_loop(self) -> None:
        conn = self._get_conn
        assert conn is not None
        while self.state in ("open", "closing") and self.transport == "polling":
            url = self.url("polling")
            try:
                result = await conn.request("GET", self._target_from(url), self._headers(), url=url)
            except ConnectError as exc:
                self._close("transport error", exc)
                return
            if self.transport != "polling" or self.state == "closed":
                return
            self.jar.update(result.headers)
            if result.status != 200:
                self._close("transport error", _poll_error("xhr poll error", result))
                return
            content_type = result.header("content-type") or ""
            try:
                packets = decode_payload(
                    result.body, 4, binary=content_type.startswith(BINARY_CONTENT_TYPE)
                )
            except PayloadError as exc:
                self._on_packets(exc.decoded)
                self._close("parse error", exc)
                return
            self._on_packets(packets)
            if self._paused:
                return

    # -- sending --------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        """Queue a message; dropped once the session is closing (as the reference)."""
        if self.state not in ("opening", "open"):
            return
        self._send_packet(Packet(PacketType.MESSAGE, data))

    @property
    def writable(self) -> bool:
        if self.state != "open" or self._upgrading:
            return False
        if self.transport == "websocket":
            return self._ws is not None and self._ws.buffered_amount == 0
        return not self._writing

    def _send_packet(self, packet: Packet) -> None:
        self._buffer.append(packet)
        self._flush()

    def _flush(self) -> None:
        if self.state == "closed" or self._upgrading or not self._buffer:
            return
        if self.transport == "websocket":
            ws = self._ws
            if ws is None:
                return
            packets, self._buffer = self._buffer, []
            for packet in packets:
                ws.send(encode_packet(packet, 4))
            return
        if self.transport == "polling" and not self._writing:
            packets = self._writable_packets()
            del self._buffer[: len(packets)]
            self._writing = True
            self._post_done.clear()
            self._spawn(self._post(packets))

    def _writable_packets(self) -> list[Packet]:
        """Split the buffer by the server's maxPayload (engine.io-client _getWritablePackets)."""
        if not self.max_payload or len(self._buffer) <= 1:
            return list(self._buffer)
        size = 1
        for i, packet in enumerate(self._buffer):
            data = packet.data
            if data:
                size += len(data.encode()) if isinstance(data, str) else -(-len(data) * 133 // 100)
            if i > 0 and size > self.max_payload:
                return self._buffer[:i]
            size += 2
        return list(self._buffer)

    async def _post(self, packets: list[Packet]) -> None:
        conn = self._post_conn
        assert conn is not None
        body, _content_type = encode_payload(packets, 4)
        url = self.url("polling")
        try:
            result = await conn.request(
                "POST",
                self._target_from(url),
                self._headers({"Content-Type": "text/plain;charset=UTF-8"}),
                body,
                url=url,
            )
        except ConnectError as exc:
            self._writing = False
            self._post_done.set()
            self._close("transport error", exc)
            return
        self._writing = False
        self._post_done.set()
        self.jar.update(result.headers)
        if result.status != 200:
            self._close("transport error", _poll_error("xhr post error", result))
            return
        self._flush()

    # -- upgrade --------------------------------------------------------------------------------

    async def _probe(self) -> None:
        url = self.url("websocket")
        o = self.options
        try:
            conn, result = await self._connect_websocket(url)
        except ConnectError as exc:
            logger.info("websocket upgrade failed, staying on polling: %s", exc)
            return
        if conn is None:
            logger.info(
                "websocket upgrade refused with HTTP %d, staying on polling: %s",
                result.status,
                self._websocket_refused(result, url),
            )
            return
        if self.state != "open":
            conn.close()
            return
        pong: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_probe(raw: str | bytes) -> None:
            if not pong.done():
                pong.set_result(raw == "3probe")

        def on_probe_close(code: int | None, error: str | None) -> None:
            if not pong.done():
                pong.set_result(False)

        conn.on_message = on_probe
        conn.on_close = on_probe_close
        conn.start()
        conn.send("2probe")
        try:
            async with asyncio.timeout(o.request_timeout):
                ok = await pong
        except TimeoutError:
            ok = False
        if not ok or self.state != "open":
            logger.info("websocket probe failed, staying on polling")
            conn.close()
            return
        # Pause polling: wait for the GET in flight (the server answers it with a noop) and for
        # the POST in flight, then switch.
        self._upgrading = True
        self._upgrade_settled.clear()
        self._paused = True
        try:
            if self._poll_task is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(o.request_timeout):
                        await asyncio.shield(self._poll_task)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(o.request_timeout):
                    await self._post_done.wait()
        finally:
            if self.state not in ("open", "closing"):
                self._upgrading = False
                self._upgrade_settled.set()
        if self.state not in ("open", "closing"):
            conn.close()
            self._closing_ws.append(conn)
            return
        self._ws = conn
        conn.on_message = self._on_ws_message
        conn.on_close = self._on_ws_close
        self.transport = "websocket"
        conn.send("5")
        self._upgrading = False
        self._upgrade_settled.set()
        self._close_polling()
        self.on_upgrade("websocket")
        self._flush()

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the session: buffered packets are flushed first (reason ``forced close``)."""
        if self.state not in ("opening", "open"):
            return
        self.state = "closing"
        if self._upgrading or (self.transport == "polling" and (self._buffer or self._writing)):
            self._spawn(self._close_after_drain())
            return
        self._do_close()

    async def _close_after_drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.options.request_timeout):
                # As the reference: a close during the upgrade waits for it to end, then the
                # buffered packets go out on the new transport before the close.
                await self._upgrade_settled.wait()
                if self.transport == "websocket":
                    self._flush()
                while self._buffer or self._writing:
                    self._flush()
                    if not self._writing:
                        break  # nothing could be sent (an upgrade is under way)
                    await self._post_done.wait()
        self._do_close()

    def _do_close(self) -> None:
        if self.transport == "polling" and self._post_conn is not None:
            # The polling transport tells the server with a close packet. The waiting GET stays
            # open until the server has it (as the reference client does): dropping it first
            # makes the server close the session for an aborted poll ("transport error") and
            # then refuse the close packet of a session it no longer knows.
            conn, self._post_conn = self._post_conn, None
            waiting = (self._get_conn, self._poll_task)
            self._get_conn = self._poll_task = None
            url = self.url("polling")
            body, _ = encode_payload([Packet(PacketType.CLOSE)], 4)
            self._spawn(
                _post_and_close(conn, self._target_from(url), self._headers(), body, url, waiting)
            )
        self._close("forced close", None)

    def _close(self, reason: str, description: Any) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._close_connections()
        self._buffer = []
        self.id = None
        if reason not in ("forced close",):
            logger.info("engine.io session closed: %s %s", reason, description or "")
        self.on_close(reason, description)

    def _close_polling(self) -> None:
        if self._poll_task is not None and not self._poll_task.done():
            self._poll_task.cancel()
        self._poll_task = None
        for conn in (self._get_conn, self._post_conn):
            if conn is not None:
                conn.close()
        self._get_conn = self._post_conn = None

    def _close_connections(self) -> None:
        if self._poll_task is not None and not self._poll_task.done():
            self._poll_task.cancel()
        self._poll_task = None
        if self._get_conn is not None:
            self._get_conn.close()
            self._get_conn = None
        if self._post_conn is not None:
            self._post_conn.close()
            self._post_conn = None
        if self._ws is not None:
            self._ws.close()
            self._closing_ws.append(self._ws)
            self._ws = None

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
    return ConnectError(
        Stage.TRANSPORT,
        f"{kind}: {message}",
        hint=hint,
        status=result.status,
        body=result.body,
        description=kind,
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

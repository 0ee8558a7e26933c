"""The client Manager: one Engine.IO connection shared by namespace sockets, and reconnection
exactly like socket.io-client 4.x (``manager.ts``).

Reconnection delays follow the reference's ``Backoff``: ``delay * 2**attempt``, jitter applied
before the cap at ``delay_max``, truncated to whole milliseconds. Manager events:
``open``, ``close`` (reason, description), ``error`` (ConnectError), ``ping``, ``packet``,
``reconnect_attempt`` (attempt, from 1), ``reconnect_error`` (error), ``reconnect_failed``,
``reconnect`` (attempts).

The reference's ``readyState``, ``_reconnecting`` and ``skipReconnect`` are one
:class:`ManagerState`, its transitions in :data:`TRANSITIONS`::

    IDLE ──open()──▶ OPENING ──handshake──▶ OPEN ──connection lost──▶ IDLE
      ▲                 └──failed──▶ IDLE ──reconnection──▶ RECONNECT_WAIT ──timer──▶ RECONNECTING
      └──── attempts exhausted ◀──── RECONNECT_WAIT ◀──failed────────────────────────────┘ │
                                          OPEN ◀──handshake─────────────────────────────────┘
    any ──close()──▶ STOPPED ──open()──▶ OPENING

The manager talks to its namespace sockets through :class:`~aiosio.client.host.NamespaceSocket`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import ssl as ssl_module
from collections.abc import Callable
from typing import Any

from aiosio._events import EventEmitter
from aiosio.client.engine import EngineClient
from aiosio.client.engine import EngineOptions
from aiosio.client.errors import CLOSED_BEFORE_CONNECT_HINT
from aiosio.client.errors import PARSER_HINT
from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.host import ManagerOptions
from aiosio.client.host import NamespaceSocket
from aiosio.client.proxy import proxy_for
from aiosio.protocol.errors import LocalProtocolError
from aiosio.protocol.errors import ParserMismatch
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.parsers import mismatch_text
from aiosio.protocol.socketio import Packet

__all__ = ["TRANSITIONS", "Backoff", "Manager", "ManagerOptions", "ManagerState"]

logger = logging.getLogger("aiosio.client.manager")


class Backoff:
    """socket.io-client's ``Backoff`` (contrib/backo2.ts), in seconds."""

    def __init__(
        self,
        minimum: float,
        maximum: float,
        jitter: float,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.ms = minimum * 1000 or 100
        self.max = maximum * 1000 or 10000
        self.jitter = jitter if 0 < jitter <= 1 else 0
        self.attempts = 0
        self._rand = rand

    def duration(self) -> float:
        """The next delay in seconds (whole milliseconds, as the reference's ``| 0``)."""
        attempts = self.attempts
        self.attempts += 1
        if attempts > 64 or self.ms * 2.0**attempts > 2 * self.max:
            # Far past the cap: jitter (at most half) cannot bring it under (and 2**attempts
            # would overflow after a long outage); the reference returns the cap too.
            return int(self.max) / 1000
        ms = self.ms * 2.0**attempts
        if self.jitter:
            rand = self._rand()
            deviation = math.floor(rand * self.jitter * ms)
            ms = ms - deviation if (math.floor(rand * 10) & 1) == 0 else ms + deviation
        return int(min(ms, self.max)) / 1000

    def reset(self) -> None:
        self.attempts = 0


class ManagerState(enum.Enum):
    IDLE = "idle"  # no connection; a lost or failed one is reopened if the options say so
    STOPPED = "stopped"  # close() was called: no reconnection until open()
    OPENING = "opening"  # open() is opening the Engine.IO connection
    OPEN = "open"
    # A reconnection attempt is scheduled (or the failure of the last one is being reported).
    RECONNECT_WAIT = "waiting to reconnect"
    RECONNECTING = "reconnecting"  # a reconnection attempt is opening the connection


TRANSITIONS: dict[ManagerState, frozenset[ManagerState]] = {
    ManagerState.IDLE: frozenset(
        {ManagerState.OPENING, ManagerState.RECONNECT_WAIT, ManagerState.STOPPED}
    ),
    ManagerState.STOPPED: frozenset({ManagerState.OPENING, ManagerState.STOPPED}),
    ManagerState.OPENING: frozenset({ManagerState.OPEN, ManagerState.IDLE, ManagerState.STOPPED}),
    ManagerState.OPEN: frozenset({ManagerState.IDLE, ManagerState.STOPPED}),
    ManagerState.RECONNECT_WAIT: frozenset(
        {ManagerState.RECONNECTING, ManagerState.IDLE, ManagerState.STOPPED}
    ),
    ManagerState.RECONNECTING: frozenset(
        {ManagerState.OPEN, ManagerState.RECONNECT_WAIT, ManagerState.IDLE, ManagerState.STOPPED}
    ),
}
_CLOSED = frozenset({ManagerState.IDLE, ManagerState.STOPPED, ManagerState.RECONNECT_WAIT})
_OPENING = frozenset({ManagerState.OPENING, ManagerState.RECONNECTING})


class Manager(EventEmitter):
    """One Engine.IO connection to a server and the namespace sockets multiplexed on it."""

    _logger = logging.getLogger("aiosio.client")

    def __init__(
        self,
        host: str,
        port: int,
        secure: bool,
        options: ManagerOptions,
        ssl: Any = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.secure = secure
        self.options = options
        self.ssl = ssl
        # The Engine.IO session of the connection that is opening or open (None otherwise),
        # and the one of the latest attempt, kept once it closed (engine): set together.
        self._engine: EngineClient | None = None
        self._latest: EngineClient | None = None
        # A WebSocket opened or upgraded to with this server (for remember_upgrade).
        self.websocket_worked = False
        self.state = ManagerState.IDLE
        self.sockets: dict[str, NamespaceSocket] = {}
        self.backoff = Backoff(
            options.reconnection_delay,
            options.reconnection_delay_max,
            options.randomization_factor,
            rand,
        )
        self._decoder = options.parser.decoder(options.limits)
        self._reconnect_timer: asyncio.TimerHandle | None = None
        self._open_task: asyncio.Task[None] | None = None
        # One task per closed session, until its last requests end (_keep_until_closed).
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def uri(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.host}:{self.port}"

    # -- state ----------------------------------------------------------------------------------

    def _set_state(self, new: ManagerState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise LocalProtocolError(
                f"client manager: no transition from {self.state.value} to {new.value}"
            )
        self.state = new

    @property
    def ready_state(self) -> str:
        """socket.io-client's ``readyState``: ``"opening"``, ``"open"`` or ``"closed"``."""
        if self.state is ManagerState.OPEN:
            return "open"
        return "opening" if self.state in _OPENING else "closed"

    @property
    def is_open(self) -> bool:
        return self.state is ManagerState.OPEN

    @property
    def reconnecting(self) -> bool:
        """A reconnection attempt is scheduled or under way."""
        return self.state is ManagerState.RECONNECT_WAIT or self.state is ManagerState.RECONNECTING

    @property
    def skip_reconnect(self) -> bool:
        """``close()`` was called: no reconnection until ``open()``."""
        return self.state is ManagerState.STOPPED

    @property
    def engine(self) -> EngineClient | None:
        """The Engine.IO session of the latest connection attempt (Node: ``socket.io.engine``):
        the one opening or open, or, once it closed or failed, that one still, as the
        reference keeps it (its ``ready_state`` then ``"closed"``, its events and ``id`` None);
        ``None`` before the first attempt. Only the latest is kept: the next attempt's replaces
        it."""
        return self._latest

    @property
    def writable(self) -> bool:
        engine = self._engine
        return engine is not None and engine.writable

    def can_send(self) -> bool:
        engine = self._engine
        return engine is not None and not engine.ping_expired()

    # -- sockets --------------------------------------------------------------------------------

    def attach(self, namespace: str, socket: NamespaceSocket) -> None:
        self.sockets[namespace] = socket

    def has_socket(self, namespace: str) -> bool:
        return namespace in self.sockets

    # -- opening --------------------------------------------------------------------------------

    def open(self, callback: Callable[[ConnectError | None], None] | None = None) -> None:
        """Open the Engine.IO connection (nothing to do when opening, open or reconnecting)."""
        if self.state is ManagerState.IDLE or self.state is ManagerState.STOPPED:
            self._start(ManagerState.OPENING, callback)

    def _start(
        self, state: ManagerState, callback: Callable[[ConnectError | None], None] | None
    ) -> None:
        logger.debug("opening %s", self.uri)
        self._set_state(state)
        task = self._open_task = asyncio.get_running_loop().create_task(self._open(callback))
        task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[None]) -> None:
        # A finished task keeps its loop alive; the manager outlives it (multiplexing cache).
        if self._open_task is task:
            self._open_task = None

    def _transports(self) -> tuple[str, ...]:
        """The transports of the next attempt: with ``remember_upgrade``, WebSocket first once
        a WebSocket worked with this server (Node: rememberUpgrade), as the reference."""
        transports = tuple(self.options.transports)
        if self.options.remember_upgrade and self.websocket_worked and "websocket" in transports:
            return ("websocket", *(t for t in transports if t != "websocket"))
        return transports

    def _on_upgrade(self, name: str) -> None:
        logger.debug("upgraded to %s", name)
        if name == "websocket":
            self.websocket_worked = True

    async def _open(self, callback: Callable[[ConnectError | None], None] | None) -> None:
        o = self.options
        engine = EngineClient(
            EngineOptions(
                host=self.host,
                port=self.port,
                secure=self.secure,
                path=o.path,
                query=dict(o.query),
                extra_headers=dict(o.extra_headers),
                transports=self._transports(),
                upgrade=o.upgrade,
                ssl=self.ssl,
                request_timeout=o.timeout or 20.0,
                max_payload=o.max_http_buffer_size,
                trace=o.trace,
                proxy=proxy_for(self.secure, self.host, o.proxy),
                websocket_opener=o.websocket_opener,
                try_all_transports=o.try_all_transports,
                webtransport_port=o.webtransport_port,
                certificate_hashes=o.certificate_hashes,
                verify=self.ssl is None or self.ssl.verify_mode != ssl_module.CERT_NONE,
                compress_threshold=o.compress_threshold,
            )
        )
        self._engine = self._latest = engine
        try:
            if o.timeout is None:
                await engine.open()
            else:
                logger.debug("connect attempt will timeout after %s", o.timeout)
                async with asyncio.timeout(o.timeout):
                    await engine.open()
        except TimeoutError:
            error = ConnectError(
                Stage.TIMEOUT,
                f"no Engine.IO handshake within timeout={o.timeout}s",
                hint="the server is slow or unreachable; raise `timeout` if it is just slow",
                description="timeout",
                url=self.uri,
            )
            self._on_open_error(error, callback)
            return
        except ConnectError as error:
            self._on_open_error(error, callback)
            return
        except asyncio.CancelledError:
            if self.state in _OPENING:  # cancelled from outside (close() stops it first)
                self._set_state(ManagerState.IDLE)
            raise
        logger.debug("open")
        self._decoder.reset()
        self._set_state(ManagerState.OPEN)
        engine.on_message = self._on_data
        engine.on_close = self._on_close
        engine.on_ping = lambda: self.emit("ping")
        engine.on_upgrade = self._on_upgrade
        if engine.transport == "websocket":
            self.websocket_worked = True
        self.emit("open")
        for socket in list(self.sockets.values()):
            if socket.active:
                socket.manager_opened()
        if callback is not None:
            callback(None)

    def _on_open_error(
        self, error: ConnectError, callback: Callable[[ConnectError | None], None] | None
    ) -> None:
        logger.debug("connect error: %s", error)
        # A failed attempt stays "reconnecting" while its failure is reported (as the
        # reference's _reconnecting): a connect() from a connect_error handler waits for it.
        attempt = self.state is ManagerState.RECONNECTING
        self._set_state(ManagerState.RECONNECT_WAIT if attempt else ManagerState.IDLE)
        self._engine = None
        self.emit("error", error)
        for socket in list(self.sockets.values()):
            socket.manager_error(error)
        if callback is not None:
            callback(error)
        elif (
            self.state is ManagerState.IDLE
            and self.options.reconnection
            and self.backoff.attempts == 0
        ):
            self.reconnect()

    # -- data -----------------------------------------------------------------------------------

    def _on_data(self, data: str | bytes) -> None:
        try:
            packet = self._decoder.feed(data)
        except ParserMismatch as exc:
            text = mismatch_text(self.options.parser.name, exc.peer, side="client")
            logger.warning("invalid packet from the server: %s (%s)", text, exc)
            error = ConnectError(Stage.PROTOCOL, text, hint=PARSER_HINT, description=exc)
            self._on_close("parse error", error)
            return
        except RemoteProtocolError as exc:
            logger.warning("invalid packet from the server: %s", exc)
            self._on_close("parse error", exc)  # closes the engine after detaching from it
            return
        if packet is None:
            return
        self.emit("packet", packet)
        socket = self.sockets.get(packet.nsp)
        if socket is not None:
            socket.manager_packet(packet)

    def write(self, packet: Packet, compress: bool = True) -> None:
        engine = self._engine
        if engine is None:
            return
        for part in self.options.parser.encode(packet):
            engine.send(part, compress)

    # -- closing and reconnecting ---------------------------------------------------------------

    def _on_close(self, reason: str, description: Any = None) -> None:
        logger.debug("closed due to %s", reason)
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.on_close = lambda reason, description: None
            engine.on_message = lambda data: None
            engine.close()
            self._keep_until_closed(engine)
        self.backoff.reset()
        was_open = self.state is ManagerState.OPEN
        if was_open:
            self._set_state(ManagerState.IDLE)
        self._decoder.reset()
        if isinstance(description, ConnectError):
            # A transport error after the handshake (e.g. "Session ID unknown" on the next
            # request): for sockets that never connected it is their connect_error.
            self.emit("error", description)
            for socket in list(self.sockets.values()):
                if socket.active and not socket.connected:
                    socket.manager_error(description)
        elif was_open and reason == "transport close":
            # The server ended the connection while namespaces waited for the answer to their
            # CONNECT: what a server does with a packet it cannot parse (a Node server with
            # another parser says nothing more). Their connect_error says so.
            waiting = [s for s in self.sockets.values() if s.active and not s.connected]
            if waiting:
                error = ConnectError(
                    Stage.TRANSPORT,
                    "the server closed the connection before answering the namespace's CONNECT",
                    hint=CLOSED_BEFORE_CONNECT_HINT,
                    description=description,
                )
                for socket in waiting:
                    socket.manager_error(error)
        self.emit("close", reason, description)
        for socket in list(self.sockets.values()):
            if socket.active:  # a socket that disconnected for good no longer listens
                socket.manager_closed(reason, description)
        if self.options.reconnection:
            self.reconnect()

    def reconnect(self) -> None:
        """Schedule the next reconnection attempt (after the backoff's delay), or give up with
        ``reconnect_failed`` past ``reconnection_attempts``. Only from IDLE: not while open,
        opening or reconnecting, nor once close() was called."""
        if self.state is not ManagerState.IDLE:
            return
        limit = self.options.reconnection_attempts
        if limit is not None and self.backoff.attempts >= limit:
            logger.info("reconnect failed after %d attempts", self.backoff.attempts)
            self.backoff.reset()
            self.emit("reconnect_failed")
            return
        delay = self.backoff.duration()
        logger.debug("will wait %dms before reconnect attempt", int(delay * 1000))
        self._set_state(ManagerState.RECONNECT_WAIT)
        self._reconnect_timer = asyncio.get_running_loop().call_later(delay, self._attempt)

    def _attempt(self) -> None:
        self._reconnect_timer = None
        if not self._reconnect_due():
            return
        logger.debug("attempting reconnect")
        self.emit("reconnect_attempt", self.backoff.attempts)
        if not self._reconnect_due():
            return  # a reconnect_attempt listener disconnected

        def done(error: ConnectError | None) -> None:
            if error is not None:
                logger.debug("reconnect attempt error")
                if self.state is ManagerState.RECONNECT_WAIT:
                    self._set_state(ManagerState.IDLE)
                    self.reconnect()
                self.emit("reconnect_error", error)
            else:
                logger.debug("reconnect success")
                attempts = self.backoff.attempts
                self.backoff.reset()
                self.emit("reconnect", attempts)

        self._start(ManagerState.RECONNECTING, done)

    def _reconnect_due(self) -> bool:
        return self.state is ManagerState.RECONNECT_WAIT

    def release(self, socket: NamespaceSocket) -> None:
        """A socket disconnected for good: close the connection when no socket is active."""
        if any(s.active for s in self.sockets.values()):
            return
        self.close()

    def close(self) -> None:
        """Close the connection and stop reconnecting."""
        logger.debug("disconnect")
        self._set_state(ManagerState.STOPPED)
        if self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
            self._reconnect_timer = None
        if self._open_task is not None and not self._open_task.done():
            self._open_task.cancel()
        self._on_close("forced close", None)

    def _keep_until_closed(self, engine: EngineClient) -> None:
        """Hold a closed session until its last requests end (the close packet's POST, its
        WebSocket's closing handshake; bounded by ``timeout``), then let it go: a client that
        reconnects for days keeps none of the sessions it left (``engine`` keeps the latest)."""
        task = asyncio.get_running_loop().create_task(engine.wait_closed())
        self._closing.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("closing a session failed", exc_info=task.exception())

    async def wait_closed(self) -> None:
        """Wait until the closed connections' last requests (the close packet) are done."""
        closing = list(self._closing)
        if closing:
            await asyncio.wait(closing)

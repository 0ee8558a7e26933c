"""One Engine.IO connection seen from the Socket.IO layer (``client.ts``): decodes packets,
routes them to the namespace sockets multiplexed on the connection, writes packets out."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from aiosio._eager import run_eager
from aiosio.engine.server import EngineSocket
from aiosio.protocol.errors import ParserMismatch
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.parsers import mismatch_reply
from aiosio.protocol.parsers import mismatch_text
from aiosio.protocol.reasons import DisconnectReason
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import split_v4_namespace
from aiosio.server.interfaces import ClientHost
from aiosio.server.interfaces import HostedSocket

__all__ = ["Client"]

logger = logging.getLogger("aiosio.server")


class Client:
    """The Socket.IO side of one Engine.IO session (implements
    :class:`~aiosio.server.interfaces.SocketHost` for its sockets)."""

    def __init__(self, server: ClientHost, conn: EngineSocket) -> None:
        self.server = server
        self.conn = conn
        # The server's parser, read once: its encoders are called straight (for the default
        # one, the JSON module's functions themselves).
        parser = server.parser
        self.decoder = parser.decoder(server.limits, protocol=4 if conn.protocol == 3 else 5)
        self.encode = parser.encode
        self.encode_parts = parser.encode_parts
        self.sockets: dict[str, HostedSocket] = {}  # by namespace name, accepted sockets only
        # Namespaces whose CONNECT is being handled (matcher, middlewares): one socket per
        # namespace per connection, so a second CONNECT for one of these, or for a connected
        # namespace, is a protocol error.
        self._connecting: set[str] | None = None  # created when needed: memory per connection
        self._refusal_logged = False
        # Handlers running for this connection; past max_handlers_per_connection the
        # connection is not read from (its engine socket paused) and what was already read
        # waits in _backlog (set while paused), in order, until handlers end. Acks already
        # read go through: they are what handlers waiting on emit_with_ack need to end.
        self._running = 0
        self._pause_logged = False
        self._backlog: deque[Packet] | None = None  # while paused
        self._closed = False
        # The connect timeout is a deadline on the engine's timer wheel, like the sessions'
        # own: one shared mechanism, no timer handle per connection.
        self.timer_bucket: int | None = None
        host = conn.server
        host.timers.schedule(self, host.now() + server.connect_timeout)
        # Decided once: a server nobody watches reads its messages without a check per message.
        self.packet_listeners = server.packet_listeners
        conn.on_message(self._on_data_watched if self.packet_listeners else self._on_data)
        conn.on("close", self._on_close)
        if conn.protocol == 3:
            # socket.io 2.x clients are connected to "/" implicitly.
            self._connect("/", {})

    # -- writing --------------------------------------------------------------------------------

    def write(self, packet: Packet, *, volatile: bool = False) -> None:
        """Encode and send ``packet``. Encoded first, whatever the state of the connection: a
        value that cannot be encoded raises here, at the emit, on every connection alike."""
        parts = self.encode(packet)
        conn = self.conn
        if conn.ready_state != "open":
            return
        if volatile and not conn.writable:
            return
        for part in parts:
            conn.send(part)
        if self.packet_listeners:
            self.sent(parts)

    def write_ack(self, nsp: str, ack_id: int, args: list[Any]) -> None:
        """An ACK packet (encoded first, like :meth:`write`)."""
        parts = self.encode_parts(_ACK, nsp, args, ack_id)
        conn = self.conn
        for part in parts:
            conn.send(part)  # dropped by the engine session once it is closing
        if self.packet_listeners and conn.ready_state == "open":
            self.sent(parts)

    def sent(self, messages: Sequence[str | bytes]) -> None:
        """Tell the packet listeners of ``messages`` sent on this connection."""
        for listener in self.packet_listeners:
            for data in messages:
                listener.sent(data)

    @property
    def proxy_header(self) -> str | None:
        return self.server.proxy_header

    # -- reading --------------------------------------------------------------------------------

    def _on_data_watched(self, data: str | bytes) -> None:
        for listener in self.packet_listeners:
            listener.received(data)
        self._on_data(data)

    def _on_data(self, data: str | bytes) -> None:
        try:
            packet = self.decoder.feed(data)
        except ParserMismatch as exc:
            self._parser_mismatch(exc, data)
            return
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        if packet is not None:
            if self._backlog is not None and packet.type is not PacketType.ACK:
                self._backlog.append(packet)
                return
            self._on_packet(packet)

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        logger.warning(
            "closing the connection of %s (session %s): invalid Socket.IO packet: %s",
            self.conn.remote_address or "?",
            self.conn.id,
            exc,
        )
        self._close(DisconnectReason.PARSE_ERROR, str(exc))

    def _parser_mismatch(self, exc: ParserMismatch, data: str | bytes) -> None:
        """The client's message is in another parser's format: it is told so in its own
        format (a CONNECT_ERROR, what its connect_error shows) before the connection closes."""
        text = mismatch_text(self.server.parser.name, exc.peer, side="server")
        logger.warning(
            "closing the connection of %s (session %s): %s (%s)",
            self.conn.remote_address or "?",
            self.conn.id,
            text,
            exc,
        )
        for part in mismatch_reply(exc, data, text, self.server.limits):
            self.conn.send(part)
        self._close(DisconnectReason.PARSE_ERROR, text)

    def _on_packet(self, packet: Packet) -> None:
        ptype = packet.type
        if ptype is not _CONNECT and ptype is not _CONNECT_ERROR:
            socket = self.sockets.get(packet.nsp)
            if socket is not None:  # the hot path: an event or an ack of a connected socket
                socket.handle_packet(packet)
                return
        nsp = packet.nsp
        auth: dict[str, Any] = packet.data if isinstance(packet.data, dict) else {}
        if self.conn.protocol == 3 and packet.type is PacketType.CONNECT:
            nsp, auth = split_v4_namespace(nsp)
        socket = self.sockets.get(nsp)
        connecting = self._connecting is not None and nsp in self._connecting
        if socket is None and not connecting and packet.type is PacketType.CONNECT:
            self._connect(nsp, auth)
        elif (
            socket is not None
            and packet.type is not PacketType.CONNECT
            and packet.type is not PacketType.CONNECT_ERROR
        ):
            socket.handle_packet(packet)
        else:
            # As the reference, a packet a namespace cannot take in its state closes the
            # connection; and one socket per namespace per connection: a CONNECT while one is
            # being handled is refused the same way (the reference would create a socket for
            # each, only the last reachable, all kept until the connection closes).
            if socket is not None:
                state = "already connected"
            elif connecting:
                state = "its connection is already in progress; a client sends one CONNECT"
            else:
                state = "not connected to it"
            logger.warning(
                "closing the connection of %s (session %s): %s packet for namespace %r in the "
                "wrong state (%s)",
                self.conn.remote_address or "?",
                self.conn.id,
                packet.type.name,
                nsp,
                state,
            )
            self._close(DisconnectReason.FORCED_SERVER_CLOSE, None)

    def _connect(self, name: str, auth: dict[str, Any]) -> None:
        limit = self.server.max_namespaces_per_connection
        count = len(self.sockets) + (len(self._connecting) if self._connecting else 0)
        if count >= limit:
            self._refuse_over_limit(name, count, limit)
            return
        if self._connecting is None:
            self._connecting = set()
        self._connecting.add(name)
        run_eager(self._connect_namespace(name, auth), _ignore, self._connect_failed)

    async def _connect_namespace(self, name: str, auth: dict[str, Any]) -> None:
        try:
            nsp = await self.server.find_namespace(name, auth)
            if nsp is None:
                logger.warning(
                    "refused a connection to unknown namespace %r from %s: the server has no "
                    "such namespace (sio.of(%r) creates it)",
                    name,
                    self.conn.remote_address or "?",
                    name,
                )
                self.write(Packet(PacketType.CONNECT_ERROR, name, {"message": "Invalid namespace"}))
                return
            await nsp.add_client(self, auth)
        finally:
            if self._connecting is not None:
                self._connecting.discard(name)
                if not self._connecting:
                    self._connecting = None

    def _refuse_over_limit(self, name: str, count: int, limit: int) -> None:
        message = (
            f"too many namespaces on one connection: {count} connected, the server allows {limit}"
        )
        # Once per connection: a client looping over CONNECTs must not flood the log.
        log = logger.debug if self._refusal_logged else logger.warning
        self._refusal_logged = True
        log(
            "refused a connection to namespace %r from %s (session %s): the connection already "
            "has %d namespaces connected or connecting (max_namespaces_per_connection=%d); a "
            "client that needs more should disconnect the ones it no longer uses, or raise "
            "Server(max_namespaces_per_connection=...)",
            name,
            self.conn.remote_address or "?",
            self.conn.id,
            count,
            limit,
        )
        payload: Any = message if self.conn.protocol == 3 else {"message": message}
        self.write(Packet(PacketType.CONNECT_ERROR, name, payload))

    def _connect_failed(self, exc: BaseException) -> None:
        logger.error("connecting a namespace failed", exc_info=exc)

    def accepted(self, socket: HostedSocket) -> None:
        self.sockets[socket.nsp.name] = socket
        self._cancel_connect_timeout()

    def remove(self, socket: HostedSocket) -> None:
        if self.sockets.get(socket.nsp.name) is socket:
            del self.sockets[socket.nsp.name]

    # -- handlers running for this connection ----------------------------------------------------

    def handler_started(self, task: asyncio.Task[Any]) -> None:
        """A handler's coroutine runs on (it suspended): it counts until it ends."""
        self._running += 1
        task.add_done_callback(self._handler_ended)
        limit = self.server.max_handlers_per_connection
        if self._running >= limit and self._backlog is None and not self._closed:
            self._backlog = deque()  # paused: what is read meanwhile waits there
            if not self._pause_logged:
                self._pause_logged = True
                logger.info(
                    "not reading from %s (session %s) until one of its %d running handlers "
                    "ends (max_handlers_per_connection=%d): it sends events faster than its "
                    "handlers finish; raise the option if handlers are meant to run that long",
                    self.conn.remote_address or "?",
                    self.conn.id,
                    self._running,
                    limit,
                )
            self.conn.pause_reading()

    def _handler_ended(self, _task: asyncio.Task[Any]) -> None:
        self._running -= 1
        backlog = self._backlog
        if backlog is None or self._closed:
            return
        limit = self.server.max_handlers_per_connection
        while backlog and self._running < limit and not self._closed:
            self._on_packet(backlog.popleft())
        if not backlog and self._running < limit and not self._closed:
            self._backlog = None
            self.conn.resume_reading()

    # -- closing --------------------------------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """The connect timeout (called by the engine's timer wheel, which unscheduled it): the
        connection is closed if no namespace is connected by then."""
        if not self.sockets and not self._closed:
            logger.info(
                "closing the connection of %s (session %s): no namespace connected within "
                "connect_timeout=%ss",
                self.conn.remote_address or "?",
                self.conn.id,
                self.server.connect_timeout,
            )
            self._close(DisconnectReason.FORCED_SERVER_CLOSE, None)

    def _cancel_connect_timeout(self) -> None:
        if self.timer_bucket is not None:
            self.conn.server.timers.schedule(self, None)

    def disconnect_all(self) -> None:
        """``socket.disconnect(close=True)``: every namespace, then the connection."""
        for socket in list(self.sockets.values()):
            socket.disconnect()
        self._close(DisconnectReason.FORCED_SERVER_CLOSE, None)

    def _close(self, reason: DisconnectReason, description: Any) -> None:
        # Sockets learn the reason first: closing the engine fires its own "close" event
        # ("forced close"), which then finds this client closed.
        self._on_close(reason, description)
        if self.conn.ready_state == "open":
            self.conn.close()

    def _on_close(self, reason: str, description: Any = None) -> None:
        """The engine session closed (its reason, one of :class:`DisconnectReason`'s strings)
        or :meth:`_close` closes it."""
        if self._closed:
            return
        reason = DisconnectReason.of(reason)
        self._closed = True
        self._cancel_connect_timeout()
        self.conn.on_message(_ignore)
        self._backlog = None  # events read but not started yet: dropped with the connection
        for socket in list(self.sockets.values()):
            socket.handle_close(reason, description)
        self.sockets.clear()
        self.decoder.reset()


# Read for every packet: on Python 3.11 ``PacketType.X`` is a descriptor call.
_ACK = PacketType.ACK
_CONNECT, _CONNECT_ERROR = PacketType.CONNECT, PacketType.CONNECT_ERROR


def _ignore(_value: Any) -> None:
    return None

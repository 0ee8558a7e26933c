"""``instrument(sio, ...)``: the admin namespace the official Admin UI (``@socket.io/admin-ui``
0.5) connects to, speaking as the npm package's ``instrument(io, ...)`` does for a Node server.

What the UI receives on the admin namespace:

- ``session`` (id): after a login with the password, so that it reconnects with ``sessionId``;
- ``config`` ({supportedFeatures}): what it may offer (operations, events), on connection;
- ``all_sockets`` ([socket]): every socket of every namespace, on connection (development mode);
- ``server_stats`` ({serverId, hostname, pid, uptime, clientsCount, pollingClientsCount,
  aggregatedEvents, namespaces}): every 2 seconds;
- in development mode, as they happen: ``socket_connected`` (socket, date),
  ``socket_updated`` ({id, nsp, data} or {id, nsp, transport}), ``socket_disconnected`` (nsp,
  id, reason, date), ``room_joined`` / ``room_left`` (nsp, room, id, date), ``event_received``
  / ``event_sent`` (nsp, id, [event, ...args], date: the arguments whole, as the reference
  sends them).

What it sends (unless ``read_only``): ``emit`` (nsp, room or None, event, ...args), ``join``
(nsp, room, filter), ``leave`` (nsp, room, filter), ``_disconnect`` (nsp, close, filter); the
filter is a room (a socket's id for one socket) or None for the whole namespace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket as _socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import Literal
from typing import TypedDict
from typing import Unpack

from aiosio.admin.auth import BasicAuth
from aiosio.admin.auth import Credentials
from aiosio.admin.auth import basic_auth_from
from aiosio.admin.serialize import ADMIN_KEY
from aiosio.admin.serialize import ObservedData
from aiosio.admin.serialize import js_now
from aiosio.admin.serialize import serialize_data
from aiosio.admin.serialize import serialize_socket
from aiosio.admin.stats import AggregatedEvents
from aiosio.admin.stats import Connections
from aiosio.admin.stats import Traffic
from aiosio.admin.stats import server_stats
from aiosio.admin.stores import InMemoryStore
from aiosio.admin.stores import SessionStore
from aiosio.admin.ui import UiFiles
from aiosio.engine.server import EngineSocket
from aiosio.server.adapter import InMemoryAdapter
from aiosio.server.adapter import RecoveryAdapter
from aiosio.server.broadcast import BroadcastOperator
from aiosio.server.namespace import Namespace
from aiosio.server.server import Server
from aiosio.server.socket import Socket

__all__ = ["Admin", "AdminOptions", "Mode", "default_server_id", "instrument"]

logger = logging.getLogger("aiosio.admin")

Mode = Literal["development", "production"]

STATS_INTERVAL = 2.0  # seconds, as the reference

# Set in each worker of ``aiosio serve --workers`` (aiosio.workers.WORKER_ENV, which this layer
# does not import): the reference tells a Node cluster worker by NODE_UNIQUE_ID the same way.
WORKER_ENV = "AIOSIO_WORKER"

# The reference's feature names (typed-events.ts ``Feature``).
OPERATIONS = ("EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT")
AGGREGATED_EVENTS = "AGGREGATED_EVENTS"
ALL_EVENTS = "ALL_EVENTS"

# Adapters whose broadcasts reach this server only: with no admin connected here, nobody would
# receive what the admin emits, so it is not even encoded.
_LOCAL_ADAPTERS = (InMemoryAdapter, RecoveryAdapter)


class AdminOptions(TypedDict, total=False):
    """The options of :func:`instrument` but ``auth``, each with its default in :class:`Admin`:
    the type of its ``**options``."""

    namespace_name: str
    read_only: bool
    server_id: str | None
    mode: Mode
    ui_path: str | None
    ui_dir: str | Path | None
    store: SessionStore | None


def instrument(sio: Server, *, auth: object, **options: Unpack[AdminOptions]) -> Admin:
    """Open the admin namespace of ``sio`` to the official Admin UI.

    :param auth: ``False`` (anyone may connect: say it explicitly), an
        :class:`~aiosio.admin.BasicAuth` or ``{"type": "basic", "username": ..., "password":
        bcrypt_hash}`` (needs ``pip install "aiosio[admin]"``).
    :param namespace_name: the admin namespace (the UI's "namespace" field; default
        ``"/admin"``); the admin owns it.
    :param read_only: the UI may look, not act: no operation is offered, and any sent is ignored
        (default ``False``).
    :param server_id: this server's name in the UI (default: the host name; in a worker of
        ``aiosio serve --workers``, ``host#pid``). Give each server of a cluster its own.
    :param mode: ``"development"`` (the default) sends every socket, room change and event as it
        happens; ``"production"`` only the statistics (cheaper on a busy server).
    :param ui_path: serve the UI itself under this path (``"/admin-ui/"``), from ``ui_dir``
        (default: not served).
    :param ui_dir: the ``ui/dist`` folder of the npm package ``@socket.io/admin-ui`` (default:
        ``node_modules/@socket.io/admin-ui/ui/dist`` under the current directory).
    :param store: where the session ids handed out after a login are kept: an
        :class:`~aiosio.admin.InMemoryStore` of this process (default), or a
        :class:`~aiosio.admin.RedisStore` shared by the servers of a cluster.
    :raises TypeError: ``auth`` is not one of the above.
    :raises ValueError: a password that is not a bcrypt hash, an unknown ``mode``.
    :raises FileNotFoundError: ``ui_path`` is given and the UI files are not installed (the
        message has the ``npm install`` command).
    """
    return Admin(sio, auth=auth, **options)


class Admin:
    """The admin of one server, made by :func:`instrument`: :attr:`namespace` is the admin
    namespace, :meth:`close` stops its statistics."""

    def __init__(
        self,
        sio: Server,
        *,
        auth: object,
        namespace_name: str = "/admin",
        read_only: bool = False,
        server_id: str | None = None,
        mode: Mode = "development",
        ui_path: str | None = None,
        ui_dir: str | Path | None = None,
        store: SessionStore | None = None,
    ) -> None:
        if mode not in ("development", "production"):
            raise ValueError(f"mode must be 'development' or 'production', got {mode!r}")
        basic = basic_auth_from(auth)
        self.ui = UiFiles(ui_path, ui_dir) if ui_path is not None else None
        if self.ui is not None:  # first: what can fail does before the server is changed
            sio.mount(self.ui.prefix, self.ui.handle)
        self.sio = sio
        self.namespace = sio.of(namespace_name)
        self.server_id = server_id or default_server_id()
        self.development = mode == "development"
        self.read_only = read_only
        self.features = [] if read_only else list(OPERATIONS)
        self.features.append(AGGREGATED_EVENTS)
        if self.development:
            self.features.append(ALL_EVENTS)
        self.events = AggregatedEvents()
        self.connections = Connections(self.events)
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.store = store if store is not None else InMemoryStore()
        self._guard(basic, read_only)
        self.namespace.on("connection", self._admin_connected)
        self._listen()

    def _guard(self, basic: BasicAuth | None, read_only: bool) -> None:
        if basic is not None:
            self.namespace.use(Credentials(basic, self.store))
            return
        logger.warning(
            "the admin namespace %s has no authentication (auth=False): anyone who reaches "
            "this server can see its sockets%s",
            self.namespace.name,
            "" if read_only else " and disconnect them",
        )

    def _listen(self) -> None:
        """Follow the server: its sessions and messages for the statistics, which start now if
        the server runs (else when it starts, or with its first connection if the HTTP server
        never calls :meth:`~aiosio.Server.startup`): every server of a cluster reports, those
        that nobody connected to included; in development mode its namespaces, those to come
        included."""
        sio = self.sio
        sio.engine.on("connection", self._engine_connection)
        sio.add_packet_listener(Traffic(self.events))
        if self.development:
            for nsp in list(sio.namespaces.values()):
                self._watch(nsp)
            sio.on_new_namespace(self._watch)
        sio.on_startup(self._start_reporting)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._report()

    # -- statistics -------------------------------------------------------------------------------

    def _engine_connection(self, conn: EngineSocket) -> None:
        self.connections.opened(conn)
        self._start_reporting()

    def _start_reporting(self) -> None:
        if self._timer is None and not self._closed:
            self._report()

    def _report(self) -> None:
        """Send ``server_stats`` now and every 2 seconds."""
        stats = server_stats(self.sio, self.server_id, self.connections, self.events)
        self._emit("server_stats", stats)
        if not self._closed:
            self._timer = asyncio.get_running_loop().call_later(STATS_INTERVAL, self._report)

    def close(self) -> None:
        """Stop sending statistics (the admin namespace stays; close the server to end it)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _emit(self, event: str, *args: Any) -> None:
        """Broadcast to the admin namespace (to the admins of every server, with a cluster
        adapter); skipped when nobody could receive it."""
        nsp = self.namespace
        if nsp.sockets or type(nsp.adapter) not in _LOCAL_ADAPTERS:
            nsp.emit(event, *args)

    # -- the admins -------------------------------------------------------------------------------

    async def _admin_connected(self, socket: Socket) -> None:
        if not self.read_only:
            self._offer_operations(socket)
        socket.emit("config", {"supportedFeatures": self.features})
        if self.development:
            sockets = await self._all_sockets()
            if socket.connected:
                socket.emit("all_sockets", sockets)

    async def _all_sockets(self) -> list[dict[str, Any]]:
        serialized: list[dict[str, Any]] = []
        for nsp in list(self.sio.namespaces.values()):
            found = await nsp.fetch_sockets()
            serialized.extend(serialize_socket(s, nsp.name, _rooms_of(s)) for s in found)
        return serialized

    def _offer_operations(self, admin: Socket) -> None:
        admin.on("emit", self._operation("emit", self._emit_to))
        admin.on("join", self._operation("join", self._join))
        admin.on("leave", self._operation("leave", self._leave))
        admin.on("_disconnect", self._operation("_disconnect", self._disconnect))

    def _operation(self, name: str, run: Callable[..., None]) -> Callable[..., None]:
        """An operation the UI sends: what does not fit is logged and changes nothing."""

        def operation(*args: Any) -> None:
            try:
                run(*args)
            except (TypeError, ValueError) as exc:
                logger.warning("admin operation %r%r ignored: %s", name, args[:3], exc)

        return operation

    def _targets(self, nsp_name: object, room: object) -> Namespace | BroadcastOperator:
        """The sockets of namespace ``nsp_name`` (an existing one), in ``room`` if given."""
        nsp = self.sio.namespaces.get(nsp_name) if isinstance(nsp_name, str) else None
        if nsp is None:
            raise ValueError(f"no namespace {nsp_name!r} on this server")
        if room is None or room == "":
            return nsp
        if not isinstance(room, str):
            raise TypeError(f"a room is a string, got {type(room).__name__}")
        return nsp.in_(room)

    def _emit_to(self, nsp: object, room: object = None, event: object = None, *args: Any) -> None:
        if not isinstance(event, str):
            raise TypeError(f"an event name is a string, got {type(event).__name__}")
        self._targets(nsp, room).emit(event, *args)

    def _join(self, nsp: object, room: object = None, where: object = None) -> None:
        self._targets(nsp, where).sockets_join(_room(room))

    def _leave(self, nsp: object, room: object = None, where: object = None) -> None:
        self._targets(nsp, where).sockets_leave(_room(room))

    def _disconnect(self, nsp: object, close: object = False, where: object = None) -> None:
        self._targets(nsp, where).disconnect_sockets(bool(close))

    # -- the sockets (development mode) -----------------------------------------------------------

    def _watch(self, nsp: Namespace) -> None:
        name = nsp.name
        nsp.add_connection_listener(self._socket_connected)

        def joined(room: str, sid: str) -> None:
            self._emit("room_joined", name, room, sid, js_now())

        def left(room: str, sid: str) -> None:
            # Sent after what the socket does as it leaves (its socket_disconnected), as the
            # reference does with process.nextTick.
            date = js_now()
            asyncio.get_running_loop().call_soon(self._emit, "room_left", name, room, sid, date)

        nsp.adapter.on("join-room", joined)
        nsp.adapter.on("leave-room", left)

    def _socket_connected(self, socket: Socket) -> None:
        name = socket.nsp.name
        self._observe_data(socket)
        self._emit("socket_connected", serialize_socket(socket, name, _rooms_of(socket)), js_now())
        socket.conn.on("upgrade", lambda: self._upgraded(socket))
        if socket.nsp is not self.namespace:

            def received(*args: Any) -> None:
                self._emit("event_received", name, socket.id, list(args), js_now())

            def sent(*args: Any) -> None:
                self._emit("event_sent", name, socket.id, list(args), js_now())

            socket.on_any(received)
            socket.on_any_outgoing(sent)

        def disconnected(reason: str, _description: Any = None) -> None:
            self._emit("socket_disconnected", name, socket.id, str(reason), js_now())

        socket.on("disconnect", disconnected)

    def _observe_data(self, socket: Socket) -> None:
        """``socket.data`` becomes an :class:`ObservedData` holding what the admin knows of the
        socket, then what a middleware put there (each key sent as an update, as the
        reference does)."""
        before = socket.data if isinstance(socket.data, dict) else {}

        def changed() -> None:
            update = {"id": socket.id, "nsp": socket.nsp.name, "data": serialize_data(socket.data)}
            self._emit("socket_updated", update)

        admin = {"clientId": socket.conn.id[:12], "transport": socket.conn.transport}
        socket.data = ObservedData(changed, {ADMIN_KEY: admin})
        for key, value in before.items():
            if key != ADMIN_KEY:  # another connection's (a recovered session's)
                socket.data[key] = value

    def _upgraded(self, socket: Socket) -> None:
        admin = socket.data.get(ADMIN_KEY) if isinstance(socket.data, dict) else None
        if isinstance(admin, dict):
            admin["transport"] = socket.conn.transport
        update = {"id": socket.id, "nsp": socket.nsp.name, "transport": socket.conn.transport}
        self._emit("socket_updated", update)


def default_server_id() -> str:
    """The host name, as the reference; in a worker of ``aiosio serve --workers``, the host
    name and the process id (``host#1234``), as the reference names a Node cluster worker: the
    UI tells servers apart by this id."""
    if os.environ.get(WORKER_ENV) is not None:
        return f"{_socket.gethostname()}#{os.getpid()}"
    return _socket.gethostname()


def _room(room: object) -> str:
    if not isinstance(room, str):
        raise TypeError(f"a room is a string, got {type(room).__name__}")
    return room


def _rooms_of(socket: Any) -> list[str]:
    """A socket's rooms in the order it joined them (its own first), as the reference lists
    them; a socket of another server (whose rooms come as a set), its own first, then the
    others sorted."""
    if isinstance(socket, Socket):
        return list(socket.nsp.adapter.sids.get(socket.id, ()))
    rooms = set(socket.rooms)
    own = [socket.id] if socket.id in rooms else []
    return own + sorted(rooms.difference(own))

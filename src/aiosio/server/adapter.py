"""The Adapter interface and the in-memory adapter (one process).

An adapter owns the room membership of one namespace and carries broadcasts to the sockets in
it; a cluster adapter (Redis) also carries them to other servers. It talks to the namespace only
through :class:`NamespaceView`, never through server internals, and to sockets through
:class:`LocalSocket`.

The in-memory adapter follows ``socket.io-adapter``'s ``InMemoryAdapter`` and, with connection
state recovery, ``SessionAwareAdapter``: a broadcast is encoded once, prepared once per Engine.IO
message, and the same prepared messages are handed to every recipient.

Every adapter tells listeners how the rooms of this server change, with the reference's event
names and arguments (what the Admin UI is built on): ``adapter.on("create-room", fn)`` (room),
``"delete-room"`` (room), ``"join-room"`` (room, socket id), ``"leave-room"`` (room, socket id).
"""

from __future__ import annotations

import logging
import secrets
import time
from abc import ABC
from abc import abstractmethod
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import NewType
from typing import Protocol
from typing import TypeVar
from typing import overload

from aiosio._events import EventEmitter
from aiosio._events import forward_on
from aiosio.engine.server import PreparedMessage
from aiosio.protocol.parser import Parser
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType

__all__ = [
    "Adapter",
    "BroadcastFlags",
    "BroadcastOptions",
    "InMemoryAdapter",
    "LocalSocket",
    "NamespaceView",
    "PendingSocket",
    "PersistedSession",
    "Recovery",
    "RecoveryAdapter",
    "Room",
    "SocketId",
    "new_pid",
]

logger = logging.getLogger("aiosio.adapter")

F = TypeVar("F", bound=Callable[..., Any])

SocketId = NewType("SocketId", str)
Room = str


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery:
    """Connection state recovery: a client that lost its connection for less than
    ``max_disconnection_duration`` seconds gets its id, rooms and data back and the events it
    missed; ``skip_middlewares`` skips the connection middlewares for it."""

    max_disconnection_duration: float = 120.0
    skip_middlewares: bool = True

    def __post_init__(self) -> None:
        if self.max_disconnection_duration <= 0:
            raise ValueError(
                "max_disconnection_duration must be a positive number of seconds, "
                f"got {self.max_disconnection_duration!r}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastFlags:
    """``partial``: a cluster ``fetch_sockets`` returns what the servers that answered in time
    sent, instead of raising :class:`~aiosio.FetchSocketsTimeout` (the reference's rule)."""

    volatile: bool = False
    compress: bool = True
    local: bool = False
    timeout: float | None = None
    partial: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastOptions:
    """Who receives a broadcast: members of any of ``rooms`` (everyone when empty), minus the
    members of any of ``except_rooms``."""

    rooms: frozenset[Room] = frozenset()
    except_rooms: frozenset[Room] = frozenset()
    flags: BroadcastFlags = field(default_factory=BroadcastFlags)


@dataclass(slots=True)
class PersistedSession:
    """What connection state recovery keeps of a socket that lost its connection."""

    sid: SocketId
    pid: str
    rooms: list[Room]
    data: Any
    disconnected_at: float = 0.0
    missed_packets: list[list[Any]] = field(default_factory=list)


class LocalSocket(Protocol):
    """What an adapter may do with a socket of this process."""

    @property
    def id(self) -> SocketId: ...

    def deliver(
        self, packet: Packet, messages: Sequence[PreparedMessage], flags: BroadcastFlags
    ) -> None:
        """Write a broadcast prepared once for every recipient (``packet`` is what the
        messages encode, for the socket's outgoing listeners)."""

    def expect_ack(self, ack_id: int, callback: Callable[[list[Any]], None]) -> None:
        """Call ``callback`` with the arguments of the client's ack ``ack_id``."""

    def forget_ack(self, ack_id: int) -> None:
        """Stop waiting for the ack ``ack_id`` (its broadcast timed out)."""

    def join(self, *rooms: Room) -> None: ...

    def leave(self, room: Room) -> None: ...

    def disconnect(self, close: bool = False) -> None: ...


class PendingSocket(Protocol):
    """A recovered socket of this process whose connection middlewares are running. As in the
    reference, it is back in its rooms before they run; the broadcasts that reach it meanwhile
    are held, after the packets it missed, until it is accepted (dropped if it is refused)."""

    def hold(
        self, packet: Packet, messages: Sequence[PreparedMessage], flags: BroadcastFlags
    ) -> None:
        """Keep a broadcast prepared once for every recipient, to write once accepted."""


class NamespaceView(Protocol):
    """What an adapter may know of its namespace."""

    @property
    def name(self) -> str: ...

    @property
    def sockets(self) -> Mapping[SocketId, LocalSocket]:
        """The connected sockets of this process (accepted by the middlewares)."""

    @property
    def pending(self) -> Mapping[SocketId, PendingSocket]:
        """The recovered sockets of this process whose middlewares are running: a broadcast
        reaches them too (:meth:`Adapter.local_broadcast`), nothing else does."""

    @property
    def parser(self) -> Parser:
        """The packet format of the server's connections, which broadcasts are encoded in."""

    @property
    def recovery(self) -> Recovery | None:
        """Connection state recovery, when the server has it on (a cluster adapter that keeps
        sessions reads its ``max_disconnection_duration``)."""

    def next_ack_id(self) -> int:
        """A new ack id for a broadcast with acknowledgements."""

    def receive_server_side_emit(
        self, args: list[Any], reply: Callable[[list[Any]], None] | None
    ) -> None:
        """An event another server sent with ``server_side_emit`` (``args``: name, then the
        arguments); ``reply`` answers it when the sender waits for acknowledgements."""


class Adapter(ABC):
    """The interface every adapter implements (in-memory, Redis, ...).

    Room events, as the reference adapter emits them, for this server's sockets (listeners are
    called at once, in the order the changes happen; ``adapter.on(event, fn)``):

    - ``create-room`` (room): a room got its first member here;
    - ``join-room`` (room, sid): a socket joined a room it was not in (its own room included);
    - ``leave-room`` (room, sid): a socket left a room it was in;
    - ``delete-room`` (room): a room lost its last member here (after its ``leave-room``).

    :meth:`Server.set_adapter <aiosio.Server.set_adapter>` carries the listeners over to the
    new adapter of each namespace (:meth:`take_listeners`).

    :attr:`broadcast_listener`, when set, is called with the number of local recipients of each
    broadcast this server delivers (for :func:`aiosio.metrics.instrument`); carried over too.
    """

    broadcast_listener: Callable[[int], None] | None = None

    def __init__(self, nsp: NamespaceView) -> None:
        self.nsp = nsp
        self.rooms: dict[Room, dict[SocketId, None]] = {}
        self.sids: dict[SocketId, dict[Room, None]] = {}
        self.room_events = _RoomEvents()

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Listen to a room event (see the class); without a handler, return a decorator."""
        return forward_on(self.room_events.on, event, handler)

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Stop calling ``handler`` (or every listener) for a room event."""
        self.room_events.off(event, handler)

    def take_listeners(self, other: Adapter) -> None:
        """Call the room event listeners of ``other``, the adapter this one replaces."""
        self.room_events = other.room_events
        self.broadcast_listener = other.broadcast_listener

    # -- membership (local) -------------------------------------------------------------------

    def add_all(self, sid: SocketId, rooms: Iterable[Room]) -> None:
        own = self.sids.setdefault(sid, {})
        events = self.room_events
        for room in rooms:
            own[room] = None
            members = self.rooms.get(room)
            if members is None:
                members = self.rooms[room] = {}
                self.room_created(room)
                events.emit("create-room", room)
            if sid not in members:
                members[sid] = None
                events.emit("join-room", room, sid)

    def delete(self, sid: SocketId, room: Room) -> None:
        own = self.sids.get(sid)
        if own is not None:
            own.pop(room, None)
        self._leave(sid, room)

    def delete_all(self, sid: SocketId) -> None:
        own = self.sids.pop(sid, None)
        if not own:
            return
        for room in own:
            self._leave(sid, room)

    def _leave(self, sid: SocketId, room: Room) -> None:
        members = self.rooms.get(room)
        if members is None:
            return
        if sid in members:
            del members[sid]
            self.room_events.emit("leave-room", room, sid)
        if not members:
            del self.rooms[room]
            self.room_deleted(room)
            self.room_events.emit("delete-room", room)

    def room_created(self, room: Room) -> None:
        """Hook: a room got its first member here (sharded Redis subscribes to it)."""
        self._room_created(room)

    def room_deleted(self, room: Room) -> None:
        """Hook: a room lost its last member here."""
        self._room_deleted(room)

    # Deprecated spellings of the hooks above, still called for adapters that override them.
    def _room_created(self, room: Room) -> None:  # noqa: B027 - optional hook
        pass

    def _room_deleted(self, room: Room) -> None:  # noqa: B027 - optional hook
        pass

    def is_socket_id(self, room: Room) -> bool:
        """True when ``room`` is a socket's own room (no other socket may join it)."""
        return room in self.sids

    def socket_rooms(self, sid: SocketId) -> set[Room]:
        return set(self.sids.get(sid, ()))

    def local_targets(self, opts: BroadcastOptions) -> list[LocalSocket]:
        """The local sockets a broadcast reaches, in the reference's order (``apply``)."""
        connected = self.nsp.sockets
        excluded: set[SocketId] = set()
        for room in opts.except_rooms:
            excluded.update(self.rooms.get(room, ()))
        targets: list[LocalSocket] = []
        if opts.rooms:
            seen: set[SocketId] = set()
            for room in opts.rooms:
                for sid in self.rooms.get(room, ()):
                    if sid in seen or sid in excluded:
                        continue
                    seen.add(sid)
                    socket = connected.get(sid)
                    if socket is not None:
                        targets.append(socket)
        elif excluded:
            for sid in self.sids:
                if sid not in excluded:
                    socket = connected.get(sid)
                    if socket is not None:
                        targets.append(socket)
        else:  # everyone: the broadcast hot path
            get = connected.get
            targets = [socket for socket in map(get, self.sids) if socket is not None]
        return targets

    # -- local operations (what every server does for its own sockets) -----------------------

    def local_broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Send ``packet`` to this server's targets: encoded once, prepared once."""
        packet = self._before_broadcast(packet, opts)
        messages = prepare(packet, self.nsp.parser)
        flags = opts.flags
        targets = self.local_targets(opts)
        for socket in targets:
            socket.deliver(packet, messages, flags)
        pending = self.nsp.pending
        if pending:
            self._hold_for_pending(packet, messages, opts, pending)
        if self.broadcast_listener is not None:
            self.broadcast_listener(len(targets))

    def _hold_for_pending(
        self,
        packet: Packet,
        messages: Sequence[PreparedMessage],
        opts: BroadcastOptions,
        pending: Mapping[SocketId, PendingSocket],
    ) -> None:
        """The recovered sockets still in their middlewares that ``opts`` reaches hold the
        broadcast: none of it is lost between their restore and their acceptance."""
        for sid, socket in list(pending.items()):
            rooms = self.sids.get(sid)
            if rooms is None:
                continue
            if opts.rooms and opts.rooms.isdisjoint(rooms):
                continue
            if not opts.except_rooms.isdisjoint(rooms):
                continue
            socket.hold(packet, messages, opts.flags)

    def _before_broadcast(self, packet: Packet, opts: BroadcastOptions) -> Packet:
        return packet

    def local_broadcast_with_ack(
        self, packet: Packet, opts: BroadcastOptions, on_reply: Callable[[SocketId, Any], None]
    ) -> list[SocketId]:
        """Broadcast to this server's targets with an ack id; ``on_reply(sid, first_arg)`` is
        called once per socket that answers. Returns the ids of the targets."""
        ack_id = packet.id
        assert ack_id is not None
        targets = self.local_targets(opts)
        messages = prepare(packet, self.nsp.parser)
        for socket in targets:
            socket.expect_ack(ack_id, _first_arg_to(on_reply, socket.id))
            socket.deliver(packet, messages, opts.flags)
        if self.broadcast_listener is not None:
            self.broadcast_listener(len(targets))
        return [s.id for s in targets]

    def forget_acks(self, ack_id: int, sids: Iterable[SocketId]) -> None:
        connected = self.nsp.sockets
        for sid in sids:
            socket = connected.get(sid)
            if socket is not None:
                socket.forget_ack(ack_id)

    def local_add_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        for socket in self.local_targets(opts):
            socket.join(*rooms)

    def local_del_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        for socket in self.local_targets(opts):
            for room in rooms:
                socket.leave(room)

    def local_disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for socket in self.local_targets(opts):
            socket.disconnect(close)

    # -- operations (cluster-wide in cluster adapters) ----------------------------------------

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """Send ``packet`` to every target."""
        self.local_broadcast(packet, opts)

    async def broadcast_with_ack(
        self, packet: Packet, opts: BroadcastOptions
    ) -> tuple[list[Any], list[str]]:
        """Broadcast with an ack id; returns (replies, what did not answer within
        ``opts.flags.timeout``: socket ids). Each reply is the first argument of the client's
        ack, in arrival order."""
        import asyncio

        replies: list[Any] = []
        pending: set[SocketId] = set()
        done = asyncio.get_running_loop().create_future()

        def on_reply(sid: SocketId, value: Any) -> None:
            if sid not in pending:
                return
            pending.discard(sid)
            replies.append(value)
            if not pending and not done.done():
                done.set_result(None)

        pending.update(self.local_broadcast_with_ack(packet, opts, on_reply))
        if not pending:
            return replies, []
        try:
            await asyncio.wait_for(asyncio.shield(done), opts.flags.timeout)
        except TimeoutError:
            assert packet.id is not None
            self.forget_acks(packet.id, pending)
        return replies, list(pending)

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        return list(self.local_targets(opts))

    def add_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_add_sockets(opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_del_sockets(opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        self.local_disconnect_sockets(opts, close)

    @abstractmethod
    def server_side_emit(self, args: list[Any]) -> None:
        """Send an event to the other servers of the cluster."""

    @abstractmethod
    async def server_side_emit_with_ack(self, args: list[Any], timeout: float | None) -> list[Any]:
        """Send an event to the other servers and gather one reply per server."""

    def server_count(self) -> Awaitable[int] | int:
        return 1

    # -- connection state recovery ------------------------------------------------------------

    def persist_session(self, session: PersistedSession) -> None:  # noqa: B027 - optional hook
        """Keep a disconnected socket's state (only adapters with recovery do)."""

    async def restore_session(self, pid: str, offset: str) -> PersistedSession | None:
        """The state of a recoverable session and the packets it missed, or ``None``.

        A coroutine: a cluster adapter asks its store (the ``--workers`` master, Redis, ...)."""
        return None

    def close(self) -> Awaitable[None] | None:
        return None


class _RoomEvents(EventEmitter):
    """The room events of an adapter (what its listeners raise is logged here)."""

    _logger = logger


def _first_arg_to(
    on_reply: Callable[[SocketId, Any], None], sid: SocketId
) -> Callable[[list[Any]], None]:
    def reply(args: list[Any]) -> None:
        on_reply(sid, args[0] if args else None)

    return reply


def prepare(packet: Packet, parser: Parser) -> list[PreparedMessage]:
    """Encode a Socket.IO packet once into the Engine.IO messages every recipient gets."""
    return [PreparedMessage(part) for part in parser.encode(packet)]


class InMemoryAdapter(Adapter):
    """The default adapter: one server, no cluster."""

    def server_side_emit(self, args: list[Any]) -> None:
        logger.debug("server_side_emit(%r): no other server with the in-memory adapter", args[:1])

    async def server_side_emit_with_ack(self, args: list[Any], timeout: float | None) -> list[Any]:
        # No other server: every server (none) has answered.
        return []


_YEAST_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"


def _yeast_encode(num: int) -> str:
    out = ""
    while True:
        out = _YEAST_ALPHABET[num % 64] + out
        num //= 64
        if num <= 0:
            return out


class _Offsets:
    """Offsets as the reference's ``yeast()``: the time in ms in base 64, with ``.N`` added for
    more than one in the same millisecond."""

    def __init__(self) -> None:
        self._prev = ""
        self._seed = 0

    def next(self, now_ms: int) -> str:
        encoded = _yeast_encode(now_ms)
        if encoded != self._prev:
            self._seed = 0
            self._prev = encoded
            return encoded
        seed = self._seed
        self._seed += 1
        return f"{encoded}.{_yeast_encode(seed)}"


@dataclass(slots=True)
class _StoredPacket:
    offset: str
    rooms: frozenset[Room]
    except_rooms: frozenset[Room]
    data: list[Any]
    emitted_at: float


class RecoveryAdapter(InMemoryAdapter):
    """In-memory adapter with connection state recovery (``SessionAwareAdapter``): keeps the
    sessions of disconnected sockets and the packets they may miss, for
    ``max_disconnection_duration`` seconds."""

    def __init__(self, nsp: NamespaceView, max_disconnection_duration: float) -> None:
        super().__init__(nsp)
        self.max_disconnection_duration = max_disconnection_duration
        self._sessions: dict[str, PersistedSession] = {}
        self._session_sids: dict[SocketId, str] = {}  # socket id -> pid of kept sessions
        self._packets: list[_StoredPacket] = []
        self._offsets = _Offsets()
        self._clock: Callable[[], float] = time.time

    def _before_broadcast(self, packet: Packet, opts: BroadcastOptions) -> Packet:
        if packet.type is not PacketType.EVENT or packet.id is not None or opts.flags.volatile:
            return packet
        now = self._clock()
        offset = self._offsets.next(int(now * 1000))
        data = [*packet.data, offset]
        self._packets.append(_StoredPacket(offset, opts.rooms, opts.except_rooms, data, now))
        self._sweep_packets(now)
        return Packet(packet.type, packet.nsp, data, packet.id)

    def is_socket_id(self, room: Room) -> bool:
        # The id of a socket that may come back is still its own.
        return room in self.sids or room in self._session_sids

    def persist_session(self, session: PersistedSession) -> None:
        session.disconnected_at = self._clock()
        self._sweep_sessions(session.disconnected_at)
        self._sessions[session.pid] = session
        self._session_sids[session.sid] = session.pid

    async def restore_session(self, pid: str, offset: str) -> PersistedSession | None:
        session = self._sessions.get(pid)
        if session is None:
            return None
        now = self._clock()
        if session.disconnected_at + self.max_disconnection_duration < now:
            del self._sessions[pid]
            self._session_sids.pop(session.sid, None)
            return None
        index = next((i for i, p in enumerate(self._packets) if p.offset == offset), None)
        if index is None:
            return None
        rooms = set(session.rooms)
        missed = [
            p.data
            for p in self._packets[index + 1 :]
            if (not p.rooms or not rooms.isdisjoint(p.rooms)) and rooms.isdisjoint(p.except_rooms)
        ]
        return PersistedSession(
            sid=session.sid,
            pid=session.pid,
            rooms=list(session.rooms),
            data=session.data,
            disconnected_at=session.disconnected_at,
            missed_packets=missed,
        )

    def _sweep_packets(self, now: float) -> None:
        limit = now - self.max_disconnection_duration
        packets = self._packets
        drop = 0
        while drop < len(packets) and packets[drop].emitted_at < limit:
            drop += 1
        if drop:
            del packets[:drop]

    def _sweep_sessions(self, now: float) -> None:
        limit = now - self.max_disconnection_duration
        expired = [pid for pid, s in self._sessions.items() if s.disconnected_at < limit]
        for pid in expired:
            session = self._sessions.pop(pid)
            if self._session_sids.get(session.sid) == pid:
                del self._session_sids[session.sid]


def new_pid() -> str:
    return secrets.token_urlsafe(15)

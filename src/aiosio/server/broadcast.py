"""Broadcast operators: ``sio.to("room").except_("other").volatile.emit(...)``.

Immutable like the reference's ``BroadcastOperator``: every modifier returns a new operator, so
``room = sio.to("a")`` can be reused safely.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from dataclasses import replace
from typing import Any

from aiosio._encodable import ENCODE_ERRORS
from aiosio._encodable import check_encodable
from aiosio._encodable import raise_encoding_error
from aiosio._rooms import named_rooms
from aiosio.errors import AckTimeout
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import check_event_name
from aiosio.server.adapter import Adapter
from aiosio.server.adapter import BroadcastFlags
from aiosio.server.adapter import BroadcastOptions
from aiosio.server.adapter import Room

__all__ = ["BroadcastOperator", "Broadcasting", "Targeting"]


class BroadcastOperator:
    """Targets and flags of a broadcast; ``emit`` sends it."""

    __slots__ = ("_adapter", "_except", "_flags", "_rooms")

    def __init__(
        self,
        adapter: Adapter,
        rooms: frozenset[Room] = frozenset(),
        except_rooms: frozenset[Room] = frozenset(),
        flags: BroadcastFlags | None = None,
    ) -> None:
        self._adapter = adapter
        self._rooms = rooms
        self._except = except_rooms
        self._flags = flags or BroadcastFlags()

    def _with(self, **changes: Any) -> BroadcastOperator:
        return BroadcastOperator(
            self._adapter,
            changes.get("rooms", self._rooms),
            changes.get("except_rooms", self._except),
            changes.get("flags", self._flags),
        )

    def to(self, *rooms: Room | list[Room] | set[Room] | tuple[Room, ...]) -> BroadcastOperator:
        """Add rooms to target (members of any of them receive the event)."""
        return self._with(rooms=self._rooms | named_rooms(rooms))

    in_ = to

    def except_(
        self, *rooms: Room | list[Room] | set[Room] | tuple[Room, ...]
    ) -> BroadcastOperator:
        """Exclude the members of these rooms."""
        return self._with(except_rooms=self._except | named_rooms(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the event for clients whose transport cannot take it now."""
        return self._with(flags=replace(self._flags, volatile=True))

    @property
    def local(self) -> BroadcastOperator:
        """Only this server's clients (with a cluster adapter)."""
        return self._with(flags=replace(self._flags, local=True))

    def compress(self, value: bool) -> BroadcastOperator:
        return self._with(flags=replace(self._flags, compress=value))

    def timeout(self, seconds: float) -> BroadcastOperator:
        """How long ``emit_with_ack`` waits for every client."""
        return self._with(flags=replace(self._flags, timeout=seconds))

    @property
    def options(self) -> BroadcastOptions:
        return BroadcastOptions(rooms=self._rooms, except_rooms=self._except, flags=self._flags)

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every target; the packet is encoded and framed once."""
        check_event_name(event)
        nsp = self._adapter.nsp.name
        try:
            self._adapter.broadcast(Packet(PacketType.EVENT, nsp, [event, *args]), self.options)
        except ENCODE_ERRORS as exc:
            raise_encoding_error(f"emit({event!r})", args, exc)

    def send(self, *args: Any) -> None:
        self.emit("message", *args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Broadcast and wait for every client's acknowledgement: returns one reply per client
        (the first argument of its ack), in arrival order. Needs ``.timeout(seconds)``; when
        some clients do not answer in time, raises :class:`AckTimeout` whose ``replies`` holds
        the replies that arrived and ``missing`` the ids of the sockets that did not answer."""
        check_event_name(event)
        if self._flags.timeout is None:
            raise TypeError(
                "a broadcast with acknowledgements needs a timeout: "
                "sio.timeout(5).emit_with_ack(...)"
            )
        adapter = self._adapter
        ack_id = adapter.nsp.next_ack_id()
        packet = Packet(PacketType.EVENT, adapter.nsp.name, [event, *args], ack_id)
        # Encoded before anything is sent or awaited: a value that cannot be encoded raises
        # here, whatever the adapter (a cluster adapter may publish before encoding locally).
        check_encodable(f"emit_with_ack({event!r})", args)
        replies, missing = await adapter.broadcast_with_ack(packet, self.options)
        if missing:
            raise AckTimeout(
                f"{len(missing)} of {len(missing) + len(replies)} clients did not acknowledge "
                f"{event!r} within {self._flags.timeout}s",
                replies=replies,
                missing=list(missing),
            )
        return replies

    async def fetch_sockets(self, *, partial: bool = False) -> list[Any]:
        """The sockets this operator targets: this server's as :class:`~aiosio.Socket` objects,
        other servers' (with a cluster adapter) as :class:`~aiosio.RemoteSocket` proxies.

        With a cluster adapter, when a server does not answer in time this raises
        :class:`~aiosio.FetchSocketsTimeout` (as the reference rejects), which says how many
        servers were silent and how to wait longer; ``partial=True`` returns what arrived
        instead (logged as a warning)."""
        opts = self.options
        if partial:
            opts = replace(opts, flags=replace(opts.flags, partial=True))
        return await self._adapter.fetch_sockets(opts)

    def sockets_join(self, *rooms: Room) -> None:
        """Make the targeted sockets join ``rooms``."""
        self._adapter.add_sockets(self.options, list(rooms))

    def sockets_leave(self, *rooms: Room) -> None:
        self._adapter.del_sockets(self.options, list(rooms))

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the targeted sockets (``close`` closes their whole connection)."""
        self._adapter.disconnect_sockets(self.options, close)


class Targeting(ABC):
    """The operators that pick the targets of a broadcast, each started from :meth:`_operator`:
    a namespace's (every socket of it) and the server's (its main namespace's); a socket's, which
    leaves the socket out (``socket.to("room").emit(...)``, as in Node)."""

    @abstractmethod
    def _operator(self) -> BroadcastOperator:
        """A new operator: the targets and flags every broadcast from here starts with."""

    def to(self, *rooms: Any) -> BroadcastOperator:
        """The members of ``rooms`` (of any of them; a list of rooms counts as its rooms)."""
        return self._operator().to(*rooms)

    in_ = to

    def except_(self, *rooms: Any) -> BroadcastOperator:
        """All but the members of ``rooms``."""
        return self._operator().except_(*rooms)

    @property
    def local(self) -> BroadcastOperator:
        """Only this server's clients (with a cluster adapter)."""
        return self._operator().local


class Broadcasting(Targeting):
    """A namespace's broadcast API, :class:`BroadcastOperator`'s methods applied to every socket
    of the namespace: :class:`~aiosio.Namespace`'s, and :class:`~aiosio.Server`'s for its main
    namespace."""

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to every socket of the namespace."""
        self._operator().emit(event, *args)

    def send(self, *args: Any) -> None:
        self.emit("message", *args)

    @property
    def volatile(self) -> BroadcastOperator:
        return self._operator().volatile

    def compress(self, value: bool) -> BroadcastOperator:
        return self._operator().compress(value)

    def timeout(self, seconds: float) -> BroadcastOperator:
        return self._operator().timeout(seconds)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Broadcast with acknowledgements; see :meth:`BroadcastOperator.emit_with_ack`."""
        return await self._operator().emit_with_ack(event, *args)

    async def fetch_sockets(self, *, partial: bool = False) -> list[Any]:
        """See :meth:`BroadcastOperator.fetch_sockets`."""
        return await self._operator().fetch_sockets(partial=partial)

    def sockets_join(self, *rooms: Room) -> None:
        self._operator().sockets_join(*rooms)

    def sockets_leave(self, *rooms: Room) -> None:
        self._operator().sockets_leave(*rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        self._operator().disconnect_sockets(close)

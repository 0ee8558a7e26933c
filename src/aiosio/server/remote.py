"""``RemoteSocket``: a socket of another server, as a cluster adapter's ``fetch_sockets`` returns
it (socket.io's ``RemoteSocket``).

Everything it does rides on the adapter's cluster operations with the socket's own room as the
only target, so any adapter that implements :class:`~aiosio.server.adapter.Adapter` (Redis,
Redis Streams, Postgres, the ``--workers`` bus) gets remote sockets for free: ``emit`` is a
broadcast, ``join``/``leave``/``disconnect`` are the cluster's ``add_sockets``/``del_sockets``/
``disconnect_sockets``, and ``timeout(s).emit_with_ack(...)`` is a broadcast with
acknowledgements to that one socket, answered with its single reply (the reference's
``expectSingleResponse``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiosio.errors import AckTimeout
from aiosio.errors import Disconnected
from aiosio.server.adapter import Adapter
from aiosio.server.adapter import BroadcastFlags
from aiosio.server.adapter import BroadcastOptions
from aiosio.server.adapter import Room
from aiosio.server.adapter import SocketId
from aiosio.server.broadcast import BroadcastOperator

__all__ = ["RemoteSocket"]


class RemoteSocket:
    """A socket of another server: ``id``, ``handshake`` (a dict, as the server that has the
    socket describes it), ``rooms``, ``data``, and what can be done to it through the cluster.

    ``await remote.timeout(5).emit_with_ack("question", 1)`` returns the client's answer (the
    first argument of its acknowledgement), as Node's ``remoteSocket.timeout(5000)
    .emitWithAck("question", 1)``."""

    __slots__ = ("_adapter", "_flags", "data", "handshake", "id", "rooms")

    def __init__(
        self,
        adapter: Adapter,
        details: dict[str, Any],
        flags: BroadcastFlags | None = None,
    ) -> None:
        self._adapter = adapter
        self._flags = flags or BroadcastFlags()
        self.id = SocketId(str(details.get("id")))
        self.handshake: dict[str, Any] = details.get("handshake") or {}
        self.rooms: set[str] = {str(r) for r in details.get("rooms") or ()}
        self.data: Any = details.get("data")

    def __repr__(self) -> str:
        return f"<aiosio.RemoteSocket {self.id}>"

    def _opts(self) -> BroadcastOptions:
        return BroadcastOptions(rooms=frozenset({self.id}))

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self._adapter, frozenset({self.id}), flags=self._flags)

    def timeout(self, seconds: float) -> RemoteSocket:
        """A copy of this remote socket whose ``emit_with_ack`` waits at most ``seconds``
        (this one is unchanged, as the reference's operator)."""
        details = {"id": self.id, "handshake": self.handshake, "rooms": self.rooms}
        copy = RemoteSocket(self._adapter, details, replace(self._flags, timeout=seconds))
        copy.data = self.data
        return copy

    def emit(self, event: str, *args: Any) -> None:
        """Send an event to this socket, wherever it is connected."""
        self._operator().emit(event, *args)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        """Send an event and wait for the client's acknowledgement; returns its first argument.

        Needs ``timeout(seconds)`` first (a remote socket's server may go away: nothing else
        would end the wait). Raises :class:`~aiosio.AckTimeout` when no answer arrives in
        time (``missing`` says whether the socket or a server was silent), and
        :class:`~aiosio.Disconnected` when no server has the socket any more."""
        timeout = self._flags.timeout
        if timeout is None:
            raise TypeError(
                f"remote socket {self.id}: emit_with_ack needs a timeout, the longest wait for "
                "the client's answer: await remote.timeout(5).emit_with_ack(...)"
            )
        try:
            replies = await self._operator().emit_with_ack(event, *args)
        except AckTimeout as exc:
            raise AckTimeout(
                f"remote socket {self.id} did not acknowledge {event!r} within {timeout}s "
                f"({', '.join(exc.missing)} did not answer)",
                replies=exc.replies,
                missing=exc.missing,
            ) from None
        if not replies:
            raise Disconnected(
                f"remote socket {self.id} is no longer connected to any server of the cluster: "
                f"{event!r} reached nobody"
            )
        return replies[0]

    def join(self, *rooms: Room) -> None:
        self._adapter.add_sockets(self._opts(), list(rooms))

    def leave(self, *rooms: Room) -> None:
        self._adapter.del_sockets(self._opts(), list(rooms))

    def disconnect(self, close: bool = False) -> None:
        self._adapter.disconnect_sockets(self._opts(), close)

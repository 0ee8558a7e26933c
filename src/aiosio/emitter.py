"""``aiosio.Emitter``: emit into a Socket.IO cluster from any Python process (a worker, a cron
job), wire-compatible with ``@socket.io/redis-emitter`` 5.x: Node and aiosio servers on the Redis
adapter deliver what it publishes.

``sharded=True`` publishes with ``SPUBLISH`` in the sharded adapter's message format (the Node
emitter has no sharded mode; Node servers on the sharded adapter accept these messages).

A publish that fails because the connection was lost (``CLIENT KILL``, Redis's idle ``timeout``)
is sent again once, on a new connection, so a routine reconnection loses nothing; any other
failure raises from the call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiosio._rooms import named_rooms
from aiosio.adapters.redis import classic_messages as classic
from aiosio.adapters.redis import sharded_messages as sharded
from aiosio.adapters.redis.codec import encode_json
from aiosio.adapters.redis.codec import encode_msgpack
from aiosio.adapters.redis.link import connection_lost
from aiosio.adapters.redis.messages import NO_FLAGS
from aiosio.adapters.redis.messages import WireOptions
from aiosio.protocol.socketio import RESERVED_EVENTS

__all__ = ["Emitter"]

EMITTER_UID = "emitter"


class Emitter:
    """``Emitter(redis_client_or_url, key="socket.io", nsp="/")``; every method returns a new
    emitter (``emitter.to("room").except_("x").emit(...)``), ``emit`` and the other actions are
    coroutines (they publish)."""

    def __init__(
        self,
        client: Any = "redis://127.0.0.1:6379",
        *,
        key: str = "socket.io",
        nsp: str = "/",
        sharded: bool = False,
        _rooms: frozenset[str] = frozenset(),
        _except: frozenset[str] = frozenset(),
        _flags: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(client, str):
            from aiosio._extras import import_extra

            redis_asyncio = import_extra("redis.asyncio", extra="redis", feature="Emitter(url)")

            client = redis_asyncio.Redis.from_url(client)
        self.client = client
        self.key = key
        self.nsp = nsp if nsp.startswith("/") else "/" + nsp
        self.sharded = sharded
        self._rooms = _rooms
        self._except = _except
        self._flags = dict(_flags or {})

    def _copy(self, **changes: Any) -> Emitter:
        fields: dict[str, Any] = {
            "key": self.key,
            "nsp": self.nsp,
            "sharded": self.sharded,
            "_rooms": self._rooms,
            "_except": self._except,
            "_flags": self._flags,
        }
        fields.update(changes)
        return Emitter(self.client, **fields)

    def of(self, nsp: str) -> Emitter:
        return self._copy(nsp=nsp if nsp.startswith("/") else "/" + nsp, _rooms=frozenset())

    def to(self, *rooms: str | Iterable[str]) -> Emitter:
        return self._copy(_rooms=self._rooms | named_rooms(rooms))

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> Emitter:
        return self._copy(_except=self._except | named_rooms(rooms))

    @property
    def volatile(self) -> Emitter:
        return self._copy(_flags={**self._flags, "volatile": True})

    def compress(self, value: bool) -> Emitter:
        return self._copy(_flags={**self._flags, "compress": value})

    # -- actions --------------------------------------------------------------------------------

    async def emit(self, event: str, *args: Any) -> None:
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        rooms = sorted(self._rooms)
        # Broadcasts keep the Node emitter's own layout, which the adapters' typed messages
        # (aiosio.adapters.redis) do not write: the flags as they were set (compress(True)
        # included, in the order of the calls), and in the classic protocol the options' keys in
        # the order rooms, flags, except.
        if self.sharded:
            data = {
                "packet": {"type": 2, "data": [event, *args]},
                "opts": {"rooms": rooms, "except": sorted(self._except), "flags": self._flags},
            }
            message = {"type": 3, "data": data, "uid": EMITTER_UID, "nsp": self.nsp}
            await self._publish(f"{self.key}#{self.nsp}#", encode_msgpack(message), sharded=True)
            return
        opts = {"rooms": rooms, "flags": self._flags, "except": sorted(self._except)}
        payload = [EMITTER_UID, {"type": 2, "data": [event, *args], "nsp": self.nsp}, opts]
        channel = f"{self.key}#{self.nsp}#"
        if len(rooms) == 1:
            channel += f"{rooms[0]}#"
        await self._publish(channel, encode_msgpack(payload))

    async def _send(self, message: sharded.Message, request: classic.Request) -> None:
        """Publish ``message`` (sharded) or ``request`` (classic), the one this emitter speaks."""
        if self.sharded:
            # The sharded adapter's cluster message, on the namespace's main shard channel; JSON
            # whatever it holds, as this emitter always wrote it.
            channel = f"{self.key}#{self.nsp}#"
            await self._publish(channel, encode_json(sharded.to_wire(message)), sharded=True)
        else:
            await self._publish(f"{self.key}-request#{self.nsp}#", classic.encode(request))

    async def _publish(self, channel: str, data: bytes, *, sharded: bool = False) -> None:
        publish = self.client.spublish if sharded else self.client.publish
        try:
            await publish(channel, data)
        except Exception as exc:
            if not connection_lost(exc):
                raise
            await publish(channel, data)  # the client reconnects: once more, then it raises

    def _opts(self) -> WireOptions:
        # Requests carry no flags in the classic protocol; cluster messages carry empty ones.
        return WireOptions(
            rooms=tuple(sorted(self._rooms)),
            except_rooms=tuple(sorted(self._except)),
            flags=NO_FLAGS if self.sharded else None,
        )

    # The Node emitter's requests have no uid; its server-side emits do.

    async def sockets_join(self, *rooms: str) -> None:
        opts = self._opts()
        await self._send(
            sharded.SocketsJoin(uid=EMITTER_UID, nsp=self.nsp, opts=opts, rooms=rooms),
            classic.SocketsJoin(uid=None, opts=opts, rooms=rooms),
        )

    async def sockets_leave(self, *rooms: str) -> None:
        opts = self._opts()
        await self._send(
            sharded.SocketsLeave(uid=EMITTER_UID, nsp=self.nsp, opts=opts, rooms=rooms),
            classic.SocketsLeave(uid=None, opts=opts, rooms=rooms),
        )

    async def disconnect_sockets(self, close: bool = False) -> None:
        opts = self._opts()
        await self._send(
            sharded.DisconnectSockets(uid=EMITTER_UID, nsp=self.nsp, opts=opts, close=close),
            classic.DisconnectSockets(uid=None, opts=opts, close=close),
        )

    async def server_side_emit(self, event: str, *args: Any) -> None:
        await self._send(
            sharded.ServerSideEmit(uid=EMITTER_UID, nsp=self.nsp, packet=[event, *args]),
            classic.ServerSideEmit(uid=EMITTER_UID, data=[event, *args]),
        )

    async def close(self) -> None:
        await self.client.aclose()

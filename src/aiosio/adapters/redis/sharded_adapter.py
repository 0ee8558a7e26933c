"""The namespace adapter of ``@socket.io/redis-adapter``'s sharded protocol
(``createShardedAdapter``, Redis 7 sharded pub/sub); its messages are
:mod:`~aiosio.adapters.redis.sharded_messages`, what it does with them
:class:`~aiosio.adapters.cluster.ClusterMessageAdapter`'s."""

from __future__ import annotations

import secrets
from functools import partial

from aiosio.adapters.cluster import ClusterMessageAdapter
from aiosio.adapters.redis.namespace import AdapterSettings
from aiosio.adapters.redis.namespace import RedisNamespaceAdapter
from aiosio.adapters.redis.sharded_messages import Broadcast
from aiosio.adapters.redis.sharded_messages import Message
from aiosio.adapters.redis.sharded_messages import decode
from aiosio.adapters.redis.sharded_messages import encode
from aiosio.server.adapter import NamespaceView
from aiosio.server.adapter import Room

__all__ = ["ShardedAdapter"]


class ShardedAdapter(RedisNamespaceAdapter, ClusterMessageAdapter):
    """``@socket.io/redis-adapter`` ``createShardedAdapter`` (Redis 7 sharded pub/sub)."""

    def __init__(self, nsp: NamespaceView, factory: AdapterSettings) -> None:
        super().__init__(nsp, factory)
        self.uid = secrets.token_hex(8)
        self.envelope = {"uid": self.uid, "nsp": nsp.name}
        # socket.io-adapter's ClusterAdapter waits its DEFAULT_TIMEOUT; it has no option for it.
        self.requests_timeout = 5.0
        self.mode = factory.subscription_mode
        self.channel = f"{factory.key}#{nsp.name}#"
        self.own_channel = f"{self.channel}{self.uid}#"
        self._on_message = self._subscriber(
            partial(decode, max_size=self.max_size, limits=factory.limits), self._dispatch
        )
        self.link.ssubscribe(self.channel, self._on_message)
        self.link.ssubscribe(self.own_channel, self._on_message)
        self.link.ensure_started()

    # -- channels --------------------------------------------------------------------------------

    def _room_channel(self, room: Room) -> str:
        return f"{self.channel}{room}#"

    def _room_created(self, room: Room) -> None:
        if self.mode == "static":
            return
        if self.mode == "dynamic" and room in self.sids:
            return  # a socket's own room travels on the main channel
        self.link.ssubscribe(self._room_channel(room), self._on_message)

    def _room_deleted(self, room: Room) -> None:
        if self.mode != "static":
            self.link.sunsubscribe(self._room_channel(room))

    def _channel_of(self, message: Message) -> str:
        """A broadcast without acks to one room travels on the room's channel in the dynamic
        modes (a socket's own room, 20 characters, on the main one in "dynamic")."""
        if not isinstance(message, Broadcast) or message.request_id is not None:
            return self.channel
        rooms = message.opts.rooms
        if len(rooms) != 1:
            return self.channel
        room = rooms[0]
        if self.mode == "dynamic-private" or (self.mode == "dynamic" and len(room) != 20):
            return self._room_channel(room)
        return self.channel

    def _publish(self, message: Message, channel: str | None = None) -> None:
        channel = channel or self._channel_of(message)
        # Every server of the namespace has the main channel: what SPUBLISH answers there is
        # checked against its subscribers (a room's channel has only its members' servers).
        audience = channel if channel == self.channel else None
        self.link.publish(channel, encode(message), sharded=True, audience=audience)

    def _publish_request(self, message: Message) -> None:
        self._publish(message)

    def _respond(self, to_uid: str, message: Message) -> None:
        self._publish(message, f"{self.channel}{to_uid}#")

    async def server_count(self) -> int:
        return await self.link.numsub(self.channel, sharded=True)

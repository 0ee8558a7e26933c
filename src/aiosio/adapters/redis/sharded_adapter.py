"""The namespace adapter of ``@socket.io/redis-adapter``'s sharded protocol
(``createShardedAdapter``, Redis 7 sharded pub/sub); its messages are
:mod:`~aiosio.adapters.redis.sharded_messages`."""

from __future__ import annotations

import secrets
from functools import partial
from typing import Any, assert_never

from aiosio.adapters.redis.messages import EventPacket, WireOptions
from aiosio.adapters.redis.namespace import (
    AdapterSettings,
    RedisNamespaceAdapter,
    socket_details,
)
from aiosio.adapters.redis.sharded_messages import (
    Broadcast,
    BroadcastAck,
    BroadcastClientCount,
    DisconnectSockets,
    FetchSockets,
    FetchSocketsResponse,
    Message,
    ServerSideEmit,
    ServerSideEmitResponse,
    SocketsJoin,
    SocketsLeave,
    decode,
    encode,
)
from aiosio.protocol.socketio import Packet, PacketType
from aiosio.server.adapter import BroadcastOptions, NamespaceView, Room

__all__ = ["ShardedAdapter"]


class ShardedAdapter(RedisNamespaceAdapter):
    """``@socket.io/redis-adapter`` ``createShardedAdapter`` (Redis 7 sharded pub/sub)."""

    requests_carry_flags = True

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

    # -- receiving -------------------------------------------------------------------------------

    def _ignores(self, message: Message) -> bool:
        return message.uid == self.uid or message.nsp != self.nsp.name

    def _dispatch(self, message: Message) -> None:
        sender = str(message.uid)
        match message:
            case Broadcast():
                self._on_broadcast(sender, message)
            case SocketsJoin() | SocketsLeave() | DisconnectSockets():
                self._apply(message)
            case FetchSockets():
                sockets = [socket_details(s) for s in self.local_targets(message.opts.to_options())]
                self._respond(
                    sender,
                    FetchSocketsResponse(
                        **self.envelope, request_id=message.request_id, sockets=sockets
                    ),
                )
            case ServerSideEmit():
                self._on_server_side_emit(sender, message)
            case (
                FetchSocketsResponse(request_id=request_id, sockets=answer)
                | ServerSideEmitResponse(request_id=request_id, packet=answer)
            ):
                self._add_response(request_id, answer)
            case BroadcastClientCount():
                self._client_count(message.request_id, message.client_count)
            case BroadcastAck():
                self._ack(message.request_id, message.packet)
            case _:
                assert_never(message)

    def _on_broadcast(self, sender: str, message: Broadcast) -> None:
        packet = Packet(PacketType.EVENT, self.nsp.name, message.packet.data)
        request_id = message.request_id
        if request_id is None:
            self.local_broadcast(packet, message.opts.to_options())
            return

        def reply(value: Any) -> None:
            ack = BroadcastAck(**self.envelope, request_id=request_id, packet=value)
            self._respond(sender, ack)

        count = self._local_ack_broadcast(packet, message.opts.to_options(with_flags=False), reply)
        self._respond(
            sender,
            BroadcastClientCount(**self.envelope, request_id=request_id, client_count=count),
        )

    def _on_server_side_emit(self, sender: str, message: ServerSideEmit) -> None:
        request_id = message.request_id
        reply = None
        if request_id is not None:

            def respond(value: Any) -> None:
                response = ServerSideEmitResponse(
                    **self.envelope, request_id=request_id, packet=value
                )
                self._respond(sender, response)

            reply = self._server_side_reply(respond)
        self._server_side_event(message.packet, reply)

    # -- cluster operations ---------------------------------------------------------------------

    async def server_count(self) -> int:
        return await self.link.numsub(self.channel, sharded=True)

    def _broadcast_message(
        self, packet: Packet, opts: BroadcastOptions, request_id: str | None = None
    ) -> Broadcast:
        return Broadcast(
            **self.envelope,
            packet=EventPacket(data=packet.data),
            opts=WireOptions.of(opts, timeout=request_id is not None),
            request_id=request_id,
        )

    def _publish_broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        self._publish(self._broadcast_message(packet, opts))

    def _publish_ack_broadcast(
        self, packet: Packet, opts: BroadcastOptions, request_id: str
    ) -> None:
        self._publish(self._broadcast_message(packet, opts, request_id))

    def _fetch_timeout(self, opts: BroadcastOptions) -> float:
        return opts.flags.timeout or self.requests_timeout

    def _fetch_timeout_hint(self) -> str:
        return f"sio.timeout(seconds).fetch_sockets() (default {self.requests_timeout:g}s)"

    def _publish_server_side_emit(self, args: list[Any], request_id: str | None) -> None:
        self._publish(ServerSideEmit(**self.envelope, packet=args, request_id=request_id))

"""The namespace adapter of ``@socket.io/redis-adapter``'s classic pub/sub protocol
(``createAdapter``); its messages are :mod:`~aiosio.adapters.redis.classic_messages`."""

from __future__ import annotations

import secrets
import string
from functools import partial
from typing import Any
from typing import assert_never

from aiosio.adapters.cluster import socket_details
from aiosio.adapters.redis.classic_messages import AllRoomsRequest
from aiosio.adapters.redis.classic_messages import AllRoomsResponse
from aiosio.adapters.redis.classic_messages import Broadcast
from aiosio.adapters.redis.classic_messages import BroadcastAck
from aiosio.adapters.redis.classic_messages import BroadcastClientCount
from aiosio.adapters.redis.classic_messages import BroadcastRequest
from aiosio.adapters.redis.classic_messages import DisconnectSockets
from aiosio.adapters.redis.classic_messages import FetchSockets
from aiosio.adapters.redis.classic_messages import LegacyUpdate
from aiosio.adapters.redis.classic_messages import Message
from aiosio.adapters.redis.classic_messages import Request
from aiosio.adapters.redis.classic_messages import Response
from aiosio.adapters.redis.classic_messages import ServerSideEmit
from aiosio.adapters.redis.classic_messages import ServerSideEmitResponse
from aiosio.adapters.redis.classic_messages import SocketsJoin
from aiosio.adapters.redis.classic_messages import SocketsLeave
from aiosio.adapters.redis.classic_messages import SocketsRequest
from aiosio.adapters.redis.classic_messages import SocketsResponse
from aiosio.adapters.redis.classic_messages import UpdateResponse
from aiosio.adapters.redis.classic_messages import decode_broadcast
from aiosio.adapters.redis.classic_messages import decode_request
from aiosio.adapters.redis.classic_messages import decode_response
from aiosio.adapters.redis.classic_messages import encode
from aiosio.adapters.redis.messages import EventPacket
from aiosio.adapters.redis.messages import WireOptions
from aiosio.adapters.redis.namespace import AdapterSettings
from aiosio.adapters.redis.namespace import RedisNamespaceAdapter
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.server.adapter import BroadcastOptions
from aiosio.server.adapter import NamespaceView

__all__ = ["ClassicAdapter"]

_ALNUM = string.ascii_letters + string.digits


def uid2(length: int) -> str:
    """A random id as the Node adapter's ``uid2``."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


class ClassicAdapter(RedisNamespaceAdapter):
    """``@socket.io/redis-adapter`` ``createAdapter`` (classic pub/sub)."""

    requests_carry_flags = False

    def __init__(self, nsp: NamespaceView, factory: AdapterSettings) -> None:
        super().__init__(nsp, factory)
        self.publish_on_specific_response_channel = factory.publish_on_specific_response_channel
        self.uid = uid2(6)
        self.envelope = {"uid": self.uid, "nsp": None}  # the channels name the namespace
        self.requests_timeout = factory.requests_timeout
        key, name = factory.key, nsp.name
        self.channel = f"{key}#{name}#"
        self.request_channel = f"{key}-request#{name}#"
        self.response_channel = f"{key}-response#{name}#"
        self.specific_response_channel = f"{self.response_channel}{self.uid}#"
        limits = factory.limits
        self._decode_broadcast = partial(decode_broadcast, max_size=self.max_size, limits=limits)
        on_request = self._subscriber(
            partial(decode_request, max_size=self.max_size, limits=limits), self._on_request
        )
        on_response = self._subscriber(
            partial(decode_response, max_size=self.max_size), self._on_response
        )
        link = self.link
        link.psubscribe(self.channel + "*", self._on_broadcast)
        link.subscribe(self.request_channel, on_request)
        link.subscribe(self.response_channel, on_response)
        link.subscribe(self.specific_response_channel, on_response)
        link.ensure_started()

    def _new_request_id(self) -> str:
        return uid2(6)

    def _ignores(self, message: Message) -> bool:
        match message:
            case Broadcast():
                return message.uid == self.uid or (message.packet.nsp or "/") != self.nsp.name
            case BroadcastRequest():
                # The Node adapter knows its own by the request id it waits for.
                return message.uid == self.uid or message.request_id in self._acks
            case (
                SocketsRequest()
                | AllRoomsRequest()
                | SocketsJoin()
                | SocketsLeave()
                | DisconnectSockets()
                | LegacyUpdate()
                | FetchSockets()
                | ServerSideEmit()
            ):
                return message.uid == self.uid
            case (
                SocketsResponse()
                | AllRoomsResponse()
                | UpdateResponse()
                | ServerSideEmitResponse()
                | BroadcastClientCount()
                | BroadcastAck()
            ):
                return False  # unknown request ids are ignored where they are looked up
            case _:
                assert_never(message)

    def _publish(self, channel: str, message: Message, audience: str | None = None) -> None:
        self.link.publish(channel, encode(message), audience=audience)

    # -- broadcasts ------------------------------------------------------------------------------

    def _publish_broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        channel = self.channel
        if len(opts.rooms) == 1:
            channel += f"{next(iter(opts.rooms))}#"
        event = EventPacket(data=packet.data, nsp=self.nsp.name)
        broadcast = Broadcast(uid=self.uid, packet=event, opts=WireOptions.of(opts))
        # Every server of the namespace matches the broadcast pattern and has the request
        # channel: what PUBLISH answers is checked against that channel's subscribers.
        self._publish(channel, broadcast, audience=self.request_channel)

    def _on_broadcast(self, channel: str, data: bytes) -> None:
        if not channel.startswith(self.channel):
            return
        room = channel[len(self.channel) : -1]
        if room and room not in self.rooms:
            return  # a room with no member here: not even decoded
        message = self._receive(channel, self._decode_broadcast, data)
        if message is not None:
            self.local_broadcast(
                Packet(PacketType.EVENT, self.nsp.name, message.packet.data),
                message.opts.to_options(),
            )

    # -- requests ----------------------------------------------------------------------------------

    def _respond(self, request: Request, response: Response) -> None:
        channel = self.response_channel
        if self.publish_on_specific_response_channel and request.uid:
            channel = f"{self.response_channel}{request.uid}#"
        self._publish(channel, response)

    def _on_request(self, request: Request) -> None:
        match request:
            case SocketsRequest():
                opts = BroadcastOptions(rooms=frozenset(request.rooms))
                sids = [s.id for s in self.local_targets(opts)]
                self._respond(request, SocketsResponse(request_id=request.request_id, sockets=sids))
            case AllRoomsRequest():
                self._respond(
                    request, AllRoomsResponse(request_id=request.request_id, rooms=list(self.rooms))
                )
            case SocketsJoin() | SocketsLeave() | DisconnectSockets():
                self._apply(request)
            case LegacyUpdate():
                if request.sid not in self.nsp.sockets:
                    return  # the server that has the socket answers
                self._apply(request.change)
                if request.request_id is not None:
                    self._respond(request, UpdateResponse(request_id=request.request_id))
            case FetchSockets():
                sockets = [socket_details(s) for s in self.local_targets(request.opts.to_options())]
                self._respond(
                    request, SocketsResponse(request_id=request.request_id, sockets=sockets)
                )
            case ServerSideEmit():
                self._on_server_side_emit(request)
            case BroadcastRequest():
                self._on_remote_ack_broadcast(request)
            case _:
                assert_never(request)

    def _on_server_side_emit(self, request: ServerSideEmit) -> None:
        reply = None
        request_id = request.request_id
        if request_id is not None:

            def respond(value: Any) -> None:
                # The Node adapter answers on the common response channel, whatever its options.
                response = ServerSideEmitResponse(request_id=request_id, data=value)
                self._publish(self.response_channel, response)

            reply = self._server_side_reply(respond)
        self._server_side_event(request.data, reply)

    def _on_remote_ack_broadcast(self, request: BroadcastRequest) -> None:
        request_id = request.request_id

        def reply(value: Any) -> None:
            self._respond(request, BroadcastAck(request_id=request_id, packet=value))

        count = self._local_ack_broadcast(
            Packet(PacketType.EVENT, self.nsp.name, request.packet.data),
            request.opts.to_options(with_flags=False),
            reply,
        )
        self._respond(request, BroadcastClientCount(request_id=request_id, client_count=count))

    def _on_response(self, response: Response) -> None:
        match response:
            case BroadcastClientCount():
                self._client_count(response.request_id, response.client_count)
            case BroadcastAck():
                self._ack(response.request_id, response.packet)
            case (
                SocketsResponse(request_id=request_id, sockets=answer)
                | AllRoomsResponse(request_id=request_id, rooms=answer)
                | ServerSideEmitResponse(request_id=request_id, data=answer)
            ):
                self._add_response(request_id, None, answer)
            case UpdateResponse():
                pass  # this adapter sends no legacy requests: nothing waits for one
            case _:
                assert_never(response)

    # -- cluster operations ---------------------------------------------------------------------

    async def server_count(self) -> int:
        return await self.link.numsub(self.request_channel)

    def _publish_ack_broadcast(
        self, packet: Packet, opts: BroadcastOptions, request_id: str
    ) -> None:
        request = BroadcastRequest(
            uid=self.uid,
            request_id=request_id,
            packet=EventPacket(data=packet.data, nsp=self.nsp.name),
            opts=WireOptions.of(opts, timeout=True),
        )
        self._publish_request(request)

    def _fetch_timeout(self, opts: BroadcastOptions) -> float:
        return self.requests_timeout  # the Node adapter's fetchSockets ignores opts.flags.timeout

    def _fetch_timeout_hint(self) -> str:
        return f"RedisAdapter(requests_timeout=...) (now {self.requests_timeout:g}s)"

    def _publish_server_side_emit(self, args: list[Any], request_id: str | None) -> None:
        self._publish_request(ServerSideEmit(uid=self.uid, data=args, request_id=request_id))

    def _publish_request(self, request: Request) -> None:
        self._publish(self.request_channel, request)

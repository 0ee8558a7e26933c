"""``RedisAdapter``: scale out over Redis, in one cluster with Node socket.io servers.

Wire-compatible with ``@socket.io/redis-adapter`` 8.x in both of its modes:

* classic pub/sub (``createAdapter``): broadcasts as msgpack ``[uid, packet, opts]`` on
  ``<key>#<nsp>#`` (``<key>#<nsp>#<room>#`` for a single room), requests and responses on
  ``<key>-request#<nsp>#`` / ``<key>-response#<nsp>#[<uid>#]``, JSON or msgpack per type;
* sharded pub/sub (``createShardedAdapter``, Redis 7 ``SPUBLISH``/``SSUBSCRIBE``): cluster
  messages ``{type, data, uid, nsp}`` on ``<key>#<nsp>#``, dynamic room channels, responses on
  ``<key>#<nsp>#<uid>#``.

Messages from Redis are size-capped and validated before use; nothing is ever unpickled. What
another server asks to deliver is checked by the rules a client's packets are decoded with
(:func:`~aiosio.protocol.socketio.check_event`: no reserved or non-string event name, no forged
attachment placeholder, bounded depth and attachments) before it reaches any socket or handler;
a message that breaks one is dropped and logged with the reason.
Connection state recovery is not shared across a Redis cluster (neither is it in Node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
from collections.abc import Callable, Sequence
from typing import Any

from aiosio.adapters._redis_link import (
    Link,
    RedisHealth,
    RedisLink,
    decode,
    encode_json,
    encode_msgpack,
)
from aiosio.errors import AckTimeout
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.socketio import Limits, Packet, PacketType, check_event, has_binary
from aiosio.server.adapter import (
    BroadcastFlags,
    BroadcastOptions,
    InMemoryAdapter,
    NamespaceView,
    Room,
    SocketId,
)

__all__ = ["RedisAdapter", "RemoteSocket"]

logger = logging.getLogger("aiosio.adapter.redis")

# classic request types (RequestType)
SOCKETS, ALL_ROOMS, REMOTE_JOIN, REMOTE_LEAVE, REMOTE_DISCONNECT = 0, 1, 2, 3, 4
REMOTE_FETCH, SERVER_SIDE_EMIT, BROADCAST, BROADCAST_CLIENT_COUNT, BROADCAST_ACK = 5, 6, 7, 8, 9

# sharded cluster message types (MessageType)
M_BROADCAST, M_SOCKETS_JOIN, M_SOCKETS_LEAVE, M_DISCONNECT_SOCKETS = 3, 4, 5, 6
M_FETCH_SOCKETS, M_FETCH_SOCKETS_RESPONSE, M_SERVER_SIDE_EMIT = 7, 8, 9
M_SERVER_SIDE_EMIT_RESPONSE, M_BROADCAST_CLIENT_COUNT, M_BROADCAST_ACK = 10, 11, 12

_ALNUM = string.ascii_letters + string.digits


def _uid2(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


class RedisAdapter:
    """The adapter factory: ``aiosio.Server(adapter=RedisAdapter("redis://127.0.0.1:6379"))``.

    ``client`` may be a URL or a ``redis.asyncio.Redis``. ``sharded=True`` speaks the sharded
    adapter's protocol (Redis 7); ``subscription_mode`` is its ``"static"``, ``"dynamic"`` or
    ``"dynamic-private"``. ``health`` tells whether the link is up, how often it reconnected, the
    last error and how many messages could not be published.

    Broadcasts are published in order by one task; one whose publish fails because the
    connection was lost (``CLIENT KILL``, Redis's idle ``timeout``, a restart) is retried until
    ``publish_retry_timeout`` seconds after it was sent, and at most ``max_publish_queue`` wait;
    past either bound a broadcast is dropped, counted in ``health`` and logged. The subscriber
    PINGs Redis after ``health_check_interval`` seconds without a message and reconnects when no
    answer comes within 5 s (a quarter of the interval if that is shorter): a stalled or half-open
    connection is replaced.

    ``limits`` are the bounds applied to what other servers ask this one to deliver, as to what
    clients send (give it the server's ``limits`` if you changed them). A broadcast past them
    still reaches the clients of the server that sends it; the other aiosio servers drop it, and
    the sender logs a warning once per reason.
    """

    def __init__(
        self,
        client: Any = "redis://127.0.0.1:6379",
        *,
        key: str = "socket.io",
        sharded: bool = False,
        subscription_mode: str = "dynamic",
        requests_timeout: float = 5.0,
        publish_on_specific_response_channel: bool = False,
        max_message_size: int = 10_000_000,
        publish_retry_timeout: float = 2.0,
        max_publish_queue: int = 10_000,
        health_check_interval: float = 30.0,
        limits: Limits | None = None,
        link: Link | None = None,
    ) -> None:
        if subscription_mode not in ("static", "dynamic", "dynamic-private"):
            raise ValueError(
                "subscription_mode must be 'static', 'dynamic' or 'dynamic-private', got "
                f"{subscription_mode!r}"
            )
        if link is not None:
            self.link: Link = link  # another transport with the same interface (--workers)
        else:
            if isinstance(client, str):
                from aiosio._extras import import_extra

                redis_asyncio = import_extra(
                    "redis.asyncio", extra="redis", feature="RedisAdapter(url)"
                )

                client = redis_asyncio.Redis.from_url(client)
            self.link = RedisLink(
                client,
                max_queue=max_publish_queue,
                retry_timeout=publish_retry_timeout,
                health_check_interval=health_check_interval,
            )
        self.key = key
        self.sharded = sharded
        self.subscription_mode = subscription_mode
        self.requests_timeout = requests_timeout
        self.publish_on_specific_response_channel = publish_on_specific_response_channel
        self.max_message_size = max_message_size
        self.limits = limits or Limits()
        self.adapters: list[_RedisNamespaceAdapter] = []

    def __call__(self, nsp: NamespaceView) -> _RedisNamespaceAdapter:
        cls = _ShardedAdapter if self.sharded else _ClassicAdapter
        adapter = cls(nsp, self)
        self.adapters.append(adapter)
        return adapter

    @property
    def health(self) -> RedisHealth:
        return self.link.health

    async def ready(self, timeout: float = 5.0) -> bool:
        """Wait until the subscriptions are active (False when Redis is unreachable)."""
        return await self.link.ready(timeout)

    async def close(self) -> None:
        await self.link.close()


class RemoteSocket:
    """A socket of another server, as ``fetch_sockets`` returns it: ``id``, ``handshake``,
    ``rooms``, ``data``, and what can be done to it through the cluster."""

    def __init__(self, adapter: _RedisNamespaceAdapter, details: dict[str, Any]) -> None:
        self._adapter = adapter
        self.id = SocketId(str(details.get("id")))
        self.handshake: dict[str, Any] = details.get("handshake") or {}
        self.rooms: set[str] = {str(r) for r in details.get("rooms") or ()}
        self.data: Any = details.get("data")

    def __repr__(self) -> str:
        return f"<aiosio.RemoteSocket {self.id}>"

    def _opts(self) -> BroadcastOptions:
        return BroadcastOptions(rooms=frozenset({self.id}))

    def emit(self, event: str, *args: Any) -> None:
        self._adapter.broadcast(
            Packet(PacketType.EVENT, self._adapter.nsp.name, [event, *args]), self._opts()
        )

    def join(self, *rooms: Room) -> None:
        self._adapter.add_sockets(self._opts(), list(rooms))

    def leave(self, *rooms: Room) -> None:
        self._adapter.del_sockets(self._opts(), list(rooms))

    def disconnect(self, close: bool = False) -> None:
        self._adapter.disconnect_sockets(self._opts(), close)


# What Namespace.server_side_emit refuses to send, refused on receipt too: these names are the
# server's own events.
_SERVER_SIDE_RESERVED = frozenset(
    {"connect", "connection", "new_namespace", "disconnect", "disconnecting"}
)
# Server-side arguments go to Python handlers, not to clients: only the name rules apply.
_NO_LIMITS = Limits(max_attachments=2**31, max_depth=2**31)


def _check_delivery(args: list[Any], limits: Limits, *, server: bool) -> None:
    if server and args and isinstance(args[0], str) and args[0] in _SERVER_SIDE_RESERVED:
        raise RemoteProtocolError(f"server-side event name {args[0]!r} is reserved")
    check_event(args, limits)


def _not_an_event(packet: dict[str, Any]) -> bool:
    """A broadcast's packet type is EVENT (2), or BINARY_EVENT (5) from a peer that encoded
    first; anything else (a DISCONNECT, a CONNECT_ERROR) is never delivered: logged, True."""
    kind = packet.get("type", 2)
    if kind in (2, 5) and type(kind) is int:
        return False
    logger.warning(
        "dropped a broadcast of packet type %r from another server (expected 2, an EVENT); "
        "nothing was delivered (the server or emitter that published it sends what no "
        "socket.io server may: fix it there)",
        kind,
    )
    return True


def _opts_to_wire(opts: BroadcastOptions, *, timeout: bool = False) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if opts.flags.volatile:
        flags["volatile"] = True
    if not opts.flags.compress:
        flags["compress"] = False
    if timeout and opts.flags.timeout is not None:
        flags["timeout"] = round(opts.flags.timeout * 1000)
    return {"rooms": sorted(opts.rooms), "except": sorted(opts.except_rooms), "flags": flags}


def _opts_from_wire(raw: Any) -> BroadcastOptions:
    if not isinstance(raw, dict):
        raise TypeError("opts must be an object")
    flags = raw.get("flags") or {}
    if not isinstance(flags, dict):
        flags = {}
    return BroadcastOptions(
        rooms=frozenset(str(r) for r in raw.get("rooms") or ()),
        except_rooms=frozenset(str(r) for r in raw.get("except") or ()),
        flags=BroadcastFlags(
            volatile=bool(flags.get("volatile")),
            compress=flags.get("compress") is not False,
        ),
    )


def _handshake_dict(socket: Any) -> dict[str, Any]:
    h = socket.handshake
    return {
        "headers": h.headers,
        "time": h.time,
        "address": h.address,
        "xdomain": h.xdomain,
        "secure": h.secure,
        "issued": h.issued,
        "url": h.url,
        "query": h.query,
        "auth": h.auth,
    }


def _socket_details(socket: Any) -> dict[str, Any]:
    return {
        "id": socket.id,
        "handshake": _handshake_dict(socket),
        "rooms": sorted(socket.rooms),
        "data": socket.data,
    }


class _Pending:
    """A request waiting for ``expected`` responses."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.responses: list[Any] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, value: Any) -> None:
        self.responses.append(value)
        if len(self.responses) >= self.expected and not self.done.done():
            self.done.set_result(None)


class _AckRequest:
    """A broadcast with acknowledgements across the cluster."""

    def __init__(self, expected_servers: int) -> None:
        self.expected_servers = expected_servers
        self.servers = 0
        self.clients = 0
        self.replies: list[Any] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def client_count(self, count: int) -> None:
        self.servers += 1
        self.clients += count
        self._check()

    def ack(self, value: Any) -> None:
        self.replies.append(value)
        self._check()

    def _check(self) -> None:
        if (
            self.servers >= self.expected_servers
            and len(self.replies) >= self.clients
            and not self.done.done()
        ):
            self.done.set_result(None)


class _RedisNamespaceAdapter(InMemoryAdapter):
    """What both modes share: local parts, pending requests, the link."""

    def __init__(self, nsp: NamespaceView, factory: RedisAdapter) -> None:
        super().__init__(nsp)
        self.factory = factory
        self.link = factory.link
        self.max_size = factory.max_message_size
        self._pending: dict[str, _Pending] = {}
        self._acks: dict[str, _AckRequest] = {}
        self._outgoing_warned: set[str] = set()

    def _decode(self, data: bytes) -> Any:
        try:
            return decode(data, self.max_size)
        except ValueError as exc:
            logger.warning("dropped an invalid message from redis: %s", exc)
            return None

    def _invalid(self, channel: str, why: str) -> None:
        logger.warning("dropped a message of the wrong shape on %s: %s", channel, why)

    def _check_outgoing(self, args: Any) -> None:
        """A broadcast other aiosio servers will refuse (past the limits they apply to what
        they receive) still reaches this server's clients: say so here, where it is sent, once
        per reason."""
        try:
            check_event(args, self.factory.limits)
        except RemoteProtocolError as exc:
            reason = str(exc)
            if reason in self._outgoing_warned or len(self._outgoing_warned) >= 16:
                return
            self._outgoing_warned.add(reason)
            logger.warning(
                "a broadcast on %s reaches this server's clients, but the other aiosio servers "
                "of the cluster drop it: %s; keep broadcasts within the limits, or give every "
                "server the same larger RedisAdapter(limits=aiosio.Limits(...))",
                self.nsp.name,
                reason,
            )

    def _refused(
        self, channel: str, sender: Any, what: str, args: list[Any], *, server: bool
    ) -> bool:
        """Check what another server asks to deliver to sockets (``server``: to server-side
        handlers); log the reason and return True when it must be dropped."""
        try:
            _check_delivery(args, _NO_LIMITS if server else self.factory.limits, server=server)
        except RemoteProtocolError as exc:
            logger.warning(
                "dropped a %s from server %r on %s: %s; nothing was delivered (the server or "
                "emitter that published it sends what no socket.io server may: fix it there)",
                what,
                str(sender)[:40],
                channel,
                exc,
            )
            return True
        return False

    async def _gather_existing(self, request_id: str, timeout: float) -> list[Any]:
        pending = self._pending[request_id]
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending.done), timeout)
        finally:
            self._pending.pop(request_id, None)
        if len(pending.responses) < pending.expected:
            logger.warning(
                "only %d of %d servers answered within %ss",
                len(pending.responses),
                pending.expected,
                timeout,
            )
        return pending.responses

    async def _wait_acks(
        self, request_id: str, request: _AckRequest, timeout: float | None
    ) -> _AckRequest:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(request.done), timeout)
        finally:
            self._acks.pop(request_id, None)
        return request

    def _local_ack_broadcast(
        self, packet: Packet, opts: BroadcastOptions, reply: Callable[[Any], None]
    ) -> int:
        """Answer a remote broadcast with acks: deliver locally with a local ack id; returns the
        number of clients."""
        local = Packet(PacketType.EVENT, self.nsp.name, packet.data, self.nsp._next_ack_id())

        def on_reply(_sid: SocketId, value: Any) -> None:
            reply(value)

        return len(self.local_broadcast_with_ack(local, opts, on_reply))

    async def _broadcast_with_ack_over(
        self,
        packet: Packet,
        opts: BroadcastOptions,
        publish: Callable[[str], None],
        expected_servers: int,
    ) -> tuple[list[Any], list[str]]:
        request_id = self._new_request_id()
        request = _AckRequest(expected_servers)
        self._acks[request_id] = request
        publish(request_id)
        local_pending: set[SocketId] = set()

        def on_local(sid: SocketId, value: Any) -> None:
            if sid in local_pending:
                local_pending.discard(sid)
                request.ack(value)

        targets = self.local_broadcast_with_ack(packet, opts, on_local)
        local_pending.update(targets)
        request.client_count(len(targets))
        await self._wait_acks(request_id, request, opts.flags.timeout)
        if packet.id is not None and local_pending:
            self.forget_acks(packet.id, local_pending)
        missing: list[str] = list(local_pending)
        remote_missing = request.clients - len(request.replies) - len(local_pending)
        if remote_missing > 0:
            missing.append(f"<{remote_missing} socket(s) on other servers>")
        silent_servers = request.expected_servers - request.servers
        if silent_servers > 0:
            missing.append(f"<{silent_servers} server(s) that did not answer>")
        return request.replies, missing

    def _new_request_id(self) -> str:
        return secrets.token_hex(8)

    def _remote_sockets(self, responses: list[Any]) -> list[RemoteSocket]:
        return [
            RemoteSocket(self, details)
            for response in responses
            for details in response or ()
            if isinstance(details, dict) and details.get("id") is not None
        ]

    def _server_side_reply(self, respond: Callable[[Any], None]) -> Callable[[list[Any]], None]:
        answered = False

        def reply(values: list[Any]) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            respond(values[0] if values else None)

        return reply

    async def close(self) -> None:
        return None


class _ClassicAdapter(_RedisNamespaceAdapter):
    """``@socket.io/redis-adapter`` ``createAdapter`` (classic pub/sub)."""

    def __init__(self, nsp: NamespaceView, factory: RedisAdapter) -> None:
        super().__init__(nsp, factory)
        self.uid = _uid2(6)
        key, name = factory.key, nsp.name
        self.channel = f"{key}#{name}#"
        self.request_channel = f"{key}-request#{name}#"
        self.response_channel = f"{key}-response#{name}#"
        self.specific_response_channel = f"{self.response_channel}{self.uid}#"
        link = self.link
        link.psubscribe(self.channel + "*", self._on_broadcast)
        link.subscribe(self.request_channel, self._on_request)
        link.subscribe(self.response_channel, self._on_response)
        link.subscribe(self.specific_response_channel, self._on_response)
        link.ensure_started()

    def _new_request_id(self) -> str:
        return _uid2(6)

    # -- broadcasts ------------------------------------------------------------------------------

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        if not opts.flags.local:
            self._check_outgoing(packet.data)
            message = [
                self.uid,
                {"type": 2, "data": packet.data, "nsp": self.nsp.name},
                _opts_to_wire(opts),
            ]
            channel = self.channel
            if len(opts.rooms) == 1:
                channel += f"{next(iter(opts.rooms))}#"
            self.link.publish(channel, encode_msgpack(message))
        self.local_broadcast(packet, opts)

    def _on_broadcast(self, channel: str, data: bytes) -> None:
        if not channel.startswith(self.channel):
            return
        room = channel[len(self.channel) : -1]
        if room and room not in self.rooms:
            return  # a room with no member here: not even decoded
        message = self._decode(data)
        if message is None:
            return
        if not isinstance(message, list) or len(message) != 3:
            self._invalid(channel, "a broadcast must be [uid, packet, opts]")
            return
        uid, packet, opts = message
        if uid == self.uid:
            return
        if not isinstance(packet, dict):
            self._invalid(channel, "the packet is not an object")
            return
        if (packet.get("nsp") or "/") != self.nsp.name:
            return
        args = packet.get("data")
        if not isinstance(args, list) or not args:
            self._invalid(channel, "packet.data must be a non-empty array")
            return
        if _not_an_event(packet) or self._refused(channel, uid, "broadcast", args, server=False):
            return
        try:
            options = _opts_from_wire(opts)
        except (TypeError, ValueError) as exc:
            self._invalid(channel, str(exc))
            return
        self.local_broadcast(Packet(PacketType.EVENT, self.nsp.name, args), options)

    # -- requests ----------------------------------------------------------------------------------

    def _publish_request(self, request: dict[str, Any], *, binary: bool = False) -> None:
        data = encode_msgpack(request) if binary else encode_json(request)
        self.link.publish(self.request_channel, data)

    def _respond(
        self, request: dict[str, Any], response: dict[str, Any], binary: bool = False
    ) -> None:
        channel = self.response_channel
        if self.factory.publish_on_specific_response_channel and request.get("uid"):
            channel = f"{self.response_channel}{request['uid']}#"
        data = encode_msgpack(response) if binary else encode_json(response)
        self.link.publish(channel, data)

    def _on_request(self, channel: str, data: bytes) -> None:
        request = self._decode(data)
        if request is None:
            return
        if not isinstance(request, dict):
            self._invalid(channel, "a request must be an object")
            return
        kind = request.get("type")
        own = request.get("uid") == self.uid
        request_id = request.get("requestId")
        try:
            if kind == SOCKETS and not own:
                rooms = frozenset(str(r) for r in request.get("rooms") or ())
                sids = [s.id for s in self.local_targets(BroadcastOptions(rooms=rooms))]
                self._respond(request, {"requestId": request_id, "sockets": sids})
            elif kind == ALL_ROOMS and not own:
                self._respond(request, {"requestId": request_id, "rooms": list(self.rooms)})
            elif kind in (REMOTE_JOIN, REMOTE_LEAVE, REMOTE_DISCONNECT) and not own:
                self._on_remote_membership(request)
            elif kind == REMOTE_FETCH and not own:
                opts = _opts_from_wire(request.get("opts") or {})
                sockets = [_socket_details(s) for s in self.local_targets(opts)]
                self._respond(request, {"requestId": request_id, "sockets": sockets})
            elif kind == SERVER_SIDE_EMIT and not own:
                args = request.get("data")
                if isinstance(args, list) and args:
                    if self._refused(
                        channel, request.get("uid"), "server-side emit", args, server=True
                    ):
                        return
                    reply = None
                    if request_id is not None:
                        reply = self._server_side_reply(
                            lambda value: self.link.publish(
                                self.response_channel,
                                encode_json(
                                    {
                                        "type": SERVER_SIDE_EMIT,
                                        "requestId": request_id,
                                        "data": value,
                                    }
                                ),
                            )
                        )
                    self.nsp._on_server_side_emit(args, reply)
            elif kind == BROADCAST and request_id not in self._acks:
                self._on_remote_ack_broadcast(channel, request)
        except (ValueError, TypeError, KeyError) as exc:
            self._invalid(channel, f"request of type {kind!r}: {exc}")

    def _on_remote_membership(self, request: dict[str, Any]) -> None:
        kind = request["type"]
        if "opts" not in request:
            # Legacy single-socket form: {sid, room} / {sid, close}, answered with {requestId}.
            sid = str(request.get("sid"))
            opts = BroadcastOptions(rooms=frozenset({sid}))
            if sid not in self.nsp.sockets:
                return
        else:
            opts = _opts_from_wire(request["opts"])
        rooms = [
            str(r) for r in request.get("rooms") or ([request["room"]] if "room" in request else [])
        ]
        if kind == REMOTE_JOIN:
            self.local_add_sockets(opts, rooms)
        elif kind == REMOTE_LEAVE:
            self.local_del_sockets(opts, rooms)
        else:
            self.local_disconnect_sockets(opts, bool(request.get("close")))
        if "opts" not in request and request.get("requestId") is not None:
            self._respond(request, {"requestId": request["requestId"]})

    def _on_remote_ack_broadcast(self, channel: str, request: dict[str, Any]) -> None:
        packet = request.get("packet")
        request_id = request.get("requestId")
        if not isinstance(packet, dict) or not isinstance(packet.get("data"), list):
            return
        if _not_an_event(packet) or self._refused(
            channel, request.get("uid"), "broadcast", packet["data"], server=False
        ):
            return
        opts = _opts_from_wire(request.get("opts") or {})
        respond_binary = self._respond

        def reply(value: Any) -> None:
            respond_binary(
                request,
                {"type": BROADCAST_ACK, "requestId": request_id, "packet": value},
                binary=True,
            )

        count = self._local_ack_broadcast(
            Packet(PacketType.EVENT, self.nsp.name, packet["data"]),
            BroadcastOptions(rooms=opts.rooms, except_rooms=opts.except_rooms),
            reply,
        )
        self._respond(
            request,
            {"type": BROADCAST_CLIENT_COUNT, "requestId": request_id, "clientCount": count},
        )

    def _on_response(self, channel: str, data: bytes) -> None:
        response = self._decode(data)
        if response is None:
            return
        if not isinstance(response, dict):
            self._invalid(channel, "a response must be an object")
            return
        request_id = response.get("requestId")
        if not isinstance(request_id, str):
            self._invalid(channel, "a response needs a requestId")
            return
        kind = response.get("type")
        ack = self._acks.get(request_id)
        if ack is not None and kind == BROADCAST_CLIENT_COUNT:
            with contextlib.suppress(TypeError, ValueError):
                ack.client_count(int(response.get("clientCount", 0)))
            return
        if ack is not None and kind == BROADCAST_ACK:
            ack.ack(response.get("packet"))
            return
        pending = self._pending.get(request_id)
        if pending is None:
            return
        if "sockets" in response:
            pending.add(response["sockets"])
        elif "rooms" in response:
            pending.add(response["rooms"])
        else:
            pending.add(response.get("data"))

    # -- cluster operations ---------------------------------------------------------------------

    async def server_count(self) -> int:
        return await self.link.numsub(self.request_channel)

    async def broadcast_with_ack(
        self, packet: Packet, opts: BroadcastOptions
    ) -> tuple[list[Any], list[str]]:
        if opts.flags.local:
            return await super().broadcast_with_ack(packet, opts)
        expected = await self.server_count()
        self._check_outgoing(packet.data)

        def publish(request_id: str) -> None:
            self._publish_request(
                {
                    "uid": self.uid,
                    "requestId": request_id,
                    "type": BROADCAST,
                    "packet": {"type": 2, "data": packet.data, "nsp": self.nsp.name},
                    "opts": _opts_to_wire(opts, timeout=True),
                },
                binary=True,
            )

        return await self._broadcast_with_ack_over(packet, opts, publish, max(expected, 1))

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        local: list[Any] = list(self.local_targets(opts))
        if opts.flags.local:
            return local
        servers = await self.server_count()
        if servers <= 1:
            return local
        request_id = self._new_request_id()
        wire = _opts_to_wire(opts)
        self._pending[request_id] = _Pending(servers - 1)
        self._publish_request(
            {
                "uid": self.uid,
                "requestId": request_id,
                "type": REMOTE_FETCH,
                "opts": {"rooms": wire["rooms"], "except": wire["except"]},
            }
        )
        responses = await self._gather_existing(request_id, self.factory.requests_timeout)
        return local + self._remote_sockets(responses)

    def _membership(self, kind: int, opts: BroadcastOptions, **fields: Any) -> None:
        wire = _opts_to_wire(opts)
        self._publish_request(
            {
                "uid": self.uid,
                "type": kind,
                "opts": {"rooms": wire["rooms"], "except": wire["except"]},
                **fields,
            }
        )

    def add_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_add_sockets(opts, rooms)
        if not opts.flags.local:
            self._membership(REMOTE_JOIN, opts, rooms=list(rooms))

    def del_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        self.local_del_sockets(opts, rooms)
        if not opts.flags.local:
            self._membership(REMOTE_LEAVE, opts, rooms=list(rooms))

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        self.local_disconnect_sockets(opts, close)
        if not opts.flags.local:
            self._membership(REMOTE_DISCONNECT, opts, close=close)

    def server_side_emit(self, args: list[Any]) -> None:
        self._publish_request({"uid": self.uid, "type": SERVER_SIDE_EMIT, "data": args})

    async def server_side_emit_with_ack(self, args: list[Any], timeout: float | None) -> list[Any]:
        expected = await self.server_count() - 1
        if expected <= 0:
            return []
        request_id = self._new_request_id()
        self._pending[request_id] = _Pending(expected)
        self._publish_request(
            {"uid": self.uid, "requestId": request_id, "type": SERVER_SIDE_EMIT, "data": args}
        )
        limit = timeout if timeout is not None else self.factory.requests_timeout
        responses = await self._gather_existing(request_id, limit)
        if len(responses) < expected:
            raise AckTimeout(
                f"timeout reached: only {len(responses)} responses received out of {expected}",
                replies=responses,
            )
        return responses


class _ShardedAdapter(_RedisNamespaceAdapter):
    """``@socket.io/redis-adapter`` ``createShardedAdapter`` (Redis 7 sharded pub/sub)."""

    def __init__(self, nsp: NamespaceView, factory: RedisAdapter) -> None:
        super().__init__(nsp, factory)
        self.uid = secrets.token_hex(8)
        self.mode = factory.subscription_mode
        self.channel = f"{factory.key}#{nsp.name}#"
        self.own_channel = f"{self.channel}{self.uid}#"
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

    def _compute_channel(self, kind: int, data: dict[str, Any], opts: BroadcastOptions) -> str:
        if kind != M_BROADCAST or "requestId" in data or len(opts.rooms) != 1:
            return self.channel
        room = next(iter(opts.rooms))
        if self.mode == "dynamic-private" or (self.mode == "dynamic" and len(room) != 20):
            return self._room_channel(room)
        return self.channel

    def _publish(self, kind: int, data: dict[str, Any], channel: str | None = None) -> None:
        message = {"type": kind, "data": data, "uid": self.uid, "nsp": self.nsp.name}
        binary = kind in (
            M_BROADCAST,
            M_BROADCAST_ACK,
            M_FETCH_SOCKETS_RESPONSE,
            M_SERVER_SIDE_EMIT,
            M_SERVER_SIDE_EMIT_RESPONSE,
        ) and has_binary(data)
        encoded = encode_msgpack(message) if binary else encode_json(message)
        self.link.publish(channel or self.channel, encoded, sharded=True)

    def _respond(self, to_uid: str, kind: int, data: dict[str, Any]) -> None:
        self._publish(kind, data, f"{self.channel}{to_uid}#")

    # -- receiving -------------------------------------------------------------------------------

    def _on_message(self, channel: str, data: bytes) -> None:
        message = self._decode(data)
        if message is None:
            return
        if not isinstance(message, dict):
            self._invalid(channel, "a cluster message must be an object")
            return
        if message.get("uid") == self.uid or message.get("nsp") != self.nsp.name:
            return
        kind = message.get("type")
        body = message.get("data")
        if not isinstance(body, dict):
            self._invalid(channel, f"message of type {kind!r} without a data object")
            return
        sender = str(message.get("uid"))
        try:
            if kind in (
                M_FETCH_SOCKETS_RESPONSE,
                M_SERVER_SIDE_EMIT_RESPONSE,
                M_BROADCAST_CLIENT_COUNT,
                M_BROADCAST_ACK,
            ):
                self._on_response(kind, body)
            elif kind == M_BROADCAST:
                self._on_broadcast(channel, sender, body)
            elif kind == M_SOCKETS_JOIN:
                self.local_add_sockets(
                    _opts_from_wire(body["opts"]), [str(r) for r in body["rooms"]]
                )
            elif kind == M_SOCKETS_LEAVE:
                self.local_del_sockets(
                    _opts_from_wire(body["opts"]), [str(r) for r in body["rooms"]]
                )
            elif kind == M_DISCONNECT_SOCKETS:
                self.local_disconnect_sockets(
                    _opts_from_wire(body["opts"]), bool(body.get("close"))
                )
            elif kind == M_FETCH_SOCKETS:
                opts = _opts_from_wire(body["opts"])
                sockets = [_socket_details(s) for s in self.local_targets(opts)]
                self._respond(
                    sender,
                    M_FETCH_SOCKETS_RESPONSE,
                    {"requestId": body["requestId"], "sockets": sockets},
                )
            elif kind == M_SERVER_SIDE_EMIT:
                self._on_server_side_emit(channel, sender, body)
        except (ValueError, TypeError, KeyError) as exc:
            self._invalid(channel, f"message of type {kind!r}: {exc}")

    def _on_broadcast(self, channel: str, sender: str, body: dict[str, Any]) -> None:
        packet = body.get("packet")
        if not isinstance(packet, dict) or not isinstance(packet.get("data"), list):
            self._invalid(channel, "a broadcast needs packet.data as an array")
            return
        if _not_an_event(packet) or self._refused(
            channel, sender, "broadcast", packet["data"], server=False
        ):
            return
        opts = _opts_from_wire(body.get("opts"))
        request_id = body.get("requestId")
        if request_id is None:
            self.local_broadcast(Packet(PacketType.EVENT, self.nsp.name, packet["data"]), opts)
            return

        def reply(value: Any) -> None:
            self._respond(sender, M_BROADCAST_ACK, {"requestId": request_id, "packet": value})

        count = self._local_ack_broadcast(
            Packet(PacketType.EVENT, self.nsp.name, packet["data"]),
            BroadcastOptions(rooms=opts.rooms, except_rooms=opts.except_rooms),
            reply,
        )
        self._respond(
            sender, M_BROADCAST_CLIENT_COUNT, {"requestId": request_id, "clientCount": count}
        )

    def _on_server_side_emit(self, channel: str, sender: str, body: dict[str, Any]) -> None:
        args = body.get("packet")
        if not isinstance(args, list) or not args:
            return
        if self._refused(channel, sender, "server-side emit", args, server=True):
            return
        request_id = body.get("requestId")
        reply = None
        if request_id is not None:
            reply = self._server_side_reply(
                lambda value: self._respond(
                    sender, M_SERVER_SIDE_EMIT_RESPONSE, {"requestId": request_id, "packet": value}
                )
            )
        self.nsp._on_server_side_emit(args, reply)

    def _on_response(self, kind: Any, body: dict[str, Any]) -> None:
        request_id = body.get("requestId")
        if not isinstance(request_id, str):
            return
        ack = self._acks.get(request_id)
        if kind == M_BROADCAST_CLIENT_COUNT and ack is not None:
            with contextlib.suppress(TypeError, ValueError):
                ack.client_count(int(body.get("clientCount", 0)))
        elif kind == M_BROADCAST_ACK and ack is not None:
            ack.ack(body.get("packet"))
        else:
            pending = self._pending.get(request_id)
            if pending is not None:
                pending.add(
                    body.get("sockets") if kind == M_FETCH_SOCKETS_RESPONSE else body.get("packet")
                )

    # -- cluster operations ---------------------------------------------------------------------

    async def server_count(self) -> int:
        return await self.link.numsub(self.channel, sharded=True)

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        if not opts.flags.local:
            self._check_outgoing(packet.data)
            data = {"packet": {"type": 2, "data": packet.data}, "opts": _opts_to_wire(opts)}
            self._publish(M_BROADCAST, data, self._compute_channel(M_BROADCAST, data, opts))
        self.local_broadcast(packet, opts)

    async def broadcast_with_ack(
        self, packet: Packet, opts: BroadcastOptions
    ) -> tuple[list[Any], list[str]]:
        if opts.flags.local:
            return await super().broadcast_with_ack(packet, opts)
        expected = await self.server_count()
        self._check_outgoing(packet.data)

        def publish(request_id: str) -> None:
            self._publish(
                M_BROADCAST,
                {
                    "packet": {"type": 2, "data": packet.data},
                    "requestId": request_id,
                    "opts": _opts_to_wire(opts, timeout=True),
                },
            )

        return await self._broadcast_with_ack_over(packet, opts, publish, max(expected, 1))

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        local: list[Any] = list(self.local_targets(opts))
        if opts.flags.local:
            return local
        expected = await self.server_count() - 1
        if expected <= 0:
            return local
        request_id = self._new_request_id()
        self._pending[request_id] = _Pending(expected)
        self._publish(M_FETCH_SOCKETS, {"opts": _opts_to_wire(opts), "requestId": request_id})
        responses = await self._collect(request_id, opts.flags.timeout or 5.0)
        return local + self._remote_sockets(responses)

    async def _collect(self, request_id: str, timeout: float) -> list[Any]:
        return await self._gather_existing(request_id, timeout)

    def add_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        if not opts.flags.local:
            self._publish(M_SOCKETS_JOIN, {"opts": _opts_to_wire(opts), "rooms": list(rooms)})
        self.local_add_sockets(opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Sequence[Room]) -> None:
        if not opts.flags.local:
            self._publish(M_SOCKETS_LEAVE, {"opts": _opts_to_wire(opts), "rooms": list(rooms)})
        self.local_del_sockets(opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        if not opts.flags.local:
            self._publish(M_DISCONNECT_SOCKETS, {"opts": _opts_to_wire(opts), "close": close})
        self.local_disconnect_sockets(opts, close)

    def server_side_emit(self, args: list[Any]) -> None:
        self._publish(M_SERVER_SIDE_EMIT, {"packet": args})

    async def server_side_emit_with_ack(self, args: list[Any], timeout: float | None) -> list[Any]:
        expected = await self.server_count() - 1
        if expected <= 0:
            return []
        request_id = self._new_request_id()
        self._pending[request_id] = _Pending(expected)
        self._publish(M_SERVER_SIDE_EMIT, {"requestId": request_id, "packet": args})
        responses = await self._collect(request_id, timeout if timeout is not None else 5.0)
        if len(responses) < expected:
            raise AckTimeout(
                f"timeout reached: only {len(responses)} responses received out of {expected}",
                replies=responses,
            )
        return responses

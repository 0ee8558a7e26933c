"""``RedisStreamsAdapter``: scale out over Redis Streams, in one cluster with Node socket.io
servers on ``@socket.io/redis-streams-adapter`` 0.3, losing nothing while Redis restarts.

The namespace adapter is ``socket.io-adapter``'s ``ClusterAdapter`` as the reference extends it:
what must not be lost in a stream (:mod:`~aiosio.adapters.redis_streams.link`), what waits for an
answer on pub/sub, the server count from ``PUBSUB NUMSUB`` on the common channel, and connection
state recovery across servers: a disconnected socket's session is kept in Redis
(``SET <session_key_prefix><pid> <base64 msgpack> PX <max_disconnection_duration>``) and another
server restores it, with the broadcasts the client missed read back from the stream after its
offset (a stream entry id).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from dataclasses import replace
from functools import partial
from typing import Any

import msgpack

from aiosio.adapters.cluster import ClusterAdapterFactory
from aiosio.adapters.cluster import ClusterMessageAdapter
from aiosio.adapters.outbox import Retries
from aiosio.adapters.redis.adapter import redis_client
from aiosio.adapters.redis.codec import encode_msgpack
from aiosio.adapters.redis.link import Link
from aiosio.adapters.redis.link import RedisLink
from aiosio.adapters.redis.messages import MessageError
from aiosio.adapters.redis.namespace import RedisNamespaceAdapter
from aiosio.adapters.redis.sharded_messages import Broadcast
from aiosio.adapters.redis.sharded_messages import Message
from aiosio.adapters.redis.sharded_messages import decode
from aiosio.adapters.redis_streams.link import StreamsHealth
from aiosio.adapters.redis_streams.link import StreamsLink
from aiosio.adapters.redis_streams.messages import OFFSET
from aiosio.adapters.redis_streams.messages import decode_entry
from aiosio.adapters.redis_streams.messages import encode_pubsub
from aiosio.adapters.redis_streams.messages import entry_fields
from aiosio.adapters.redis_streams.messages import in_stream
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.server.adapter import BroadcastOptions
from aiosio.server.adapter import NamespaceView
from aiosio.server.adapter import PersistedSession
from aiosio.server.adapter import SocketId

__all__ = ["RedisStreamsAdapter", "StreamsNamespaceAdapter", "stream_of"]

logger = logging.getLogger("aiosio.adapter.redis_streams")

# The reference reads at most this many XRANGE pages when it restores a session.
RESTORE_MAX_XRANGE_CALLS = 100


# A stream entry id as a comparable value ("<ms>-<seq>" -> (ms, seq)).
EntryKey = tuple[int, int]
_START: EntryKey = (0, 0)


def _key(entry_id: str) -> EntryKey:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _hash_code(text: str) -> int:
    """Java's ``String.hashCode`` on UTF-16 code units, as the reference's ``hashCode``."""
    value = 0
    for unit in range(0, len(encoded := text.encode("utf-16-le")), 2):
        value = (value * 31 + int.from_bytes(encoded[unit : unit + 2], "little")) & 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def stream_of(nsp: str, stream_name: str, stream_count: int) -> str:
    """The stream of namespace ``nsp``: ``stream_name``, or with ``stream_count`` > 1,
    ``<stream_name>-<i>`` where ``i`` is the reference's ``hashCode(nsp) % stream_count`` (a
    JavaScript remainder: negative hashes give negative indexes, as in Node)."""
    if stream_count == 1:
        return stream_name
    code = _hash_code(nsp)
    index = abs(code) % stream_count * (-1 if code < 0 else 1)
    return f"{stream_name}-{index}"


class RedisStreamsAdapter(ClusterAdapterFactory["StreamsNamespaceAdapter"]):
    """The adapter factory: ``aiosio.Server(adapter=RedisStreamsAdapter("redis://..."))``.

    Options, as the reference names them: ``stream_name`` (``streamName``), ``stream_count``
    (``streamCount``: namespaces spread over ``<stream_name>-<i>``), ``channel_prefix``
    (``channelPrefix``), ``use_sharded_pubsub`` (``useShardedPubSub``), ``max_len``
    (``maxLen``: ``XADD MAXLEN ~``), ``read_count`` (``readCount``), ``block_time`` (seconds;
    ``blockTimeInMs``), ``session_key_prefix`` (``sessionKeyPrefix``), ``only_plaintext``
    (``onlyPlaintext``). Every server of a cluster needs the same values.

    The rest bound what waits for Redis while it is away, as
    :class:`~aiosio.adapters.redis.RedisAdapter`'s: ``publish_retry_timeout`` (how long a message
    waits for Redis to come back: long enough to outlast a restart), ``max_publish_queue``,
    ``health_check_interval``, ``max_message_size`` and ``limits`` (what other servers may ask
    this one to deliver). ``health`` is a :class:`StreamsHealth`.

    With ``connection_state_recovery``, a broadcast reaches this server's clients once it is in
    the stream (its entry id is the offset a client recovers from), as in the reference.
    """

    def __init__(
        self,
        client: Any = "redis://127.0.0.1:6379",
        *,
        stream_name: str = "socket.io",
        stream_count: int = 1,
        channel_prefix: str = "socket.io",
        use_sharded_pubsub: bool = False,
        max_len: int = 10_000,
        read_count: int = 100,
        block_time: float = 5.0,
        session_key_prefix: str = "sio:session:",
        only_plaintext: bool = False,
        max_message_size: int = 10_000_000,
        publish_retry_timeout: float = 30.0,
        max_publish_queue: int = 10_000,
        health_check_interval: float = 30.0,
        limits: Limits | None = None,
    ) -> None:
        for name, value in (("stream_count", stream_count), ("max_len", max_len)):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        if type(read_count) is not int or read_count < 1:
            raise ValueError(f"read_count must be an integer of at least 1, got {read_count!r}")
        if not 0 < block_time <= 3600:
            raise ValueError(
                f"block_time must be more than 0 and at most 3600 seconds, got {block_time!r}: "
                "each XREAD waits this long for new entries"
            )
        super().__init__(max_message_size=max_message_size, limits=limits)
        client = redis_client(client, feature="RedisStreamsAdapter(url)")
        if type(client).__name__ == "RedisCluster":
            raise TypeError(
                "RedisStreamsAdapter needs a redis.asyncio.Redis (standalone Redis, or the "
                "primary a Sentinel gives), not a RedisCluster: Redis Cluster is not supported "
                "yet (the server count needs PUBSUB NUMSUB summed over every node, and the "
                "pub/sub side is untested there); see docs/redis-streams.md, Redis Cluster"
            )
        retries = Retries(max_publish_queue, publish_retry_timeout)
        pubsub = RedisLink(
            client,
            retries=retries,
            health_check_interval=health_check_interval,
        )
        self.stream_name = stream_name
        self.stream_count = stream_count
        self.streams: list[str] = (
            [stream_name]
            if stream_count == 1
            else [f"{stream_name}-{i}" for i in range(stream_count)]
        )
        self.link_streams = StreamsLink(
            client,
            pubsub,
            streams=self.streams,
            max_len=max_len,
            read_count=read_count,
            block_ms=max(round(block_time * 1000), 1),
            retries=retries,
        )
        self.link: Link = self.link_streams
        self.client = client
        self.channel_prefix = channel_prefix
        self.sharded = use_sharded_pubsub
        self.session_key_prefix = session_key_prefix
        self.only_plaintext = only_plaintext

    def _namespace_adapter(self, nsp: NamespaceView) -> StreamsNamespaceAdapter:
        return StreamsNamespaceAdapter(nsp, self)

    @property
    def health(self) -> StreamsHealth:
        return self.link_streams.streams_health


class StreamsNamespaceAdapter(RedisNamespaceAdapter, ClusterMessageAdapter):
    """The adapter of one namespace (the reference's ``RedisStreamsAdapter`` class)."""

    factory_name = "RedisStreamsAdapter"

    def __init__(self, nsp: NamespaceView, factory: RedisStreamsAdapter) -> None:
        super().__init__(nsp, factory)
        self.streams = factory
        self.uid = secrets.token_hex(8)
        self.envelope = {"uid": self.uid, "nsp": nsp.name}
        # socket.io-adapter's ClusterAdapter waits its DEFAULT_TIMEOUT; it has no option for it.
        self.requests_timeout = 5.0
        self.stream = stream_of(nsp.name, factory.stream_name, factory.stream_count)
        self.channel = f"{factory.channel_prefix}#{nsp.name}#"
        self.own_channel = f"{self.channel}{self.uid}#"
        self._sessions: set[asyncio.Task[None]] = set()
        # Where this server's deliveries of the stream are (with recovery): the last entry its
        # reader passed (its own included: _reader_position), and the last of its own
        # broadcasts it delivered once appended. A restored socket got every entry up to its
        # restore's last one: those are not delivered to it again (restored sid -> that entry,
        # and the last of this server's own entries among them, whose delivery may be to come).
        self._own_at: EntryKey = _START
        self._restored_upto: dict[SocketId, tuple[EntryKey, EntryKey]] = {}
        on_message = self._subscriber(
            partial(decode, max_size=self.max_size, limits=factory.limits), self._dispatch
        )
        subscribe = factory.link.ssubscribe if factory.sharded else factory.link.subscribe
        subscribe(self.channel, on_message)
        subscribe(self.own_channel, on_message)
        factory.link_streams.on_entries(nsp.name, self._on_entry)
        if self.stream not in factory.streams:
            factory.link_streams.watch(self.stream)
            logger.warning(
                "namespace %s goes to stream %s (the reference's hash of its name is negative): "
                "aiosio servers read it, but Node servers on @socket.io/redis-streams-adapter "
                "0.3 never do, so their clients miss its broadcasts; in a mixed cluster, use "
                "stream_count=1 or another namespace name",
                nsp.name,
                self.stream,
            )
        factory.link_streams.ensure_started()

    # -- receiving -------------------------------------------------------------------------------

    def _on_entry(self, fields: dict[bytes, bytes], entry_id: str) -> None:
        decoder = partial(decode_entry, max_size=self.max_size, limits=self.limits)
        message = self._receive(self.stream, decoder, fields)
        if message is None:
            self._forget_restored()
            return
        if isinstance(message, Broadcast) and message.request_id is None:
            opts = self._not_restored(message.opts.to_options(), entry_id)
            packet = Packet(PacketType.EVENT, self.nsp.name, message.packet.data)
            self.local_broadcast(self._with_offset(packet, opts, entry_id), opts)
            self._forget_restored()
            return
        self._dispatch(message)
        self._forget_restored()

    def _not_restored(self, opts: BroadcastOptions, entry_id: str) -> BroadcastOptions:
        """``opts`` without the restored sockets that got entry ``entry_id`` in their restore."""
        if not self._restored_upto:
            return opts
        key = _key(entry_id)
        skip = {sid for sid, (upto, _) in self._restored_upto.items() if key <= upto}
        if not skip:
            return opts
        return replace(opts, except_rooms=opts.except_rooms | skip)

    def _reader_position(self) -> EntryKey:
        """The last entry of this namespace's stream the reader passed (any namespace's)."""
        offset = self.streams.link_streams.streams_health.offsets.get(self.stream)
        return _START if offset is None else _key(offset)

    def _forget_restored(self) -> None:
        """Drop the restore marks both deliveries have passed."""
        if self._restored_upto:
            reader, own = self._reader_position(), self._own_at
            for sid, (upto, own_upto) in list(self._restored_upto.items()):
                if reader >= upto and own >= own_upto:
                    del self._restored_upto[sid]

    # -- sending ---------------------------------------------------------------------------------

    def _publish(self, message: Message, channel: str | None = None) -> None:
        """A message to the other servers: in the stream, or on pub/sub (``channel``: an
        answer's)."""
        if channel is None and in_stream(message):
            fields = entry_fields(message, only_plaintext=self.streams.only_plaintext)
            self.streams.link_streams.append(self.stream, fields, _ignore_offset)
            return
        self.link.publish(
            channel or self.channel, encode_pubsub(message), sharded=self.streams.sharded
        )

    def _respond(self, to_uid: str, message: Message) -> None:
        self._publish(message, f"{self.channel}{to_uid}#")

    def _publish_request(self, message: Message) -> None:
        self._publish(message)

    async def server_count(self) -> int:
        return await self.link.numsub(self.channel, sharded=self.streams.sharded)

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        """To every target: other servers through the stream. With connection state recovery
        a broadcast reaches this server's clients once it is in the stream (the reference
        awaits every ``XADD``), with its entry id as offset when it is kept (an EVENT without
        ack, not volatile); the others (volatile ones) wait their turn too, so that this
        server's clients get its broadcasts in the order it sent them. Without recovery, at
        once."""
        if opts.flags.local:
            self.local_broadcast(packet, opts)
            return
        self._check_outgoing(packet.data)
        message = self._broadcast_message(packet, opts)
        if self.nsp.recovery is None:
            self._publish(message)
            self.local_broadcast(packet, opts)
            return

        def appended(entry_id: str | None) -> None:
            if entry_id is None:
                self.local_broadcast(packet, opts)
                return
            self._own_at = _key(entry_id)
            targets = self._not_restored(opts, entry_id)
            self.local_broadcast(self._with_offset(packet, targets, entry_id), targets)
            self._forget_restored()

        fields = entry_fields(message, only_plaintext=self.streams.only_plaintext)
        self.streams.link_streams.append(self.stream, fields, appended)

    # -- connection state recovery ---------------------------------------------------------------

    def _keeps(self, packet: Packet, opts: BroadcastOptions) -> bool:
        """Whether a broadcast gets an offset (the reference's ``addOffsetIfNecessary``)."""
        return (
            self.nsp.recovery is not None
            and packet.type is PacketType.EVENT
            and packet.id is None
            and not opts.flags.volatile
        )

    def _with_offset(self, packet: Packet, opts: BroadcastOptions, entry_id: str) -> Packet:
        if not self._keeps(packet, opts):
            return packet
        return Packet(packet.type, packet.nsp, [*packet.data, entry_id], packet.id)

    def persist_session(self, session: PersistedSession) -> None:
        """Keep the session in Redis for ``max_disconnection_duration`` (any server of the
        cluster may restore it)."""
        recovery = self.nsp.recovery
        if recovery is None:
            return
        value = {
            "sid": session.sid,
            "pid": session.pid,
            "rooms": list(session.rooms),
            "data": session.data,
        }
        try:
            encoded = base64.b64encode(encode_msgpack(value)).decode("ascii")
        except (TypeError, ValueError) as exc:
            _failed(
                f"could not keep the session of socket {session.sid} in redis: its data cannot "
                f"be written as msgpack ({exc}); keep only JSON-like values in socket.data"
            )
            return
        key = self.streams.session_key_prefix + session.pid
        ttl_ms = max(round(recovery.max_disconnection_duration * 1000), 1)
        task = asyncio.get_running_loop().create_task(self._store(key, encoded, ttl_ms))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _store(self, key: str, value: str, ttl_ms: int) -> None:
        try:
            await self.streams.client.set(key, value, px=ttl_ms)
        except Exception as exc:  # noqa: BLE001 - reported: this session cannot be recovered
            _failed(
                f"could not keep a disconnected session in redis ({type(exc).__name__}: {exc}): "
                "its client cannot recover its state on reconnection; check that Redis is "
                "reachable"
            )

    async def restore_session(self, pid: str, offset: str) -> PersistedSession | None:
        """The session ``pid`` kept by any server, with the broadcasts after ``offset`` its
        rooms would have received, volatile ones included as the reference does (None:
        unknown or expired session, unknown offset)."""
        if OFFSET.fullmatch(offset) is None:
            logger.debug("not restoring session %s: offset %r is not a stream id", pid, offset)
            return None
        client = self.streams.client
        key = self.streams.session_key_prefix + pid
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.delete(key)
                raw_session, _ = await pipe.execute()
            found = await client.xrange(self.stream, offset, offset)
            if not raw_session or not found:
                logger.info(
                    "not restoring session %s: %s (expired, restored already, or trimmed: "
                    "max_disconnection_duration and max_len bound both); it connects as a new "
                    "socket",
                    pid,
                    "no such session" if not raw_session else f"offset {offset} not in the stream",
                )
                return None
            session = self._decode_session(raw_session)
            if session is None:
                return None
            session.missed_packets, upto, own_upto = await self._missed(set(session.rooms), offset)
        except Exception as exc:  # noqa: BLE001 - reported: the client connects afresh
            _failed(
                f"could not restore session {pid} from redis ({type(exc).__name__}: {exc}): the "
                "client connects as a new socket"
            )
            return None
        # No await from here to the socket joining its rooms (in its constructor): what
        # this server delivers from now on is after `upto`, or is not delivered to it again.
        if self._reader_position() < upto or self._own_at < own_upto:
            self._restored_upto[session.sid] = (upto, own_upto)
        return session

    def _decode_session(self, raw: bytes) -> PersistedSession | None:
        try:
            value = msgpack.unpackb(base64.b64decode(raw), raw=False, strict_map_key=False)
            sid, pid, rooms, data = value["sid"], value["pid"], value["rooms"], value["data"]
        except Exception as exc:  # noqa: BLE001 - whatever is stored, it is refused the same way
            logger.warning("a stored session is malformed (%s): not restored", exc)
            return None
        if not isinstance(sid, str) or not isinstance(pid, str) or not isinstance(rooms, list):
            logger.warning("a stored session is malformed (sid, pid or rooms): not restored")
            return None
        return PersistedSession(
            sid=SocketId(sid), pid=pid, rooms=[str(r) for r in rooms], data=data
        )

    async def _missed(
        self, rooms: set[str], offset: str
    ) -> tuple[list[list[Any]], EntryKey, EntryKey]:
        """The broadcasts after ``offset`` for ``rooms``, up to the last entry of the stream, and
        past whatever this server has delivered by the time the answer is read (so that none
        it delivers before the socket is in its rooms is missing); with that last entry, and
        the last of this server's own entries among them."""
        missed: list[list[Any]] = []
        decoder = partial(decode_entry, max_size=self.max_size, limits=self.limits)
        upto, own_upto = _key(offset), _START
        own = self.uid.encode()
        empty = False
        for _ in range(RESTORE_MAX_XRANGE_CALLS):
            entries = await self.streams.client.xrange(self.stream, f"({offset}", "+")
            if not entries:
                if empty or max(self._reader_position(), self._own_at) <= upto:
                    break  # (twice empty: the reader started past the last entry left)
                empty = True
                continue
            empty = False
            for raw_id, fields in entries:
                offset = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                upto = _key(offset)
                if fields.get(b"uid") == own:
                    own_upto = upto
                if fields.get(b"nsp") != self.nsp.name.encode() or fields.get(b"type") != b"3":
                    continue
                try:  # this server's own broadcasts too: the client missed them as well
                    message = decoder(fields)
                except MessageError as exc:
                    logger.warning("skipped stream entry %s while restoring: %s", offset, exc)
                    continue
                if not isinstance(message, Broadcast) or message.request_id is not None:
                    continue
                opts = message.opts
                if opts.rooms and rooms.isdisjoint(opts.rooms):
                    continue
                if not rooms.isdisjoint(opts.except_rooms):
                    continue
                # Volatile broadcasts are in the stream too, and the reference's restoreSession
                # replays every broadcast entry its rooms match (shouldIncludePacket reads no
                # flag): so does this one, for a client to recover the same on any server.
                missed.append([*message.packet.data, offset])
        return missed, upto, own_upto

    async def close(self) -> None:
        self.streams.link_streams.off_entries(self.nsp.name)


def _failed(message: str) -> None:
    logger.error("%s", message)


def _ignore_offset(_entry_id: str | None) -> None:
    return None

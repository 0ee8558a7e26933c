"""``aiosio serve module:sio --workers N``: N worker processes behind one port, sticky.

Long-polling needs every request of a session to reach the process that owns it. The master
process owns the listening socket: it reads the request line of each new connection, finds the
session id (``sid=``) and passes the connection itself (its file descriptor, with the bytes
already read) to the worker that owns the session; a handshake goes to the next worker in turn.
Each worker's session ids start with its own letter, so the owner of a session is known from
its id alone. A kept-alive connection whose next request belongs to another worker (two browser
tabs share connections) is handed back to the master at the request boundary and routed again.

The master is also the workers' message bus: a cluster adapter with the sharded Redis adapter's
message format runs over it, so broadcasts, rooms, acknowledgements and ``fetch_sockets`` span
every worker. With ``--redis URL`` the workers use Redis instead (and join other servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import msgpack

from aiosio._once import AtMostEvery
from aiosio._recovery_log import DEFAULT_LOG_SIZE
from aiosio._recovery_log import RecoveryStore
from aiosio.adapters.redis.adapter import RedisAdapter
from aiosio.adapters.redis.codec import decode as decode_value
from aiosio.adapters.redis.codec import encode_msgpack
from aiosio.adapters.redis.link import RedisHealth
from aiosio.adapters.redis.link import set_within
from aiosio.adapters.redis.namespace import RedisNamespaceAdapter
from aiosio.adapters.redis.sharded_adapter import ShardedAdapter
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.packing import PackerPool
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import check_event
from aiosio.server.adapter import BroadcastFlags
from aiosio.server.adapter import BroadcastOptions
from aiosio.server.adapter import NamespaceView
from aiosio.server.adapter import PersistedSession
from aiosio.server.adapter import Recovery
from aiosio.server.adapter import SocketId

if TYPE_CHECKING:
    from aiosio.transports.native import NativeServer

__all__ = ["BusLink", "serve_workers", "worker_main"]

logger = logging.getLogger("aiosio.workers")

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SID = re.compile(rb"[?&]sid=([A-Za-z0-9_-]+)")
_MAX_HEAD = 64 * 1024
# Set in each worker process to its index, before the application is loaded.
WORKER_ENV = "AIOSIO_WORKER"


def worker_of(sid: bytes | str, workers: int) -> int | None:
    """The worker that owns a session id (its first character), or None."""
    if not sid:
        return None
    first = sid[0] if isinstance(sid, str) else chr(sid[0])
    index = ALPHABET.find(first)
    return index if 0 <= index < workers else None


def sid_in(head: bytes) -> bytes | None:
    line_end = head.find(b"\r\n")
    match = _SID.search(head[: line_end if line_end >= 0 else len(head)])
    return match.group(1) if match else None


# -- the bus (master side) ------------------------------------------------------------------------


_PACKERS = PackerPool()


class _FrameWriter:
    """Bus frames (msgpack arrays, each after its 4-byte length) written to a stream during one
    turn of the event loop leave in one write at its end.

    The process at the other end then reads them in one read and handles them in one turn, so
    its own writes coalesce as they do in one process: the WebSocket frames of the broadcasts
    that arrived together leave in one write per client. Written one by one, a worker received
    the other worker's broadcasts one per read and wrote each to each client on its own (2
    deliveries per write instead of 3.6 in the broadcast-workers benchmark: 1.5x the CPU per
    delivery of one process). Every frame to a stream goes through here, so their order holds."""

    def __init__(self) -> None:
        self._pending: dict[asyncio.StreamWriter, list[bytes]] = {}

    def write(self, writer: asyncio.StreamWriter, frame: list[Any]) -> None:
        data = _PACKERS.pack(frame)
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.setdefault(writer, []).append(struct.pack(">I", len(data)) + data)

    def flush(self) -> None:
        """Write what is pending now (at the end of the turn, or before a stream closes)."""
        pending, self._pending = self._pending, {}
        for writer, chunks in pending.items():
            if not writer.is_closing():
                writer.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))


class _Bus:
    """Channels and subscribers across the workers; messages framed as msgpack arrays. With
    connection state recovery, also the workers' shared store (:class:`RecoveryStore`):
    ``log`` gives a broadcast its offset and sends it to every worker of the namespace, the
    sender included, so that all deliver in the master's order; ``persist`` keeps a session;
    ``restore`` answers a worker with a session and what it missed."""

    def __init__(self, recovery_log_size: int = DEFAULT_LOG_SIZE) -> None:
        self.subscribers: dict[str, set[asyncio.StreamWriter]] = {}
        self.store = RecoveryStore(recovery_log_size)
        self.clock = time.monotonic
        self.out = _FrameWriter()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mine: set[str] = set()
        try:
            while True:
                frame = await _read_frame(reader)
                op = frame[0]
                if op == "sub":
                    self.subscribers.setdefault(frame[1], set()).add(writer)
                    mine.add(frame[1])
                elif op == "unsub":
                    self.subscribers.get(frame[1], set()).discard(writer)
                    mine.discard(frame[1])
                elif op == "pub":
                    for target in list(self.subscribers.get(frame[1], ())):
                        self.out.write(target, ["msg", frame[1], frame[2]])
                elif op == "numsub":
                    self.out.write(
                        writer, ["numsub", frame[1], len(self.subscribers.get(frame[2], ()))]
                    )
                else:
                    self._recovery(writer, frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            return  # shutting down: the stream callback must not see a cancelled task
        finally:
            for channel in mine:
                self.subscribers.get(channel, set()).discard(writer)
            writer.close()

    def _recovery(self, writer: asyncio.StreamWriter, frame: list[Any]) -> None:
        op, channel = frame[0], frame[1]
        store, now = self.store, self.clock()
        if op == "log":  # ["log", channel, keep, rooms, except, payload]
            _, _, keep, rooms, except_rooms, payload = frame
            offset = store.append(
                channel, now, keep, frozenset(rooms), frozenset(except_rooms), payload
            )
            message = _PACKERS.pack([offset, payload])
            for target in list(self.subscribers.get(channel, ())):
                self.out.write(target, ["msg", channel, message])
        elif op == "persist":  # ["persist", channel, keep, pid, rooms, session]
            _, _, keep, pid, rooms, session = frame
            store.persist(channel, now, keep, pid, frozenset(rooms), session)
        elif op == "restore":  # ["restore", channel, request, pid, offset]
            _, _, request, pid, offset = frame
            found = store.restore(channel, now, pid, offset)
            self.out.write(writer, ["restored", request, found.session, found.missed, found.reason])
        else:
            raise ConnectionError(f"unknown bus operation {str(op)[:20]!r}")


async def _read_frame(reader: asyncio.StreamReader) -> list[Any]:
    size = struct.unpack(">I", await reader.readexactly(4))[0]
    frame = msgpack.unpackb(await reader.readexactly(size), raw=False)
    if not isinstance(frame, list) or not frame:
        raise ConnectionError("invalid bus frame")
    return frame


# What a worker holds for the master at most, in bytes: the frames sent before its bus
# connection is up, and what that connection has not written yet (the master does not read it:
# stopped or hung). Past it a message is refused, counted in health.dropped_publishes and
# logged: the newest, since what is in the connection's buffer cannot be taken back and the
# order of what was sent holds (as RedisAdapter's max_publish_queue refuses). A master that
# reads keeps the buffer far below it.
MAX_BUS_BACKLOG = 64 * 1024 * 1024

# Frames that carry a message (a broadcast, a cluster request, a session): counted in
# health.published, or in health.dropped_publishes when refused.
_MESSAGES = frozenset({"pub", "log", "persist"})

# A refused message is logged at most this often (the count in the health says how many).
_DROP_LOG_INTERVAL = 5.0


def _frame_size(frame: list[Any]) -> int:
    """About the bytes a frame takes (its strings and bytes, and the framing)."""
    return 16 + sum(len(part) for part in frame if isinstance(part, bytes | str))


class BusLink:
    """The RedisLink interface over the master's bus: what the sharded adapter needs.

    ``max_backlog`` bounds, in bytes, what waits for the master (:data:`MAX_BUS_BACKLOG`). The
    master never comes back once this worker's connection to it is lost (or could not be made):
    from then on every message is refused and counted, and the requests that wait for an
    answer (the server count, a session to restore) get one at once."""

    def __init__(self, path: str, *, max_backlog: int = MAX_BUS_BACKLOG) -> None:
        self.path = path
        self.max_backlog = max_backlog
        self.health = RedisHealth()
        self._handlers: dict[str, Callable[[str, bytes], None]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._numsub: dict[int, asyncio.Future[int]] = {}
        self._restores: dict[int, asyncio.Future[list[Any]]] = {}
        self._next = 0
        self._ready: asyncio.Event | None = None
        # Frames sent before the connection is up, and their size (_frame_size).
        self._backlog: list[list[Any]] = []
        self._backlog_bytes = 0
        # Why the master is out of reach for good (None: connecting, or connected).
        self._gone: str | None = None
        self._drop_log = AtMostEvery(_DROP_LOG_INTERVAL)
        self._out = _FrameWriter()

    def ensure_started(self) -> bool:
        if self._reader_task is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._ready = asyncio.Event()
        self._reader_task = loop.create_task(self._run())
        return True

    async def _run(self) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(self.path)
        except OSError as exc:
            self._lost(f"could not connect to the master process's bus at {self.path} ({exc})")
            return
        self._writer = writer
        for channel in self._handlers:
            self._out.write(writer, ["sub", channel])
        backlog, self._backlog, self._backlog_bytes = self._backlog, [], 0
        for frame in backlog:
            self._write(writer, frame)
        self.health.queued_publishes = 0
        self.health.connected = True
        assert self._ready is not None
        self._ready.set()
        try:
            while True:
                frame = await _read_frame(reader)
                if frame[0] == "msg":
                    handler = self._handlers.get(frame[1])
                    if handler is not None:
                        self.health.messages_received += 1
                        handler(frame[1], frame[2])
                elif frame[0] == "numsub":
                    future = self._numsub.pop(frame[1], None)
                    if future is not None and not future.done():
                        future.set_result(int(frame[2]))
                elif frame[0] == "restored":
                    answer = self._restores.pop(frame[1], None)
                    if answer is not None and not answer.done():
                        answer.set_result(frame[2:])
                        # The broadcasts logged after this answer may be in the buffer behind
                        # it: let the restored socket join its rooms (no await from the answer
                        # to that) before any of them is delivered, or it would miss them.
                        await asyncio.sleep(0)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._lost(f"lost the connection to the master process ({exc or 'closed'})")

    def _lost(self, why: str) -> None:
        """The master is out of reach for good: what waits for it is dropped and counted, the
        requests waiting for its answer are answered."""
        self._gone = why
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        dropped = sum(1 for frame in self._backlog if frame[0] in _MESSAGES)
        self._backlog, self._backlog_bytes = [], 0
        health = self.health
        health.connected = False
        health.last_error = why
        health.last_error_at = time.time()
        health.queued_publishes = 0
        health.dropped_publishes += dropped
        if self._ready is not None:
            self._ready.set()  # what waits for the connection learns that it is gone
        numsub, self._numsub = self._numsub, {}
        for future in numsub.values():
            if not future.done():
                future.set_result(1)
        restores, self._restores = self._restores, {}
        for answer in restores.values():
            if not answer.done():
                answer.set_result([None, [], why])
        self._drop_log.reported()
        logger.error(
            "%s: this worker no longer reaches the other workers (the master does not come "
            "back): its broadcasts and cluster messages are dropped, %d so far "
            "(health.dropped_publishes), and it counts itself alone; stop the workers left "
            "behind and start aiosio serve --workers again",
            why,
            health.dropped_publishes,
        )

    async def ready(self, timeout: float = 5.0) -> bool:
        """Wait until the connection to the master is up (False, without waiting, once it is
        lost)."""
        self.ensure_started()
        assert self._ready is not None
        return await set_within(self._ready, timeout) and self._gone is None

    def _send(self, frame: list[Any]) -> str | None:
        """Send ``frame`` to the master, or keep it until the connection is up; or refuse it
        (the master is gone, or :attr:`max_backlog` bytes wait for it) and say why."""
        if self._gone is not None:
            return self._refuse(frame, self._gone)
        writer = self._writer
        if writer is None:
            size = _frame_size(frame)
            if self._backlog_bytes + size > self.max_backlog:
                return self._refuse(
                    frame,
                    f"{self._backlog_bytes} bytes wait for the connection to the master already",
                )
            self._backlog.append(frame)
            self._backlog_bytes += size
            self.health.queued_publishes = len(self._backlog)
            self.ensure_started()
            return None
        # What this turn of the loop wrote is counted from the next (the frames of one turn
        # leave together, at its end).
        waiting = writer.transport.get_write_buffer_size()
        if waiting > self.max_backlog:
            return self._refuse(
                frame,
                f"{waiting} bytes wait in the connection to the master: the master process "
                "does not read it (stopped or hung)",
            )
        self._write(writer, frame)
        return None

    def _write(self, writer: asyncio.StreamWriter, frame: list[Any]) -> None:
        self._out.write(writer, frame)
        if frame[0] in _MESSAGES:
            self.health.published += 1

    def _refuse(self, frame: list[Any], why: str) -> str:
        """Count a message that is not sent, and say so (at most every 5 s); returns ``why``."""
        health = self.health
        if frame[0] in _MESSAGES:
            health.dropped_publishes += 1
        if self._drop_log.due():
            logger.error(
                "could not send a message to the master process: %s; %d messages dropped so far "
                "(health.dropped_publishes): the other workers do not see them (at most %d bytes "
                "wait for the master, MAX_BUS_BACKLOG); if the master is stopped or hung, stop "
                "its workers and start aiosio serve --workers again",
                why,
                health.dropped_publishes,
                self.max_backlog,
            )
        return why

    def subscribe(self, channel: str, handler: Callable[[str, bytes], None]) -> None:
        self.ssubscribe(channel, handler)

    def psubscribe(self, pattern: str, handler: Callable[[str, bytes], None]) -> None:
        raise TypeError("the worker bus has no pattern subscriptions: use the sharded protocol")

    def ssubscribe(self, channel: str, handler: Callable[[str, bytes], None]) -> None:
        self._handlers[channel] = handler
        if self._writer is not None:
            self._out.write(self._writer, ["sub", channel])

    def sunsubscribe(self, channel: str) -> None:
        if self._handlers.pop(channel, None) is not None and self._writer is not None:
            self._out.write(self._writer, ["unsub", channel])

    def publish(
        self, channel: str, data: bytes, *, sharded: bool = False, audience: str | None = None
    ) -> None:
        """Publish (``audience`` is not checked: the master loses nothing while it runs)."""
        self._send(["pub", channel, data])

    async def numsub(self, channel: str, *, sharded: bool = False) -> int:
        """Subscribers of ``channel`` (1, this worker alone, when the master does not answer
        within 5 s or is out of reach)."""
        self._next += 1
        request = self._next
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._numsub[request] = future
        if self._send(["numsub", request, channel]) is not None:
            self._numsub.pop(request, None)
            return 1
        try:
            async with asyncio.timeout(5.0):
                return await future
        except TimeoutError:
            self._numsub.pop(request, None)
            return 1

    # -- connection state recovery: the master's store --------------------------------------------

    def log(
        self, channel: str, keep: float, rooms: list[str], except_rooms: list[str], payload: bytes
    ) -> bool:
        """Send a broadcast to be given an offset and delivered by every subscriber of
        ``channel`` (this worker included), in the master's order; False when it was refused
        (counted and logged: it comes back to no one)."""
        return self._send(["log", channel, keep, rooms, except_rooms, payload]) is None

    def persist(
        self, channel: str, keep: float, pid: str, rooms: list[str], session: bytes
    ) -> None:
        self._send(["persist", channel, keep, pid, rooms, session])

    async def restore(
        self, channel: str, pid: str, offset: str, timeout: float = 5.0
    ) -> tuple[bytes | None, list[tuple[str, bytes]], str | None]:
        """The session ``pid`` and the broadcasts it missed after ``offset``, or no session and
        why."""
        self._next += 1
        request = self._next
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._restores[request] = answer
        refused = self._send(["restore", channel, request, pid, offset])
        if refused is not None:
            self._restores.pop(request, None)
            return None, [], refused
        try:
            async with asyncio.timeout(timeout):
                session, missed, reason = await answer
        except TimeoutError:
            self._restores.pop(request, None)
            return None, [], f"the master did not answer within {timeout:g}s"
        return session, [(str(o), bytes(e)) for o, e in missed], reason

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._out.flush()  # what was published in this turn still leaves
            self._writer.close()


# -- the workers' cluster adapter ---------------------------------------------------------------


class WorkersAdapter(RedisAdapter):
    """The adapter of every worker without ``--redis``: the sharded Redis adapter's protocol
    over the master's bus (``@socket.io/cluster-adapter``'s place in Node), plus what the
    reference's cluster adapter lacks, connection state recovery across the workers: with
    ``recovery``, each recoverable broadcast goes through the master, which gives it an offset
    and hands it to every worker in one order, and the sessions of disconnected sockets are kept
    by the master, so a client recovers on whichever worker it reconnects to."""

    def __init__(self, link: BusLink, recovery: Recovery | None = None) -> None:
        super().__init__(link=link, sharded=True, subscription_mode="static")
        self.bus = link
        self.recovery = recovery

    def __call__(self, nsp: NamespaceView) -> RedisNamespaceAdapter:
        adapter = _WorkerAdapter(nsp, self)
        self.adapters.append(adapter)
        return adapter


class _WorkerAdapter(ShardedAdapter):
    """One namespace of a worker (:class:`WorkersAdapter`)."""

    def __init__(self, nsp: NamespaceView, factory: WorkersAdapter) -> None:
        super().__init__(nsp, factory)
        self.bus = factory.bus
        self.recovery = factory.recovery
        self.log_channel = f"aiosio-recovery#{nsp.name}"
        # This worker's recoverable broadcasts sent to the master, and those back from it; the
        # other broadcasts sent meanwhile wait here for the ones sent before them (with the
        # count of those), so that local clients get them all in the order they were sent.
        self._logs_sent = 0
        self._logs_back = 0
        self._held: deque[tuple[int, Packet, BroadcastOptions]] = deque()
        if self.recovery is not None:
            self.bus.ssubscribe(self.log_channel, self._on_logged)

    def broadcast(self, packet: Packet, opts: BroadcastOptions) -> None:
        flags = opts.flags
        recovery = self.recovery
        if recovery is None or flags.local:
            super().broadcast(packet, opts)
            return
        self._check_outgoing(packet.data)
        if flags.volatile or packet.type is not PacketType.EVENT or packet.id is not None:
            # Not kept: to the other workers at once (the master passes it on after the kept
            # ones sent before it), to this worker's clients after those come back.
            self._publish_broadcast(packet, opts)
            if self._logs_back == self._logs_sent or not self.bus.health.connected:
                self.local_broadcast(packet, opts)
            else:
                self._held.append((self._logs_sent, packet, opts))
            return
        rooms, except_rooms = sorted(opts.rooms), sorted(opts.except_rooms)
        payload = encode_msgpack([self.uid, flags.compress, packet.data, rooms, except_rooms])
        keep = recovery.max_disconnection_duration
        if self.bus.log(self.log_channel, keep, rooms, except_rooms, payload):
            self._logs_sent += 1
        else:
            # Refused (the master is gone, or too much waits for it): it will not come back
            # from the master, so this worker's clients get it now, without an offset.
            self.local_broadcast(packet, opts)

    def _on_logged(self, channel: str, data: bytes) -> None:
        """A recoverable broadcast back from the master with its offset (this worker's own
        ones too): delivered here, in the master's order, the offset last."""
        try:
            offset, payload = msgpack.unpackb(data, raw=False)
            sender, compress, args, rooms, except_rooms = self._entry(payload)
            if sender != self.uid:
                check_event(args, self.factory.limits)
        except (ValueError, TypeError, RemoteProtocolError) as exc:
            self.link.health.dropped_messages += 1
            logger.warning("dropped a broadcast from the master on %s: %s", channel, exc)
            return
        opts = BroadcastOptions(
            rooms=rooms, except_rooms=except_rooms, flags=BroadcastFlags(compress=compress)
        )
        self.local_broadcast(Packet(PacketType.EVENT, self.nsp.name, [*args, offset]), opts)
        if sender == self.uid:
            self._logs_back += 1
            held = self._held
            while held and held[0][0] <= self._logs_back:
                _, packet, options = held.popleft()
                self.local_broadcast(packet, options)

    def _entry(self, payload: bytes) -> tuple[str, bool, list[Any], frozenset[str], frozenset[str]]:
        sender, compress, args, rooms, except_rooms = decode_value(payload, self.max_size)
        if not isinstance(args, list):
            raise TypeError("the broadcast's arguments are not a list")
        return (
            str(sender),
            bool(compress),
            args,
            frozenset(map(str, rooms)),
            frozenset(map(str, except_rooms)),
        )

    def persist_session(self, session: PersistedSession) -> None:
        recovery = self.recovery
        if recovery is None:
            return
        state = {"sid": session.sid, "pid": session.pid, "rooms": session.rooms}
        try:
            blob = encode_msgpack({**state, "data": session.data})
        except (TypeError, ValueError) as exc:
            logger.warning(
                "socket %s cannot be recovered on another worker: its data cannot be encoded "
                "(%s); keep socket.data to JSON-like values",
                session.sid,
                exc,
            )
            return
        keep = recovery.max_disconnection_duration
        self.bus.persist(self.log_channel, keep, session.pid, list(session.rooms), blob)

    async def restore_session(self, pid: str, offset: str) -> PersistedSession | None:
        if self.recovery is None:
            return None
        blob, missed, reason = await self.bus.restore(self.log_channel, pid, offset)
        if blob is None:
            # A bound that was hit is worth a warning; an unknown or expired session is routine.
            level = logging.WARNING if reason and "no longer kept" in reason else logging.INFO
            logger.log(
                level, "no recovery for session %s on %s: %s", pid[:20], self.nsp.name, reason
            )
            return None
        state = decode_value(blob, self.max_size)
        packets = []
        for missed_offset, payload in missed:
            _sender, _compress, args, _r, _e = self._entry(payload)
            packets.append([*args, missed_offset])
        return PersistedSession(
            sid=SocketId(str(state["sid"])),
            pid=str(state["pid"]),
            rooms=[str(room) for room in state["rooms"]],
            data=state.get("data"),
            missed_packets=packets,
        )


# -- the master ---------------------------------------------------------------------------------


class _Master:
    def __init__(self, workers: int, directory: str) -> None:
        self.workers = workers
        self.directory = directory
        self.handoff: list[socket.socket] = []
        self.next_worker = 0
        self.loop = asyncio.get_running_loop()

    def fd_path(self, index: int) -> str:
        return os.path.join(self.directory, f"fd-{index}.sock")

    def bus_path(self) -> str:
        return os.path.join(self.directory, "bus.sock")

    async def connect_workers(
        self, deadline: float, procs: list[subprocess.Popen[bytes]] | None = None
    ) -> None:
        """Connect to each worker's hand-off socket as it comes up; a worker that exits first
        (its application failed to load, a missing extra) ends the wait at once with its exit
        status (its own traceback is above in the log), not at the deadline."""
        for index in range(self.workers):
            while True:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    sock.connect(self.fd_path(index))
                    break
                except OSError:
                    sock.close()
                    _check_alive(procs or [])
                    if self.loop.time() > deadline:
                        raise RuntimeError(f"worker {index} did not start") from None
                    await asyncio.sleep(0.05)
            sock.setblocking(False)
            self.handoff.append(sock)
            self.loop.add_reader(sock, self._handed_back, sock)

    def route(self, conn: socket.socket, head: bytes) -> None:
        sid = sid_in(head)
        index = worker_of(sid, self.workers) if sid else None
        if index is None:
            index = self.next_worker
            self.next_worker = (self.next_worker + 1) % self.workers
        try:
            socket.send_fds(self.handoff[index], [head], [conn.fileno()])
        except OSError as exc:
            logger.error("could not pass a connection to worker %d: %s", index, exc)  # noqa: TRY400
        finally:
            conn.close()

    def _handed_back(self, sock: socket.socket) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_HEAD + 1024, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.loop.remove_reader(sock)
            return
        if not fds:
            if not data:
                self.loop.remove_reader(sock)
            return
        conn = socket.socket(fileno=fds[0])
        self.route(conn, data)

    async def accept(self, listener: socket.socket) -> None:
        while True:
            conn, _ = await self.loop.sock_accept(listener)
            self.loop.create_task(self._first_bytes(conn))

    async def _first_bytes(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        head = b""
        try:
            async with asyncio.timeout(10.0):
                while b"\r\n" not in head and len(head) < _MAX_HEAD:
                    chunk = await self.loop.sock_recv(conn, 65536)
                    if not chunk:
                        conn.close()
                        return
                    head += chunk
        except (TimeoutError, OSError):
            conn.close()
            return
        self.route(conn, head)


def _check_alive(procs: list[subprocess.Popen[bytes]]) -> None:
    """Raise if a worker has exited while the master waits for it to start."""
    for index, proc in enumerate(procs):
        code = proc.poll()
        if code is not None:
            raise RuntimeError(
                f"worker {index} exited with status {code} before it started serving (its "
                "error is above); fix it, then start again"
            )


async def _master(
    target: str,
    host: str,
    port: int,
    workers: int,
    redis_url: str | None,
    python: str,
    directory: str,
    bus: _Bus,
    use_uvloop: bool,
) -> None:
    master = _Master(workers, directory)
    bus_server = await asyncio.start_unix_server(bus.serve, master.bus_path())
    try:
        listener = socket.create_server((host, port), reuse_port=False, backlog=2048)
    except OSError:
        bus_server.close()
        raise
    listener.setblocking(False)
    procs = []
    for index in range(workers):
        command = [
            python,
            "-m",
            "aiosio",
            "_worker",
            target,
            "--index",
            str(index),
            "--workers",
            str(workers),
            "--dir",
            directory,
        ]
        if redis_url:
            command += ["--redis", redis_url]
        if not use_uvloop:
            command.append("--no-uvloop")
        procs.append(subprocess.Popen(command))  # noqa: ASYNC220, S603 - our own interpreter
    try:
        await master.connect_workers(master.loop.time() + 30, procs)
        logger.info(
            "aiosio listening on http://%s:%d with %d workers (sticky sessions)",
            host,
            listener.getsockname()[1],
            workers,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                master.loop.add_signal_handler(sig, stop.set)
        accept = master.loop.create_task(master.accept(listener))
        watcher = master.loop.create_task(_watch(procs, stop))
        await stop.wait()
        logger.info("shutting down")
        accept.cancel()
        watcher.cancel()
    finally:
        listener.close()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        bus_server.close()


async def _watch(procs: list[subprocess.Popen[bytes]], stop: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(0.5)
        for index, proc in enumerate(procs):
            if proc.poll() is not None:
                logger.error("worker %d exited with %s; stopping", index, proc.returncode)
                stop.set()
                return


def serve_workers(
    target: str,
    host: str,
    port: int,
    workers: int,
    redis_url: str | None = None,
    *,
    recovery_log_size: int = DEFAULT_LOG_SIZE,
    use_uvloop: bool = True,
) -> None:
    """Run ``workers`` processes of ``module:app`` behind ``host:port`` (blocking).

    ``recovery_log_size``: with connection state recovery (and no ``redis_url``), how many
    broadcasts of a namespace the master keeps for clients to recover on any worker. The master
    and every worker run on uvloop when it is installed, as ``aiosio serve`` does in one process
    (``use_uvloop=False``: asyncio's default loop in all of them)."""
    from aiosio.transports.native import loop_factory

    if not 1 <= workers <= len(ALPHABET):
        raise ValueError(f"workers must be between 1 and {len(ALPHABET)}, got {workers}")
    bus = _Bus(recovery_log_size)
    python = sys.executable
    # The directory of the workers' sockets goes in the end, also when the port cannot be bound.
    with (
        tempfile.TemporaryDirectory(prefix="aiosio-workers-", ignore_cleanup_errors=True) as path,
        asyncio.Runner(loop_factory=loop_factory(None if use_uvloop else False)) as runner,
    ):
        runner.run(_master(target, host, port, workers, redis_url, python, path, bus, use_uvloop))


# -- a worker -----------------------------------------------------------------------------------


def worker_main(
    target: str,
    index: int,
    workers: int,
    directory: str,
    redis: str | None,
    *,
    use_uvloop: bool = True,
) -> None:
    """Entry point of one worker process (``python -m aiosio _worker``), on uvloop when installed
    unless ``use_uvloop`` is False (``--no-uvloop``, passed on by the master)."""
    from aiosio.loader import load_app
    from aiosio.server.server import Server
    from aiosio.transports.native import NativeServer
    from aiosio.transports.native import ServerLimits
    from aiosio.transports.native import loop_factory

    # Tells the application it runs in a worker (as NODE_UNIQUE_ID does Node's cluster.isWorker):
    # the Admin UI then names this server "host#pid" rather than the host alone.
    os.environ[WORKER_ENV] = str(index)
    app = load_app(target)
    engine = getattr(app, "engine", app)
    prefix = ALPHABET[index]

    def generate_id(request: Any) -> str:
        return prefix + secrets.token_urlsafe(15)  # 120 random bits after the worker's prefix

    engine.generate_id = generate_id
    if isinstance(app, Server):
        factory: RedisAdapter
        if redis:
            factory = RedisAdapter(redis)
        else:
            bus = BusLink(os.path.join(directory, "bus.sock"))
            factory = WorkersAdapter(bus, app.connection_state_recovery)
        app.set_adapter(factory)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        http_app = getattr(app, "http_app", app)
        handoff = _WorkerHandoff(index, workers)
        server = NativeServer(http_app, loop, ServerLimits(), handoff=handoff)
        startup = getattr(http_app, "startup", None)
        if startup is not None:
            await startup()
        path = os.path.join(directory, f"fd-{index}.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(path)
        listener.listen(1)
        listener.setblocking(False)
        channel, _ = await loop.sock_accept(listener)
        channel.setblocking(False)
        handoff.channel = channel
        loop.add_reader(channel, handoff.receive, server)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.close()

    with asyncio.Runner(loop_factory=loop_factory(None if use_uvloop else False)) as runner:
        runner.run(main())


class _WorkerHandoff:
    """The native server's hand-off hook (:class:`aiosio.transports.native.Handoff`) in a
    worker: receives connections from the master; gives back those of other workers' sessions."""

    def __init__(self, index: int, workers: int) -> None:
        self.index = index
        self.workers = workers
        self.channel: socket.socket | None = None
        self._adopting: set[asyncio.Task[None]] = set()

    def receive(self, server: NativeServer) -> None:
        """A connection from the master is ready on the channel: ``server`` serves it."""
        assert self.channel is not None
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.channel, _MAX_HEAD + 1024, 1)
        except (BlockingIOError, InterruptedError):
            return
        if not fds:
            return
        task = asyncio.get_running_loop().create_task(
            server.adopt(socket.socket(fileno=fds[0]), data)
        )
        self._adopting.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._adopting.discard)

    def foreign_url(self, url: bytes) -> bool:
        match = _SID.search(url)
        owner = worker_of(match.group(1), self.workers) if match else None
        return owner is not None and owner != self.index

    def give_back(self, fd: int, data: bytes) -> None:
        assert self.channel is not None
        try:
            socket.send_fds(self.channel, [data], [fd])
        except OSError as exc:
            logger.error("could not hand a connection back to the master: %s", exc)  # noqa: TRY400

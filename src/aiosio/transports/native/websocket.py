"""The native server's WebSocket: the channel the engine writes to once a connection is upgraded,
and the write batcher that sends what the channels queued in one turn of the loop.

Sending is the broadcast hot path: one call of :meth:`PlainWebSocket.frame_writer`'s answer per
recipient, with thousands of recipients per message. So there the channel reads nothing but
itself: whether it is open, its transport and the transport's backlog are its own fields, not
read through the connection and the codec (each one more object, with thousands of recipients
one more cache miss per recipient). Each is set at one place, named where it is declared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from aiosio.engine.http import WebSocketHandler
from aiosio.protocol import websocket as ws
from aiosio.protocol.text import JS_UTF8

__all__ = ["ChannelHost", "NativeWebSocket", "PlainWebSocket", "WriteBatcher"]

logger = logging.getLogger("aiosio.server.http")

# Read once: on Python 3.11 each ``Opcode.X`` is a descriptor call, and ``A | B`` in an
# isinstance call builds a union object each time it runs (once per message received).
_TEXT, _BINARY = ws.Opcode.TEXT, ws.Opcode.BINARY
_OPEN = ws.State.OPEN
_MESSAGES = (ws.TextMessage, ws.BinaryMessage)


class WriteBatcher:
    """The channels with frames queued in this turn of the loop, flushed at its end: one write
    (one system call) per connection per turn, however many messages it got (a burst of acks,
    successive broadcasts), and one loop callback per turn for all of them. One per
    :class:`~aiosio.transports.native.server.NativeServer`.

    A channel appends itself to :attr:`channels` (``NativeWebSocket._queue_frame``), calling
    :meth:`schedule` when it is the first: on the broadcast hot path, where every recipient
    joins, that is one call of ``list.append`` per recipient and no Python call. (Not a subclass
    of ``list``, which mypyc cannot compile: see setup.py.)"""

    __slots__ = ("_loop", "channels")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.channels: list[NativeWebSocket] = []

    def schedule(self) -> None:
        """Flush at the end of this turn (call before adding the first channel)."""
        self._loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        channels = self.channels[:]
        self.channels.clear()
        for channel in channels:
            channel.flush()


class ChannelHost(Protocol):
    """What a channel needs of the HTTP connection it was upgraded from."""

    @property
    def peer(self) -> str:
        """The client's address, for the log."""

    def pause_reading(self) -> None:
        """Stop reading from the connection: the application's backpressure."""

    def resume_reading(self) -> None:
        """Read again, unless something else holds the connection."""

    def abort(self) -> None:
        """Drop the connection now."""


class NativeWebSocket:
    """A WebSocket on a connection of the native server; the channel the engine writes to.

    Every message goes through the connection's codec: with permessage-deflate, each connection
    compresses in its own context. Without an extension, a :class:`PlainWebSocket`."""

    __slots__ = (
        "_backlog",
        "_batcher",
        "_close_timeout",
        "_closing_timer",
        "_handler",
        "_host",
        "_open",
        "_out",
        "_out_size",
        "_transport",
        "codec",
    )

    def __init__(
        self,
        host: ChannelHost,
        transport: asyncio.Transport,
        codec: ws.WebSocketProtocol,
        batcher: WriteBatcher,
        close_timeout: float,
    ) -> None:
        self._host = host
        self.codec = codec
        self._batcher = batcher
        self._close_timeout = close_timeout  # wait this long for the peer's close frame
        self._handler: WebSocketHandler | None = None
        self._closing_timer: asyncio.TimerHandle | None = None
        # Frames queued in this turn of the loop, written at its end by the batcher (or before a
        # frame that must follow them). Not empty: the channel waits in the batcher and is not
        # writable (what volatile packets check), like the reference's ws transport.
        self._out: list[bytes] = []
        self._out_size = 0
        # The connection's transport, handed over at the upgrade; None once the connection is
        # lost (connection_lost, the one place).
        self._transport: asyncio.Transport | None = transport
        # The transport's buffer after the last write: an upper bound (it only drains until
        # the next write), what send_frame adds to its answer; the exact figure is read before
        # acting on it (buffered_amount).
        self._backlog = 0
        self._open = False  # messages may be sent: derived in _update_open alone
        self._update_open()

    def _update_open(self) -> None:
        """Derive :attr:`_open` from the transport and the codec; called wherever either may
        have changed (the codec sent or received a close, the connection was lost)."""
        self._open = self._transport is not None and self.codec.state is _OPEN

    # channel ------------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> int:
        """Queue one message for the end of the turn; returns what :meth:`_queue_frame` does."""
        if not self._open:
            return 0
        codec = self.codec
        if isinstance(data, str):
            codec.send_text(data)
        else:
            codec.send_binary(data)
        return self._queue_frame(codec.data_to_send())

    def _queue_frame(self, frame: bytes, data: str | bytes | None = None) -> int:
        """Queue ``frame`` for the end of the turn (not once the channel is closed: 0); returns
        the bytes waiting for the peer, or more (see :attr:`_backlog`; :attr:`buffered_amount`
        is exact). The one way out to the peer but for control frames, on the hot paths: it
        reads nothing but this object and appends to two lists.

        ``data``, the message ``frame`` carries, is not read: it is the second argument of the
        engine's frame writer, which is this method (:meth:`PlainWebSocket.frame_writer`)."""
        if not self._open:
            return 0
        out = self._out
        if not out:
            batcher = self._batcher
            channels = batcher.channels
            if not channels:
                batcher.schedule()
            channels.append(self)
        out.append(frame)
        size = self._out_size = self._out_size + len(frame)
        return size + self._backlog

    def flush(self) -> None:
        """Write the frames queued in this turn, in one write: the batcher's call at the end of
        the turn, and before a frame that must follow them (a close, a pong)."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()  # the same list for the next turn: no list made and freed per write
        self._out_size = 0
        transport = self._transport
        if transport is not None:
            transport.write(data)
            self._backlog = transport.get_write_buffer_size()

    @property
    def writable(self) -> bool:
        transport = self._transport
        return transport is not None and not self._out and transport.get_write_buffer_size() == 0

    def frame_writer(self) -> Callable[[bytes, str | bytes], int] | None:
        """None: with an extension each connection encodes its messages (deflate contexts)."""
        return None

    def close(self, code: int = 1000, reason: str = "") -> None:
        transport = self._transport
        if not self._open or transport is None:
            return
        self.flush()
        self.codec.send_close(code, reason)
        self._update_open()
        transport.write(self.codec.data_to_send())
        loop = asyncio.get_running_loop()
        self._closing_timer = loop.call_later(self._close_timeout, self._host.abort)

    @property
    def buffered_amount(self) -> int:
        transport = self._transport
        return self._out_size + (transport.get_write_buffer_size() if transport is not None else 0)

    def pause_reading(self) -> None:
        """The engine's backpressure: the connection is not read from (the frames of the chunk
        being read are still delivered) until :meth:`resume_reading`."""
        self._host.pause_reading()

    def resume_reading(self) -> None:
        self._host.resume_reading()

    # from the connection ------------------------------------------------------------------------

    def start(self, handler: WebSocketHandler, early: bytes) -> bool:
        """Deliver to ``handler`` from now on, starting with ``early``, the bytes read while the
        engine decided on the upgrade; returns what :meth:`receive` returns."""
        self._handler = handler
        return self.receive(early) if early else False

    def receive(self, data: bytes) -> bool:
        """Take bytes from the connection: messages go to the handler, the peer's control
        frames are answered. True when answers were written (pongs, a close): a peer that does
        not read them is read no more (see ``HttpConnection``)."""
        codec = self.codec
        events = codec.receive_data(data)
        if codec.state is not _OPEN:  # it closed (the peer's close frame, or a violation)
            self._update_open()
        handler = self._handler
        control = False  # a control frame or a violation: the codec may have answers to send
        for event in events:
            if isinstance(event, _MESSAGES):
                if handler is not None:
                    handler.on_message(event.data)
                continue
            control = True
            if isinstance(event, ws.CloseReceived):
                self._finish(event.code, None)
            elif isinstance(event, ws.ProtocolViolation):
                logger.info("websocket from %s closed: %s", self._host.peer, event.reason)
                self._finish(int(event.code), event.reason)
            # PingReceived is answered by the codec; PongReceived needs nothing.
        if not control:
            # Messages alone (the codec answers only control frames and violations, and is
            # closing only after one): nothing to write here, nothing to close.
            return False
        transport = self._transport
        if transport is None:
            return False
        answers = codec.data_to_send()
        if answers:
            self.flush()  # keep the order of what was queued before
            transport.write(answers)
        if codec.close_expected:
            self.flush()
            transport.close()
        return bool(answers)

    def _finish(self, code: int | None, error: str | None) -> None:
        handler, self._handler = self._handler, None
        if self._closing_timer is not None:
            self._closing_timer.cancel()
            self._closing_timer = None
        if handler is not None:
            handler.on_close(code, error)

    def connection_lost(self) -> None:
        self._transport = None
        self.codec.receive_eof()
        self._update_open()
        self._finish(1006, None)


class PlainWebSocket(NativeWebSocket):
    """A WebSocket with no extension: a message's frame is the same for every recipient, so a
    broadcast builds it once and hands it to each (the engine's :meth:`frame_writer`; a
    :class:`NativeWebSocket` with deflate has none, and the engine sends it each message as to a
    single connection)."""

    __slots__ = ()

    def send(self, data: str | bytes) -> int:
        if isinstance(data, str):
            # JS_UTF8: a lone surrogate is U+FFFD, as Node writes it (aiosio.protocol.text).
            return self._queue_frame(ws.encode_frame(_TEXT, data.encode("utf-8", JS_UTF8)))
        return self._queue_frame(ws.encode_frame(_BINARY, data))

    def frame_writer(self) -> Callable[[bytes, str | bytes], int] | None:
        # A frame built once for many connections is this connection's frame as it is: the
        # engine's send_frame(frame, data) is the queue itself, so that the broadcast hot path
        # costs one Python call per recipient (``data`` serves channels that encode each message
        # themselves; those have no frame writer).
        return self._queue_frame

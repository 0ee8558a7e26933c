"""What aioquic lets a peer make a WebTransport server or client hold, bounded: QUIC flow control
that grows only as data is read (:func:`bounded_windows`), no QPACK dynamic table
(:func:`static_qpack`), and the incomplete HTTP/3 frames it buffers counted
(:class:`HeldFrames`).

aioquic is imported by the callers (the ``webtransport`` extra); this module only subclasses the
class it is given.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HeldFrames", "bounded_windows", "static_qpack"]


class HeldFrames:
    """The bytes of incomplete HTTP/3 frames aioquic's HTTP/3 layer holds for a peer: it keeps a
    HEADERS, SETTINGS or MAX_PUSH_ID frame, or a stream blocked on QPACK, until it is whole,
    however large the peer says it is. aioquic has no public count, so its per-stream buffer is
    read after each stream event; the caller closes the connection past its bound."""

    __slots__ = ("by_stream", "total")

    def __init__(self) -> None:
        self.by_stream: dict[int, int] = {}
        self.total = 0

    def count(self, http: Any, stream_id: int) -> int:
        """Read what ``http`` (an aioquic ``H3Connection``) holds of ``stream_id``; the total
        over every stream."""
        stream = http._stream.get(stream_id)
        held = len(stream.buffer) if stream is not None else 0
        self.total += held - self.by_stream.get(stream_id, 0)
        if held:
            self.by_stream[stream_id] = held
        else:
            self.by_stream.pop(stream_id, None)
        return self.total


_BOUNDED: dict[type, type] = {}


def bounded_windows(base: type) -> type | None:
    """aioquic's ``QuicConnection`` whose receive windows grow only as data is read.

    aioquic raises a stream's flow-control window (MAX_STREAM_DATA) to twice its value
    whenever the peer's highest offset passes half of it, and the connection's (MAX_DATA) the
    same way, whether or not the data before that offset arrived; out-of-order data is kept in
    a buffer whose gaps are filled with zeros. A peer that sends one byte at the end of each
    new window doubles both at every round trip and the server allocates gigabytes. Here each
    window grows as aioquic decides, but to at most ``receive_window`` bytes past what was read
    (the data delivered to the application), so the peer can never make the server hold more
    than that per stream and per connection. aioquic has no option for it: its two private
    methods that raise the windows are wrapped (``None`` if this aioquic has neither, and the
    server says so). Set ``receive_window`` on each connection made from the class.
    """
    if not all(
        hasattr(base, name) for name in ("_write_stream_limits", "_write_connection_limits")
    ):
        return None
    cached = _BOUNDED.get(base)
    if cached is not None:
        return cached

    class Bounded(base):  # type: ignore[misc]
        receive_window = 1024 * 1024

        def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
            receiver = stream.receiver
            highest = receiver.highest_offset
            window = stream.max_stream_data_local
            allowed = receiver.starting_offset() + self.receive_window
            if window and highest * 2 > window and window * 2 > allowed:
                # Grow to what is allowed only: below half the new window, aioquic does not
                # double it again (the highest offset is put back at once).
                stream.max_stream_data_local = max(window, allowed)
                receiver.highest_offset = stream.max_stream_data_local // 2
                try:
                    super()._write_stream_limits(builder, space, stream)
                finally:
                    receiver.highest_offset = highest
                return
            super()._write_stream_limits(builder, space, stream)

        def _write_connection_limits(self, builder: Any, space: Any) -> None:
            limit = self._local_max_data
            used = limit.used  # the highest offsets of every stream, read or not
            if used * 2 > limit.value:
                unread = sum(
                    stream.receiver.highest_offset - stream.receiver.starting_offset()
                    for stream in self._streams.values()
                )
                allowed = used - unread + self.receive_window
                if limit.value * 2 > allowed:
                    limit.value = max(limit.value, allowed)
                    limit.used = limit.value // 2
                    try:
                        super()._write_connection_limits(builder, space)
                    finally:
                        limit.used = used
                    return
            super()._write_connection_limits(builder, space)

    _BOUNDED[base] = Bounded
    return Bounded


def static_qpack(base: type) -> type | None:
    """aioquic's ``H3Connection`` that keeps no QPACK dynamic table for its peer.

    aioquic offers a 4096-byte dynamic table: a peer may insert one 3 KB header value, then
    send a HEADERS frame of one-byte references to it. Measured with aioquic 1.7: a 15 KB
    frame (under any header-size bound) decoded to 15,000 fields and 45 MB in a quarter of a
    second, before the server could count them. With a table capacity of 0 (announced in
    SETTINGS, which a peer must read before it inserts anything) each field costs the bytes
    that name it, up to the static table's longest entry; no stream can be blocked either.
    ``None`` if this aioquic builds its connection otherwise.
    """
    if not hasattr(base, "_init_connection"):
        return None
    cached = _BOUNDED.get(base)
    if cached is not None:
        return cached

    class StaticQpack(base):  # type: ignore[misc]
        _decoder: Any  # pylsqpack's Decoder, made by H3Connection.__init__

        def _init_connection(self) -> None:
            # Before the SETTINGS frame that announces them is written.
            self._max_table_capacity = 0
            self._blocked_streams = 0
            self._decoder = type(self._decoder)(0, 0)
            super()._init_connection()

    _BOUNDED[base] = StaticQpack
    return StaticQpack

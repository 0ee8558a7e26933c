"""QUIC flow control that grows only as data is read, for the server's and the client's aioquic
connections (WebTransport): :func:`bounded_windows`.

aioquic is imported by the callers (the ``webtransport`` extra); this module only subclasses the
class it is given.
"""

from __future__ import annotations

from typing import Any

__all__ = ["bounded_windows"]

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

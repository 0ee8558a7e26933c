"""The native server's limits: what one client may make it hold, each an option of ``serve``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerLimits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """Bounds on what one client may make the server hold."""

    max_header_count: int = 100
    max_header_size: int = 16 * 1024  # request line and headers, like Node's default
    header_timeout: float = 10.0  # seconds to send the request head
    # Seconds to send a request body once its head has arrived (Content-Length or chunked): a
    # body that stops arriving is answered with 408 and its connection closed. At the default
    # and the default max_http_buffer_size (1 MB), a client must send 34 KB/s.
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0  # idle keep-alive connections are closed after this
    # Requests read from one connection and waiting for their turn (HTTP/1.1 pipelining): at
    # this many, or when their bodies reach the app's max_http_buffer_size, the connection is
    # not read from until the request being answered is done. The server also stops reading
    # from a connection while the client does not read its responses (the transport's write
    # buffer is over its high-water mark), and from a WebSocket while it does not read the
    # pongs to its pings.
    max_pipelined_requests: int = 16
    # Seconds an HTTP connection may go with its responses over the write buffer's high-water
    # mark and none of them read (a client that stopped reading, or reads nothing on purpose):
    # it is then dropped. A slow client that reads is not (the deadline restarts as it reads).
    # WebSockets are bounded by the engine instead (max_outbound_buffer, the heartbeat).
    send_timeout: float = 30.0
    websocket_close_timeout: float = 5.0  # wait for the peer's close frame before dropping
    # Once this many connections have closed since the most there were, the C heap's free
    # memory is given back to the operating system when the closes stop (0: never; glibc only).
    trim_heap_after: int = 1000

    def __post_init__(self) -> None:
        count = self.max_pipelined_requests
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(
                f"ServerLimits(max_pipelined_requests=...) must be an integer of at least 1, "
                f"got {count!r}"
            )
        for name in ("header_timeout", "body_timeout", "keep_alive_timeout", "send_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ValueError(
                    f"ServerLimits({name}=...) must be a positive number of seconds, got {value!r}"
                )

"""The two interfaces between the client's Manager and its namespace sockets.

A :class:`~aiosio.client.manager.Manager` (one Engine.IO connection, reconnection) carries the
packets of several namespace sockets (:class:`aiosio.Client`); each needs the other. Neither
module imports the other: the socket depends on :class:`ManagerHost`, the manager on
:class:`NamespaceSocket`, both spelled in public names here (socket.io-client's ``Manager`` and
``Socket`` call each other the same way: ``io._destroy``, ``socket.onpacket``).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol
from typing import TypeVar
from typing import overload

from aiosio.client.engine import EngineClient
from aiosio.client.errors import ConnectError
from aiosio.client.http import Trace
from aiosio.client.http import WebSocketOpener
from aiosio.client.proxy import ProxyOption
from aiosio.protocol.parser import JSON
from aiosio.protocol.parser import Parser
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet

__all__ = ["ManagerHost", "ManagerOptions", "NamespaceSocket"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True, kw_only=True)
class ManagerOptions:
    """How a socket asks its Manager to connect (the options of ``aiosio.Client``)."""

    path: str = "/socket.io/"
    query: dict[str, str] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)
    transports: Sequence[str] = ("polling", "websocket")
    upgrade: bool = True
    timeout: float | None = 20.0
    reconnection: bool = True
    reconnection_attempts: int | None = None
    reconnection_delay: float = 1.0
    reconnection_delay_max: float = 5.0
    randomization_factor: float = 0.5
    limits: Limits = field(default_factory=Limits)
    parser: Parser = JSON
    max_http_buffer_size: int = 100_000_000
    trace: Trace | None = None
    proxy: ProxyOption = None
    try_all_transports: bool = False
    remember_upgrade: bool = False
    websocket_opener: WebSocketOpener | None = None
    webtransport_port: int | None = None
    certificate_hashes: tuple[bytes, ...] = ()
    # per_message_deflate: the threshold in bytes, None when it is off.
    compress_threshold: int | None = 1024


class NamespaceSocket(Protocol):
    """What the Manager needs from a namespace socket (implemented by :class:`aiosio.Client`).

    The ``manager_*`` methods are the Manager's calls; applications do not call them."""

    @property
    def active(self) -> bool:
        """The socket wants a connection (``connect()`` was called, no disconnect for good):
        the Manager opens and reopens the Engine.IO connection for it."""
        ...

    @property
    def connected(self) -> bool: ...

    def manager_opened(self) -> None:
        """The Engine.IO connection is open: send the namespace's CONNECT."""

    def manager_packet(self, packet: Packet) -> None:
        """A Socket.IO packet for this namespace."""

    def manager_error(self, error: ConnectError) -> None:
        """The Engine.IO connection could not be opened (or failed before the CONNECT)."""

    def manager_closed(self, reason: str, description: Any) -> None:
        """The Engine.IO connection closed (``reason``: the engine's words)."""


class ManagerHost(Protocol):
    """What a namespace socket needs from its Manager (implemented by
    :class:`~aiosio.client.manager.Manager`; ``client.io``). Its events (``open``, ``close``,
    ``reconnect_attempt``, ``reconnect``, ...) are registered with :meth:`on`."""

    @property
    def uri(self) -> str: ...

    @property
    def engine(self) -> EngineClient | None:
        """The Engine.IO session of the latest attempt (Node: ``socket.io.engine``), kept once
        it closed (its ``ready_state`` then ``"closed"``), ``None`` before the first attempt:
        its ``transport.name`` and its events (``packet``, ``packetCreate``, ``upgrade``,
        ``upgradeError``, ``drain``, ``close``)."""
        ...

    @property
    def is_open(self) -> bool:
        """The Engine.IO connection is open."""
        ...

    @property
    def reconnecting(self) -> bool:
        """A reconnection attempt is scheduled or under way."""
        ...

    @property
    def writable(self) -> bool:
        """A packet written now goes out at once (what a volatile emit needs)."""
        ...

    def can_send(self) -> bool:
        """An Engine.IO session is open and alive. A session that outlived its heartbeat (the
        process was suspended) is not, and closes at the event loop's next turn."""
        ...

    def open(self, callback: Callable[[ConnectError | None], None] | None = None) -> None:
        """Open the Engine.IO connection (nothing to do when opening or open)."""

    def write(self, packet: Packet, compress: bool = True) -> None:
        """Encode and send a Socket.IO packet (dropped when no connection is open);
        ``compress=False``: its WebSocket messages are not compressed."""

    def attach(self, namespace: str, socket: NamespaceSocket) -> None:
        """``socket`` is the Manager's socket for ``namespace``."""

    def has_socket(self, namespace: str) -> bool: ...

    def release(self, socket: NamespaceSocket) -> None:
        """``socket`` disconnected for good: the connection closes when no socket is active."""

    async def wait_closed(self) -> None:
        """Wait until the closed connections' last requests (the close packet) are done."""

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register a handler of a Manager event."""
        ...

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None: ...

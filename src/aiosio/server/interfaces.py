"""What the parts of the Socket.IO server need from each other, as interfaces with public names.

The server is a tree: ``server.py`` assembles namespaces (``namespace.py``) and connections
(``client.py``); a namespace creates sockets (``socket.py``); sockets and broadcasts go through
the namespace's adapter (``adapter.py``). A part lower in the tree never imports the part above
it: it names what it needs from it here, and the part above implements that.

- :class:`SocketHost`: what a socket needs from its connection (the ``Client``);
- :class:`HostedSocket`: what a connection needs from the sockets multiplexed on it;
- :class:`NamespaceHost`: what a socket needs from its namespace;
- :class:`ConnectableNamespace`: what a connection needs to connect a client to a namespace;
- :class:`ClientHost`: what a connection needs from its server;
- :class:`NamespaceOwner`: what a namespace needs from its server;
- :class:`PacketListener`: what watches the messages of every connection (``add_packet_listener``);
- :class:`~aiosio.server.adapter.NamespaceView` and :class:`~aiosio.server.adapter.LocalSocket`:
  what an adapter needs from its namespace and from a socket (in ``adapter.py``, the interface
  adapters are written against).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from typing import Protocol

from aiosio.engine.server import EngineSocket
from aiosio.protocol.parser import Parser
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet
from aiosio.server.adapter import Adapter
from aiosio.server.adapter import LocalSocket
from aiosio.server.adapter import NamespaceView
from aiosio.server.adapter import Recovery
from aiosio.server.handlers import Handlers

__all__ = [
    "ClientHost",
    "ConnectableNamespace",
    "HostedSocket",
    "LocalSocket",
    "NamespaceHost",
    "NamespaceOwner",
    "NamespaceView",
    "PacketListener",
    "SocketHost",
]


class PacketListener(Protocol):
    """Told of every Engine.IO message of the connections of a server (see
    :meth:`aiosio.Server.add_packet_listener`): ``data`` is the message's payload, a Socket.IO
    packet as text or one of its binary attachments. Called on the hot path: keep it cheap."""

    def received(self, data: str | bytes) -> None: ...

    def sent(self, data: str | bytes) -> None: ...


class NamespaceHost(Protocol):
    """What a socket needs from its namespace."""

    @property
    def name(self) -> str: ...

    @property
    def adapter(self) -> Adapter: ...

    @property
    def handlers(self) -> Handlers:
        """The namespace's handlers (a socket runs its event and lifecycle handlers)."""

    @property
    def recovery(self) -> Recovery | None:
        """Connection state recovery, when the server has it on."""

    def next_ack_id(self) -> int: ...

    def remove(self, socket: LocalSocket) -> None:
        """``socket`` left the namespace."""

    def unhandled_ack(self, event: str) -> None:
        """A client asked for an acknowledgement of ``event``, which no handler takes."""


class HostedSocket(Protocol):
    """What a connection needs from a socket multiplexed on it."""

    @property
    def nsp(self) -> NamespaceHost: ...

    def handle_packet(self, packet: Packet) -> None:
        """An EVENT, ACK or DISCONNECT packet for this socket's namespace."""

    def handle_close(self, reason: str, description: Any = None) -> None:
        """The connection closed (or this socket is disconnected) for ``reason``."""

    def disconnect(self, close: bool = False) -> None: ...


class SocketHost(Protocol):
    """What a socket needs from its connection."""

    @property
    def conn(self) -> EngineSocket: ...

    @property
    def proxy_header(self) -> str | None:
        """The header that carries the client's address behind a proxy, if configured."""

    @property
    def packet_listeners(self) -> tuple[PacketListener, ...]:
        """Told of each message of this connection (empty: nobody watches)."""

    def write(self, packet: Packet, *, volatile: bool = False) -> None: ...

    def write_ack(self, nsp: str, ack_id: int, args: list[Any]) -> None: ...

    def sent(self, messages: Sequence[str | bytes]) -> None:
        """``messages`` were written outside :meth:`write` (a broadcast): tell the packet
        listeners."""

    def accepted(self, socket: HostedSocket) -> None:
        """``socket`` passed its namespace's middlewares: packets for it are routed to it."""

    def remove(self, socket: HostedSocket) -> None: ...

    def disconnect_all(self) -> None:
        """Disconnect every socket of the connection, then close it."""

    def handler_started(self, task: asyncio.Task[Any]) -> None:
        """A handler suspended: it counts against ``max_handlers_per_connection``."""


class ConnectableNamespace(Protocol):
    """What a connection needs to connect its client to a namespace."""

    async def add_client(self, client: SocketHost, auth: dict[str, Any]) -> None:
        """Create the client's socket, run the middlewares, accept or refuse it."""


class ClientHost(Protocol):
    """What a connection needs from its server."""

    @property
    def limits(self) -> Limits: ...

    @property
    def parser(self) -> Parser:
        """The packet format of every connection (read once per connection)."""

    @property
    def connect_timeout(self) -> float: ...

    @property
    def max_namespaces_per_connection(self) -> int: ...

    @property
    def max_handlers_per_connection(self) -> int: ...

    @property
    def proxy_header(self) -> str | None: ...

    @property
    def packet_listeners(self) -> tuple[PacketListener, ...]: ...

    async def find_namespace(self, name: str, auth: dict[str, Any]) -> ConnectableNamespace | None:
        """The namespace ``name``, created by a dynamic namespace if one matches, else None."""


class NamespaceOwner(Protocol):
    """What a namespace needs from its server."""

    @property
    def connection_state_recovery(self) -> Recovery | None: ...

    @property
    def cleanup_empty_child_namespaces(self) -> bool: ...

    @property
    def parser(self) -> Parser:
        """The packet format broadcasts are encoded in."""

    def make_adapter(self, nsp: NamespaceView) -> Adapter:
        """The adapter of a new namespace."""

    def namespace_removed(self, nsp: NamespaceView) -> None:
        """An empty child namespace went away (``cleanup_empty_child_namespaces``)."""

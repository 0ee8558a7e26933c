"""Where a namespace keeps its user callbacks: client-event handlers, lifecycle handlers,
server-side event handlers and connection middlewares.

Each is registered as an :class:`~aiosio._eager.Callback` (sync or async decided once, there)
and run by :func:`~aiosio._eager.invoke` (or :func:`~aiosio._eager.call_async` from a
coroutine): the namespaces, the sockets and the engine's event emitter run callbacks one way.

Three registries, because three kinds of caller meet here:

- client events (``@sio.on("chat")``): called as ``handler(socket, *args)``;
- lifecycle events (``connection``/``connect``, ``disconnecting``, ``disconnect``), kept apart
  so that a client event named ``connection`` never runs the connection handler;
- server-side events (``@sio.on_server_side("x")``): what another server of the cluster sends
  with ``server_side_emit("x", ...)``, called as ``handler(*args)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiosio._eager import Callback

__all__ = ["LIFECYCLE", "Handlers"]

LIFECYCLE = frozenset({"connect", "connection", "disconnecting", "disconnect"})


class Handlers:
    """The callbacks of one namespace (or of a dynamic namespace family, copied into each
    child it creates)."""

    __slots__ = ("connection_listeners", "events", "lifecycle", "middlewares", "server_side")

    def __init__(self) -> None:
        self.events: dict[str, Callback] = {}
        self.lifecycle: dict[str, Callback] = {}
        self.server_side: dict[str, Callback] = {}
        self.middlewares: list[Callback] = []
        # Called with each accepted socket before the `connection` handler; any number.
        self.connection_listeners: list[Callback] = []

    def copy(self) -> Handlers:
        other = Handlers()
        other.events = dict(self.events)
        other.lifecycle = dict(self.lifecycle)
        other.server_side = dict(self.server_side)
        other.middlewares = list(self.middlewares)
        other.connection_listeners = list(self.connection_listeners)
        return other

    def add(self, event: str, fn: Callable[..., Any]) -> None:
        """Register the handler of a client event or of a lifecycle event (one per event)."""
        if event in LIFECYCLE:
            self.lifecycle["connection" if event == "connect" else event] = Callback(fn)
        else:
            self.events[event] = Callback(fn)

    def add_server_side(self, event: str, fn: Callable[..., Any]) -> None:
        """Register the handler of a server-side event (one per event)."""
        self.server_side[event] = Callback(fn)

    def add_middleware(self, fn: Callable[..., Any]) -> None:
        self.middlewares.append(Callback(fn))

    def add_connection_listener(self, fn: Callable[..., Any]) -> None:
        self.connection_listeners.append(Callback(fn))

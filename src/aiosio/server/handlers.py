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

import logging
from collections.abc import Callable
from typing import Any

from aiosio._eager import Callback
from aiosio.typed import InvalidPayloads
from aiosio.typed import validated

__all__ = ["LIFECYCLE", "AckTimer", "EventWrapper", "Handlers"]

LIFECYCLE = frozenset({"connect", "connection", "disconnecting", "disconnect"})

EventWrapper = Callable[[str, Callback], Callable[..., Any]]
"""``wrapper(event, callback)``: what runs in place of a client-event handler (see
:meth:`Handlers.wrap_events`)."""

AckTimer = Callable[[Callable[[list[Any]], None]], Callable[[list[Any]], None]]
"""``timer(callback)``, called as an acknowledgement is asked of a client: what runs in place of
``callback`` when the client answers (see :attr:`Handlers.ack_timer`)."""


class Handlers:
    """The callbacks of one namespace (or of a dynamic namespace family, copied into each
    child it creates)."""

    __slots__ = (
        "ack_timer",
        "connection_listeners",
        "events",
        "lifecycle",
        "middlewares",
        "payloads",
        "server_side",
        "wrapper",
    )

    def __init__(self) -> None:
        self.events: dict[str, Callback] = {}
        self.lifecycle: dict[str, Callback] = {}
        self.server_side: dict[str, Callback] = {}
        self.middlewares: list[Callback] = []
        # Called with each accepted socket before the `connection` handler; any number.
        self.connection_listeners: list[Callback] = []
        # Monitoring (aiosio.metrics): set once, read at registration and at each
        # emit_with_ack, never on a plain message.
        self.wrapper: EventWrapper | None = None
        self.ack_timer: AckTimer | None = None
        # Typed handlers' refused payloads (aiosio.typed), shared with a dynamic family's copies.
        self.payloads = InvalidPayloads("namespace", logging.getLogger("aiosio.server"))

    def copy(self) -> Handlers:
        other = Handlers()
        other.events = dict(self.events)
        other.lifecycle = dict(self.lifecycle)
        other.server_side = dict(self.server_side)
        other.middlewares = list(self.middlewares)
        other.connection_listeners = list(self.connection_listeners)
        other.wrapper = self.wrapper
        other.ack_timer = self.ack_timer
        other.payloads = self.payloads
        return other

    def wrap_events(self, wrapper: EventWrapper) -> None:
        """Run each client-event handler, those registered from now on included, as
        ``wrapper(event, callback)`` (what it returns is registered as the handler): for tools
        that time handlers, such as :func:`aiosio.metrics.instrument`. One wrapper per
        namespace; the handlers of a server nobody instruments are called directly."""
        if self.wrapper is not None:
            raise ValueError("the event handlers of this namespace are already wrapped")
        self.wrapper = wrapper
        self.events = {event: Callback(wrapper(event, cb)) for event, cb in self.events.items()}

    def add(self, event: str, fn: Callable[..., Any]) -> None:
        """Register the handler of a client event or of a lifecycle event (one per event). A
        client event's handler annotated with payload models is registered as the wrapper that
        validates its arguments (:func:`aiosio.typed.validated`, decided here, once).

        :raises ImportError: the handler is annotated with a dataclass or a TypedDict and
            pydantic (the ``typed`` extra) is not installed.
        """
        if event in LIFECYCLE:
            self.lifecycle["connection" if event == "connect" else event] = Callback(fn)
        else:
            callback = Callback(validated(fn, event, 1, self.payloads))
            wrapper = self.wrapper
            self.events[event] = callback if wrapper is None else Callback(wrapper(event, callback))

    def add_server_side(self, event: str, fn: Callable[..., Any]) -> None:
        """Register the handler of a server-side event (one per event)."""
        self.server_side[event] = Callback(fn)

    def add_middleware(self, fn: Callable[..., Any]) -> None:
        self.middlewares.append(Callback(fn))

    def add_connection_listener(self, fn: Callable[..., Any]) -> None:
        self.connection_listeners.append(Callback(fn))

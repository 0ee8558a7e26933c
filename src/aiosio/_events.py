"""A small event emitter: ``obj.on("name")`` as a decorator or ``obj.on("name", handler)``.

:class:`HandlerRegistry` is that registration alone, for a server-side Socket.

Handlers may be plain functions or coroutine functions; each is registered as a
:class:`~aiosio._eager.Callback` and run by :func:`~aiosio._eager.invoke`, as the server's
handlers are: a coroutine handler gets a task only if it suspends. Exceptions from handlers are
logged with their traceback on the emitter's logger and never reach the I/O loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from typing import Protocol
from typing import TypeVar
from typing import overload

from aiosio._eager import Callback
from aiosio._eager import ignore
from aiosio._eager import invoke
from aiosio.typed import InvalidPayloads
from aiosio.typed import validated

__all__ = ["EventEmitter", "HandlerRegistry", "On", "forward_on"]

F = TypeVar("F", bound=Callable[..., Any])


class On(Protocol):
    """An ``on`` method: ``on(event)`` returns a decorator, ``on(event, handler)`` registers."""

    @overload
    def __call__(self, event: str) -> Callable[[F], F]: ...
    @overload
    def __call__(self, event: str, handler: F) -> F: ...


def forward_on(on: On, event: str, handler: F | None) -> F | Callable[[F], F]:
    """``on(event)`` or ``on(event, handler)``, as the caller was called: how an ``on`` that
    registers with another object's passes both forms on."""
    if handler is None:
        return on(event)
    return on(event, handler)


class HandlerRegistry:
    """``on`` and ``off`` over ``self._handlers`` (each event's callbacks, in registration
    order), which the subclass creates: the registration of an :class:`EventEmitter` and of a
    server-side Socket, which keeps its handlers the same way but cannot be an emitter (its
    ``emit`` sends to the client)."""

    _handlers: dict[str, list[Callback]]

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register ``handler`` for ``event``; without a handler, return a decorator. Where the
        subclass validates payloads (:meth:`_payload_checks`), a handler annotated with payload
        models is registered as the wrapper that validates them (:mod:`aiosio.typed`)."""

        def register(fn: F) -> F:
            checks = self._payload_checks(event)
            registered = fn if checks is None else validated(fn, event, 0, checks)
            self._handlers.setdefault(event, []).append(Callback(registered))
            return fn

        return register if handler is None else register(handler)

    def _payload_checks(self, _event: str) -> InvalidPayloads | None:
        """Where the payloads of ``event``'s handlers are validated and refusals counted;
        ``None`` (the default): handlers are registered as they are."""
        return None

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove the first registration of ``handler``, or every handler of ``event``. An
        event left with no handler is dropped, so that no handlers at all is an empty dict."""
        handlers = self._handlers
        if handler is None:
            handlers.pop(event, None)
            return
        registered = handlers.get(event, [])
        for i, callback in enumerate(registered):
            if callback.fn == handler:
                del registered[i]
                break
        if not registered:
            handlers.pop(event, None)


class EventEmitter(HandlerRegistry):
    """Named events with any number of handlers, called in registration order."""

    _logger = logging.getLogger("aiosio")

    def __init__(self) -> None:
        self._handlers = {}

    def has_listeners(self, event: str) -> bool:
        return bool(self._handlers.get(event))

    def emit(self, event: str, *args: Any) -> None:
        """Call every handler of ``event``; coroutines run as tasks, exceptions are logged."""
        handlers = self._handlers.get(event)
        if not handlers:
            return
        for callback in tuple(handlers):
            invoke(callback, args, (callback, event), ignore, self._failed)

    def _failed(self, handler: tuple[Callback, str], exc: BaseException) -> None:
        self._logger.error("handler %r of event %r raised", handler[0].fn, handler[1], exc_info=exc)

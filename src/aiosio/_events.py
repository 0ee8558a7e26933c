"""A small event emitter: ``obj.on("name")`` as a decorator or ``obj.on("name", handler)``.

:func:`add_handler` and :func:`remove_handler` are that registration over a plain dict of
handler lists, for the objects that keep their handlers themselves (a server-side Socket, which
cannot be an emitter: its ``emit`` sends to the client).

Handlers may be plain functions or coroutine functions; each is registered as a
:class:`~aiosio._eager.Callback` and run by :func:`~aiosio._eager.invoke`, as the server's
handlers are: a coroutine handler gets a task only if it suspends. Exceptions from handlers are
logged with their traceback on the emitter's logger and never reach the I/O loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

from aiosio._eager import Callback, invoke

__all__ = ["EventEmitter", "add_handler", "remove_handler"]

F = TypeVar("F", bound=Callable[..., Any])


def add_handler(
    handlers: dict[str, list[Callback]], event: str, handler: F | None
) -> F | Callable[[F], F]:
    """Append ``handler`` to ``event``'s list and return it; without a handler, return the
    decorator that does so (``obj.on("x", fn)`` and ``@obj.on("x")``)."""

    def register(fn: F) -> F:
        handlers.setdefault(event, []).append(Callback(fn))
        return fn

    return register if handler is None else register(handler)


def remove_handler(
    handlers: dict[str, list[Callback]], event: str, handler: Callable[..., Any] | None
) -> None:
    """Remove the first registration of ``handler``, or every handler of ``event`` when it is
    ``None``. An event left with no handler is dropped from ``handlers``, so that an empty dict
    means none at all."""
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


class EventEmitter:
    """Named events with any number of handlers, called in registration order."""

    _logger = logging.getLogger("aiosio")

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callback]] = {}

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register ``handler`` for ``event``; without a handler, return a decorator."""
        return add_handler(self._handlers, event, handler)

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove one handler, or every handler of ``event``."""
        remove_handler(self._handlers, event, handler)

    def has_listeners(self, event: str) -> bool:
        return bool(self._handlers.get(event))

    def emit(self, event: str, *args: Any) -> None:
        """Call every handler of ``event``; coroutines run as tasks, exceptions are logged."""
        handlers = self._handlers.get(event)
        if not handlers:
            return
        for callback in tuple(handlers):
            invoke(callback, args, _ignore, _Failed(self._logger, callback, event))


class _Failed:
    """Logs what a handler raised, naming the handler and the event."""

    __slots__ = ("callback", "event", "logger")

    def __init__(self, logger: logging.Logger, callback: Callback, event: str) -> None:
        self.logger = logger
        self.callback = callback
        self.event = event

    def __call__(self, exc: BaseException) -> None:
        self.logger.error(
            "handler %r of event %r raised", self.callback.fn, self.event, exc_info=exc
        )


def _ignore(_value: Any) -> None:
    return None

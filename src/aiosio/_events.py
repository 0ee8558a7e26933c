"""A small event emitter: ``obj.on("name")`` as a decorator or ``obj.on("name", handler)``.

Handlers may be plain functions or coroutine functions. A coroutine handler runs in a task of its
own only when it is called (no task exists for an event nobody awaits). Exceptions from handlers
are logged with their traceback on the emitter's logger and never reach the I/O loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = ["EventEmitter"]

F = TypeVar("F", bound=Callable[..., Any])


class EventEmitter:
    """Named events with any number of handlers, called in registration order."""

    _logger = logging.getLogger("aiosio")

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...
    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Register ``handler`` for ``event``; without a handler, return a decorator."""

        def register(fn: F) -> F:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        if handler is None:
            return register
        return register(handler)

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove one handler, or every handler of ``event``."""
        if handler is None:
            self._handlers.pop(event, None)
            return
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    def has_listeners(self, event: str) -> bool:
        return bool(self._handlers.get(event))

    def emit(self, event: str, *args: Any) -> None:
        """Call every handler of ``event``; coroutines are scheduled, exceptions logged."""
        handlers = self._handlers.get(event)
        if not handlers:
            return
        for handler in tuple(handlers):
            try:
                result = handler(*args)
            except Exception:
                self._logger.exception("handler %r of event %r raised", handler, event)
                continue
            if inspect.isawaitable(result):
                self._track(result, event)

    def _track(self, awaitable: Any, event: str) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._logger.error("handler of event %r raised", event, exc_info=t.exception())

        task.add_done_callback(done)

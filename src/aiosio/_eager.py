"""Run a coroutine eagerly: up to its first suspension in the caller, with no task at all when it
never suspends. A handler that returns without awaiting anything slow costs a function call, not a
task (Python 3.12 has ``eager_task_factory``; this is the same idea for one coroutine on 3.11).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["run_eager"]

T = TypeVar("T")

_tasks: set[asyncio.Task[Any]] = set()


class _Resume:
    """An awaitable that hands the already-started coroutine's pending future to a task, then
    keeps driving the coroutine (values and exceptions passed through unchanged)."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                value = yield yielded
            except BaseException as exc:  # noqa: BLE001 - thrown into the coroutine, not handled
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def _finish(awaitable: _Resume) -> Any:
    return await awaitable


def run_eager(
    coro: Coroutine[Any, Any, T],
    on_result: Callable[[T], None],
    on_error: Callable[[BaseException], None],
) -> None:
    """Start ``coro`` now. ``on_result`` or ``on_error`` is called when it finishes: at once if it
    never suspends, otherwise from a task created at its first suspension."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        on_result(stop.value)
        return
    except Exception as exc:  # noqa: BLE001 - the handler's own error, reported by the caller
        on_error(exc)
        return
    task: asyncio.Task[T] = asyncio.ensure_future(_finish(_Resume(coro, yielded)))
    _tasks.add(task)

    def done(t: asyncio.Task[T]) -> None:
        _tasks.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            on_error(exc)
        else:
            on_result(t.result())

    task.add_done_callback(done)

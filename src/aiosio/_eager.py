"""Run a handler's coroutine and report its outcome through callbacks.

On Python 3.12+ the coroutine starts eagerly (``Task(..., eager_start=True)``): it runs in the
caller up to its first suspension, so a handler that returns without waiting on anything costs no
scheduling round. On 3.11 it runs in a task of its own. It always runs inside a real task, so
``asyncio.timeout()``, ``asyncio.current_task()`` and cancellation work in handlers as anywhere
else (running the coroutine outside a task would break them). Plain ``def`` handlers never get a
task at all: the fastest path on every version.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run_eager"]

T = TypeVar("T")

_tasks: set[asyncio.Task[Any]] = set()
_EAGER = sys.version_info >= (3, 12)


def run_eager(
    coro: Coroutine[Any, Any, T],
    on_result: Callable[[T], None],
    on_error: Callable[[BaseException], None],
) -> asyncio.Task[T] | None:
    """Run ``coro``; ``on_result`` or ``on_error`` is called when it finishes (``on_error``
    also when ``on_result`` raises). Returns the task while it runs on, ``None`` when it has
    already finished (eagerly)."""
    loop = asyncio.get_running_loop()
    if _EAGER:
        task: asyncio.Task[T] = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    else:
        task = loop.create_task(coro)
    if task.done():
        _report(task, on_result, on_error)
        return None
    _tasks.add(task)

    def done(t: asyncio.Task[T]) -> None:
        _tasks.discard(t)
        _report(t, on_result, on_error)

    task.add_done_callback(done)
    return task


def _report(
    task: asyncio.Task[T],
    on_result: Callable[[T], None],
    on_error: Callable[[BaseException], None],
) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        on_error(exc)
        return
    try:
        on_result(task.result())
    except Exception as error:  # noqa: BLE001 - reported as the coroutine's own failure
        # Called from a done callback: an exception here would reach the loop's exception
        # handler (or, when the coroutine finished eagerly, the caller's I/O callback).
        on_error(error)

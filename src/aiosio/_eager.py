"""User callbacks: registered once as a :class:`Callback`, run one way.

Whether a callback is a coroutine function is decided once, when it is registered
(:func:`is_async`), not at each call; :func:`invoke` calls it and reports the outcome through
callbacks; a coroutine runs through :func:`run_eager`. Every place that runs a user's handler,
listener or middleware (the server's namespaces and sockets, the event emitter of the engine and
the client) goes through here, so there is one rule to change.

On Python 3.12+ a coroutine starts eagerly (``Task(..., eager_start=True)``): it runs in the
caller up to its first suspension, so a handler that returns without waiting on anything costs no
scheduling round. On 3.11 it runs in a task of its own. It always runs inside a real task, so
``asyncio.timeout()``, ``asyncio.current_task()`` and cancellation work in handlers as anywhere
else (running the coroutine outside a task would break them). Plain ``def`` handlers never get a
task at all: the fastest path on every version.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Sequence
from types import CoroutineType
from typing import Any
from typing import TypeVar

__all__ = ["Callback", "call_async", "ignore", "invoke", "is_async", "run_eager", "settle"]

T = TypeVar("T")
C = TypeVar("C")

_tasks: set[asyncio.Task[Any]] = set()
_EAGER = sys.version_info >= (3, 12)


def is_async(fn: Callable[..., Any]) -> bool:
    """True when calling ``fn`` returns a coroutine: a coroutine function, a
    ``functools.partial`` of one, or an object whose ``__call__`` is one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isroutine(fn) or inspect.isclass(fn):
        return False
    # An instance whose __call__ is a coroutine function.
    return inspect.iscoroutinefunction(type(fn).__call__)


class Callback:
    """A registered user callback: the function, and whether it is async (decided here)."""

    __slots__ = ("fn", "is_async")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.is_async = is_async(fn)

    def __repr__(self) -> str:
        return repr(self.fn)


def invoke(
    callback: Callback,
    args: Sequence[Any],
    context: C,
    on_result: Callable[[C, Any], None],
    on_error: Callable[[C, BaseException], None],
) -> asyncio.Task[Any] | None:
    """Call ``callback`` with ``args``; ``on_result(context, value)`` gets what it returned (a
    coroutine function's result once it finished), ``on_error(context, exc)`` what it raised
    (also when ``on_result`` raises). Returns the task of a coroutine that suspended and runs
    on, else ``None``.

    ``context`` is what the caller needs to act on the outcome (an event's name and ack id):
    passed along, not bound into a closure, so that calling a plain function allocates nothing
    (every event a server receives comes through here); it is bound only for a coroutine.

    A plain function that returns a coroutine (``lambda socket: handle(socket)``) has it run
    the same way, as if it had been registered as the coroutine function it stands for."""
    try:
        result = callback.fn(*args)
    except Exception as exc:  # noqa: BLE001 - the user's callback; reported through on_error
        on_error(context, exc)
        return None
    if callback.is_async or type(result) is CoroutineType:
        return run_eager(
            result, functools.partial(on_result, context), functools.partial(on_error, context)
        )
    try:
        on_result(context, result)
    except Exception as exc:  # noqa: BLE001 - reported as the callback's own failure
        on_error(context, exc)
    return None


def ignore(_context: object, _value: object) -> None:
    """An ``on_result`` for a callback whose return value means nothing."""


async def call_async(callback: Callback, *args: Any) -> Any:
    """Call ``callback`` from a coroutine and await what it returns if it is a coroutine."""
    result = callback.fn(*args)
    if callback.is_async or inspect.isawaitable(result):
        return await result
    return result


async def settle(result: object) -> None:
    """Await ``result`` when it is a coroutine: what a hook that may be a plain or a coroutine
    function returned (an adapter's ``close``, an app's ``shutdown``, ``run``'s ``on_started``),
    from the coroutine that closes or starts the server."""
    if asyncio.iscoroutine(result):
        await result


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

"""Keeping the memory of connections that left returnable to the operating system.

CPython's small-object allocator gives a 1 MiB arena back only once every object in it is freed,
so one long-lived object allocated while thousands of connections come and go keeps a whole arena
of their freed memory resident. The server avoids creating such objects (the record of ended
sessions is kept in flat buffers, :mod:`aiosio.engine.ended`); this module deals with the ones
it cannot avoid, in the free lists of uvloop, asyncio and CPython, and with the C heap, which
glibc does not give back by itself.
docs/performance.md, "Memory after churn" (and "under uvicorn"), has the measurements.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
from collections.abc import Callable
from collections.abc import Sized
from typing import cast

__all__ = [
    "HeapTrimmer",
    "clear_free_lists",
    "malloc_trim",
    "prime_loop_free_lists",
    "renew_loop_free_lists",
]

# uvloop keeps up to 250 freed Handle and TimerHandle objects each for reuse (Cython free lists,
# DEFAULT_FREELIST_SIZE); a few more than that makes sure the lists are full.
_UVLOOP_FREE_LIST = 260
# The C Future of asyncio keeps up to 255 freed future iterators (what ``await future`` makes:
# FI_FREELIST_MAXLEN in Modules/_asynciomodule.c, 3.11 and 3.12).
_FUTURE_ITER_FREE_LIST = 260


def _noop() -> None:
    pass


def prime_loop_free_lists(loop: asyncio.AbstractEventLoop) -> None:
    """Fill uvloop's free lists of callback handles now, from memory the process already uses.

    Filled later instead, by the burst of callbacks a wave of disconnects schedules, the lists
    keep 500 handles scattered over the memory those connections used, and with them about 20
    arenas per 5000 connections stay resident after the connections leave. Filled at startup, the
    lists' handles are reused for every later callback and the arenas are returned. Nothing to
    do on the standard library's loop, which keeps no free lists.
    """
    if not type(loop).__module__.startswith("uvloop"):
        return
    timers = [loop.call_later(3600, _noop) for _ in range(_UVLOOP_FREE_LIST)]
    for timer in timers:
        timer.cancel()
    handles = [loop.call_soon(_noop) for _ in range(_UVLOOP_FREE_LIST)]
    for handle in handles:
        handle.cancel()  # freed when the loop next runs its ready callbacks


def renew_loop_free_lists(loop: asyncio.AbstractEventLoop, then: Callable[[], None]) -> None:
    """Replace what the free lists of the event loop hold with objects from memory in use, then
    call ``then`` from the loop.

    Filling the lists at startup (:func:`prime_loop_free_lists`) holds only while fewer objects
    than a list's length are alive at once. Thousands of connections each waiting on a future
    (uvicorn's receive queue) or a timer empty the lists, and when they leave, the first of their
    objects freed refill them: 255 future iterators and 250 handles of each kind, scattered over
    the memory the connections used, each keeping its 1 MiB arena resident (measured under
    uvicorn: 254 future iterators of the wave's were still there after 2000 WebSockets left).

    Taking twice a list's length at once empties it and allocates the rest where the allocator
    puts new objects, in the fullest arenas; freeing those first refills the list with them, and
    the ones taken from the list are then freed for good."""
    futures = [loop.create_future() for _ in range(2 * _FUTURE_ITER_FREE_LIST)]
    iterators = [future.__await__() for future in futures]
    del iterators[_FUTURE_ITER_FREE_LIST:]  # the new ones go back to the list first
    del iterators, futures
    if not type(loop).__module__.startswith("uvloop"):
        loop.call_soon(then)
        return
    timers = [loop.call_later(3600, _noop) for _ in range(2 * _UVLOOP_FREE_LIST)]
    handles = [loop.call_soon(_noop) for _ in range(2 * _UVLOOP_FREE_LIST)]
    for handle in (*timers, *handles):
        handle.cancel()

    def release() -> None:
        # The loop has dropped the cancelled handles from its queue, and the timers' libuv
        # handles (which hold them until their close callbacks, at the end of a loop iteration)
        # are closed: these lists hold the last references, and the order they go in decides
        # which objects the free lists keep.
        del timers[_UVLOOP_FREE_LIST:]
        del handles[_UVLOOP_FREE_LIST:]
        timers.clear()
        handles.clear()
        then()

    # Two hops: the first runs in this iteration's batch of callbacks, after the cancelled
    # handles queued before it; the second in the next iteration, after the close callbacks.
    loop.call_soon(loop.call_soon, release)


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` on a C library without it (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast("Callable[[int], int]", trim)


# None where the C library has none: HeapTrimmer is then off (and its tests are skipped).
malloc_trim = _find_malloc_trim()


def clear_free_lists() -> None:
    """Empty CPython's free lists (tuples, floats, lists, dicts...), which a wave of disconnects
    refills with objects spread over the arenas it freed: only a full collection empties them.
    With the heap frozen, the collection does not traverse it and costs the free lists alone.
    Skipped when the application froze objects itself (``gc.freeze()`` before forking workers):
    unfreezing would unfreeze those too."""
    if gc.get_freeze_count():
        return
    gc.freeze()
    try:
        gc.collect()
    finally:
        gc.unfreeze()


class HeapTrimmer:
    """Gives the memory of a wave of disconnects back to the operating system.

    Two things hold it after the connections are gone: CPython's free lists, refilled by the wave
    with objects that keep the arenas they sit in resident, and glibc, which returns freed memory
    only from the top of its heap by itself (what connections freed in the middle, uvloop's
    handles, buffers, the tables of dicts that grew with them, stays until ``malloc_trim``). Once
    ``wave`` connections have closed since the most there were, and none has closed for
    ``delay`` seconds, the trimmer renews the event loop's free lists
    (:func:`renew_loop_free_lists`), empties CPython's and calls ``malloc_trim`` once (about
    2 ms with 10 000 connections' worth of freed memory). ``wave=0``, or a C library without
    ``malloc_trim``, turns it off.
    """

    __slots__ = (
        "_armed",
        "_connections",
        "_delay",
        "_last_close",
        "_loop",
        "_peak",
        "_wave",
        "trims",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connections: Sized,
        wave: int,
        delay: float = 1.0,
    ) -> None:
        self._loop = loop
        self._connections = connections
        self._wave = wave if malloc_trim is not None else 0
        self._delay = delay
        self._peak = 0
        self._last_close = 0.0
        self._armed = False
        self.trims = 0

    def opened(self) -> None:
        """Call after a connection is added to ``connections``."""
        count = len(self._connections)
        if count > self._peak:
            self._peak = count

    def closed(self) -> None:
        """Call after a connection is removed from ``connections``."""
        if not self._wave:
            return
        self._last_close = self._loop.time()
        if not self._armed and self._peak - len(self._connections) >= self._wave:
            self._armed = True
            self._loop.call_later(self._delay, self._settled)

    def _settled(self) -> None:
        quiet = self._loop.time() - self._last_close
        if quiet < self._delay:  # still closing: wait for the wave to end
            self._loop.call_later(self._delay - quiet, self._settled)
            return
        self._armed = False
        renew_loop_free_lists(self._loop, self._trim)

    def _trim(self) -> None:
        clear_free_lists()
        assert malloc_trim is not None
        malloc_trim(0)
        self.trims += 1
        self._peak = len(self._connections)

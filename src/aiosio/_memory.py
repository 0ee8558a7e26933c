"""Keeping the memory of connections that left returnable to the operating system.

CPython's small-object allocator gives a 1 MiB arena back only once every object in it is freed,
so one long-lived object allocated while thousands of connections come and go keeps a whole arena
of their freed memory resident. The server avoids creating such objects (the record of ended
sessions is kept in flat buffers, :mod:`aiosio.engine.ended`); this module deals with the ones
uvloop creates. docs/performance.md, "Memory after churn", has the measurements.
"""

from __future__ import annotations

import asyncio

__all__ = ["prime_loop_free_lists"]

# uvloop keeps up to 250 freed Handle and TimerHandle objects each for reuse (Cython free lists,
# DEFAULT_FREELIST_SIZE); a few more than that makes sure the lists are full.
_UVLOOP_FREE_LIST = 260


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

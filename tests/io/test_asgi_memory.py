"""What a wave of WebSocket closes leaves behind under an ASGI server (issue 12).

The memory a wave of connections used goes back to the operating system only if no object
allocated during the wave lives on in it (docs/performance.md, "Memory after churn"). Two kinds of
such objects were found under uvicorn: the free lists of the event loop and of asyncio's futures,
refilled by the wave with objects scattered over its memory, and the writer task and give-up timer
the ASGI app made for every WebSocket its client had closed. The tests count objects exactly
(tracemalloc's traces of one line, asyncio's task factory): no sizes, no timings.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop
from websockets.asyncio.client import connect

import aiosio
from aiosio import _memory
from conftest import _Uvicorn

WAVE = 1000  # more objects alive at once than any free list holds (250 to 255)
# What a tracer (coverage, in CI) keeps alive of the objects a frame made: 0 without one.
TRACER_KEEPS = 2


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start(1)
    try:
        yield
    finally:
        tracemalloc.stop()


def _kept(snapshot: tracemalloc.Snapshot, line: int) -> int:
    """The small blocks (CPython's small-object allocator's, up to 512 bytes: the ones that keep
    an arena) allocated at ``line`` of this file that are still allocated. The larger ones, the
    event loop's queue and tables grown for the wave, come from malloc and go back with a trim."""
    return sum(
        1
        for trace in snapshot.traces
        if trace.size <= 512
        and trace.traceback[0].filename == __file__
        and trace.traceback[0].lineno == line
    )


def _run(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], main: Coroutine[Any, Any, Any]
) -> Any:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(asyncio.wait_for(main, 30))


def _wave_of_future_iterators(loop: asyncio.AbstractEventLoop) -> int:
    """What ``await future`` makes for WAVE connections at once; returns the line allocating."""
    futures = [loop.create_future() for _ in range(WAVE)]
    iterators = [future.__await__() for future in futures]  # the line returned
    del iterators, futures
    return _wave_of_future_iterators.__code__.co_firstlineno + 3


@pytest.mark.usefixtures("traced")
@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_the_future_iterators_of_a_wave_are_not_kept_by_the_free_list(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        line = _wave_of_future_iterators(loop)
        before = _kept(tracemalloc.take_snapshot(), line)
        renewed = loop.create_future()
        _memory.renew_loop_free_lists(loop, lambda: renewed.set_result(None))
        await renewed
        return before, _kept(tracemalloc.take_snapshot(), line)

    before, after = _run(loop_factory, main())
    assert before > 200, f"asyncio's free list kept {before} of the wave's iterators: none to renew"
    # 0 when nothing traces the process; under coverage (CI) its tracer keeps the last couple
    # of objects a frame made: still none of the 250 the free list held.
    assert after <= TRACER_KEEPS, f"{after} future iterators of the wave kept after the renewal"


def _wave_of_handles(loop: asyncio.AbstractEventLoop) -> tuple[tuple[int, int], list[Any]]:
    """Timers and callbacks of WAVE connections at once (a close timer each, a callback each),
    cancelled; returns the two lines allocating them, and the handles (to be freed last first,
    as the free lists of a real wave end up with the objects it allocated)."""
    timers = [loop.call_later(3600, print) for _ in range(WAVE)]
    handles = [loop.call_soon(print) for _ in range(WAVE)]
    for handle in (*timers, *handles):
        handle.cancel()
    first = _wave_of_handles.__code__.co_firstlineno
    return (first + 4, first + 5), [timers, handles]


@pytest.mark.usefixtures("traced")
def test_the_handles_of_a_wave_are_not_kept_by_uvloops_free_lists() -> None:
    async def main() -> tuple[list[int], list[int]]:
        loop = asyncio.get_running_loop()
        lines, wave = _wave_of_handles(loop)
        for _ in range(3):  # the loop drops the cancelled handles and closes the timers
            await asyncio.sleep(0)
        del wave  # each list frees its last handle first: the new ones fill the free lists
        snapshot = tracemalloc.take_snapshot()
        before = [_kept(snapshot, line) for line in lines]
        renewed = loop.create_future()
        _memory.renew_loop_free_lists(loop, lambda: renewed.set_result(None))
        await renewed
        snapshot = tracemalloc.take_snapshot()
        return before, [_kept(snapshot, line) for line in lines]

    before, after = _run(uvloop.new_event_loop, main())
    assert min(before) >= 250, f"uvloop's free lists kept {before} of the wave: none to renew"
    assert max(after) <= TRACER_KEEPS, f"timers and callbacks of the wave still kept: {after}"


async def test_a_websocket_its_client_closed_ends_with_no_task_of_its_own() -> None:
    """The ASGI call of a WebSocket whose client left returns without sending a close (there is
    no one to send it to) and so without starting a writer task for it."""
    sio = aiosio.Server()
    app = sio.asgi()
    runner = _Uvicorn(app)
    await runner.start()
    loop = asyncio.get_running_loop()
    started: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        started.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=loop, **kwargs)

    try:
        url = f"ws://127.0.0.1:{runner.port}/socket.io/?EIO=4&transport=websocket"
        sockets = [await connect(url, compression=None) for _ in range(20)]
        for ws in sockets:
            assert str(await ws.recv()).startswith("0{")
            await ws.send("40")
            assert str(await ws.recv()).startswith("40{")
        loop.set_task_factory(factory)
        try:
            await asyncio.gather(*(ws.close() for ws in sockets))
            for _ in range(500):
                if not app.open_websockets:
                    break
                await asyncio.sleep(0.01)
        finally:
            loop.set_task_factory(None)
        assert app.open_websockets == 0
        writers = [name for name in started if name.startswith("AsgiWebSocket.")]
        assert writers == [], f"the closes started {len(writers)} tasks of the app: {writers[:3]}"
    finally:
        await runner.close()

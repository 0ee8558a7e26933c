"""A closed connection is freed at once by reference counting: no object of a session (or of a
client's HTTP request) is left in a reference cycle for the garbage collector's next full pass.
A server with many short sessions would otherwise hold thousands of dead sessions between passes
(the churn benchmark showed 30 objects per connection waiting for it)."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from _eio import eventually
from websockets.asyncio.client import connect

import aiosio
from aiosio import _memory
from aiosio.client.http import ResponseReader
from aiosio.engine.server import EngineSocket
from aiosio.server.socket import Socket
from aiosio.transports.native import HttpConnection


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Tracked:
    """Weak references to every instance of the classes the server creates per connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refs: list[weakref.ref[Any]] = []
        for cls in (EngineSocket, Socket, HttpConnection, ResponseReader):
            original = cls.__init__

            def init(self_: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
                __original(self_, *args, **kwargs)
                self.refs.append(weakref.ref(self_))

            monkeypatch.setattr(cls, "__init__", init)

    def alive(self) -> list[str]:
        return [type(obj).__name__ for ref in self.refs if (obj := ref()) is not None]


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
@pytest.mark.usefixtures("no_gc")
async def test_closed_sessions_are_freed_without_the_garbage_collector(
    monkeypatch: pytest.MonkeyPatch, transports: list[str]
) -> None:
    tracked = _Tracked(monkeypatch)
    sio = aiosio.Server()

    @sio.on("echo")
    def echo(socket: aiosio.Socket, data: object) -> object:
        return data

    server = await aiosio.serve(sio, "127.0.0.1", 0)
    try:
        for _ in range(3):
            client = aiosio.Client(
                f"http://127.0.0.1:{server.port}", transports=transports, reconnection=False
            )
            await client.connect()
            assert await client.emit_with_ack("echo", "x") == "x"
            await client.disconnect()
        assert tracked.refs
        for _ in range(100):  # the server sees the closes a moment later
            if not tracked.alive():
                break
            await asyncio.sleep(0.02)
        assert tracked.alive() == [], f"still alive without gc: {tracked.alive()}"
    finally:
        await server.close()


# The server for the test below, in a process of its own so that only its memory is measured: a
# line on stdin makes it print its open sessions, CPython's small-object arenas in use, and how
# many times it gave memory back after a wave of disconnects. No gc.collect() here: a full
# collection empties CPython's free lists, which is part of what the server must do itself.
_ARENA_SERVER = r"""
import asyncio, os, re, sys, tempfile
import uvloop
import aiosio

def arenas():
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        stats = out.read().decode()
    return int(re.search(r"# arenas allocated current\s*=\s*(\d+)", stats)[1])

async def main():
    sio = aiosio.Server()
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    def measure():
        if not sys.stdin.readline():
            done.set()
        else:
            print(len(sio.engine.clients), arenas(), server.heap.trims, flush=True)
    loop.add_reader(sys.stdin.fileno(), measure)
    print(server.port, flush=True)
    await done.wait()
    await server.close()

with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
    runner.run(main())
"""


async def test_memory_of_closed_connections_goes_back_to_the_operating_system() -> None:
    """After 3000 WebSocket sessions open and close, nearly all of CPython's small-object arenas
    they took are released. Each long-lived object allocated while they came and went would keep
    a 1 MiB arena resident: the record of ended sessions kept a str, a tuple and a float per
    session (all the arenas stayed); uvloop's free lists, when first filled by the wave of
    disconnects, kept 500 handles spread over them (about 80 % stayed); CPython's own free lists,
    refilled by the wave, kept most of them until the server emptied them after it."""
    count = 3000
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ARENA_SERVER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    async def measure() -> tuple[int, int, int]:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(b"\n")
        sessions, arenas, trims = (await proc.stdout.readline()).split()
        return int(sessions), int(arenas), int(trims)

    async def open_session() -> Any:
        ws = await connect(url, open_timeout=10, close_timeout=5, compression=None)
        assert str(await ws.recv()).startswith("0{")
        await ws.send("40")
        assert str(await ws.recv()).startswith("40{")
        return ws

    try:
        async with asyncio.timeout(120):
            port = int(await proc.stdout.readline())
            url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
            _, base, _ = await measure()
            sockets: list[Any] = []
            for _ in range(0, count, 100):
                sockets += await asyncio.gather(*(open_session() for _ in range(100)))
            sessions, held, _ = await measure()
            assert sessions == count
            await asyncio.gather(*(ws.close() for ws in sockets))
            del sockets
            # All gone, and the wave's memory given back (a second after the last close).
            while (left := await measure())[0] or not left[2]:
                await asyncio.sleep(0.05)
            # An arena goes back when its last object is freed: one still referenced by a
            # callback the loop has not run yet (a closing transport's) lets go a turn later.
            for _ in range(20):
                if left[1] - base <= (held - base) // 2:
                    break
                await asyncio.sleep(0.1)
                left = await measure()
        taken = held - base
        kept = left[1] - base
        assert taken > 10, f"{count} sessions took only {taken} arenas: nothing measured"
        # Measured: 2 to 5 of 28 stay on a quiet machine (a few objects that live on, and the
        # allocator keeps one empty arena), 10 or 11 in 2 of 9 fresh-clone CI runs on a busy one
        # (objects of the loaded loop's late callbacks); without any of the three fixes, 21 to 28
        # did: half tells the two apart.
        assert kept <= taken // 2, f"{kept} of the {taken} arenas stayed after the sessions left"
    finally:
        if proc.returncode is None:
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


needs_malloc_trim = pytest.mark.skipif(
    _memory.malloc_trim is None, reason="the C library has no malloc_trim (not glibc)"
)


@needs_malloc_trim
async def test_the_heap_is_trimmed_once_after_a_wave_of_closes() -> None:
    connections: set[int] = set()
    trimmer = _memory.HeapTrimmer(asyncio.get_running_loop(), connections, wave=10, delay=0.05)
    for i in range(20):
        connections.add(i)
        trimmer.opened()
    for i in range(9):  # below the wave: nothing to give back
        connections.discard(i)
        trimmer.closed()
    await asyncio.sleep(0.2)
    assert trimmer.trims == 0
    connections.discard(9)  # the 10th close since the peak of 20
    trimmer.closed()
    await eventually(lambda: trimmer.trims == 1)
    # The peak is now the 10 still open: a few more closes are not a new wave.
    for i in range(10, 15):
        connections.discard(i)
        trimmer.closed()
    await asyncio.sleep(0.2)
    assert trimmer.trims == 1


def test_free_lists_are_not_emptied_by_unfreezing_what_the_application_froze() -> None:
    gc.freeze()  # what a pre-fork server does at startup
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        _memory.clear_free_lists()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
    _memory.clear_free_lists()
    assert gc.get_freeze_count() == 0


async def test_a_wave_of_zero_turns_the_trimmer_off() -> None:
    connections = set(range(100))
    trimmer = _memory.HeapTrimmer(asyncio.get_running_loop(), connections, wave=0, delay=0.01)
    trimmer.opened()
    connections.clear()
    trimmer.closed()
    await asyncio.sleep(0.1)
    assert trimmer.trims == 0


@needs_malloc_trim
async def test_the_native_server_trims_its_heap_when_its_connections_have_left() -> None:
    sio = aiosio.Server()
    server = await aiosio.serve(sio, "127.0.0.1", 0, limits=aiosio.ServerLimits(trim_heap_after=40))
    try:
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        sockets = [await connect(url, compression=None) for _ in range(50)]
        for ws in sockets:
            assert str(await ws.recv()).startswith("0{")
        assert server.heap.trims == 0
        await asyncio.gather(*(ws.close() for ws in sockets))
        await eventually(lambda: server.heap.trims == 1)  # 1 s (its delay) after the closes
    finally:
        await server.close()


@needs_malloc_trim
async def test_the_asgi_app_trims_the_heap_when_its_websockets_have_left() -> None:
    from conftest import _Uvicorn

    sio = aiosio.Server()
    app = sio.asgi(trim_heap_after=40)
    runner = _Uvicorn(app)
    await runner.start()
    try:
        url = f"ws://127.0.0.1:{runner.port}/socket.io/?EIO=4&transport=websocket"
        sockets = [await connect(url, compression=None) for _ in range(50)]
        for ws in sockets:
            assert str(await ws.recv()).startswith("0{")
        heap = app.heap
        assert heap is not None
        assert heap.trims == 0
        await asyncio.gather(*(ws.close() for ws in sockets))
        await eventually(lambda: heap.trims == 1)  # 1 s (its delay) after the closes
    finally:
        await runner.close()

"""A server disconnect while the official client upgrades from polling to WebSocket.

With the default transports, socket.io-client connects on polling and upgrades at once, so a
handler that disconnects the client right after it connects lands anywhere in the upgrade:
polling, probing, upgrading (the client has paused polling and may have switched to the
WebSocket already) or upgraded. Whatever the state, the DISCONNECT packet the server writes
must reach the client before the close: the client sees ``io server disconnect``, never
``transport close`` or nothing at all (issue 12, section 2; the reference gives 40/40).

Each test repeats the scenario (``tests/js/disconnect_tries.mjs``), one connection after the
other, with the server's disconnect at a different step of the upgrade per try (at once in the
connection handler, on the engine socket's ``upgrading`` and ``upgrade`` events, after a short
sleep), and with a busy process pinned to the server's core so that every step can be late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import aiosio
from conftest import JS_DIR
from conftest import ServeFn
from conftest import _node

pytestmark = pytest.mark.interop

TRIES = 40
WAIT_MS = 3000  # per try; the ping timeout would be the only other way out
MOMENTS = ("at once", "upgrading", "upgrade", 0.001, 0.005, 0.02)


@pytest.fixture
def contention() -> Iterator[None]:
    """A busy loop on the core this process (the server) is pinned to, for the test's length."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        yield  # one core: everything already competes
        return
    before = set(cores)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {cores[0]})
        os.sched_setaffinity(0, {cores[0]})
        yield
    finally:
        os.sched_setaffinity(0, before)
        busy.kill()
        busy.wait()


def try_index(socket: aiosio.Socket) -> int:
    """The index of the try this socket belongs to (4.x sends it as auth, 2.x in the query)."""
    return int(socket.handshake.auth.get("try", socket.handshake.query.get("try", 0)))


def disconnecting_server(action: str) -> aiosio.Server:
    """A server whose connection handler disconnects the client with ``action``, at the moment
    of the upgrade given by the try's index (see MOMENTS)."""
    sio = aiosio.Server(allow_eio3=True)

    def disconnect(socket: aiosio.Socket) -> None:
        if not socket.connected:
            return
        if action == "disconnect(close=True)":
            socket.disconnect(close=True)
        elif action == "disconnect()":
            socket.disconnect()
        else:
            sio.to(socket.id).disconnect_sockets(close=True)

    @sio.on("connection")
    async def on_connection(socket: aiosio.Socket) -> None:
        moment = MOMENTS[try_index(socket) % len(MOMENTS)]
        if moment == "at once" or (isinstance(moment, str) and socket.conn.upgraded):
            disconnect(socket)
        elif isinstance(moment, str):
            # The engine socket's own event; if the upgrade started before this handler ran,
            # the fallback below disconnects all the same.
            socket.conn.on(moment, lambda: disconnect(socket))
            await asyncio.sleep(0.5)
            disconnect(socket)
        else:
            await asyncio.sleep(moment)
            disconnect(socket)

    return sio


async def run_tries(
    base: str, client: str, *options: str, tries: int = TRIES
) -> list[dict[str, Any]]:
    """Run the tries; the Node process runs on another core than the server's. ``base`` may
    list several URLs, separated by commas: try i goes to the i-th (see disconnect_tries.mjs)."""
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(JS_DIR / "disconnect_tries.mjs"),
        "--url",
        base,
        "--client",
        client,
        "--tries",
        str(tries),
        "--wait",
        str(WAIT_MS),
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(JS_DIR),
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    cores = sorted(range(os.cpu_count() or 1))
    if len(cores) >= 2:
        with contextlib.suppress(ProcessLookupError):  # exited already: its output says why
            os.sched_setaffinity(proc.pid, {cores[-1]})
    try:
        stdout, stderr = await asyncio.wait_for(
            proc.communicate(), tries * (WAIT_MS / 1000 + 1) + 10
        )
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        pytest.fail("disconnect_tries.mjs ran over its time")
    assert proc.returncode == 0, stderr.decode()
    return [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("client", ["v4", "v2"])
@pytest.mark.parametrize(
    "action", ["disconnect(close=True)", "disconnect()", "disconnect_sockets(close=True)"]
)
async def test_every_try_sees_io_server_disconnect(
    serve: ServeFn, contention: None, client: str, action: str
) -> None:
    sio = disconnecting_server(action)
    base = await serve(sio)
    tries = await run_tries(base, client)
    assert len(tries) == TRIES
    misses = [t for t in tries if t["reason"] != "io server disconnect" or not t["connected"]]
    transports = sorted({t["transport"] for t in tries if t["transport"] is not None})
    assert not misses, f"{len(misses)} of {TRIES} tries missed the disconnect: {misses}"
    assert transports  # the tries ended on polling, websocket or both


# -- server shutdown ------------------------------------------------------------------------------

SHUTDOWN_TRIES = 18  # one server per try: a shutdown ends every session of its server
BYES = 3


def shutting_down_server() -> aiosio.Server:
    """A server that, at the moment of the upgrade given by the try's index, emits ``bye``
    BYES times to the client and shuts its engine down: every ``bye`` must reach the client
    before the close, whether it went on the waiting GET, waited for the next one, or was held
    by the upgrade."""
    sio = aiosio.Server(allow_eio3=True)

    async def shut_down(socket: aiosio.Socket) -> None:
        for n in range(BYES):
            socket.emit("bye", n)
        await sio.engine.shutdown()

    @sio.on("connection")
    async def on_connection(socket: aiosio.Socket) -> None:
        moment = MOMENTS[try_index(socket) % len(MOMENTS)]
        if moment == "at once" or (isinstance(moment, str) and socket.conn.upgraded):
            await shut_down(socket)
        elif isinstance(moment, str):
            started = asyncio.Event()
            socket.conn.on(moment, started.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(started.wait(), 0.5)
            await shut_down(socket)
        else:
            await asyncio.sleep(moment)
            await shut_down(socket)

    return sio


@pytest.mark.parametrize("client", ["v4", "v2"])
async def test_server_shutdown_delivers_what_was_sent_before_the_close(
    serve: ServeFn, contention: None, client: str
) -> None:
    urls = [await serve(shutting_down_server()) for _ in range(SHUTDOWN_TRIES)]
    tries = await run_tries(",".join(urls), client, "--count", "bye", tries=SHUTDOWN_TRIES)
    assert len(tries) == SHUTDOWN_TRIES
    misses = [
        t
        for t in tries
        if t["reason"] != "transport close" or not t["connected"] or t["received"] != BYES
    ]
    assert not misses, f"{len(misses)} of {SHUTDOWN_TRIES} tries lost packets: {misses}"


# -- the namespace connect timeout -----------------------------------------------------------------

CONNECT_TIMEOUTS = (0.001, 0.005, 0.02, 0.05)


async def test_connect_timeout_during_the_upgrade_closes_cleanly(
    serve: ServeFn, contention: None
) -> None:
    """A socket.io-client 4.8 Manager opens the connection and joins no namespace: the server's
    connect timeout closes it during the upgrade (the timeouts are spread over its steps), and
    the client must get the close ("transport close"), not a dropped probe with polling paused
    (nothing until the ping timeout). 2.x clients join "/" with the handshake: no timeout."""
    urls = [await serve(aiosio.Server(connect_timeout=t)) for t in CONNECT_TIMEOUTS]
    tries = await run_tries(",".join(urls), "v4", "--manager-only")
    assert len(tries) == TRIES
    misses = [t for t in tries if t["reason"] != "transport close" or not t["connected"]]
    assert not misses, f"{len(misses)} of {TRIES} tries missed the close: {misses}"

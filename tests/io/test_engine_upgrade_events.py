"""The engine socket's ``upgrading`` and ``upgrade`` events come after the I/O of their step.

A listener that sends and closes from ``upgrade`` (a server disconnecting the client when its
upgrade completes) ran while the upgrade was still flushing: its message was written before
the packets buffered during the upgrade, and its close dropped them (aiosio's own client then saw
neither its namespace's CONNECT nor the DISCONNECT, and waited).
"""

from __future__ import annotations

from typing import Any

import httpx
from _eio import TIMEOUT
from _eio import eventually
from _eio import handshake
from _eio import recorder
from _eio import recv
from _eio import ws_connect
from websockets.exceptions import ConnectionClosedOK

import aiosio


async def test_upgrade_listener_runs_after_the_buffer_is_written(serve: Any) -> None:
    rec = recorder()

    def on_connection(socket: aiosio.EngineSocket) -> None:
        def on_upgrade() -> None:
            socket.send("from the listener")
            socket.close()

        socket.on("upgrade", on_upgrade)

    rec.engine.on("connection", on_connection)
    base = await serve(rec.engine)
    async with httpx.AsyncClient(timeout=TIMEOUT) as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as ws:
            await ws.send("2probe")
            assert await recv(ws) == "3probe"
            rec.sockets[sid].send("buffered during the upgrade")  # the client has paused
            await ws.send("5")
            assert await recv(ws) == "4buffered during the upgrade"
            assert await recv(ws) == "4from the listener"
            try:
                extra = await recv(ws)
            except ConnectionClosedOK:
                extra = None
            assert extra is None
    await eventually(lambda: sid in rec.closes)
    assert rec.closes[sid] == ("forced close", None)


async def test_upgrading_listener_that_closes_leaves_the_close_to_the_upgrade(serve: Any) -> None:
    rec = recorder()
    rec.engine.on(
        "connection",
        lambda socket: socket.on("upgrading", lambda: (socket.send("bye"), socket.close())),
    )
    base = await serve(rec.engine)
    async with httpx.AsyncClient(timeout=TIMEOUT) as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as ws:
            await ws.send("2probe")
            assert await recv(ws) == "3probe"
            await ws.send("5")
            assert await recv(ws) == "4bye"
            await ws.wait_closed()
    assert rec.closes[sid] == ("forced close", None)

"""EngineServer.shutdown(): what was sent to a client reaches it before the close.

Over real sockets, on the native server and under uvicorn. A polling session whose packets wait
for the client's next GET, or that are held by an upgrade in progress, closes once the client has
taken them (the next GET takes them, the one after the close; an upgrade that completes gets them on
the WebSocket, then its close), for at most ``shutdown_timeout``; then what is left is dropped
and logged. ``close()`` stays the immediate close. ``aiosio.Server.shutdown()`` (what the HTTP
servers call) disconnects its sockets, then drains its engine the same way, within its own
``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from _eio import TIMEOUT
from _eio import Recorder
from _eio import eventually
from _eio import handshake
from _eio import poll
from _eio import recorder
from _eio import recv
from _eio import url
from _eio import ws_connect

import aiosio


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT)


async def test_a_buffered_packet_goes_on_the_next_get_then_the_close(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        rec.sockets[sid].send("bye")  # no GET waits: buffered
        shutdown = asyncio.create_task(rec.engine.shutdown())
        await eventually(lambda: rec.engine.shutting_down)
        assert not shutdown.done()
        assert (await poll(c, base, sid)).text == "4bye"
        assert not shutdown.done()
        assert (await poll(c, base, sid)).text == "6\x1e1"
        await asyncio.wait_for(shutdown, TIMEOUT)
    assert rec.closes[sid] == ("forced close", None)
    assert rec.engine.clients_count == 0


async def test_sessions_with_nothing_buffered_close_at_once(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        idle, _, _ = await handshake(c, base)
        waiting, _, _ = await handshake(c, base)
        get = asyncio.create_task(poll(c, base, waiting))
        await eventually(lambda: rec.sockets[waiting].writable)
        async with ws_connect(base) as ws:
            assert (await recv(ws)).startswith("0{")  # type: ignore[union-attr]
            await asyncio.wait_for(rec.engine.shutdown(), TIMEOUT)
            assert (await asyncio.wait_for(get, TIMEOUT)).text == "1"
            await ws.wait_closed()
    assert rec.closes[idle] == ("forced close", None)
    assert rec.closes[waiting] == ("forced close", None)
    assert len(rec.closes) == 3


async def test_the_upgrade_that_completes_carries_the_buffer_then_the_close(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as ws:
            await ws.send("2probe")
            assert await recv(ws) == "3probe"
            # The client has paused polling and is about to send "5" when the server stops.
            rec.sockets[sid].send("bye")
            shutdown = asyncio.create_task(rec.engine.shutdown())
            await eventually(lambda: rec.engine.shutting_down)
            await ws.send("5")
            assert await recv(ws) == "4bye"
            await asyncio.wait_for(shutdown, TIMEOUT)
            await ws.wait_closed()
            assert ws.close_code == 1000
    assert rec.upgrades == [sid]
    assert rec.closes[sid] == ("forced close", None)


async def test_new_sessions_are_refused_while_draining(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        rec.sockets[sid].send("bye")
        shutdown = asyncio.create_task(rec.engine.shutdown())
        await eventually(lambda: rec.engine.shutting_down)
        refused = await c.get(url(base, EIO="4", transport="polling"))
        assert refused.status_code == 503
        assert refused.text == "server shutting down"
        assert len(rec.sockets) == 1
        assert (await poll(c, base, sid)).text == "4bye"
        assert (await poll(c, base, sid)).text == "6\x1e1"
        await asyncio.wait_for(shutdown, TIMEOUT)


async def test_gives_up_after_shutdown_timeout_and_says_so(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder(aiosio.EngineServer(shutdown_timeout=0.2))
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
    rec.sockets[sid].send("never taken")  # the client is gone: no GET will come
    with caplog.at_level(logging.WARNING, "aiosio.engine"):
        await asyncio.wait_for(rec.engine.shutdown(), TIMEOUT)
    assert rec.closes[sid] == ("forced close", None)
    assert rec.engine.clients_count == 0
    [line] = [r.getMessage() for r in caplog.records if "shutdown" in r.getMessage()]
    assert "gave up after shutdown_timeout=0.2s on 1 session(s)" in line
    assert "11 buffered bytes" in line
    assert "raise shutdown_timeout" in line


def test_shutdown_timeout_is_validated() -> None:
    with pytest.raises(ValueError, match="shutdown_timeout must be a positive number"):
        aiosio.EngineServer(shutdown_timeout=0)


# -- aiosio.Server: its shutdown (what the HTTP servers call) drains its engine the same way ----

SIO_PATH = "/socket.io/"


async def connected_polling_client(c: httpx.AsyncClient, base: str, sio: aiosio.Server) -> str:
    """A polling session connected to the main namespace; its engine session id."""
    sid, _, _ = await handshake(c, base, SIO_PATH)
    response = await c.post(
        url(base, SIO_PATH, EIO="4", transport="polling", sid=sid), content=b"40"
    )
    assert response.status_code == 200
    assert (await poll(c, base, sid, SIO_PATH)).text.startswith("40{")
    await eventually(lambda: len(sio.sockets.sockets) == 1)
    return sid


async def test_the_socketio_server_shutdown_delivers_what_was_sent_then_closes(
    serve: Any,
) -> None:
    sio = aiosio.Server()
    reasons: list[str] = []
    sio.on("disconnect", lambda _socket, reason, _description: reasons.append(reason))
    base = await serve(sio)
    async with client() as c:
        sid = await connected_polling_client(c, base, sio)
        sio.emit("bye", 1)  # no GET waits: buffered
        shutdown = asyncio.create_task(sio.shutdown())
        await eventually(lambda: sio.engine.shutting_down)
        assert reasons == ["server shutting down"]
        assert not shutdown.done()
        assert (await poll(c, base, sid, SIO_PATH)).text == '42["bye",1]'
        assert (await poll(c, base, sid, SIO_PATH)).text == "6\x1e1"
        await asyncio.wait_for(shutdown, TIMEOUT)
    assert sio.engine.clients_count == 0


async def test_the_socketio_server_gives_up_after_its_shutdown_timeout(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sio = aiosio.Server(shutdown_timeout=0.2)
    base = await serve(sio)
    async with client() as c:
        await connected_polling_client(c, base, sio)
    sio.emit("never taken")  # the client is gone: no GET will come
    with caplog.at_level(logging.WARNING, "aiosio.engine"):
        await asyncio.wait_for(sio.shutdown(), TIMEOUT)
    assert sio.engine.clients_count == 0
    [line] = [r.getMessage() for r in caplog.records if "shutdown" in r.getMessage()]
    assert "gave up after shutdown_timeout=0.2s on 1 session(s)" in line

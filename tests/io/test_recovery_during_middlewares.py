"""Connection state recovery with the connection middlewares run (``skip_middlewares=False``),
with our client: what is broadcast to a recovered socket's rooms while its middlewares run is
not lost. As in the reference, the socket is back in its rooms before they run; what reaches it
meanwhile follows the events it missed, before its CONNECT, so the client's handlers get every
event once, in order. The wire order and a refusal are in tests/io/test_socketio_hardening.py,
socket.io-client from npm in tests/interop/test_socketio_client.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aiosio
from conftest import until

TIMEOUT = 10.0


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_client_gets_what_is_broadcast_while_the_middlewares_run(
    serve: Any, transport: str
) -> None:
    recovery = aiosio.Recovery(max_disconnection_duration=10, skip_middlewares=False)
    sio = aiosio.Server(connection_state_recovery=recovery)
    gate = asyncio.Event()
    waiting: list[aiosio.Socket] = []

    @sio.use
    async def slow(socket: aiosio.Socket) -> None:
        if socket.recovered:
            waiting.append(socket)
            await gate.wait()

    sio.on("join", lambda socket, room: socket.join(room))
    url = await serve(sio)
    client = aiosio.Client(
        url, transports=[transport], reconnection_delay=0.1, reconnection_delay_max=0.1
    )
    got: list[tuple[Any, ...]] = []
    connects: list[bool] = []
    client.on("news", lambda n: got.append(("news", n)))
    client.on("connect", lambda: connects.append(client.recovered))
    await client.connect()
    try:
        sid = client.id
        assert sid is not None
        await client.emit_with_ack("join", "room1", timeout=TIMEOUT)
        sio.to("room1").emit("news", 0)  # gives the client an offset
        await until(lambda: got == [("news", 0)])
        (engine_socket,) = sio.engine.clients.values()
        engine_socket.close()  # the transport drops: the client comes back with its offset
        await until(lambda: sid not in sio.sockets.sockets)
        sio.to("room1").emit("news", 1)  # missed
        await until(lambda: bool(waiting))
        sio.to("room1").emit("news", 2)  # while the middleware runs
        sio.emit("news", 3)
        sio.to(sid).emit("news", 4)
        sio.except_("room1").emit("news", "not for it")
        gate.set()
        await until(lambda: len(connects) == 2)
        assert connects == [False, True]
        assert client.id == sid
        sio.to("room1").emit("news", 5)
        await until(lambda: ("news", 5) in got)
        assert got == [("news", n) for n in range(6)]
    finally:
        await client.disconnect()

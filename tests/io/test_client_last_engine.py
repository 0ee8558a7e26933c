"""``client.io.engine`` after the connection closed: as socket.io-client's ``socket.io.engine``,
the last Engine.IO session stays readable (its ``ready_state`` ``"closed"``) until the next
attempt replaces it; and only that one is kept, whatever the number of reconnections."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

import aiosio
from aiosio.client.engine import EngineClient
from conftest import free_port
from conftest import until


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_the_engine_stays_readable_once_closed(serve: Any, transport: str) -> None:
    url = await serve(aiosio.Server())
    client = aiosio.Client(url, transports=[transport])
    assert client.io.engine is None  # before the first attempt
    await client.connect()
    engine = client.io.engine
    assert engine is not None
    assert engine.ready_state == "open"
    sid = engine.id
    assert sid is not None
    closes: list[str] = []
    engine.on("close", lambda reason, _description: closes.append(reason))
    await client.disconnect()
    assert client.io.engine is engine
    assert engine.ready_state == "closed"
    assert engine.id is None  # as the reference's once closed
    assert engine.transport.name == transport
    assert closes == ["forced close"]
    assert not client.io.writable
    assert not client.io.can_send()
    client.emit("after", 1)  # buffered by the socket, not written to the closed session
    await client.connect()  # a new attempt replaces it
    assert client.io.engine is not engine
    assert client.io.engine is not None
    assert client.io.engine.ready_state == "open"
    await client.disconnect()


async def test_a_failed_attempt_leaves_its_engine_readable() -> None:
    client = aiosio.Client(f"http://127.0.0.1:{free_port()}", reconnection=False, timeout=5)
    with pytest.raises(aiosio.ConnectError):
        await client.connect()
    engine = client.io.engine
    assert engine is not None
    assert engine.ready_state == "closed"
    assert engine.id is None
    await client.disconnect()


async def test_only_the_last_engine_is_kept_across_reconnections(serve: Any) -> None:
    sio = aiosio.Server()
    url = await serve(sio)
    client = aiosio.Client(
        url,
        transports=["websocket"],
        reconnection_delay=0.05,
        reconnection_delay_max=0.05,
        randomization_factor=0,
    )
    connects: list[str | None] = []
    client.on("connect", lambda: connects.append(client.id))
    await client.connect()
    engines: list[weakref.ref[EngineClient]] = []
    try:
        for round_ in range(1, 6):
            engine = client.io.engine
            assert engine is not None
            engines.append(weakref.ref(engine))
            del engine
            (session,) = sio.engine.clients.values()
            session.close()  # the transport drops: the client reconnects
            await until(lambda n=round_: len(connects) == n + 1)
            del session
        # Each replaced session is freed once its last requests ended.
        await until(lambda: gc.collect() >= 0 and all(ref() is None for ref in engines))
        old = client.io.engine
        assert old is not None
        assert old.ready_state == "open"
    finally:
        await client.disconnect()

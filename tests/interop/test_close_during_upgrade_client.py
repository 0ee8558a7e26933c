"""A server disconnect while aiosio's own client upgrades from polling to WebSocket.

The scenario of ``test_close_during_upgrade_js.py`` with :class:`aiosio.Client` in place of the
official clients: with the default transports the client connects on polling and upgrades at
once, and the server's disconnect lands at a different step of the upgrade per try (at once,
on the engine socket's ``upgrading`` and ``upgrade`` events, after a short sleep), with a busy
process pinned to this process's core. Every try must see ``io server disconnect``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_close_during_upgrade_js import TRIES
from test_close_during_upgrade_js import WAIT_MS
from test_close_during_upgrade_js import contention
from test_close_during_upgrade_js import disconnecting_server

import aiosio
from conftest import ServeFn

pytestmark = pytest.mark.interop

__all__ = ["contention"]  # the fixture, imported for the tests below


async def one_try(base: str, index: int) -> dict[str, Any]:
    client = aiosio.Client(base, auth={"try": index}, reconnection=False, force_new=True)
    outcome: dict[str, Any] = {"try": index, "connected": False, "reason": None}
    ended = asyncio.Event()

    def on_connect() -> None:
        outcome["connected"] = True

    def on_disconnect(reason: str, *_: Any) -> None:
        outcome["reason"] = reason
        ended.set()

    def on_connect_error(err: Exception) -> None:
        outcome["reason"] = f"connect_error: {err}"
        ended.set()

    client.on("connect", on_connect)
    client.on("disconnect", on_disconnect)
    client.on("connect_error", on_connect_error)
    try:
        await client.connect(wait=False)
        await asyncio.wait_for(ended.wait(), WAIT_MS / 1000)
    except TimeoutError:
        pass  # reason stays None: nothing came in time
    finally:
        await client.disconnect()
    return outcome


@pytest.mark.parametrize(
    "action", ["disconnect(close=True)", "disconnect()", "disconnect_sockets(close=True)"]
)
async def test_every_try_of_the_aiosio_client_sees_io_server_disconnect(
    serve: ServeFn, contention: None, action: str
) -> None:
    base = await serve(disconnecting_server(action))
    tries = [await one_try(base, index) for index in range(TRIES)]
    misses = [t for t in tries if t["reason"] != "io server disconnect" or not t["connected"]]
    assert not misses, f"{len(misses)} of {TRIES} tries missed the disconnect: {misses}"

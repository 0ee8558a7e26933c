"""A client that misses the Socket.IO path of a server mounted under a prefix (FastAPI's
``app.mount("/ws", sio.asgi())``: the path is ``/ws/socket.io/``) is told the full path, in the
404's body and in the server's log (issue 17 item 7)."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import aiosio
from conftest import _Uvicorn


@pytest.mark.parametrize("near_miss", ["/ws/", "/ws/engine.io/"])
async def test_the_full_path_is_named(near_miss: str, caplog: pytest.LogCaptureFixture) -> None:
    sio = aiosio.Server()
    app = Starlette(routes=[Mount("/ws", app=sio.asgi())])
    runner = _Uvicorn(app)
    await runner.start()
    caplog.set_level(logging.WARNING, logger="aiosio")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runner.port}") as http:
            missed = await http.get(near_miss, params={"EIO": "4", "transport": "polling"})
            found = await http.get("/ws/socket.io/", params={"EIO": "4", "transport": "polling"})
    finally:
        await runner.close()
    assert missed.status_code == 404
    assert "path='/ws/socket.io/'" in missed.text
    assert "mounted at /ws" in missed.text
    assert found.status_code == 200
    assert found.text.startswith('0{"sid":')
    logged = [r.getMessage() for r in caplog.records if "does not match" in r.getMessage()]
    assert logged
    assert "path='/ws/socket.io/'" in logged[0]
